"""TV-L1 optical flow throughput: the torch backend against OpenCV, on the same frame pairs.

Measures pairs per second at 340x256 (default) with OpenCV's default TV-L1 parameters for
  * OpenCV DualTVL1OpticalFlow, one thread (the baseline every ratio is relative to),
  * OpenCV on all cores (one single-threaded OpenCV per process, a process pool),
  * the torch backend on the chosen device at several batch sizes (and torch.compile modes),
  * the torch backend on the CPU,
and reports the accuracy beside the speed: mean end-point error (EPE) of torch against
OpenCV and of both against the true flow of the synthetic pairs. Also projects the time for
one 5-minute video's flow at 4 fps with 5-flow stacks (300 s x 4 fps x 5 = 6000 pairs).

Examples:
    python benchmarks/flow_torch.py --out results.json                       # on a GPU machine
    python benchmarks/flow_torch.py --device cpu --pairs 4 --batch-sizes 2,4 \\
        --opencv-pairs 4 --cpu-pairs 0                                        # a quick CPU run
    python benchmarks/flow_torch.py --video clip.mp4                          # pairs from a real video
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's ytfgvc, installed or not

import cv2  # noqa: E402
import torch  # noqa: E402

from tests.flow_pairs import FLOW_KINDS, end_point_error, make_pair  # noqa: E402  (the test fixtures)
from ytfgvc.prepare.tvl1_torch import TVL1Params, tvl1_flow  # noqa: E402

VIDEO_PAIRS = 300 * 4 * 5  # a 5-minute video, 4 sampled frames per second, 5 flow pairs per sampled frame


# ---------------------------------------------------------------- inputs


def synthetic_pairs(n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` textured pairs with known flow, cycling through the flow kinds, up to 4 px of motion."""
    triples = [make_pair(height, width, FLOW_KINDS[k % 3], seed=k, magnitude=2.0 + k % 3) for k in range(n)]
    return tuple(np.stack(x) for x in zip(*triples, strict=True))


def video_pairs(path: str, n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, None]:
    """The first ``n`` consecutive-frame pairs of a video, gray and resized to width x height."""
    import av

    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            gray = frame.to_ndarray(format="gray")
            frames.append(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA))
            if len(frames) > n:
                break
    if len(frames) < 2:
        sys.exit(f"{path}: fewer than 2 frames decoded")
    return np.stack(frames[:-1]), np.stack(frames[1:]), None


# ---------------------------------------------------------------- OpenCV


def has_opencv_tvl1() -> bool:
    return hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")


def _opencv_worker_init() -> None:
    cv2.setNumThreads(1)


def _opencv_flow(args: tuple[np.ndarray, np.ndarray, dict]) -> np.ndarray:
    first, second, params = args
    return TVL1Params(**params).opencv().calc(first, second, None)


def run_opencv_single(firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params) -> tuple[float, np.ndarray]:
    """Seconds per pair with one thread, and the flows."""
    cv2.setNumThreads(1)
    start = time.perf_counter()
    flows = np.stack([_opencv_flow((a, b, asdict(params))) for a, b in zip(firsts, seconds, strict=True)])
    return (time.perf_counter() - start) / len(firsts), flows


def run_opencv_pool(firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, jobs: int) -> float:
    """Seconds per pair with ``jobs`` single-threaded processes (pool start-up not counted)."""
    work = [(a, b, asdict(params)) for a, b in zip(firsts, seconds, strict=True)]
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_opencv_worker_init) as pool:
        list(pool.map(_opencv_flow, work[:jobs]))  # start every worker
        start = time.perf_counter()
        list(pool.map(_opencv_flow, work))
        return (time.perf_counter() - start) / len(work)


# ---------------------------------------------------------------- torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch(
    firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device, batch_size: int, compile
) -> tuple[float, np.ndarray]:
    """Seconds per pair over all pairs in batches (host-to-device copies included), and the flows."""
    a_all = torch.from_numpy(firsts).unsqueeze(1)
    b_all = torch.from_numpy(seconds).unsqueeze(1)
    if device.type == "cuda":
        a_all, b_all = a_all.pin_memory(), b_all.pin_memory()
    outputs = []
    _sync(device)
    start = time.perf_counter()
    for k in range(0, len(firsts), batch_size):
        a = a_all[k : k + batch_size].to(device, non_blocking=True)
        b = b_all[k : k + batch_size].to(device, non_blocking=True)
        outputs.append(tvl1_flow(a, b, params, compile=compile).permute(0, 2, 3, 1).to("cpu", non_blocking=True))
    _sync(device)
    elapsed = time.perf_counter() - start
    return elapsed / len(firsts), torch.cat(outputs).numpy()


def iteration_profile(firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device) -> dict:
    """Iterations per warping that the pairs needed (OpenCV's epsilon test) and that the batch ran."""
    stats: dict = {}
    a = torch.from_numpy(firsts).unsqueeze(1).to(device)
    b = torch.from_numpy(seconds).unsqueeze(1).to(device)
    tvl1_flow(a, b, params, stats=stats)
    per_pair = np.array([w["pair_iterations"] for w in stats["warps"]], np.float64)  # warps x pairs
    area = np.array([w["size"][0] * w["size"][1] for w in stats["warps"]], np.float64)
    full = firsts.shape[1] * firsts.shape[2]
    return {
        "max_iterations_per_warp": params.innerIterations * params.outerIterations,
        "mean_pair_iterations_per_warp": float(per_pair.mean()),
        "max_pair_iterations_per_warp": float(per_pair.max()),
        "full_size_iterations_per_pair": float((per_pair * area[:, None]).sum(0).mean() / full),
    }


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return sizes


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------- report


def print_table(rows: list[dict], baseline: float | None) -> None:
    print(f"\n{'method':<44} {'pairs/s':>9} {'x OpenCV-1':>11} {'5-min video':>12} {'GPU memory':>11}")
    for row in rows:
        rate = row.get("pairs_per_s")
        if rate is None:
            print(f"{row['method']:<44} {row.get('error', 'failed'):>9}")
            continue
        ratio = f"{rate / baseline:,.2f}x" if baseline else "-"
        shown = f"{rate:,.1f}" if rate >= 10 else f"{rate:.3f}"
        memory = f"{row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else ""
        print(f"{row['method']:<44} {shown:>9} {ratio:>11} {format_duration(VIDEO_PAIRS / rate):>12} {memory:>11}")


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--device", default="auto", help="torch device: auto (cuda if present), cuda, cuda:1, cpu")
    add("--pairs", type=int, default=None, help="pairs timed per torch configuration (default: 512 on GPU, 8 on CPU)")
    add("--batch-sizes", type=parse_sizes, default=None, help="e.g. 32,64,128 (default: 32..512 on GPU, 4 on CPU)")
    add(
        "--compile",
        default=None,
        help="torch.compile modes to try, comma-separated: off, default, max-autotune-no-cudagraphs "
        "(default: off,default on GPU; off on CPU)",
    )
    add("--opencv-pairs", type=int, default=8, help="pairs for OpenCV single-thread and the EPE comparison")
    add("--jobs", type=int, default=os.cpu_count(), help="processes for OpenCV on all cores (0 skips)")
    add("--pool-pairs", type=int, default=None, help="pairs for the OpenCV pool (default: 4 per job)")
    add("--cpu-pairs", type=int, default=4, help="pairs for torch on the CPU when --device is a GPU (0 skips)")
    add("--cpu-batch-size", type=int, default=4, help="batch size for torch on the CPU when --device is a GPU")
    add("--cpu-threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add("--size", default="340x256", help="WIDTHxHEIGHT of the pairs")
    add("--video", default=None, help="take consecutive frames of this video instead of synthetic pairs")
    add("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)  # fmt: skip

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    on_gpu = device.type == "cuda"
    n_pairs = args.pairs or (512 if on_gpu else 8)
    batch_sizes = args.batch_sizes or ([32, 64, 128, 256, 512] if on_gpu else [4])
    modes = (args.compile or ("off,default" if on_gpu else "off")).split(",")
    width, height = (int(v) for v in args.size.lower().split("x"))
    params = TVL1Params()
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)

    unique = max(args.opencv_pairs, min(n_pairs, 64))  # distinct pairs; torch's workload repeats them
    if args.video:
        firsts, seconds, truth = video_pairs(args.video, unique, width, height)
    else:
        firsts, seconds, truth = synthetic_pairs(unique, width, height)
    unique = len(firsts)
    reps = -(-max(n_pairs, max(batch_sizes)) // unique)
    all_firsts, all_seconds = np.tile(firsts, (reps, 1, 1))[:n_pairs], np.tile(seconds, (reps, 1, 1))[:n_pairs]
    gpu_name = torch.cuda.get_device_name(device) if on_gpu else None
    source = f"video {args.video}" if args.video else "synthetic"
    print(f"{unique} distinct {width}x{height} pairs ({source}), OpenCV {cv2.__version__}, torch {torch.__version__}, "
          f"device {gpu_name or device}, {os.cpu_count()} CPUs")  # fmt: skip
    print(f"TV-L1 parameters (OpenCV defaults): {asdict(params)}")

    rows: list[dict] = []
    baseline = None
    opencv_flows = None
    n_cv = min(args.opencv_pairs, unique)
    if has_opencv_tvl1() and n_cv > 0:
        # OpenCV first: no CUDA context exists yet when the pool starts.
        per_pair, opencv_flows = run_opencv_single(firsts[:n_cv], seconds[:n_cv], params)
        baseline = 1 / per_pair
        rows.append({"method": "OpenCV, 1 thread", "pairs": n_cv, "pairs_per_s": baseline})
        print_table(rows[-1:], baseline)
        if args.jobs:
            n_pool = args.pool_pairs or 4 * args.jobs
            reps_pool = -(-n_pool // unique)
            pool_a, pool_b = np.tile(firsts, (reps_pool, 1, 1))[:n_pool], np.tile(seconds, (reps_pool, 1, 1))[:n_pool]
            rate = 1 / run_opencv_pool(pool_a, pool_b, params, args.jobs)
            rows.append({"method": f"OpenCV, {args.jobs} processes", "pairs": n_pool, "pairs_per_s": rate})
            print_table(rows[-1:], baseline)
    else:
        print("OpenCV's DualTVL1OpticalFlow is missing (install opencv-contrib-python-headless): no baseline")

    best = None
    for mode in modes:
        compile = False if mode == "off" else mode
        for batch_size in batch_sizes:
            method = f"torch {device.type}, batch {batch_size}, compile {mode}"
            try:
                # warm-up: CUDA start, and compilation (pairs that stop late give the partial batches too)
                run_torch(all_firsts[:batch_size], all_seconds[:batch_size], params, device, batch_size, compile)
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats(device)
                per_pair, flows = run_torch(all_firsts, all_seconds, params, device, batch_size, compile)
            except torch.cuda.OutOfMemoryError:
                rows.append({"method": method, "error": "out of memory"})
                torch.cuda.empty_cache()
                print_table(rows[-1:], baseline)
                continue
            row = {"method": method, "pairs": n_pairs, "pairs_per_s": 1 / per_pair, "batch_size": batch_size,
                   "compile": mode, "device": gpu_name or str(device)}  # fmt: skip
            if on_gpu:
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows.append(row)
            print_table(rows[-1:], baseline)
            if best is None or row["pairs_per_s"] > best[0]["pairs_per_s"]:
                best = (row, flows)

    if on_gpu and args.cpu_pairs:
        n_cpu = min(args.cpu_pairs, n_pairs)
        per_pair, _ = run_torch(all_firsts[:n_cpu], all_seconds[:n_cpu], params, torch.device("cpu"),
                                args.cpu_batch_size, False)  # fmt: skip
        rows.append({"method": f"torch cpu, batch {args.cpu_batch_size}, {torch.get_num_threads()} threads",
                     "pairs": n_cpu, "pairs_per_s": 1 / per_pair})  # fmt: skip
        print_table(rows[-1:], baseline)

    print(f"\nSummary (ratios to OpenCV single-thread; '5-min video' = {VIDEO_PAIRS} pairs):")
    print_table(rows, baseline)
    accuracy = {}
    if best is not None:
        torch_flows = best[1][:unique]
        if opencv_flows is not None:
            accuracy["epe_torch_vs_opencv"] = end_point_error(torch_flows[:n_cv], opencv_flows)
        if truth is not None:
            accuracy["epe_torch_vs_truth"] = end_point_error(torch_flows, truth)
            if opencv_flows is not None:
                accuracy["epe_opencv_vs_truth"] = end_point_error(opencv_flows, truth[:n_cv])
        print(f"\nBest torch: {best[0]['method']}, {best[0]['pairs_per_s']:,.1f} pairs/s")
        print("Accuracy (mean end-point error, px): " + ", ".join(f"{k} {v:.4f}" for k, v in accuracy.items()))
        profile = iteration_profile(firsts[: min(unique, 16)], seconds[: min(unique, 16)], params, device)
        print(
            f"Iterations per warping: {profile['mean_pair_iterations_per_warp']:.1f} on average, "
            f"{profile['max_pair_iterations_per_warp']:.0f} at most, of {profile['max_iterations_per_warp']} allowed "
            f"(epsilon test); {profile['full_size_iterations_per_pair']:.0f} full-size iterations per pair"
        )
        accuracy["iterations"] = profile

    result = {
        "schema": "ytfgvc-bench-flow-torch-1",
        "git_commit": git_commit(),
        "environment": {"python": platform.python_version(), "torch": torch.__version__, "opencv": cv2.__version__,
                        "device": gpu_name or str(device), "cpus": os.cpu_count(), "platform": platform.platform()},
        "size": [width, height], "source": args.video or "synthetic", "distinct_pairs": unique,
        "params": asdict(params), "video_pairs": VIDEO_PAIRS,
        "baseline_pairs_per_s": baseline, "rows": rows, "accuracy": accuracy,
        "best": best[0] if best else None,
    }  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"results written to {args.out}")
    return result


if __name__ == "__main__":
    main()
