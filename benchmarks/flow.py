"""TV-L1 overhead: ytfgvc's CPU flow path against a bare OpenCV loop, on the same pairs, in the same run.

Pairs are consecutive frames of the moving-camera clip (``_camera.py``), grey, at 340x256
(TSN's flow size). Three ways over the same pairs, OpenCV's default parameters and thread
count for all:

* ``bare``: ``tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(); tvl1.calc(a, b, None)`` in a loop;
* ``backend``: ``get_flow_backend("opencv").compute(prev, next)``, one pair per call (as
  ``prepare`` calls it);
* ``prepare``: the whole per-video flow path (``FlowStackWriter``: batching, the backend,
  the +-20 px JPEG encoding and writing ``flow_x``/``flow_y`` files), one field per pair.

Methods alternate and repeat (``--repeats``); the best time of each gives pairs/s and the
ratio to ``bare`` (target >= 0.95, i.e. no overhead).

Example:
    python benchmarks/flow.py --pairs 3 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's ytfgvc, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from _camera import camera_frames  # noqa: E402

from ytfgvc.prepare.flow import get_flow_backend  # noqa: E402
from ytfgvc.prepare.flowstack import FlowStackWriter  # noqa: E402


def make_pairs(n: int, width: int, height: int) -> np.ndarray:
    """``n + 1`` consecutive grey frames of the clip, resized to ``width`` x ``height``."""
    frames = [
        cv2.cvtColor(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        for f in camera_frames(n + 1)
    ]
    return np.stack(frames)


def run_bare(frames: np.ndarray) -> None:
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    for i in range(len(frames) - 1):
        tvl1.calc(frames[i], frames[i + 1], None)


def run_backend(frames: np.ndarray) -> None:
    backend = get_flow_backend("opencv")
    for i in range(len(frames) - 1):
        backend.compute(frames[i : i + 1], frames[i + 1 : i + 2])


def run_prepare(frames: np.ndarray) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ytfgvc-bench-flow-"))
    try:
        writer = FlowStackWriter(folder, get_flow_backend("opencv"), 1, "jpg", frames.shape[1:])
        for i, g in enumerate(frames):
            if i < len(frames) - 1:
                writer.add_stack(i + 1, i)
            writer.add_grey(i, Fraction(i, 30), g)
        writer.finish()
        assert len(list(folder.glob("flow_x_*.jpg"))) == len(frames) - 1
    finally:
        shutil.rmtree(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--width", type=int, default=340)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    frames = make_pairs(args.pairs, args.width, args.height)
    print(f"{args.pairs} pairs at {args.width}x{args.height}; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    methods = {"bare": run_bare, "backend": run_backend, "prepare": run_prepare}
    times: dict[str, list[float]] = {k: [] for k in methods}
    run_bare(frames[:2])  # warm up
    for rep in range(args.repeats):
        names = list(methods)
        names = names[rep % len(names) :] + names[: rep % len(names)]  # rotate who goes first
        for name in names:
            t = time.perf_counter()
            methods[name](frames)
            times[name].append(time.perf_counter() - t)
            print(f"  repeat {rep + 1}: {name:<8} {times[name][-1]:7.2f} s", flush=True)
    rate = {k: args.pairs / min(v) for k, v in times.items()}
    print(f"\n{'path':<10} {'best s':>8} {'pairs/s':>8} {'ratio to bare':>14}")
    for k in methods:
        print(f"{k:<10} {min(times[k]):>8.2f} {rate[k]:>8.3f} {rate[k] / rate['bare']:>14.3f}")
    print(f"ratio backend / bare: {rate['backend'] / rate['bare']:.3f}, "
          f"prepare / bare: {rate['prepare'] / rate['bare']:.3f} (target >= 0.95)")  # fmt: skip
    if args.json:
        print(json.dumps({"pairs": args.pairs, "times": times, "pairs_per_s": rate}, indent=2))


if __name__ == "__main__":
    main()
