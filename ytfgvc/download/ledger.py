"""``ledger.sqlite``: one row per video id, whatever became of it.

yt-dlp's download archive records successes only; the ledger records every outcome, so
a run knows what never to ask for again and a report can say why videos are missing.

Tables (schema ``ytfgvc-ledger-2``)::

    videos(id TEXT PRIMARY KEY,     -- YouTube id
           status TEXT NOT NULL,    -- one of ytfgvc.snapshot.STATUSES
           reason TEXT,             -- short, groupable ("HTTP 404", "private video", "12.0 s > 10 s")
           message TEXT,            -- the original error message
           attempts INTEGER,        -- requests made for it, over all runs
           first_attempt TEXT, last_attempt TEXT,   -- ISO 8601 UTC
           bytes INTEGER, sha256 TEXT,              -- of videos/<id>.mp4 (obtained only)
           duration REAL, width INTEGER, height INTEGER, codec TEXT, fps REAL,
           format_id TEXT, source TEXT, ytdlp_version TEXT,
           split TEXT, label INTEGER,
           title TEXT, uploader TEXT,   -- what the source called it, and who uploaded it
           phash TEXT,                  -- perceptual hash of the file (ytfgvc.download.fingerprint)
           origin TEXT)                 -- recovered only: JSON, where the file came from
    checks(id TEXT, census TEXT,        -- the census date (UTC, YYYY-MM-DD): one row per id and census
           checked TEXT, status TEXT NOT NULL, reason TEXT, message TEXT,
           PRIMARY KEY (id, census))    -- status: available, unavailable, blocked or unknown
    meta(key TEXT PRIMARY KEY, value TEXT)      -- schema, dataset
    runs(started TEXT, finished TEXT, config TEXT, summary TEXT)   -- JSON, one row per run

A ledger of the previous schema (``ytfgvc-ledger-1``: no ``title`` ... ``origin`` columns,
no ``checks`` table) is migrated when it is opened for writing; opened read-only, it is
read as it is (the missing columns read as NULL). The fingerprint columns (``title``,
``uploader``, ``phash``) outlive a later failure of the same id: a video that dies keeps
what identified it.

Later stages read only ``videos.id``, ``videos.status`` and ``videos.sha256`` (see :mod:`ytfgvc.snapshot`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ytfgvc.errors import YtfgvcError
from ytfgvc.snapshot import OBTAINED, PERMANENT, STATUSES
from ytfgvc.system.fserrors import disk_full_error, is_disk_full, is_locked, ledger_locked_error

SCHEMA = "ytfgvc-ledger-2"
OLD_SCHEMA = "ytfgvc-ledger-1"  # migrated on open
BUSY_TIMEOUT_S = 60.0  # how long a write waits for another process's transaction before giving up

_COLUMNS = """
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt TEXT,
    last_attempt TEXT,
    bytes INTEGER,
    sha256 TEXT,
    duration REAL,
    width INTEGER,
    height INTEGER,
    codec TEXT,
    fps REAL,
    format_id TEXT,
    source TEXT,
    ytdlp_version TEXT,
    split TEXT,
    label INTEGER,
    title TEXT,
    uploader TEXT,
    phash TEXT,
    origin TEXT
"""
# Columns ytfgvc-ledger-2 added to videos (a ytfgvc-ledger-1 ledger gets them on open).
ADDED_COLUMNS = ("title", "uploader", "phash", "origin")
_CHECKS = """
    id TEXT NOT NULL,
    census TEXT NOT NULL,
    checked TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    PRIMARY KEY (id, census)
"""
# Columns a later failure of the same id does not erase.
KEEP_IF_NULL = ("title", "uploader", "phash")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class VideoRecord:
    """One row of ``videos``."""

    id: str
    status: str
    reason: str | None = None
    message: str | None = None
    attempts: int = 0
    first_attempt: str | None = None
    last_attempt: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    fps: float | None = None
    format_id: str | None = None
    source: str | None = None
    ytdlp_version: str | None = None
    split: str | None = None
    label: int | None = None
    title: str | None = None
    uploader: str | None = None
    phash: str | None = None
    origin: str | None = None

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT

    @property
    def obtained(self) -> bool:
        return self.status in OBTAINED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = [f.name for f in fields(VideoRecord)]


@dataclass(frozen=True)
class Check:
    """One row of ``checks``: what a census found for one id on one date."""

    id: str
    census: str
    checked: str | None
    status: str  # one of CHECK_STATUSES
    reason: str | None = None
    message: str | None = None


CHECK_STATUSES = ("available", "unavailable", "blocked", "unknown")
CHECK_FIELDS = [f.name for f in fields(Check)]


def rank(r: VideoRecord) -> tuple[int, str]:
    """Which of two records of one id wins a merge: ok, then other permanent outcomes, then the latest."""
    tier = 2 if r.obtained else 1 if r.permanent else 0
    return tier, r.last_attempt or ""


def merge_records(a: VideoRecord, b: VideoRecord) -> VideoRecord:
    """Combine two records of one id (from two shards): the better outcome and the widest times.

    ``attempts`` is the larger of the two, so merging the same ledger twice changes nothing.
    """
    best = max(a, b, key=rank)
    out = VideoRecord(**best.to_dict())
    out.attempts = max(a.attempts or 0, b.attempts or 0)
    firsts = [t for t in (a.first_attempt, b.first_attempt) if t]
    lasts = [t for t in (a.last_attempt, b.last_attempt) if t]
    out.first_attempt = min(firsts) if firsts else None
    out.last_attempt = max(lasts) if lasts else None
    out.split = best.split or a.split or b.split
    out.label = best.label if best.label is not None else (a.label if a.label is not None else b.label)
    for name in KEEP_IF_NULL:
        if getattr(out, name) is None:
            setattr(out, name, getattr(a, name) or getattr(b, name))
    return out


class Ledger:
    """The ledger of one dataset; use as a context manager.

    :meth:`record` commits at most every ``commit_every_s`` seconds (a commit waits for
    the disk: tens of milliseconds on a busy one), :meth:`flush_if_due` when that long
    has passed without a record, and :meth:`flush` / :meth:`close`.
    A killed run loses at most that many seconds of records, and nothing that matters:
    a finished file without its record is verified (not fetched) by the next run, a lost
    failure is tried again. ``readonly`` opens an existing ledger without changing it.
    """

    def __init__(self, path: Path, dataset: str, readonly: bool = False, commit_every_s: float = 1.0):
        self.path = Path(path)
        self.dataset = dataset
        self.commit_every_s = commit_every_s
        self._last_commit = time.monotonic()
        if readonly and not self.path.is_file():
            raise YtfgvcError(f"no ledger at {self.path}")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            with self._errors():
                self.db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
                self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                self.db.execute("PRAGMA synchronous = NORMAL")
                if not readonly:
                    self._create()
                    self._migrate()
                self._check()
                self._columns = {row[1] for row in self.db.execute("PRAGMA table_info(videos)")}
        except sqlite3.DatabaseError as e:
            raise YtfgvcError(
                f"cannot use ledger {self.path}: {e}",
                "if the file is damaged, move it away; the next run re-checks every video",
            ) from None

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """A full disk or a ledger locked by another process as one line (nothing committed is lost)."""
        try:
            yield
        except sqlite3.OperationalError as e:
            if is_disk_full(e):
                raise disk_full_error(self.path) from None
            if is_locked(e):
                raise ledger_locked_error(self.path) from None
            raise

    def _create(self) -> None:
        with self.db:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS videos ({_COLUMNS})")
            self.db.execute(f"CREATE TABLE IF NOT EXISTS checks ({_CHECKS})")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.db.execute("CREATE TABLE IF NOT EXISTS runs (started TEXT, finished TEXT, config TEXT, summary TEXT)")
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA,))
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('dataset', ?)", (self.dataset,))

    def _migrate(self) -> None:
        """Bring a ``ytfgvc-ledger-1`` ledger to ``ytfgvc-ledger-2``: add the new columns, in one transaction."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if not row or row[0] != OLD_SCHEMA:
            return
        have = {r[1] for r in self.db.execute("PRAGMA table_info(videos)")}
        with self.db:
            for name in ADDED_COLUMNS:
                if name not in have:
                    self.db.execute(f"ALTER TABLE videos ADD COLUMN {name} TEXT")
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA,))

    def _check(self) -> None:
        meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("schema") not in (SCHEMA, OLD_SCHEMA):
            raise YtfgvcError(f"{self.path}: ledger schema {meta.get('schema')!r}, expected {SCHEMA!r}")
        if meta.get("dataset") != self.dataset:
            raise YtfgvcError(f"{self.path} is the ledger of {meta.get('dataset')!r}, not {self.dataset!r}")

    def flush(self) -> None:
        """Commit what :meth:`record` has written so far."""
        with self._errors():
            self.db.commit()
        self._last_commit = time.monotonic()

    def flush_if_due(self) -> None:
        """Commit what waits for a commit since ``commit_every_s`` (called while no record arrives)."""
        if self.db.in_transaction and time.monotonic() - self._last_commit >= self.commit_every_s:
            self.flush()

    def close(self, quiet: bool = False) -> None:
        """Commit and close; ``quiet``: a failing commit is rolled back silently (another error is on its way)."""
        try:
            if self.db.in_transaction:
                self.flush()
        except (YtfgvcError, sqlite3.Error):
            if not quiet:
                raise
        finally:
            self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(quiet=exc_type is not None)

    # reading
    def _select(self) -> str:
        """The columns of ``videos`` in FIELDS order; NULL for those an old ledger read as it is lacks."""
        return ", ".join(f if f in self._columns else "NULL" for f in FIELDS)

    def records(self) -> dict[str, VideoRecord]:
        with self._errors():
            rows = self.db.execute(f"SELECT {self._select()} FROM videos").fetchall()
        return {row[0]: VideoRecord(*row) for row in rows}

    def get(self, video_id: str) -> VideoRecord | None:
        row = self.db.execute(f"SELECT {self._select()} FROM videos WHERE id = ?", (video_id,)).fetchone()
        return VideoRecord(*row) if row else None

    def checks(self) -> list[Check]:
        """Every census row, oldest census first (none in a ledger of the previous schema)."""
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checks'").fetchone():
            return []
        with self._errors():
            rows = self.db.execute(f"SELECT {', '.join(CHECK_FIELDS)} FROM checks ORDER BY census, id").fetchall()
        return [Check(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) FROM videos GROUP BY status").fetchall()
        return {s: n for s, n in sorted(rows, key=lambda r: STATUSES.index(r[0]) if r[0] in STATUSES else 99)}

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT started, finished, config, summary FROM runs ORDER BY rowid").fetchall()
        return [{"started": s, "finished": f, "config": json.loads(c), "summary": json.loads(m)} for s, f, c, m in rows]

    # writing
    def record(self, rec: VideoRecord) -> None:
        """Insert or update ``rec``: ``attempts`` is added to the stored count, times are kept."""
        if rec.status not in STATUSES:
            raise ValueError(f"unknown status {rec.status!r}")
        values = [getattr(rec, f) for f in FIELDS]
        keep_first = ("id", "attempts", "first_attempt", "split", "label", *KEEP_IF_NULL)
        updates = [f"{f} = excluded.{f}" for f in FIELDS if f not in keep_first]
        updates += [
            "attempts = videos.attempts + excluded.attempts",
            "first_attempt = COALESCE(videos.first_attempt, excluded.first_attempt)",
            "split = COALESCE(excluded.split, videos.split)",
            "label = COALESCE(excluded.label, videos.label)",
            *(f"{f} = COALESCE(excluded.{f}, videos.{f})" for f in KEEP_IF_NULL),
        ]
        sql = (
            f"INSERT INTO videos ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))}) "
            f"ON CONFLICT(id) DO UPDATE SET {', '.join(updates)}"
        )
        with self._errors():
            self.db.execute(sql, values)
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.flush()

    def replace_all(self, records: dict[str, VideoRecord]) -> None:
        """Make the table hold exactly ``records`` (used by merge), in one transaction."""
        self.flush()
        with self._errors(), self.db:
            self.db.execute("DELETE FROM videos")
            self.db.executemany(
                f"INSERT INTO videos ({', '.join(FIELDS)}) VALUES ({', '.join('?' * len(FIELDS))})",
                [[getattr(r, f) for f in FIELDS] for r in records.values()],
            )

    def record_check(self, check: Check) -> None:
        """Insert or replace what a census found for one id (committed like :meth:`record`)."""
        if check.status not in CHECK_STATUSES:
            raise ValueError(f"unknown census status {check.status!r}")
        sql = f"INSERT OR REPLACE INTO checks ({', '.join(CHECK_FIELDS)}) VALUES ({', '.join('?' * len(CHECK_FIELDS))})"
        with self._errors():
            self.db.execute(sql, [getattr(check, f) for f in CHECK_FIELDS])
        if time.monotonic() - self._last_commit >= self.commit_every_s:
            self.flush()

    def add_checks(self, checks: list[Check]) -> None:
        """Add census rows (used by merge): a row that knows (available, unavailable, blocked) wins over unknown."""
        self.flush()
        keep = {(c.id, c.census): c for c in self.checks()}
        for c in checks:
            old = keep.get((c.id, c.census))
            if old is None or (old.status == "unknown" and c.status != "unknown"):
                keep[(c.id, c.census)] = c
        with self._errors(), self.db:
            self.db.execute("DELETE FROM checks")
            self.db.executemany(
                f"INSERT INTO checks ({', '.join(CHECK_FIELDS)}) VALUES ({', '.join('?' * len(CHECK_FIELDS))})",
                [[getattr(c, f) for f in CHECK_FIELDS] for c in keep.values()],
            )

    def log_run(self, started: str, config: dict[str, Any], summary: dict[str, Any]) -> None:
        self.flush()
        with self._errors(), self.db:
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?)",
                (started, utc_now(), json.dumps(config, default=str), json.dumps(summary, default=str)),
            )
