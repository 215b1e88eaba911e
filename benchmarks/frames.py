"""Frame extraction speed: ``ytfgvc prepare`` against the ffmpeg CLI, on the same clip, in the same run.

The clip is a long 720p H.264 video of a scene filmed by a moving camera (``_camera.py``).
Both tools decode it and write JPEGs at ``--fps`` frames per second, short side 256:

* ffmpeg: ``ffmpeg -i clip.mp4 -vf fps=R,scale=-2:256 -q:v 2 img_%05d.jpg`` (all cores, its
  default decoding threads);
* ytfgvc: ``prepare_dataset(..., PrepareConfig(sample_fps=R, jobs=1))`` (one worker, PyAV's
  default decoding threads), which also writes ``meta.json``.

Each measurement is repeated (``--repeats``), the two tools alternating; the best time of
each is reported, with frames/s and the ratio ytfgvc / ffmpeg (target >= 1.0). Then
scaling: two videos with ``--jobs 1`` and ``--jobs 2``, and against two ffmpeg processes
side by side.

Example:
    python benchmarks/frames.py --seconds 60 --fps 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's ytfgvc, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _camera import make_video  # noqa: E402

from ytfgvc.layout import DatasetLayout  # noqa: E402
from ytfgvc.prepare import PrepareConfig, prepare_dataset  # noqa: E402

DATASET = "birds"  # any card: the rate comes from --fps


def _root(work: Path, name: str, clip: Path, n_videos: int) -> DatasetLayout:
    layout = DatasetLayout(work / name, DATASET)
    layout.videos_dir.mkdir(parents=True, exist_ok=True)
    for i in range(n_videos):
        link = layout.video_path(f"bench{i:06d}")
        link.unlink(missing_ok=True)
        link.symlink_to(clip.resolve())
    return layout


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def run_ytfgvc(layout: DatasetLayout, fps: float, short: int, jobs: int) -> tuple[float, int, float | None]:
    """Wall seconds, frames written, CPU seconds (None with workers: they are not our children)."""
    shutil.rmtree(layout.frames_root, ignore_errors=True)
    t, c = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    r = prepare_dataset(layout.root, DATASET, PrepareConfig(sample_fps=fps, short_side=short, jobs=jobs))
    seconds, cpu = time.perf_counter() - t, _cpu(resource.RUSAGE_SELF) - c
    if r.errors:
        raise SystemExit(f"ytfgvc failed: {r.errors}")
    return seconds, r.frames_written, cpu if jobs == 1 else None


def run_ffmpeg(clip: Path, out_dirs: list[Path], fps: float, short: int) -> tuple[float, int, float]:
    """One ffmpeg process per output folder, all at once: wall seconds, frames written, CPU seconds."""
    for d in out_dirs:
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    t, c = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    procs = [
        subprocess.Popen(
            [
                "ffmpeg",
                "-v",
                "error",
                "-nostdin",
                "-i",
                str(clip),
                "-vf",
                f"fps={fps:g},scale=-2:{short}",
                "-q:v",
                "2",
                str(d / "img_%05d.jpg"),
            ]
        )  # fmt: skip
        for d in out_dirs
    ]
    if any(p.wait() != 0 for p in procs):
        raise SystemExit("ffmpeg failed")
    seconds, cpu = time.perf_counter() - t, _cpu(resource.RUSAGE_CHILDREN) - c
    return seconds, sum(len(list(d.glob("img_*.jpg"))) for d in out_dirs), cpu


def _best(times: list[tuple[float, int, float | None]]) -> dict[str, float | None]:
    secs = [t for t, _, _ in times]
    cpus = [c for _, _, c in times if c is not None]
    frames = times[0][1]
    return {
        "frames": frames,
        "best_s": min(secs),
        "median_s": statistics.median(secs),
        "frames_per_s": frames / min(secs),
        "best_cpu_s": min(cpus) if cpus else None,
        "frames_per_cpu_s": frames / min(cpus) if cpus else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the 720p clip")
    ap.add_argument("--fps", type=float, default=2.0, help="frames kept per second (Birds: 2, Cars: 4)")
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "ytfgvc-bench-frames")
    ap.add_argument("--no-scaling", action="store_true", help="skip the two-video runs")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    clip = make_video(args.work / f"camera-720p-{args.seconds:g}s.mp4", args.seconds)
    print(f"clip: {clip} ({clip.stat().st_size / 1e6:.1f} MB, ready in {time.perf_counter() - t:.1f} s)")
    print(f"cores: {os.cpu_count()}; load average now: {os.getloadavg()[0]:.1f}")
    one, two = _root(args.work, "one", clip, 1), _root(args.work, "two", clip, 2)
    ff_out = [args.work / "ffmpeg" / f"v{i}" for i in range(2)]
    fps, short = args.fps, args.short_side

    Run = tuple[float, int, float | None]
    runs: dict[str, list[Run]] = {k: [] for k in ("ffmpeg", "ytfgvc", "ffmpeg_x2", "ytfgvc_j1", "ytfgvc_j2")}
    run_ffmpeg(clip, ff_out[:1], fps, short)  # warm the page cache
    for rep in range(args.repeats):
        order = [("ffmpeg", lambda: run_ffmpeg(clip, ff_out[:1], fps, short)),
                 ("ytfgvc", lambda: run_ytfgvc(one, fps, short, 1))]  # fmt: skip
        if rep % 2:
            order.reverse()
        if not args.no_scaling:
            order += [
                ("ytfgvc_j1", lambda: run_ytfgvc(two, fps, short, 1)),
                ("ytfgvc_j2", lambda: run_ytfgvc(two, fps, short, 2)),
                ("ffmpeg_x2", lambda: run_ffmpeg(clip, ff_out, fps, short)),
            ]
        for name, fn in order:
            runs[name].append(fn())
            print(f"  repeat {rep + 1}: {name:<10} {runs[name][-1][0]:7.2f} s  {runs[name][-1][1]} frames", flush=True)

    res = {k: _best(v) for k, v in runs.items() if v}
    ratio = res["ytfgvc"]["frames_per_s"] / res["ffmpeg"]["frames_per_s"]
    print()
    head = f"{'one video, same cores':<30} {'frames':>6} {'best s':>7} {'median s':>8} {'frames/s':>9}"
    print(head + f" {'CPU s':>6} {'frames/CPU s':>12}")
    for name, label in (("ffmpeg", "ffmpeg -vf fps,scale -q:v 2"), ("ytfgvc", "ytfgvc prepare --jobs 1")):
        r = res[name]
        print(
            f"{label:<30} {r['frames']:>6} {r['best_s']:>7.2f} {r['median_s']:>8.2f} {r['frames_per_s']:>9.1f}"
            f" {r['best_cpu_s']:>6.2f} {r['frames_per_cpu_s']:>12.1f}"
        )
    cpu_ratio = res["ytfgvc"]["frames_per_cpu_s"] / res["ffmpeg"]["frames_per_cpu_s"]
    print(f"ratio ytfgvc / ffmpeg: {ratio:.2f} in frames/s (target >= 1.0), {cpu_ratio:.2f} in frames per CPU second")
    out = {"clip": str(clip), "fps": fps, "short_side": short, "results": res, "ratio": ratio, "cpu_ratio": cpu_ratio}
    if not args.no_scaling:
        j1, j2, f2 = res["ytfgvc_j1"], res["ytfgvc_j2"], res["ffmpeg_x2"]
        out["scaling_1_to_2_workers"] = j2["frames_per_s"] / j1["frames_per_s"]
        out["ratio_two_videos"] = j2["frames_per_s"] / f2["frames_per_s"]
        print(
            f"two videos: ytfgvc --jobs 1 {j1['frames_per_s']:.1f} frames/s, --jobs 2 {j2['frames_per_s']:.1f} "
            f"frames/s (x{out['scaling_1_to_2_workers']:.2f}); two ffmpeg processes {f2['frames_per_s']:.1f} "
            f"frames/s (ratio {out['ratio_two_videos']:.2f})"
        )
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
