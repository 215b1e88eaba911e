"""The ledger's schema: ytfgvc-ledger-2, the migration of a ytfgvc-ledger-1 ledger, the census table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ytfgvc.download.ledger import SCHEMA, Check, Ledger, VideoRecord
from ytfgvc.download.merge import merge
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import snapshot

from .loopback import make_dataset
from .utils import make_ids

# The ytfgvc-ledger-1 tables, as that version of the code created them (frozen here on purpose).
V1_TABLES = """
CREATE TABLE videos (id TEXT PRIMARY KEY, status TEXT NOT NULL, reason TEXT, message TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, first_attempt TEXT, last_attempt TEXT, bytes INTEGER, sha256 TEXT,
    duration REAL, width INTEGER, height INTEGER, codec TEXT, fps REAL, format_id TEXT, source TEXT,
    ytdlp_version TEXT, split TEXT, label INTEGER);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE runs (started TEXT, finished TEXT, config TEXT, summary TEXT);
INSERT INTO meta VALUES ('schema', 'ytfgvc-ledger-1');
"""


def old_ledger(path: Path, dataset: str, rows: list[tuple]) -> Path:
    """A ytfgvc-ledger-1 ledger holding ``rows`` of (id, status, sha256, split, label)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(V1_TABLES)
        db.execute("INSERT INTO meta VALUES ('dataset', ?)", (dataset,))
        db.executemany(
            "INSERT INTO videos (id, status, sha256, split, label, attempts, last_attempt) "
            "VALUES (?, ?, ?, ?, ?, 1, ?)",
            [(*r, "2018-06-01T00:00:00Z") for r in rows],
        )
    db.close()
    return path


def test_an_old_ledger_is_read_as_it_is_and_migrated_when_opened_for_writing(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "o")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    layout.videos_dir.mkdir(parents=True)
    layout.video_path(ids[0]).write_bytes(b"x")
    rows = [(ids[0], "ok", "a" * 64, "train", 0), (ids[1], "unavailable", None, "train", 1)]
    old_ledger(layout.ledger_path, "dltest", rows)

    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:  # read-only: nothing changes
        records = ledger.records()
        assert records[ids[0]].status == "ok" and records[ids[0]].phash is None and ledger.checks() == []
    assert snapshot(layout).ids == {ids[0]}  # later stages read it unchanged
    with sqlite3.connect(layout.ledger_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("ytfgvc-ledger-1",)
    db.close()

    with Ledger(layout.ledger_path, "dltest") as ledger:  # for writing: migrated
        assert ledger.records()[ids[1]].status == "unavailable"
        ledger.record(VideoRecord(ids[2], "ok", sha256="b" * 64, title="a bird", uploader="u", phash="1:00"))
        ledger.record_check(Check(ids[1], "2026-01-01", "2026-01-01T00:00:00Z", "unavailable", "HTTP 404"))
    with sqlite3.connect(layout.ledger_path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == (SCHEMA,)
        columns = {r[1] for r in db.execute("PRAGMA table_info(videos)")}
    db.close()
    assert {"title", "uploader", "phash", "origin"} <= columns
    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:
        assert ledger.records()[ids[2]].title == "a bird" and ledger.checks()[0].reason == "HTTP 404"


def test_a_later_failure_keeps_what_identified_the_video(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    vid = make_ids(1)[0]
    with Ledger(path, "dltest") as ledger:
        ledger.record(VideoRecord(vid, "ok", sha256="c" * 64, title="t", uploader="u", phash="1:ff", duration=3.0))
        ledger.record(VideoRecord(vid, "unavailable", reason="HTTP 404"))
        r = ledger.get(vid)
    assert (r.status, r.title, r.uploader, r.phash) == ("unavailable", "t", "u", "1:ff")


def test_merge_takes_old_shards_and_their_census(tmp_path: Path, dl_card, clips):
    ids = make_ids(2, "q")
    make_dataset(tmp_path / "main", dict.fromkeys(ids, clips["ok"]))
    shard = old_ledger(tmp_path / "shard" / "ledger.sqlite", "dltest", [(ids[0], "unavailable", None, "train", 0)])
    other = tmp_path / "other" / "ledger.sqlite"
    with Ledger(other, "dltest") as ledger:
        ledger.record_check(Check(ids[1], "2026-01-01", None, "unknown"))
        ledger.record_check(Check(ids[0], "2026-01-01", None, "unavailable", "HTTP 404"))
    with Ledger(tmp_path / "main" / "dltest" / "ledger.sqlite", "dltest") as ledger:
        ledger.record_check(Check(ids[1], "2026-01-01", None, "available"))
    merge(tmp_path / "main", "dltest", [shard, other])
    with Ledger(DatasetLayout(tmp_path / "main", "dltest").ledger_path, "dltest", readonly=True) as ledger:
        assert ledger.records()[ids[0]].status == "unavailable"
        assert {(c.id, c.status) for c in ledger.checks()} == {(ids[0], "unavailable"), (ids[1], "available")}


def test_a_ledger_of_an_unknown_schema_is_refused(tmp_path: Path):
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(V1_TABLES.replace("ytfgvc-ledger-1", "ytfgvc-ledger-9"))
        db.execute("INSERT INTO meta VALUES ('dataset', 'dltest')")
    db.close()
    with pytest.raises(YtfgvcError, match="ytfgvc-ledger-9"):
        Ledger(path, "dltest")
