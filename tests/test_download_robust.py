"""``ytfgvc download`` as a hostile user runs it: two at once, killed, terminated, out of room, locked out."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from ytfgvc.benchmark.data import lists_manifest
from ytfgvc.cli import main
from ytfgvc.datasets.official import annotations_hash_of
from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.ledger import Ledger
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare import PrepareConfig, prepare_dataset
from ytfgvc.snapshot import manifest_hash, ok_video_ids, snapshot_hash
from ytfgvc.system.fsutil import is_temporary, sha256_file

from .loopback import FaultServer, make_dataset
from .robust_utils import grow_tmpfs, json_error_line, small_tmpfs, wait_for, ytfgvc
from .utils import make_ids

FAST = ["--retries", "0", "--backoff", "0.01", "--timeout", "5"]


def run(root: Path, source: str, **kw):
    kw = {"jobs": 1, "retries": 0, "backoff_s": 0.01, "timeout_s": 5.0, **kw}
    return download(root, DownloadConfig(dataset="dltest", source=source, **kw), progress=False)


def statuses(root: Path) -> dict[str, str]:
    with Ledger(DatasetLayout(root, "dltest").ledger_path, "dltest", readonly=True) as ledger:
        return {vid: r.status for vid, r in ledger.records().items()}


def recorded_ok(root: Path) -> set[str]:
    try:
        return {v for v, s in statuses(root).items() if s == "ok"}
    except Exception:  # not created yet, or being written
        return set()


def on_disk_hash(layout: DatasetLayout, ids) -> str:
    """The snapshot hash recomputed from the files themselves."""
    files = {v: sha256_file(layout.video_path(v)) for v in ids}
    return snapshot_hash("dltest", annotations_hash_of(layout), files)


def assert_intact(layout: DatasetLayout, ids: list[str]) -> None:
    """Every id ok, each file the mirror's bytes and the ledger's sha256, no temporary left, a fresh manifest."""
    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:
        rows = ledger.records()
    assert {v: r.status for v, r in rows.items()} == dict.fromkeys(ids, "ok")
    for v in ids:
        assert layout.video_path(v).read_bytes() == layout.mirror_video(v).read_bytes()
        assert rows[v].sha256 == sha256_file(layout.video_path(v))
    assert not [p for p in layout.videos_dir.iterdir() if is_temporary(p)]
    manifest = json.loads(layout.manifest_path.read_text())
    assert manifest["hash"] == manifest_hash(layout) == on_disk_hash(layout, ids)


def hung_download(tmp_path: Path, srv: FaultServer, layout: DatasetLayout, ids: list[str], *extra: str):
    """A real ``ytfgvc download`` that has kept all but the last id and hangs half-way through that one."""
    size = layout.mirror_video(ids[-1]).stat().st_size
    srv.faults[ids[-1]] = ("hang", size // 2)
    proc = ytfgvc("download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--jobs", "1", *FAST, *extra)
    part = layout.download_tmp_dir(ids[-1]) / f"{ids[-1]}.mp4.part"
    try:
        wait_for(
            lambda: recorded_ok(tmp_path) == set(ids[:-1]) and part.is_file() and part.stat().st_size > 0,
            what="the download to keep the first videos and hang on the last",
        )
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    return proc


def test_a_second_download_on_the_same_root_is_refused_naming_the_first(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "c")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        first = hung_download(tmp_path, srv, layout, ids, "--json")
        requests = len(srv.log)
        second = ytfgvc("download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--jobs", "2", *FAST)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 2 and out == ""
        assert err.count("\n") == 1 and err.startswith("error: `ytfgvc download dltest` on ")
        assert f"already running (pid {first.pid} on {socket.gethostname()}, since 20" in err
        assert "wait for it to end, or stop it" in err
        assert len(srv.log) == requests  # refused before asking for anything

        srv.release()
        del srv.faults[ids[-1]]
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert_intact(layout, ids)  # the first's results, as if it had been alone
    assert json.loads(out)["totals"] == {"ok": 3}


def test_killed_download_then_prepare_names_what_is_on_disk_not_the_old_manifest(tmp_path: Path, dl_card, clips):
    ids = make_ids(4, "s")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        run(tmp_path, srv.mp4, limit=1)  # a first, finished run: the manifest names 1 video
        old = json.loads(layout.manifest_path.read_text())["hash"]
        proc = hung_download(tmp_path, srv, layout, ids)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        srv.release()
    assert json.loads(layout.manifest_path.read_text())["hash"] == old  # the file is stale: 1 video, 3 on disk

    r = prepare_dataset(tmp_path, "dltest", PrepareConfig(jobs=1))
    framed = {line.split()[0].split("/")[1] for s in ("train", "test") for line in layout.list_path(s).open()}
    assert framed == set(ids[:3]) == ok_video_ids(layout)
    meta = json.loads(layout.lists_meta_path.read_text())
    assert meta["manifest"] == r.manifest == on_disk_hash(layout, framed) != old
    assert lists_manifest(layout) == meta["manifest"]  # what benchmark writes into metrics and predictions


def test_sigterm_stops_the_download_with_its_summary_the_resume_command_and_status_143(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "t")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        proc = hung_download(tmp_path, srv, layout, ids, "--json")
        proc.send_signal(signal.SIGTERM)
        srv.release()  # the hung transfer ends; the run must not ask for anything more
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err
        summary = json.loads(out)
        assert (summary["stopped"], summary["signal"]) == ("interrupted", "SIGTERM")
        assert summary["totals"]["ok"] == 2 and summary["manifest_hash"] == manifest_hash(layout)
        resume = summary["resume_command"]
        assert err.startswith("interrupted: stopped by SIGTERM: finished videos are kept; resume with:\n")
        assert err.strip().endswith(resume) and resume.startswith("ytfgvc download dltest --root ")
        assert json.loads(layout.manifest_path.read_text())["hash"] == manifest_hash(layout)  # written on the way out

        del srv.faults[ids[-1]]
        args = shlex.split(resume)[1:]
        res = subprocess.run([sys.executable, "-m", "ytfgvc", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert_intact(layout, ids)


def test_a_full_filesystem_gives_one_line_and_the_same_command_resumes(tmp_path: Path, dl_card, clips):
    ids = make_ids(16, "f")
    src = make_dataset(tmp_path / "src", dict.fromkeys(ids, clips["ok"]))
    root = tmp_path / "small"
    # The lists, the ledger and its journal, and a few videos: never all 16 (no full run), never none
    size = (128 * 1024 + 5 * clips["ok"].stat().st_size) // 4096 * 4096
    with small_tmpfs(root, size):
        layout = DatasetLayout(root, "dltest")
        shutil.copytree(src.annotations_dir, layout.annotations_dir)
        with FaultServer(src.mirror_dir) as srv:
            cmd = ["download", "dltest", "--root", root, "--source", srv.mp4, "--jobs", "1", "--json", *FAST]
            proc = ytfgvc(*cmd)
            out, err = proc.communicate(timeout=120)
            err = json_error_line(out, err)  # --json: the error is JSON too
            assert proc.returncode == 2
            assert err.count("\n") == 1 and err.startswith(f"error: no space left on {root} (writing ")
            assert "free space there (or move --root elsewhere), then run the same command again to resume" in err
            # Fetching runs ahead of verifying: when the disk fills early, none may be finished yet (all
            # under .tmp- names); whatever is finished is whole.
            kept = {p.stem for p in layout.videos_dir.glob("*.mp4")}
            assert len(kept) < len(ids)
            for v in kept:  # nothing half-written under a finished name
                assert layout.video_path(v).read_bytes() == src.mirror_video(v).read_bytes()

            grow_tmpfs(root)  # space freed
            srv.clear_log()
            proc = ytfgvc(*cmd)
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            assert not [v for v in kept if srv.requested(v)]  # kept files are verified, not fetched again
        for v in ids:
            assert layout.video_path(v).read_bytes() == src.mirror_video(v).read_bytes()
        assert statuses(root) == dict.fromkeys(ids, "ok")
        assert json.loads(layout.manifest_path.read_text())["hash"] == on_disk_hash(layout, ids)


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_full_disk_at_any_write_gives_one_line_and_nothing_half_written(tmp_path: Path, dl_card, clips, monkeypatch):
    """The same without a mount: ENOSPC raised by the rename of a video, then by the ledger's commit."""
    ids = make_ids(4, "e")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    real_replace, calls = os.replace, []

    def full_at_second_video(src, dst, *a, **kw):
        if str(dst).endswith(".mp4") and Path(dst).parent == layout.videos_dir:
            calls.append(dst)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real_replace(src, dst, *a, **kw)

    with FaultServer(layout.mirror_dir) as srv:
        args = ["download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--jobs", "1", "--json", *FAST]
        with monkeypatch.context() as m:
            m.setattr(os, "replace", full_at_second_video)
            res = _cli(*args)
        line = json_error_line(res.stdout, res.stderr)
        assert res.exit_code == 2 and line.count("\n") == 1, res.output
        assert line.startswith("error: no space left on /") and "run the same command again" in line
        assert not Path(calls[1]).exists()  # the video whose rename failed is not under videos/
        for p in layout.videos_dir.glob("*.mp4"):
            assert p.read_bytes() == layout.mirror_video(p.stem).read_bytes()

        def ledger_full(self, rec):  # what SQLite raises at the ledger's write
            with self._errors():
                raise sqlite3.OperationalError("database or disk is full")

        with monkeypatch.context() as m:
            m.setattr(Ledger, "record", ledger_full)
            res = _cli(*args)
        assert res.exit_code == 2, res.output
        assert json_error_line(res.stdout, res.stderr).startswith(
            f"error: no space left on / (writing {layout.ledger_path}"
        )

        res = _cli(*args)
        assert res.exit_code == 0, res.output
    assert_intact(layout, ids)


def test_a_ledger_locked_by_another_process_gives_one_line(tmp_path: Path, dl_card, clips, monkeypatch):
    ids = make_ids(2, "l")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    monkeypatch.setattr("ytfgvc.download.ledger.BUSY_TIMEOUT_S", 0.3)
    with FaultServer(layout.mirror_dir) as srv:
        run(tmp_path, srv.mp4, limit=1)
        code = (
            "import sqlite3, sys, time\n"
            f"db = sqlite3.connect({str(layout.ledger_path)!r}, isolation_level=None)\n"
            "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline() == "locked\n"
            args = ["download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--json", *FAST]
            res = _cli(*args)
            line = json_error_line(res.stdout, res.stderr)
            assert res.exit_code == 2 and line.count("\n") == 1, res.output
            assert line.startswith(f"error: {layout.ledger_path} is locked by another process")
            assert "close what holds it, then run the same command again to resume" in line
        finally:
            holder.kill()
            holder.wait()
        assert _cli(*args).exit_code == 0
    assert_intact(layout, ids)
