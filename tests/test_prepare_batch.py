"""The dataset stage: bad videos, resume, settings, kill, lists and the command line."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.datasets import get_card
from ytfgvc.datasets.inventory import dataset_status
from ytfgvc.datasets.official import load_official
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare import NoVideosError, PrepareConfig, prepare_dataset
from ytfgvc.system.fsutil import is_temporary

from .prepare_utils import die_on_some, encode, faststart_copy, panning_frames

REPO = Path(__file__).resolve().parent.parent


def _root_with(tmp_path: Path, synth_root: Path, n_videos: int | None = None) -> tuple[DatasetLayout, list[str]]:
    """A fresh root with the synthetic lists imported and ``n_videos`` listed videos downloaded."""
    src, layout = DatasetLayout(synth_root, "synthetic"), DatasetLayout(tmp_path / "root", "synthetic")
    shutil.copytree(src.annotations_dir, layout.annotations_dir)
    layout.videos_dir.mkdir(parents=True)
    listed = [v for v, _, _ in load_official(synth_root, "synthetic").all_items()]
    ids = sorted(listed)[:n_videos] if n_videos else sorted(listed)
    for v in ids:
        shutil.copy(src.mirror_video(v), layout.video_path(v))
    return layout, ids


def _truncated_copy(src: Path, dest: Path) -> None:
    dest.write_bytes(src.read_bytes()[: src.stat().st_size // 2])


def _expected_lines(layout: DatasetLayout, split: str) -> list[str]:
    lines = []
    for v, label in load_official(layout.root, "synthetic").split(split):
        folder = layout.frames_dir(v)
        if (folder / "meta.json").is_file():
            lines.append(f"frames/{v} {len(list(folder.glob('img_*.jpg')))} {label}")
    return lines


def test_bad_videos_do_not_stop_the_batch_and_lists_match_the_import(tmp_path: Path, synth_root: Path):
    layout, ids = _root_with(tmp_path, synth_root, n_videos=8)
    corrupt, truncated, no_video = ids[0], ids[1], ids[2]
    layout.video_path(corrupt).write_bytes(np.random.default_rng(0).bytes(20_000))
    # A faststart copy keeps its index when cut, so it opens and then runs out of frames.
    faststart = faststart_copy(layout.video_path(truncated), tmp_path / "fs.mp4")
    _truncated_copy(faststart, layout.video_path(truncated))
    encode_audio_only(layout.video_path(no_video))
    layout.manifest_path.write_text(json.dumps({"schema": "test", "hash": "ab12cd34ef56" + "0" * 52}))

    r = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=2))

    assert set(r.errors) == {corrupt, truncated, no_video}
    assert r.errors[corrupt].startswith("corrupt") and "truncated" in r.errors[truncated]
    assert r.errors[no_video] == "no video stream"
    assert r.prepared == r.made_frames == 5 and r.videos == 8
    assert not any(layout.frames_dir(v).exists() for v in (corrupt, truncated, no_video))
    for split in ("train", "test"):
        written = layout.list_path(split).read_text().splitlines()
        assert written == _expected_lines(layout, split) and written  # official order, prepared ones only
    assert r.lists["written"]["train"] + r.lists["written"]["test"] == 5
    assert r.lists["paper"] == {"train": get_card("synthetic").split_sizes.train, "test": 50}
    missing = dict(line.split(" ", 1) for line in layout.missing_list_path.read_text().splitlines())
    assert missing[corrupt].split(" ", 1)[1].startswith("prepare failed: corrupt")
    listed = {v for v, _, _ in load_official(layout.root, "synthetic").all_items()}
    assert all(missing[v].endswith("not downloaded") for v in listed - set(ids))
    text = r.summary()
    assert "3 failed (the rest went on)" in text and f"{corrupt}: corrupt" in text
    assert "Table 2: 110" in text and "manifest ab12cd34ef56" in text


def encode_audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)


def test_second_run_does_only_what_is_missing_and_settings_are_kept(tmp_path: Path, synth_root: Path):
    layout, ids = _root_with(tmp_path, synth_root, n_videos=3)
    r1 = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1))
    assert r1.made_frames == 3
    stamp = (layout.frames_dir(ids[0]) / "img_00001.jpg").stat().st_mtime_ns
    shutil.rmtree(layout.frames_dir(ids[1]))
    r2 = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1))
    assert (r2.made_frames, r2.already, r2.prepared) == (1, 2, 3)
    r3 = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1, short_side=128))
    assert sorted(r3.stale) == ids and r3.made_frames == 0 and "--force redoes them" in r3.summary()
    assert (layout.frames_dir(ids[0]) / "img_00001.jpg").stat().st_mtime_ns == stamp  # left alone
    r4 = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1, short_side=128, force=True))
    assert r4.made_frames == 3
    assert json.loads((layout.frames_dir(ids[0]) / "meta.json").read_text())["height"] == 128


def _pan_root(tmp_path: Path, n: int, frames: int = 12) -> DatasetLayout:
    """Small panning videos under listed-looking ids (no lists imported)."""
    layout = DatasetLayout(tmp_path / "pan", "synthetic")
    layout.videos_dir.mkdir(parents=True)
    for i in range(n):
        encode(layout.video_path(f"pan{i:08d}"), panning_frames(frames, 64, 80, dx=2, seed=i), fps=10)
    return layout


def test_flow_is_added_later_without_touching_the_frames(tmp_path: Path):
    layout = _pan_root(tmp_path, 2)
    r = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1))
    assert r.made_frames == 2 and r.lists is None and "no official lists imported" in r.summary()
    img = layout.frames_dir("pan00000000") / "img_00001.jpg"
    stamp = img.stat().st_mtime_ns
    r = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1, flow=True, flow_stack=2))
    assert (r.made_frames, r.made_flow) == (0, 2) and img.stat().st_mtime_ns == stamp
    fmeta = json.loads((layout.frames_dir("pan00000000") / "meta.json").read_text())
    wmeta = json.loads((layout.flow_dir("pan00000000") / "meta.json").read_text())
    assert [s["native"] for s in wmeta["stacks"]] == fmeta["native_index"]
    r = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1, flow=True, flow_stack=2))
    assert r.already == 2 and r.flow_pairs == 0


def test_a_killed_run_leaves_nothing_that_counts_and_the_next_run_finishes(tmp_path: Path):
    layout = _pan_root(tmp_path, 3)
    cmd = [sys.executable, "-m", "ytfgvc", "prepare", "synthetic", "--root", str(layout.root), "--jobs", "1"]
    cmd += ["--flow", "--flow-stack", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:  # wait until a video is half-written
            if any(is_temporary(p) for d in (layout.frames_root, layout.flow_root) if d.is_dir() for p in d.iterdir()):
                break
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    roots = [d for d in (layout.frames_root, layout.flow_root) if d.is_dir()]
    leftovers = [p for d in roots for p in d.iterdir() if is_temporary(p)]
    assert leftovers  # killed mid-video
    complete = [p for p in layout.frames_root.iterdir() if not is_temporary(p)]
    assert all((p / "meta.json").is_file() for p in complete)
    assert dataset_status(layout.root, get_card("synthetic")).prepared == len(complete) < 3

    r = prepare_dataset(layout.root, "synthetic", PrepareConfig(jobs=1, flow=True, flow_stack=2))
    assert r.prepared == 3 and not r.errors
    assert not [p for d in (layout.frames_root, layout.flow_root) for p in d.iterdir() if is_temporary(p)]
    for v in (f"pan{i:08d}" for i in range(3)):
        n = json.loads((layout.frames_dir(v) / "meta.json").read_text())["num_frames"]
        assert len(list(layout.flow_dir(v).glob("flow_x_*.jpg"))) == 2 * n


def test_a_worker_that_dies_fails_only_its_video(tmp_path: Path):
    from ytfgvc.prepare.batch import WORKER_DIED, _run_jobs, plan_jobs

    layout = _pan_root(tmp_path, 4, frames=4)
    for i in (1, 2):  # two of them crash the worker that takes them
        layout.video_path(f"pan{i:08d}").rename(layout.video_path(f"die{i:08d}"))
    cfg = PrepareConfig()
    ids = sorted(p.stem for p in layout.videos_dir.glob("*.mp4"))
    jobs, _, _ = plan_jobs(layout, ids, cfg, cfg.video_settings(get_card("synthetic")))
    results = {r.video_id: r for r in _run_jobs(jobs, 2, False, "test", work=die_on_some)}
    assert set(results) == set(ids)
    assert {v for v, r in results.items() if r.error == WORKER_DIED} >= {"die00000001", "die00000002"}
    assert all(results[v].error is None or results[v].error == WORKER_DIED for v in ids)
    assert not layout.frames_dir("die00000001").exists()


def test_cli_json_and_one_line_errors(tmp_path: Path):
    layout = _pan_root(tmp_path, 1, frames=6)
    res = CliRunner().invoke(main, ["prepare", "synthetic", "--root", str(layout.root), "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["prepared"] == 1 and out["settings"]["sample_fps"] == 4.0 and out["errors"] == {}
    empty = tmp_path / "empty"
    res = CliRunner().invoke(main, ["prepare", "synthetic", "--root", str(empty)])
    assert res.exit_code == 2 and "no downloaded videos" in res.output and "ytfgvc download synthetic" in res.output
    res = CliRunner().invoke(main, ["prepare", "synthetic", "--root", str(layout.root), "--flow-stack", "0"])
    assert res.exit_code == 2 and "--flow-stack must be" in res.output
    res = CliRunner().invoke(main, ["prepare", "synthetic", "--root", str(layout.root), "--flow", "--flow-param", "x"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


def test_no_videos_raises_a_clear_error(tmp_path: Path):
    with pytest.raises(NoVideosError, match="no downloaded videos"):
        prepare_dataset(tmp_path, "synthetic")
    assert issubclass(NoVideosError, YtfgvcError)
