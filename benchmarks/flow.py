"""TV-L1 overhead: ytfgvc's CPU flow path against a bare OpenCV loop, on the same pairs, in the same run.

Pairs are consecutive frames of the moving-camera clip (``_camera.py``), grey, at 340x256
(TSN's flow size). Three ways over the same pairs, OpenCV's default parameters and thread
count for all:

* ``bare``: ``tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(); tvl1.calc(a, b, None)`` in a loop;
* ``backend``: ``get_flow_backend("opencv").compute(prev, next)``, one pair per call (as
  ``prepare`` calls it: the OpenCV backend's ``batch_size`` is 1);
* ``prepare``: the whole per-video flow path (``FlowStackWriter``: batching, the backend,
  the +-20 px JPEG encoding and writing ``flow_x``/``flow_y`` files), one field per pair.

The three take turns on each pair (rotating who goes first), so drifting load on a shared
machine hits them alike; over ``--repeats`` passes, the best total of each gives pairs/s
and the ratio to ``bare`` (target >= 0.95, i.e. no overhead).

Example:
    python benchmarks/flow.py --pairs 4 --repeats 1
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

from ytfgvc.prepare.flow import FlowBackend, get_flow_backend  # noqa: E402
from ytfgvc.prepare.flowstack import FlowStackWriter  # noqa: E402


def make_pairs(n: int, width: int, height: int) -> np.ndarray:
    """``n + 1`` consecutive grey frames of the clip, resized to ``width`` x ``height``."""
    frames = [
        cv2.cvtColor(cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        for f in camera_frames(n + 1)
    ]
    return np.stack(frames)


class _ZeroFlow(FlowBackend):
    name = "zero"

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:  # noqa: A002
        return np.zeros((*prev.shape, 2), np.float32)


def run_bare(tvl1, a: np.ndarray, b: np.ndarray) -> None:
    tvl1.calc(a, b, None)


def run_backend(backend, a: np.ndarray, b: np.ndarray) -> None:
    backend.compute(a[None], b[None])


def run_prepare(backend, a: np.ndarray, b: np.ndarray) -> None:
    folder = Path(tempfile.mkdtemp(prefix="ytfgvc-bench-flow-"))
    try:
        writer = FlowStackWriter(folder, backend, 1, "jpg", a.shape)
        writer.add_stack(1, 0)
        writer.add_grey(0, Fraction(0), a)
        writer.add_grey(1, Fraction(1, 30), b)
        writer.finish()
        assert (folder / "flow_x_00001.jpg").is_file() and (folder / "flow_y_00001.jpg").is_file()
    finally:
        shutil.rmtree(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--width", type=int, default=340)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()

    frames = make_pairs(args.pairs, args.width, args.height)
    print(f"{args.pairs} pairs at {args.width}x{args.height}; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    # The same objects a real run keeps for a whole video: built once, outside the timing.
    tvl1, backend = cv2.optflow.DualTVL1OpticalFlow_create(), get_flow_backend("opencv")
    methods = {
        "bare": lambda a, b: run_bare(tvl1, a, b),
        "backend": lambda a, b: run_backend(backend, a, b),
        "prepare": lambda a, b: run_prepare(backend, a, b),
    }
    # On a shared machine the load drifts: interleave the methods pair by pair (rotating who
    # goes first) so each pair is measured under the same conditions by all three.
    times: dict[str, list[float]] = {k: [] for k in methods}
    names = list(methods)
    for rep in range(args.repeats):
        total = dict.fromkeys(methods, 0.0)
        for i in range(args.pairs):
            turn = (rep * args.pairs + i) % len(names)
            for name in names[turn:] + names[:turn]:
                t = time.perf_counter()
                methods[name](frames[i], frames[i + 1])
                total[name] += time.perf_counter() - t
            so_far = ", ".join(f"{k} {v:.2f} s" for k, v in total.items())
            print(f"  pass {rep + 1}, pair {i + 1}: {so_far}", flush=True)
        for k in methods:
            times[k].append(total[k])
    # What ytfgvc adds around TV-L1 (stacking, the +-20 px JPEG encoding, writing files),
    # measured alone with a backend that returns zeros instantly: noise-free, unlike the ratio.
    zero = _ZeroFlow()
    t = time.perf_counter()
    for i in range(args.pairs):
        run_prepare(zero, frames[i], frames[i + 1])
    overhead = (time.perf_counter() - t) / args.pairs
    rate = {k: args.pairs / min(v) for k, v in times.items()}
    print(f"\n{'path':<10} {'best s':>8} {'pairs/s':>8} {'ratio to bare':>14}")
    for k in methods:
        print(f"{k:<10} {min(times[k]):>8.2f} {rate[k]:>8.3f} {rate[k] / rate['bare']:>14.3f}")
    print(f"ratio backend / bare: {rate['backend'] / rate['bare']:.3f}, "
          f"prepare / bare: {rate['prepare'] / rate['bare']:.3f} (target >= 0.95)")  # fmt: skip
    bare_s = min(times["bare"]) / args.pairs
    print(
        f"ytfgvc's own work per pair (zero-cost backend): {overhead * 1e3:.1f} ms, "
        f"i.e. {bare_s / (bare_s + overhead):.4f} of bare TV-L1's pairs/s at {bare_s:.2f} s a pair"
    )
    if args.json:
        out = {"pairs": args.pairs, "times": times, "pairs_per_s": rate, "overhead_s_per_pair": overhead}
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
