"""``ytfgvc prepare`` killed, terminated, run twice and out of room; loader workers outliving their process."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.layout import DatasetLayout
from ytfgvc.system.fsutil import is_temporary

from .prepare_utils import encode, panning_frames
from .robust_utils import REPO, alive, descendants, grow_tmpfs, json_error_line, small_tmpfs, wait_for, ytfgvc

N_VIDEOS = 6


@pytest.fixture(scope="module")
def pan_videos(tmp_path_factory) -> Path:
    """Videos that take a worker about 2 s each with flow (time to kill it mid-video), a few ms without."""
    folder = tmp_path_factory.mktemp("pan-videos")
    for i in range(N_VIDEOS):
        encode(folder / f"pan{i:08d}.mp4", panning_frames(20, 64, 80, dx=2, seed=i), fps=10)
    return folder


def pan_root(tmp_path: Path, videos: Path) -> DatasetLayout:
    layout = DatasetLayout(tmp_path / "root", "synthetic")
    shutil.copytree(videos, layout.videos_dir)
    return layout


def entries(layout: DatasetLayout) -> tuple[set[str], set[str]]:
    """``(finished folders, every file)`` under ``frames/`` and ``flow/``."""
    done, files = set(), set()
    for top in (layout.frames_root, layout.flow_root):
        if top.is_dir():
            done |= {f"{top.name}/{p.name}" for p in top.iterdir() if not is_temporary(p)}
            files |= {str(p) for p in top.rglob("*")}
    return done, files


def mid_video(layout: DatasetLayout) -> bool:
    return any(is_temporary(p) for top in (layout.frames_root, layout.flow_root) if top.is_dir() for p in top.iterdir())


def start_prepare(layout: DatasetLayout) -> tuple[subprocess.Popen, dict[int, int | None]]:
    """``ytfgvc prepare --flow --jobs 2``, once its pool is writing; its processes (forkserver, tracker, workers)."""
    proc = ytfgvc("prepare", "synthetic", "--root", layout.root, "--jobs", "2", "--flow", "--flow-stack", "2")
    wait_for(lambda: mid_video(layout) or proc.poll() is not None, what="a video half-written")
    pool = descendants(proc.pid)
    assert proc.poll() is None and len(pool) >= 3, "prepare finished before its pool could be seen"
    return proc, pool


def test_killing_prepare_ends_its_pool_within_seconds_and_nothing_is_written_after(tmp_path: Path, pan_videos):
    layout = pan_root(tmp_path, pan_videos)
    proc, pool = start_prepare(layout)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    done_at_kill, _ = entries(layout)
    t0 = time.monotonic()
    wait_for(lambda: not alive(pool), timeout=10, what=f"the pool {sorted(alive(pool))} to end")
    assert time.monotonic() - t0 < 10
    done, files = entries(layout)
    assert done == done_at_kill  # nothing renamed into frames/ or flow/ after the main process died
    time.sleep(1)
    assert entries(layout) == (done, files)  # and nothing written at all once the pool is gone


def test_sigterm_ends_prepare_and_its_pool_with_143_and_a_second_prepare_is_refused(tmp_path: Path, pan_videos):
    layout = pan_root(tmp_path, pan_videos)
    proc, pool = start_prepare(layout)
    second = ytfgvc("prepare", "synthetic", "--root", layout.root, "--jobs", "1")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: `ytfgvc prepare synthetic` on {layout.base} is already running ")
    assert f"(pid {proc.pid} on {socket.gethostname()}, since " in err

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    resume = f"ytfgvc prepare synthetic --root {layout.root} --jobs 2 --flow --flow-stack 2"
    assert err.rstrip().endswith(f"interrupted (SIGTERM): finished work is kept; resume with:\n  {resume}")
    wait_for(lambda: not alive(pool), timeout=10, what="the pool to end")
    done, _ = entries(layout)
    assert all((layout.base / d / "meta.json").is_file() for d in done)


def test_a_full_filesystem_stops_prepare_in_one_line_and_the_same_command_finishes(tmp_path: Path, pan_videos):
    root = tmp_path / "small"
    videos = sum(p.stat().st_size for p in pan_videos.iterdir())
    with small_tmpfs(root, (videos + 64 * 1024) // 4096 * 4096):  # the videos, and the frames of one or two
        layout = DatasetLayout(root, "synthetic")
        shutil.copytree(pan_videos, layout.videos_dir)
        cmd = ["prepare", "synthetic", "--root", root, "--jobs", "2", "--json"]
        proc = ytfgvc(*cmd)
        out, err = proc.communicate(timeout=120)
        err = json_error_line(out, err)  # --json: the error is JSON too
        assert proc.returncode == 2
        assert err.count("\n") == 1 and err.startswith(f"error: no space left on {root} (writing "), err
        assert err.rstrip().endswith("then run the same command again to resume (finished work is kept)")
        done, _ = entries(layout)
        assert all((layout.base / d / "meta.json").is_file() for d in done)  # only complete folders count

        grow_tmpfs(root)
        proc = ytfgvc(*cmd)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["prepared"] == N_VIDEOS and not mid_video(layout)


def test_a_full_disk_at_a_frame_write_gives_one_line_and_nothing_half_written(tmp_path: Path, pan_videos, monkeypatch):
    """The same without a mount: ENOSPC at the third video's first JPEG (one process, so it can be faked)."""
    from ytfgvc.prepare.video import _Decode

    layout = pan_root(tmp_path, pan_videos)
    real, seen = _Decode._write_jpeg, []

    def full_at_third_video(self, number, native, frame):
        seen.append(self.job.video_id) if self.job.video_id not in seen else None
        if len(seen) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.frames_sink.path / "img_00001.jpg"))
        return real(self, number, native, frame)

    args = ["prepare", "synthetic", "--root", str(layout.root), "--jobs", "1", "--json"]
    with monkeypatch.context() as m:
        m.setattr(_Decode, "_write_jpeg", full_at_third_video)
        res = CliRunner().invoke(main, args)
    line = json_error_line(res.stdout, res.stderr)  # --json: the error is JSON too
    assert res.exit_code == 2 and line.count("\n") == 1, res.output
    assert line.startswith("error: no space left on / (writing ") and "run the same command again" in line
    done, _ = entries(layout)
    assert done == {f"frames/{v}" for v in seen[:2]} and not mid_video(layout)

    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and json.loads(res.stdout)["made_frames"] == N_VIDEOS - 2


def test_loader_workers_end_within_seconds_of_a_killed_process(tmp_path: Path):
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from tests.rawframes_utils import make_prepared
        from ytfgvc.data.loader import EpochSampler, make_loader
        from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, read_list
        from ytfgvc.data.transforms import MultiScaleCrop
        layout = make_prepared(__import__("pathlib").Path({str(tmp_path)!r}))
        plan = FramePlan("segments", 2, train=True)
        ds = RawFrameDataset(layout, read_list(layout, "train"), plan, MultiScaleCrop(16))
        loader = make_loader(ds, EpochSampler(len(ds)), batch_size=2, workers=2)
        next(iter(loader))
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout.readline() == "ready\n"
        workers = descendants(proc.pid)
        assert len(workers) >= 2
    finally:
        proc.kill()
        proc.wait()
    # torch's own check ends them after 5 s at best; ytfgvc.system.lifeline's within about one
    wait_for(lambda: not alive(workers), timeout=3, what="the loader's workers to end")


def test_a_meta_json_nested_100000_deep_is_made_again_not_a_traceback(tmp_path: Path, pan_videos):
    layout = pan_root(tmp_path, pan_videos)
    vid = sorted(p.stem for p in layout.videos_dir.glob("*.mp4"))[0]
    layout.frames_dir(vid).mkdir(parents=True)
    (layout.frames_dir(vid) / "meta.json").write_text("[" * 100_000 + "]" * 100_000)
    res = CliRunner().invoke(main, ["prepare", "synthetic", "--root", str(layout.root), "--jobs", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["made_frames"] == N_VIDEOS
    assert json.loads((layout.frames_dir(vid) / "meta.json").read_text())["id"] == vid
