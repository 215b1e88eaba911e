"""One process at a time: ``download`` and ``prepare`` per dataset, ``benchmark`` per run folder.

:func:`exclusive` holds an exclusive POSIX record lock (``fcntl.lockf``) on a lock file for
the length of a block, and keeps in that file a record of its holder (schema
``ytfgvc-lock-1``): ``pid``, ``host``, ``pid_start`` (the pid's start time, so a reused pid
is not taken for the holder), ``started``, ``heartbeat`` (rewritten every
:data:`HEARTBEAT_S` seconds) and ``command``. Another process asking for it is refused
with :class:`LockHeld`, one line naming the holder.

What makes a lock left by a dead process safe to take:

* The kernel drops a POSIX lock when its process ends, however it ends (SIGKILL too), so
  on a local filesystem a dead holder's lock is simply free. POSIX locks are not inherited
  by forked children (unlike ``flock``): a DataLoader worker outliving its parent does not
  keep the lock.
* On a network filesystem that supports these locks across clients (NFSv4; NFSv3 with
  lockd; Lustre mounted with ``-o flock``) a client that dies keeps its locks until the
  server's lease runs out (NFSv4: 90 s by default). Meanwhile a holder found dead (on this
  host: its pid is gone or is another process; on another host: no heartbeat for
  :data:`STALE_AFTER_S` seconds) is taken over: the lock file is replaced, by rename, with
  a new one already locked, under a short guard lock (a second byte range of the same
  file) that every acquisition takes, so two processes cannot both take over, and a
  process that only stalled finds at its next heartbeat that the file is no longer its
  own (:attr:`Lock.lost`; :meth:`Lock.check` raises).

Not covered: filesystems without cross-client locks (NFS mounted ``nolock``, Lustre with
``localflock`` or ``noflock``: every host then gets the lock), hosts whose clocks differ by
more than :data:`STALE_AFTER_S` (heartbeats are wall-clock times), and two machines with the
same host name sharing the folder. Within one process, a second :func:`exclusive` on the
same file is refused through a registry (POSIX locks never exclude their own process).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ytfgvc.errors import YtfgvcError
from ytfgvc.system.fsutil import TMP_PREFIX
from ytfgvc.system.lifeline import is_alive, process_start

SCHEMA = "ytfgvc-lock-1"
HEARTBEAT_S = 10.0
STALE_AFTER_S = 6 * HEARTBEAT_S  # a holder on another host is dead after this long without a heartbeat
GUARD_WAIT_S = 10.0
GUARD_AT = 1 << 20  # the guard's byte: beyond the record, so that both can be locked apart
RECORD_BYTES = 1024

_registry = threading.Lock()
_held: dict[str, Lock] = {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Holder:
    """What a lock file says of the process holding it."""

    pid: int
    host: str
    started: str
    heartbeat: str
    pid_start: int | None = None
    command: str = ""
    schema: str = SCHEMA

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            d = json.loads(data.decode("utf-8").strip())
            return cls(
                pid=int(d["pid"]),
                host=str(d["host"]),
                started=str(d["started"]),
                heartbeat=str(d["heartbeat"]),
                pid_start=int(d["pid_start"]) if d.get("pid_start") is not None else None,
                command=str(d.get("command", "")),
            )
        except (ValueError, KeyError, TypeError, RecursionError, AttributeError):
            return None

    def heartbeat_age_s(self) -> float | None:
        try:
            then = _dt.datetime.fromisoformat(self.heartbeat)
        except ValueError:
            return None
        return (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()

    def alive(self) -> bool:
        """Same host: its pid runs and is the same process. Other host: a heartbeat within STALE_AFTER_S."""
        if self.host == socket.gethostname():
            return is_alive(self.pid, self.pid_start)
        age = self.heartbeat_age_s()
        return age is None or age < STALE_AFTER_S

    def describe(self) -> str:
        age = self.heartbeat_age_s()
        beat = f", last heartbeat {max(age, 0):.0f} s ago" if age is not None else ""
        return f"pid {self.pid} on {self.host}, since {self.started}{beat}"


class LockHeld(YtfgvcError):
    """Another process holds the lock; ``holder`` says which (None when its record cannot be read)."""

    def __init__(self, message: str, hint: str | None, holder: Holder | None):
        super().__init__(message, hint)
        self.holder = holder


def _try_lock(fd: int, path: Path, start: int = 0) -> bool:
    """Lock one byte at ``start`` of ``fd`` (0: the holder's lock; GUARD_AT: the guard), without waiting."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, start)
        return True
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EAGAIN):
            return False
        raise YtfgvcError(
            f"cannot lock {path}: {e.strerror}",
            "its filesystem does not lock files across processes (NFS mounted nolock? Lustre without -o flock?): "
            "mount it with locking, or use a local --root",
        ) from None


def _read(fd: int) -> Holder | None:
    return Holder.parse(os.pread(fd, 64 * 1024, 0))


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open_guarded(path: Path) -> int:
    """``path`` opened with its guard held: the short lock every acquisition and takeover happens under."""
    deadline = time.monotonic() + GUARD_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            while not _try_lock(fd, path, GUARD_AT):
                if time.monotonic() > deadline:
                    raise YtfgvcError(
                        f"{path} stayed guarded for {GUARD_WAIT_S:.0f} s",
                        "another process is starting on the same folder: try again in a minute",
                    )
                time.sleep(0.05)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # a takeover replaced the file meanwhile: guard the new one


class Lock:
    """An acquired :func:`exclusive` lock; ``took_over`` is the dead holder it replaced, if any."""

    def __init__(self, path: Path, what: str, hint: str | None = None):
        self.path = Path(os.path.realpath(path))
        self.what = what
        self.hint = hint or "wait for it to end, or stop it (its finished work is kept); then run this command again"
        self.took_over: Holder | None = None
        self.lost = False
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._record = Holder(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=_now(),
            heartbeat=_now(),
            pid_start=process_start(os.getpid()),
            command=shlex.join(sys.argv)[:300],
        )

    def _refusal(self, holder: Holder | None) -> LockHeld:
        who = holder.describe() if holder else "a process whose record cannot be read"
        return LockHeld(f"{self.what} is already running ({who}; lock {self.path})", self.hint, holder)

    def acquire(self) -> Lock:
        key = str(self.path)
        with _registry:  # POSIX locks never exclude their own process, and closing any fd of the file drops them
            if key in _held:
                raise self._refusal(_held[key]._record)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = self._lock_or_take_over()
            _held[key] = self
        self._thread = threading.Thread(target=self._beat, name="ytfgvc-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _lock_or_take_over(self) -> int:
        fd = _open_guarded(self.path)
        try:
            if _try_lock(fd, self.path):
                self._write(fd)
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, GUARD_AT)
                return fd
            holder = _read(fd)
            if holder is None or holder.alive():
                raise self._refusal(holder)
            self.took_over = holder  # dead, but the filesystem still keeps its lock: replace the file
            new = self._replace()
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the old file's guard: whoever waits on it finds the file replaced, and retries
        return new

    def _replace(self) -> int:
        tmp = self.path.with_name(f"{TMP_PREFIX}{self.path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            if not _try_lock(fd, tmp):
                raise YtfgvcError(f"cannot lock the new {tmp}", "try again")
            self._write(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return fd

    def _write(self, fd: int) -> None:
        data = json.dumps(asdict(self._record)).encode()[: RECORD_BYTES - 1]
        os.ftruncate(fd, RECORD_BYTES)
        os.pwrite(fd, data.ljust(RECORD_BYTES - 1) + b"\n", 0)
        os.fsync(fd)  # another host reads it from the server

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if self._fd is None or not _same_file(self._fd, self.path):
                self.lost = True
                return
            self._record.heartbeat = _now()
            with contextlib.suppress(OSError):
                self._write(self._fd)

    def check(self) -> None:
        """Raise if another process took this lock over (this one's heartbeat was late: a stalled host?)."""
        if self.lost:
            raise YtfgvcError(
                f"{self.what}: another process took over {self.path} (this one missed its heartbeats)",
                "let that one finish; this run stops here, its finished work is kept",
            )

    def release(self, remove: bool = False) -> None:
        """Drop the lock; ``remove`` deletes the file first, while still holding it (a contender that
        opened it meanwhile finds it gone and starts over: see :func:`_open_guarded`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with _registry:
            if _held.get(str(self.path)) is self:
                del _held[str(self.path)]
            if self._fd is not None:
                if remove and _same_file(self._fd, self.path):
                    self.path.unlink()
                os.close(self._fd)  # drops the lock
                self._fd = None


@contextlib.contextmanager
def exclusive(path: Path, what: str, hint: str | None = None) -> Iterator[Lock]:
    """Hold the lock file ``path`` for the block; raise :class:`LockHeld` (naming the holder) if another has it.

    ``what`` names the work in messages (e.g. ``"ytfgvc download birds on /data"``); ``hint``
    says what to do when refused.
    """
    lock = Lock(Path(path), what, hint).acquire()
    try:
        yield lock
    finally:
        lock.release()
