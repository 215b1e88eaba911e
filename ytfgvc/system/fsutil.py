"""Atomic writes: no half-written file or folder is ever taken for a finished one.

Everything ytfgvc writes goes to a temporary name in the destination folder (same
filesystem) and is renamed into place only when complete. Temporary names start with
``.tmp-`` so every stage can recognise and ignore (or sweep) leftovers of a killed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"


def is_temporary(path: Path) -> bool:
    """True for names that only a running (or killed) writer uses."""
    return path.name.startswith(TMP_PREFIX)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` if the block succeeds.

    Works for files and folders alike: whatever the block creates at the yielded path
    replaces ``dest`` (an existing folder at ``dest`` is removed first).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent))
    tmp.rmdir()  # the caller decides whether it becomes a file or a folder
    try:
        yield tmp
        if tmp.is_dir() and dest.is_dir():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    with atomic_path(dest) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text_atomic(dest: Path, text: str) -> None:
    write_bytes_atomic(dest, text.encode("utf-8"))


def write_json_atomic(dest: Path, obj: Any, indent: int | None = 2) -> None:
    write_text_atomic(dest, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sweep_temporaries(folder: Path) -> int:
    """Remove leftovers of killed writers in ``folder``; returns how many were removed."""
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        if is_temporary(p):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            n += 1
    return n
