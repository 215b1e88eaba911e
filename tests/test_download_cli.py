"""The download commands as a user runs them: status, breaker, shards and merge, serve-mirror, doctor, demo."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.download.ledger import Ledger
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import manifest_hash, ok_video_ids

from .conftest import TINY_SYNTH
from .loopback import FaultServer, make_dataset
from .utils import make_ids

FAST = ["--retries", "0", "--backoff", "0.01", "--timeout", "5"]


def cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_breaker_stops_the_run_and_prints_the_resume_command(tmp_path: Path, dl_card, clips):
    ids = make_ids(6, "b")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    with FaultServer(layout.mirror_dir) as srv:
        for vid in ids:
            srv.faults[vid] = ("status", 429)
        res = cli("download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--jobs", "1", "--breaker", "3", *FAST)
        assert len(srv.log) == 3  # stopped asking: the other three were never requested
    assert res.exit_code == 3
    assert "3 rate-limited answers in a row" in res.stderr
    assert f"ytfgvc download dltest --root {tmp_path} --source '{srv.mp4}' --jobs 1 --retries 0" in res.stderr
    status = json.loads(cli("download", "dltest", "--status", "--json", "--root", tmp_path).stdout)
    assert status["splits"]["train"] == {"listed": 5, "rate_limited": 3, "pending": 2}  # the 6th is the test video
    assert status["splits"]["test"] == {"listed": 1, "pending": 1}


def test_breaker_stops_when_the_network_is_down(tmp_path: Path, dl_card, clips):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/{{id}}.mp4"
    make_dataset(tmp_path, dict.fromkeys(make_ids(12, "n"), clips["ok"]))
    res = cli("download", "dltest", "--root", tmp_path, "--source", dead, "--jobs", "1", "--breaker", "3", *FAST)
    assert res.exit_code == 3 and "6 network errors in a row" in res.stderr
    status = json.loads(cli("download", "dltest", "--status", "--json", "--root", tmp_path).stdout)
    assert status["splits"]["train"] == {"listed": 11, "network_error": 6, "pending": 5}  # the 12th is the test video


def test_status_reports_splits_classes_and_reasons(tmp_path: Path, dl_card, clips):
    ids = make_ids(6, "r")
    labels = dict(zip(ids, [0, 0, 0, 1, 1, 1], strict=True))
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]), test=(ids[2], ids[5]), labels=labels)
    layout.mirror_video(ids[4]).write_bytes(clips["small"].read_bytes())
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[ids[3]] = ("status", 404)
        srv.faults[ids[5]] = ("status", 404)
        res = cli("download", "dltest", "--root", tmp_path, "--source", srv.mp4, "--json", *FAST)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["totals"] == {"ok": 3, "unavailable": 2, "filtered_resolution": 1}
    assert summary["manifest_hash"] == manifest_hash(layout)

    report = json.loads(cli("download", "dltest", "--status", "--json", "--root", tmp_path).stdout)
    assert report["splits"]["train"] == {"listed": 4, "ok": 2, "unavailable": 1, "filtered_resolution": 1}
    assert report["splits"]["test"] == {"listed": 2, "ok": 1, "unavailable": 1}
    assert [(c["label"], c["ok"], c["listed"]) for c in report["classes"]] == [(1, 0, 3), (0, 3, 3)]  # worst first
    assert report["reasons"][0]["status"] == "unavailable" and report["reasons"][0]["reason"] == "HTTP 404"
    assert report["reasons"][0]["count"] == 2 and "404" in report["reasons"][0]["example"]
    text = cli("download", "dltest", "--status", "--root", tmp_path).stdout
    assert "availability per class: min 0%" in text and "HTTP 404" in text


def test_shards_cover_every_id_once_and_merge_into_the_same_snapshot(tmp_path: Path, dl_card, clips):
    ids = make_ids(8, "z")
    roots = {name: tmp_path / name for name in ("shard0", "shard1", "merged", "single")}
    for root in roots.values():
        make_dataset(root, dict.fromkeys(ids, clips["ok"]), test=tuple(ids[:2]))
    with FaultServer(roots["single"] / "dltest" / "mirror") as srv:
        for i in (0, 1):
            shard = ["--shard", f"{i}/2"]
            res = cli("download", "dltest", "--root", roots[f"shard{i}"], "--source", srv.mp4, *shard, *FAST)
            assert res.exit_code == 0, res.output
        cli("download", "dltest", "--root", roots["single"], "--source", srv.mp4, *FAST)
        requested = [p for _, p, _ in srv.log]
    shard_ids = [ok_video_ids(DatasetLayout(roots[f"shard{i}"], "dltest")) for i in (0, 1)]
    assert shard_ids[0] | shard_ids[1] == set(ids) and not shard_ids[0] & shard_ids[1] and all(shard_ids)
    assert len(requested) == 2 * 2 * len(ids)  # shards + single run: one extraction and one download each

    res = cli("download", "dltest", "--merge", roots["shard0"], roots["shard1"] / "dltest" / "ledger.sqlite",
              "--root", roots["merged"], "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    merged = json.loads(res.stdout)
    assert merged["records"] == 8 and merged["copied"] == 8 and merged["counts"] == {"ok": 8}
    layout = DatasetLayout(roots["merged"], "dltest")
    assert ok_video_ids(layout) == set(ids)
    # The same bytes for the same lists: the merged root is the same snapshot as one unsharded run.
    assert manifest_hash(layout) == manifest_hash(DatasetLayout(roots["single"], "dltest"))
    res = cli("download", "dltest", "--merge", roots["shard0"], "--root", roots["merged"], "--json")
    again = json.loads(res.stdout)
    assert again["copied"] == 0 and again["manifest_hash"] == merged["manifest_hash"]  # merging twice changes nothing
    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:
        assert all(r.attempts == 1 for r in ledger.records().values())


def test_merge_and_download_refuse_what_they_cannot_use(tmp_path: Path, dl_card, clips):
    make_dataset(tmp_path, {make_ids(1)[0]: clips["ok"]})
    res = CliRunner().invoke(main, ["download", "dltest", "--root", str(tmp_path), "--merge", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no ledger.sqlite there" in res.output
    res = CliRunner().invoke(main, ["download", "dltest", "--root", str(tmp_path), "stray"])
    assert res.exit_code == 2 and "did you mean --merge" in res.output
    res = CliRunner().invoke(main, ["download", "birds", "--root", str(tmp_path), "--source", str(tmp_path)])
    assert res.exit_code == 2 and "no official lists" in res.output


def test_serve_mirror_serves_ranges_and_nothing_else(synth_root: Path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ytfgvc", "serve-mirror", "synthetic", "--root", str(synth_root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        template = line.split(" at ", 1)[1].strip()
        vid = sorted(p.stem for p in (synth_root / "synthetic" / "mirror").glob("*.mp4"))[0]
        data = (synth_root / "synthetic" / "mirror" / f"{vid}.mp4").read_bytes()
        req = urllib.request.Request(template.replace("{id}", vid), headers={"Range": "bytes=100-199"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 206 and r.read() == data[100:200]
            assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        for bad in ("/../synth.json", "/%2e%2e/synth.json", f"/{vid}.json"):
            try:
                urllib.request.urlopen(template.replace("/{id}.mp4", bad), timeout=10)
                raise AssertionError(bad)
            except urllib.error.HTTPError as e:
                assert e.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_doctor_says_what_to_install(tmp_path: Path):
    res = CliRunner().invoke(main, ["doctor", "--json", "--root", str(tmp_path)])
    out = json.loads(res.stdout)
    names = [c["name"] for c in out["checks"]]
    assert names == [
        "python",
        "yt-dlp",
        "JavaScript runtime",
        "yt-dlp-ejs",
        "yt-dlp plugins",
        "PyAV",
        "ffmpeg CLI",
        "OpenCV TV-L1",
        "torch",
        "ray",
        "disk",
    ]
    assert res.exit_code == (0 if out["ok"] else 1)
    assert all(c["fix"] for c in out["checks"] if c["level"] != "ok")
    from datetime import date

    from ytfgvc.doctor import check_ytdlp

    old = check_ytdlp(today=date(2099, 1, 1))
    assert old.level == "warn" and "pip install -U" in old.fix


def test_demo_download_stage_filters_the_deliberate_misfits(synth_root: Path, tmp_path: Path):
    from ytfgvc.datasets import get_card
    from ytfgvc.demo import DemoContext, stage_download
    from ytfgvc.synth import SynthResult, plan_videos

    shutil.copytree(synth_root / "synthetic", tmp_path / "synthetic")
    specs = plan_videos(TINY_SYNTH, get_card("synthetic").filters.max_duration_s)
    too_long = [s.video_id for s in specs if s.kind == "too_long"]
    too_small = [s.video_id for s in specs if s.kind == "too_small"]
    ctx = DemoContext(root=tmp_path, jobs=2, synth=TINY_SYNTH)
    ctx.results["synth"] = SynthResult(str(tmp_path), len(specs), 0, len(specs), too_long, too_small, 0, 0.0)
    line = stage_download(ctx)
    assert "ok 10, filtered_duration 1, filtered_resolution 1" in line
    assert "too long on purpose: 1/1 filtered_duration" in line
    assert "too small on purpose: 1/1 filtered_resolution" in line
    listed = cli("datasets", "--json", "--root", tmp_path).stdout
    assert {r["name"]: r["downloaded"] for r in json.loads(listed)["datasets"]}["synthetic"] == 10
