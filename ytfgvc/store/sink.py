"""Writing one video's frames or flow into either store, atomically.

A sink is written under a temporary name beside its destination (``.tmp-…``, swept by the
next ``prepare``) and renamed into place only after ``meta.json`` is in it; a killed writer
leaves nothing that counts. The rename also settles which store holds the video: a folder
replaces an archive of the same video (removed just before the rename), an archive replaces
a folder (renamed out of the way and removed just after), so a reader never sees the two
disagree (:func:`ytfgvc.store.which_store` prefers the archive).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytfgvc.store.packed import META_NAME, PackedWriter
from ytfgvc.system.fsutil import TMP_PREFIX, atomic_path

STORES = ("folder", "packed")


class Sink:
    """Where a video's files go while it is written: :meth:`add` each file, then :meth:`finish` with its meta.

    ``meta`` is the ``meta.json`` record (a dict), or the bytes of an existing ``meta.json``.
    """

    path: Path  # the temporary folder or archive being written

    def add(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def finish(self, meta: dict[str, Any] | bytes) -> None:
        raise NotImplementedError


class _FolderSink(Sink):
    def __init__(self, tmp: Path):
        self.path = tmp
        tmp.mkdir()

    def add(self, name: str, data: bytes) -> None:
        (self.path / name).write_bytes(data)

    def finish(self, meta: dict[str, Any] | bytes) -> None:
        data = meta if isinstance(meta, bytes) else (json.dumps(meta, indent=2) + "\n").encode()
        (self.path / META_NAME).write_bytes(data)


class _PackedSink(Sink):
    def __init__(self, tmp: Path, durable: bool):
        self.path, self.writer, self.durable, self.finished = tmp, PackedWriter(tmp), durable, False

    def add(self, name: str, data: bytes) -> None:
        self.writer.add(name, data)

    def finish(self, meta: dict[str, Any] | bytes) -> None:
        self.writer.close(meta, durable=self.durable)
        self.finished = True


@dataclass(frozen=True)
class Destination:
    """Where one video's frames (or flow) go: its folder and its archive, and which store to write."""

    store: str
    folder: Path
    archive: Path | None  # None: a folder written where no archive can be (a scratch folder)

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ValueError(f"store must be one of {STORES}, got {self.store!r}")
        if self.store == "packed" and self.archive is None:
            raise ValueError("a packed destination needs its archive path")


@contextlib.contextmanager
def open_sink(dest: Destination, durable: bool = False, verify: Callable[[Path], None] | None = None) -> Iterator[Sink]:
    """A :class:`Sink` for ``dest``; renamed into place when the block ends after :meth:`Sink.finish`.

    ``verify(path)`` is called on the finished temporary folder or archive before the rename
    (it raises to stop it); ``durable`` fsyncs an archive before it is renamed, and the folder
    after (``--repack`` removes the folder store's copy next). A block that ends without
    ``finish`` (or with an exception) leaves nothing behind.
    """
    if dest.store == "folder":
        with atomic_path(dest.folder) as tmp:
            sink = _FolderSink(tmp)
            yield sink
            _require_meta(tmp / META_NAME, dest.folder)
            if verify is not None:
                verify(tmp)
            if dest.archive is not None:
                dest.archive.unlink(missing_ok=True)  # the folder replaces it
        return
    with atomic_path(dest.archive) as tmp:
        sink = _PackedSink(tmp, durable)
        try:
            yield sink
        finally:
            if not sink.finished:
                sink.writer.abort()
        _require_meta(tmp if sink.finished else None, dest.archive)
        if verify is not None:
            verify(tmp)
    if durable:
        fsync_dir(dest.archive.parent)
    remove_folder(dest.folder)  # the archive replaces it


def _require_meta(path: Path | None, dest: Path) -> None:
    if path is None or not path.exists():
        raise RuntimeError(f"{dest}: a sink must be finished with its meta before it is renamed into place")


def remove_folder(folder: Path) -> None:
    """Remove ``folder`` if it exists: renamed to a temporary name first (gone at once), then deleted."""
    if not folder.is_dir():
        return
    gone = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{folder.name}.gone.", dir=folder.parent))
    os.replace(folder, gone / folder.name)
    shutil.rmtree(gone, ignore_errors=True)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the filesystem supports it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
