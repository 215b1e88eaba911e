"""``ytfgvc download`` against loopback HTTP servers serving real tiny videos made here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.ledger import Ledger
from ytfgvc.download.plan import Item
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import manifest_hash, ok_video_ids
from ytfgvc.system.fsutil import sha256_file

from .loopback import FaultServer, make_dataset
from .utils import make_ids


def run(root: Path, source: str | None = None, **kw):
    kw = {"jobs": 2, "retries": 0, "backoff_s": 0.01, "timeout_s": 5.0, **kw}
    return download(root, DownloadConfig(dataset="dltest", source=source, **kw), progress=False)


def ledger_rows(root: Path) -> dict:
    with Ledger(DatasetLayout(root, "dltest").ledger_path, "dltest", readonly=True) as ledger:
        return ledger.records()


def statuses(root: Path) -> dict[str, str]:
    return {vid: r.status for vid, r in ledger_rows(root).items()}


def files_of(layout: DatasetLayout, vid: str) -> list[str]:
    """Everything under videos/ that mentions ``vid`` (finished files and temporaries)."""
    return sorted(p.name for p in layout.videos_dir.iterdir() if vid in p.name) if layout.videos_dir.is_dir() else []


def test_mirror_download_verifies_files_and_filters_by_probing(tmp_path: Path, dl_card, clips):
    ids = make_ids(4, "m")
    files = dict(zip(ids, [clips["ok"], clips["portrait"], clips["small"], clips["long"]], strict=True))
    layout = make_dataset(tmp_path, files, test=(ids[1],))
    r = run(tmp_path)  # the card's default source: its mirror, served over loopback by the run itself

    assert "over http://127.0.0.1:" in r.source
    rows = ledger_rows(tmp_path)
    assert {v: x.status for v, x in rows.items()} == {
        ids[0]: "ok",
        ids[1]: "ok",  # portrait 360x640 counts by its width
        ids[2]: "filtered_resolution",
        ids[3]: "filtered_duration",
    }
    assert "426x240" in rows[ids[2]].message and "7" in rows[ids[3]].message
    assert ok_video_ids(layout) == {ids[0], ids[1]}
    assert sorted(p.name for p in layout.videos_dir.iterdir()) == sorted(
        [f"{ids[0]}.mp4", f"{ids[0]}.info.json", f"{ids[1]}.mp4", f"{ids[1]}.info.json"]
    )
    ok = rows[ids[1]]
    assert (ok.width, ok.height, ok.codec, ok.split, ok.label, ok.attempts) == (360, 640, "h264", "test", 1, 1)
    assert ok.bytes == layout.video_path(ids[1]).stat().st_size
    assert ok.sha256 == sha256_file(layout.video_path(ids[1])) and ok.ytdlp_version
    assert r.extractions == 4  # one extraction per video

    manifest = json.loads(layout.manifest_path.read_text())
    assert manifest["schema"] == "ytfgvc-manifest-2" and manifest["hash"] == manifest_hash(layout)
    assert manifest["videos"][ids[0]]["sha256"] == rows[ids[0]].sha256
    assert manifest["videos"][ids[3]] == {"status": "filtered_duration", "split": "train", "label": 1}
    assert set(manifest["tools"]) >= {"ytfgvc", "yt_dlp", "av", "python"}

    again = run(tmp_path)  # nothing left to do: no request, same snapshot
    assert again.this_run == {} and again.done_before == 2
    assert again.settled == {"filtered_resolution": 1, "filtered_duration": 1}
    assert again.manifest_hash == r.manifest_hash


def test_filters_from_metadata_before_any_video_byte(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "p")
    make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(DatasetLayout(tmp_path, "dltest").mirror_dir) as srv:
        srv.page(ids[0], duration_s=2, width=640, height=360)
        srv.page(ids[1], duration_s=60, width=640, height=360)  # the card allows 5 s
        srv.page(ids[2], duration_s=2, width=426, height=240)
        run(tmp_path, srv.html)
        assert statuses(tmp_path) == {ids[0]: "ok", ids[1]: "filtered_duration", ids[2]: "filtered_resolution"}
        assert srv.requested(ids[0]) and not srv.requested(ids[1]) and not srv.requested(ids[2])
    rows = ledger_rows(tmp_path)
    assert "from the source's metadata" in rows[ids[1]].message and rows[ids[1]].duration == 60


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        (("status", 404), "unavailable", "404"),
        (("status", 410), "unavailable", "410"),
        (("status", 403), "blocked", "403"),
        (("status", 429), "rate_limited", "429"),
        (("status", 503), "network_error", "503"),
    ],
)
def test_http_errors_become_statuses(tmp_path: Path, dl_card, clips, fault, status, words):
    ids = make_ids(2, "h")
    make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(DatasetLayout(tmp_path, "dltest").mirror_dir) as srv:
        srv.faults[ids[0]] = fault
        run(tmp_path, srv.mp4)
    rows = ledger_rows(tmp_path)
    assert rows[ids[0]].status == status and words in rows[ids[0]].message and rows[ids[1]].status == "ok"
    assert files_of(DatasetLayout(tmp_path, "dltest"), ids[0]) == []


def test_bad_bodies_are_corrupt_and_leave_nothing(tmp_path: Path, dl_card, clips):
    ids = make_ids(4, "c")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    data = clips["ok"].read_bytes()
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[0]] = ("body", data[: len(data) * 2 // 3])  # a truncated file, served as if whole
        srv.faults[ids[1]] = ("body", b"<html><body>Sorry, this is not a video</body></html>")
        srv.faults[ids[2]] = ("cut", len(data) // 2)  # the connection drops mid-body
        run(tmp_path, srv.mp4)
    rows = ledger_rows(tmp_path)
    assert [rows[v].status for v in ids] == ["corrupt", "corrupt", "network_error", "ok"]
    assert files_of(layout, ids[0]) == [] and files_of(layout, ids[1]) == []
    assert f"{ids[2]}.mp4" not in files_of(layout, ids[2])  # only its partial download, under a temporary name
    assert ok_video_ids(layout) == {ids[3]}


def test_slow_server_within_the_timeout_and_beyond_it(tmp_path: Path, dl_card, clips):
    ids = make_ids(2, "s")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[0]] = ("trickle", 0.05)  # slow, but never silent for long
        srv.faults[ids[1]] = ("sleep", 3.0)  # silent past the timeout
        t = time.perf_counter()
        run(tmp_path, srv.mp4, timeout_s=0.5)
        assert time.perf_counter() - t < 2.5  # gave up on the silent one after about the timeout
    rows = ledger_rows(tmp_path)
    assert rows[ids[0]].status == "ok"
    assert rows[ids[1]].status == "network_error" and rows[ids[1]].reason == "timeout"


def test_transient_failures_are_retried_with_backoff(tmp_path: Path, dl_card, clips):
    ids = make_ids(1, "t")
    make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(DatasetLayout(tmp_path, "dltest").mirror_dir) as srv:
        srv.faults[ids[0]] = ("fail_first", 2, 503)
        t = time.perf_counter()
        run(tmp_path, srv.mp4, retries=3, backoff_s=0.2)
        waited = time.perf_counter() - t
    row = ledger_rows(tmp_path)[ids[0]]
    assert row.status == "ok" and row.attempts == 3
    assert waited >= 0.2 + 0.4  # 0.2 s, then 0.4 s


def test_permanent_failures_are_not_requested_again(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "f")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[0]] = ("status", 404)
        srv.faults[ids[1]] = ("status", 403)
        run(tmp_path, srv.mp4)
        srv.clear_log()
        r = run(tmp_path, srv.mp4)
        assert srv.log == [] and r.settled == {"unavailable": 1, "blocked": 1} and r.done_before == 1
        del srv.faults[ids[1]]  # access restored: only --retry-failed asks again
        r = run(tmp_path, srv.mp4, retry_failed=True)
        assert srv.requested(ids[0]) and srv.requested(ids[1]) and not srv.requested(ids[2])
    rows = ledger_rows(tmp_path)
    assert rows[ids[1]].status == "ok" and rows[ids[1]].attempts == 2 and rows[ids[0]].attempts == 2


def test_invalid_ids_are_rejected_before_any_request(tmp_path: Path, dl_card, clips):
    good = make_ids(1, "g")[0]
    make_dataset(tmp_path, {good: clips["ok"]})
    items = [Item(good), Item("../../etc/pa"), Item("short"), Item("x" * 11 + "/")]
    with FaultServer(DatasetLayout(tmp_path, "dltest").mirror_dir) as srv:
        with pytest.raises(ValidationError) as e:
            download(tmp_path, DownloadConfig(dataset="dltest", source=srv.mp4), items=items, progress=False)
        assert srv.log == []
    assert "'../../etc/pa'" in e.value.report() and "'short'" in e.value.report()
    assert not DatasetLayout(tmp_path, "dltest").ledger_path.exists()


def test_folder_source_copies_remuxes_and_reports_missing(tmp_path: Path, dl_card, clips):
    ids = make_ids(3, "d")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    mine = tmp_path / "my-videos"
    mine.mkdir()
    (mine / f"{ids[0]}.mp4").write_bytes(clips["ok"].read_bytes())
    (mine / f"{ids[1]}.webm").write_bytes(clips["webm"].read_bytes())
    r = run(tmp_path, str(mine))
    rows = ledger_rows(tmp_path)
    assert [rows[v].status for v in ids] == ["ok", "ok", "unavailable"] and r.extractions == 0
    assert rows[ids[1]].codec == "vp9" and layout.video_path(ids[1]).read_bytes()[4:8] == b"ftyp"  # MP4 now
    assert rows[ids[2]].reason == "not in the folder"


def test_folder_source_remuxes_h264_with_b_frames_from_matroska(tmp_path: Path, dl_card, clips):
    from .utils import decode_bgr, write_video

    vid = make_ids(1, "x")[0]
    layout = make_dataset(tmp_path, {vid: clips["ok"]})
    mine = tmp_path / "my-videos"
    mine.mkdir()
    mkv = write_video(mine / f"{vid}.mkv", decode_bgr(clips["ok"]), fps=10)  # x264's B-frames: no dts at first
    r = run(tmp_path, str(mine), split="train")
    assert r.this_run == {"ok": 1} and layout.video_path(vid).read_bytes()[4:8] == b"ftyp"
    assert len(decode_bgr(layout.video_path(vid))) == len(decode_bgr(mkv)) == 20  # every frame kept


def test_a_finished_file_without_a_record_is_verified_not_fetched(tmp_path: Path, dl_card, clips):
    ids = make_ids(2, "a")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    layout.videos_dir.mkdir(parents=True)
    layout.video_path(ids[0]).write_bytes(clips["ok"].read_bytes())  # renamed, then killed before the ledger
    layout.video_path(ids[1]).write_bytes(b"not a video")  # damaged: removed and fetched
    with FaultServer(layout.mirror_dir) as srv:
        run(tmp_path, srv.mp4)
        assert not srv.requested(ids[0]) and srv.requested(ids[1])
    rows = ledger_rows(tmp_path)
    assert rows[ids[0]].status == "ok" and rows[ids[0]].attempts == 0 and "verified" in rows[ids[0]].reason
    assert rows[ids[1]].status == "ok" and ok_video_ids(layout) == set(ids)


def test_resume_after_kill_mid_download(tmp_path: Path, dl_card, clips):
    ids = make_ids(4, "k")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    size = clips["ok"].stat().st_size
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[2]] = ("hang", size // 2)  # half the bytes, then silence
        cmd = [sys.executable, "-m", "ytfgvc", "download", "dltest", "--root", str(tmp_path)]
        cmd += ["--source", srv.mp4, "--jobs", "1", "--retries", "0", "--json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        try:
            part = layout.download_tmp_dir(ids[2]) / f"{ids[2]}.mp4.part"
            deadline = time.monotonic() + 60
            done = [layout.video_path(v) for v in ids[:2]]
            while time.monotonic() < deadline and not (
                part.is_file() and part.stat().st_size and all(p.is_file() for p in done)
            ):
                time.sleep(0.05)  # until the first two are kept and the third is half-way
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert len(srv.requested(ids[2])) == 2, srv.log

        # Killed mid-download: the two finished videos are in place, the third is only a partial download
        # under a temporary name, and the ledger (committed about once a second) never claims more than exists.
        assert sorted(p.name for p in layout.videos_dir.glob("*.mp4")) == [f"{ids[0]}.mp4", f"{ids[1]}.mp4"]
        recorded = statuses(tmp_path)
        assert set(recorded.values()) <= {"ok"} and set(recorded) <= {ids[0], ids[1]}
        assert ok_video_ids(layout) == set(recorded)
        assert part.stat().st_size > 0

        del srv.faults[ids[2]]
        srv.release()
        srv.clear_log()
        r = run(tmp_path, srv.mp4, jobs=1)
        assert not srv.requested(ids[0]) and not srv.requested(ids[1])  # no duplicate work: verified, not fetched
        # yt-dlp resumed the partial file instead of starting over
        assert any(rng and not rng.startswith("bytes=0-") for _, _, rng in srv.requested(ids[2])), srv.log
    assert r.this_run == {"ok": 4 - len(recorded)} and statuses(tmp_path) == dict.fromkeys(ids, "ok")
    assert ok_video_ids(layout) == set(ids) and not any(p.name.startswith(".tmp-") for p in layout.videos_dir.iterdir())
    for vid in ids:
        assert ledger_rows(tmp_path)[vid].sha256 == sha256_file(layout.video_path(vid))


def test_bad_options_fail_before_anything(tmp_path: Path, dl_card, clips):
    make_dataset(tmp_path, {make_ids(1)[0]: clips["ok"]})
    for kw, words in [
        ({"source": "ftp://x/{id}"}, "not youtube, mirror"),
        ({"source": "http://x/video.mp4"}, "exactly one {id}"),
        ({"shard": "2/2"}, "0..1"),
        ({"sleep": "10-5"}, "must go up"),
        ({"jobs": 0}, "--jobs"),
    ]:
        with pytest.raises(YtfgvcError, match=words.replace("{", r"\{").replace("}", r"\}")):
            run(tmp_path, **kw)
