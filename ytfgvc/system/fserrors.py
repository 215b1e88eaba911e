"""A full disk and a locked ledger, as one line that says what to do.

Every stage writes under temporary names and renames when complete (:mod:`ytfgvc.system.fsutil`),
and the ledger commits in transactions, so a write that fails for lack of space leaves
nothing that a later run takes for finished: freeing space and running the same command
again resumes. These helpers recognise such failures wherever they surface (an
``OSError``, SQLite's ``database or disk is full``, a message from yt-dlp) and say so.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
from pathlib import Path

from ytfgvc.errors import YtfgvcError

_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded|database or disk is full|\[errno 28\]", re.I)
RESUME = "run the same command again to resume (finished work is kept)"


class DiskFull(YtfgvcError):
    """A write found no space (or no quota) left."""


class LedgerLocked(YtfgvcError):
    """Another process keeps the ledger locked."""


def says_disk_full(text: str) -> bool:
    """Whether an error message (yt-dlp's, SQLite's) is about a full disk."""
    return bool(_FULL_TEXT.search(text))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(seen) < 20 and not any(e is s for s in seen):
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is a write that failed for lack of space or quota."""
    for e in _chain(exc):
        if isinstance(e, DiskFull) or (isinstance(e, OSError) and e.errno in _FULL_ERRNOS):
            return True
        if isinstance(e, sqlite3.OperationalError) and "full" in str(e):
            return True
        if says_disk_full(str(e)):
            return True
    return False


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's ``database is locked`` (another process holds a write transaction)."""
    return any(
        isinstance(e, LedgerLocked) or (isinstance(e, sqlite3.OperationalError) and "locked" in str(e))
        for e in _chain(exc)
    )


def _mount_point(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def disk_full_error(path: Path | str | None, exc: BaseException | None = None) -> DiskFull:
    """The one-line error for a write to ``path`` that found no space."""
    if path is None and isinstance(exc, OSError) and exc.filename:
        path = exc.filename
    if path is None:
        return DiskFull("no space left on the disk", f"free space (or move --root), then {RESUME}")
    mount = _mount_point(Path(path))
    try:
        free = f", {shutil.disk_usage(mount).free / 1e6:.0f} MB free"
    except OSError:
        free = ""
    return DiskFull(
        f"no space left on {mount} (writing {path}{free})",
        f"free space there (or move --root elsewhere), then {RESUME}",
    )


def ledger_locked_error(path: Path | str) -> LedgerLocked:
    """The one-line error for a ledger another process keeps locked."""
    return LedgerLocked(
        f"{path} is locked by another process (no ytfgvc download holds it: an sqlite3 shell, a backup, "
        "a copy on a network filesystem?)",
        f"close what holds it, then {RESUME}",
    )


def as_user_error(exc: BaseException) -> YtfgvcError | None:
    """A full disk or a locked SQLite database as a :class:`YtfgvcError`; None for anything else."""
    for e in _chain(exc):
        if isinstance(e, (DiskFull, LedgerLocked)):
            return e
    if is_disk_full(exc):
        return disk_full_error(None, next((e for e in _chain(exc) if isinstance(e, OSError)), None))
    if is_locked(exc):
        return ledger_locked_error("the ledger")
    return None
