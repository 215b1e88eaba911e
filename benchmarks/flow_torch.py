"""TV-L1 optical flow throughput: the torch backend's kernels against OpenCV, on the same frame pairs.

Measures pairs per second at 340x256 (default) with OpenCV's default TV-L1 parameters for
  * OpenCV DualTVL1OpticalFlow, one thread (the baseline every ratio is relative to),
  * OpenCV on all cores (one single-threaded OpenCV per process, a process pool),
  * variants of the torch backend on the chosen device: the reference kernel (tensor
    operations, eager or through torch.compile) and the fused Triton kernels (CUDA only),
    at several batch sizes and launch settings,
  * the torch backend on the CPU,
and reports, per variant, the accuracy beside the speed: mean end-point error (EPE) against
OpenCV, against the reference variant and (synthetic pairs) against the true flow; and the
GPU-hours that flow for YouTube-Birds and YouTube-Cars would take at that rate: pairs per
video = minutes x 60 x the card's sample_fps x the flow stack (5, as `prepare`), videos =
the cards' train + test (the paper's Table 2). The average video length is not in the
repository: give it with --minutes-per-video, or read the figures per minute of video.

--profile runs torch.profiler over one batch of each kind of variant (reference eager, each
compile mode, Triton with and without CUDA graphs; the first at the largest batch size) and records the top kernels by
GPU time, the kernel launches and how busy the GPU was. --out is rewritten after every
variant, so a run cut short keeps what it measured.

Variants: --compile (modes of the reference kernel) x --batch-sizes, plus --kernels triton
with --triton-configs; or an explicit list, --variants "torch@512,torch+compile=default@512,
triton@512,triton+graphs=0@512" (KERNEL[+KEY=VALUE...][@BATCH]; torch takes compile=MODE,
triton takes the fields of ytfgvc.prepare.tvl1_triton.TritonConfig).

Examples:
    python benchmarks/flow_torch.py --out results.json --minutes-per-video 2   # on a GPU machine
    python benchmarks/flow_torch.py --variants torch@512,triton@256,triton@512 --profile
    python benchmarks/flow_torch.py --device cpu --pairs 4 --batch-sizes 2,4 \\
        --opencv-pairs 4 --cpu-pairs 0                                        # a quick CPU run
    python benchmarks/flow_torch.py --video clip.mp4                          # pairs from a video file
"""

from __future__ import annotations

import argparse
import dataclasses
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

DATASETS = ("birds", "cars")


# ---------------------------------------------------------------- inputs


def synthetic_pairs(n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` textured pairs with known flow, cycling through the flow kinds, up to 4 px of motion."""
    triples = [make_pair(height, width, FLOW_KINDS[k % 3], seed=k, magnitude=2.0 + k % 3) for k in range(n)]
    return tuple(np.stack(x) for x in zip(*triples, strict=True))


def video_pairs(path: str, n: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, None]:
    """The first ``n`` consecutive-frame pairs of a video, gray and resized to width x height.

    Decoded with PyAV, or with OpenCV's own FFmpeg where PyAV is not installed.
    """
    frames = []
    for gray in _gray_frames(path):
        frames.append(cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA))
        if len(frames) > n:
            break
    if len(frames) < 2:
        sys.exit(f"{path}: fewer than 2 frames decoded")
    return np.stack(frames[:-1]), np.stack(frames[1:]), None


def _gray_frames(path: str):
    try:
        import av
    except ImportError:
        cap = cv2.VideoCapture(path)
        ok, bgr = cap.read()
        while ok:
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
            ok, bgr = cap.read()
        cap.release()
        return
    with av.open(path) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


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


# ---------------------------------------------------------------- variants


@dataclasses.dataclass
class Variant:
    """One way of running the torch backend: ``kernel`` with its options, at one batch size."""

    kernel: str  # "torch" or "triton"
    batch_size: int
    compile: str = "off"  # torch kernel: a torch.compile mode, or off
    triton: dict = dataclasses.field(default_factory=dict)  # triton kernel: TritonConfig overrides

    @property
    def name(self) -> str:
        if self.kernel == "torch":
            return f"torch {'eager' if self.compile == 'off' else 'compile ' + self.compile}, batch {self.batch_size}"
        short = {"iteration_block": "block", "iteration_warps": "warps", "median_block": "median_block",
                 "median_warps": "median_warps", "warp_block": "warp_block", "warp_warps": "warp_warps"}  # fmt: skip
        options = ",".join(f"{short.get(k, k)}={v}" for k, v in self.triton.items())
        return f"triton{' ' + options if options else ''}, batch {self.batch_size}"

    @property
    def family(self) -> str:
        """What --profile profiles once: the reference per compile mode, Triton with and without graphs."""
        if self.kernel == "triton":
            return "triton" if self.triton.get("graphs", True) else "triton, no graphs"
        return f"torch {self.compile}"

    def config(self):
        if self.kernel != "triton":
            return None
        from ytfgvc.prepare.tvl1_triton import TritonConfig

        return TritonConfig(**self.triton)

    def run(self, a: torch.Tensor, b: torch.Tensor, params: TVL1Params, stats: dict | None = None) -> torch.Tensor:
        compile = False if self.compile == "off" else self.compile  # noqa: A001
        return tvl1_flow(a, b, params, compile=compile, kernel=self.kernel, triton_config=self.config(), stats=stats)


def release_workspaces() -> None:
    """Drop the buffers the Triton kernel keeps between calls (if it was used)."""
    module = sys.modules.get("ytfgvc.prepare.tvl1_triton")
    if module is not None:
        module.clear_workspaces()


def _option_value(text: str):
    if text.lower() in ("0", "false", "no", "off"):
        return False
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    try:
        return int(text)
    except ValueError:
        return text


def parse_variant(text: str, batch_sizes: list[int]) -> list[Variant]:
    """``KERNEL[+KEY=VALUE...][@BATCH]`` -> one variant per batch size (the given one, else each of ``batch_sizes``)."""
    spec, _, batch = text.strip().partition("@")
    kernel, *options = spec.split("+")
    if kernel not in ("torch", "triton"):
        raise argparse.ArgumentTypeError(f"variant {text!r}: the kernel must be torch or triton")
    values = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"variant {text!r}: expected KEY=VALUE, got {option!r}")
        values[key] = _option_value(value)
    sizes = [int(batch)] if batch else batch_sizes
    if kernel == "torch":
        unknown = set(values) - {"compile"}
        if unknown:
            raise argparse.ArgumentTypeError(f"variant {text!r}: the torch kernel takes compile=MODE only")
        mode = values.get("compile", "off")
        return [Variant("torch", size, compile="off" if mode is False else str(mode)) for size in sizes]
    from ytfgvc.prepare.tvl1_triton import TritonConfig

    fields = {f.name for f in dataclasses.fields(TritonConfig)}
    if set(values) - fields:
        raise argparse.ArgumentTypeError(f"variant {text!r}: TritonConfig has no {sorted(set(values) - fields)}")
    return [Variant("triton", size, triton=dict(values)) for size in sizes]


# ---------------------------------------------------------------- torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch(
    firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device, variant: Variant
) -> tuple[float, np.ndarray]:
    """Seconds per pair over all pairs in batches (host-to-device copies included), and the flows."""
    a_all = torch.from_numpy(firsts).unsqueeze(1)
    b_all = torch.from_numpy(seconds).unsqueeze(1)
    if device.type == "cuda":
        a_all, b_all = a_all.pin_memory(), b_all.pin_memory()
    outputs = []
    _sync(device)
    start = time.perf_counter()
    for k in range(0, len(firsts), variant.batch_size):
        a = a_all[k : k + variant.batch_size].to(device, non_blocking=True)
        b = b_all[k : k + variant.batch_size].to(device, non_blocking=True)
        outputs.append(variant.run(a, b, params).permute(0, 2, 3, 1).to("cpu", non_blocking=True))
    _sync(device)
    elapsed = time.perf_counter() - start
    return elapsed / len(firsts), torch.cat(outputs).numpy()


def time_variant(
    firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device, variant: Variant, min_time: float
) -> tuple[float, np.ndarray, int]:
    """Warm up (compilation, CUDA graphs: two calls of the batch size), then time all pairs, repeated
    until ``min_time`` seconds have passed. Returns (seconds per pair, flows of the first run, runs)."""
    batch = slice(0, variant.batch_size)
    for _ in range(2 if variant.kernel == "triton" else 1):
        run_torch(firsts[batch], seconds[batch], params, device, variant)
    per_pair, flows = run_torch(firsts, seconds, params, device, variant)
    total, runs = per_pair * len(firsts), 1
    while total < min_time:
        per_pair, _ = run_torch(firsts, seconds, params, device, variant)
        total, runs = total + per_pair * len(firsts), runs + 1
    return total / (runs * len(firsts)), flows, runs


def iteration_profile(firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device) -> dict:
    """Iterations per warping that the pairs needed (OpenCV's epsilon test) and that the batch ran."""
    stats: dict = {}
    a = torch.from_numpy(firsts).unsqueeze(1).to(device)
    b = torch.from_numpy(seconds).unsqueeze(1).to(device)
    tvl1_flow(a, b, params, stats=stats)
    per_pair = np.array([w["pair_iterations"] for w in stats["warps"]], np.float64)  # warps x pairs
    area = np.array([w["size"][0] * w["size"][1] for w in stats["warps"]], np.float64)
    full = firsts.shape[1] * firsts.shape[2]
    per_level_first = per_pair[:: params.warps].mean() if params.warps > 1 else per_pair.mean()
    return {
        "pairs": len(firsts),
        "max_iterations_per_warp": params.innerIterations * params.outerIterations,
        "mean_pair_iterations_per_warp": float(per_pair.mean()),
        "mean_pair_iterations_first_warp_of_level": float(per_level_first),
        "max_pair_iterations_per_warp": float(per_pair.max()),
        "pairs_at_the_maximum": float((per_pair == params.innerIterations * params.outerIterations).mean()),
        "full_size_iterations_per_pair": float((per_pair * area[:, None]).sum(0).mean() / full),
    }


def profile_variant(
    firsts: np.ndarray, seconds: np.ndarray, params: TVL1Params, device: torch.device, variant: Variant, top: int = 15
) -> dict:
    """torch.profiler over one batch (of a variant just timed): the top kernels by GPU time, launches, GPU busy time."""
    from torch.profiler import ProfilerActivity, profile

    batch = slice(0, variant.batch_size)
    a = torch.from_numpy(firsts[batch]).unsqueeze(1).to(device)
    b = torch.from_numpy(seconds[batch]).unsqueeze(1).to(device)
    # no warm-up: called right after the variant was timed (compiled, graphs captured) at this batch size
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    _sync(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        variant.run(a, b, params)
        _sync(device)
        wall = time.perf_counter() - start
    rows = prof.key_averages()
    if on_gpu:
        kernels = [r for r in rows if r.self_device_time_total > 0]
        kernels.sort(key=lambda r: r.self_device_time_total, reverse=True)
        busy = sum(r.self_device_time_total for r in kernels) / 1e3
        top_rows = [
            {"name": r.key[:160], "calls": r.count, "gpu_ms": r.self_device_time_total / 1e3,
             "share_of_gpu_time": r.self_device_time_total / 1e3 / busy if busy else None}
            for r in kernels[:top]
        ]  # fmt: skip
        launches = sum(r.count for r in kernels)
    else:
        ops = sorted(rows, key=lambda r: r.self_cpu_time_total, reverse=True)
        busy = None
        top_rows = [{"name": r.key[:160], "calls": r.count, "cpu_ms": r.self_cpu_time_total / 1e3} for r in ops[:top]]
        launches = None
    return {
        "variant": variant.name,
        "pairs": variant.batch_size,
        "wall_ms": wall * 1e3,
        "gpu_busy_ms": busy,
        "gpu_busy_fraction": busy / (wall * 1e3) if busy else None,
        "kernel_launches": launches,
        "top": top_rows,
    }


def run_profile(firsts, seconds, params: TVL1Params, device: torch.device, variant: Variant) -> dict:
    """:func:`profile_variant`, printed; a failure is recorded, not raised."""
    try:
        result = profile_variant(firsts, seconds, params, device, variant)
    except Exception as e:  # noqa: BLE001
        result = {"variant": variant.name, "error": f"{type(e).__name__}: {e}"[:500]}
        print(f"\nProfile of {variant.name} failed: {result['error']}")
        return result
    print(f"\nProfile of {variant.name}: {result['wall_ms']:,.0f} ms wall for one batch, "
          f"GPU busy {_fmt(result.get('gpu_busy_fraction'), '.0%')}, "
          f"{_fmt(result.get('kernel_launches'), ',')} kernel launches")  # fmt: skip
    for entry in result["top"][:8]:
        share = _fmt(entry.get("share_of_gpu_time"), ".1%", "")
        ms = entry.get("gpu_ms", entry.get("cpu_ms"))
        print(f"  {ms:9.2f} ms {entry['calls']:7d} calls {share:>6}  {entry['name'][:100]}")
    return result


def nsight_compute_available() -> str | None:
    """The path of ``ncu`` if Nsight Compute is installed (the session script runs it, not this one)."""
    from shutil import which

    return which("ncu")


# ---------------------------------------------------------------- GPU-hours


def dataset_workload(flow_stack: int) -> dict[str, dict]:
    """Videos (train + test, the paper's Table 2, from the cards) and flow pairs per minute of video."""
    from ytfgvc.datasets import get_card

    out = {}
    for name in DATASETS:
        card = get_card(name)
        videos = (card.split_sizes.train or 0) + (card.split_sizes.test or 0)
        out[name] = {
            "videos": videos,
            "split_sizes": {"train": card.split_sizes.train, "test": card.split_sizes.test},
            "sample_fps": card.sample_fps,
            "flow_stack": flow_stack,
            # each kept frame anchors a stack of `flow_stack` consecutive-frame pairs (prepare/flowstack.py);
            # stacks do not overlap while native fps >= sample_fps * flow_stack
            "pairs_per_video_minute": 60 * card.sample_fps * flow_stack,
        }
    return out


def gpu_hours(rate: float, workload: dict[str, dict], minutes: float | None) -> dict[str, dict]:
    """Hours of the device per dataset at ``rate`` pairs/s: for ``minutes`` per video, and per minute of video."""
    out = {}
    for name, w in workload.items():
        per_minute = w["videos"] * w["pairs_per_video_minute"] / rate / 3600  # the whole dataset, per minute of video
        entry = {
            "per_minute_of_average_video_length": per_minute,
            "per_1000_videos_per_minute_of_video": 1000 * w["pairs_per_video_minute"] / rate / 3600,
        }
        if minutes is not None:
            entry["total"] = per_minute * minutes
        out[name] = entry
    return out


# ---------------------------------------------------------------- report


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


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(rows: list[dict], baseline: float | None, minutes: float | None) -> None:
    hours = "GPU-h" if minutes is not None else "GPU-h/min"
    print(
        f"\n{'method':<56} {'pairs/s':>9} {'x OpenCV-1':>10} {'EPE cv':>7} {'EPE ref':>8} {'EPE true':>8} "
        f"{'Birds ' + hours:>14} {'Cars ' + hours:>13} {'GPU mem':>8}"
    )
    for row in rows:
        rate = row.get("pairs_per_s")
        if rate is None:
            print(f"{row['method']:<56} {row.get('error', 'failed')}")
            continue
        ratio = f"{rate / baseline:,.1f}x" if baseline else "-"
        shown = f"{rate:,.1f}" if rate >= 10 else f"{rate:.3f}"
        epe = row.get("epe", {})
        h = row.get("gpu_hours", row.get("cpu_hours", {}))
        key = "total" if minutes is not None else "per_minute_of_average_video_length"
        birds, cars = (h.get(name, {}).get(key) for name in DATASETS)
        memory = f"{row['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in row else ""
        print(
            f"{row['method']:<56} {shown:>9} {ratio:>10} {_fmt(epe.get('vs_opencv'), '.4f'):>7} "
            f"{_fmt(epe.get('vs_reference'), '.5f'):>8} {_fmt(epe.get('vs_truth'), '.4f'):>8} "
            f"{_fmt(birds, ',.1f'):>14} {_fmt(cars, ',.1f'):>13} {memory:>8}"
        )


def describe_hours(workload: dict[str, dict], minutes: float | None) -> str:
    parts = [f"{n}: {w['videos']:,} videos (train+test), {w['sample_fps']:g} fps x {w['flow_stack']} = "
             f"{w['pairs_per_video_minute']:g} pairs per minute of video" for n, w in workload.items()]  # fmt: skip
    if minutes is None:
        how = ("GPU-h/min = GPU-hours for the whole dataset per minute of average video length (no length is "
               "known in the repository: multiply by yours, or pass --minutes-per-video)")  # fmt: skip
    else:
        how = f"GPU-h = GPU-hours for the whole dataset at {minutes:g} min per video (--minutes-per-video, your input)"
    how += "; for rows on the CPU the same figure is in hours of that CPU (one core for OpenCV, 1 thread)"
    return "; ".join(parts) + ".\n" + how


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--device", default="auto", help="torch device: auto (cuda if present), cuda, cuda:1, cpu")
    add("--pairs", type=int, default=None, help="pairs timed per torch variant (default: 512 on GPU, 8 on CPU)")
    add("--batch-sizes", type=parse_sizes, default=None, help="e.g. 32,64,128 (default: 32..512 on GPU, 4 on CPU)")
    add(
        "--compile",
        default=None,
        help="torch.compile modes of the reference kernel, comma-separated: off, default, max-autotune-no-cudagraphs "
        "(default: off,default on GPU; off on CPU)",
    )
    add("--kernels", default=None, help="torch,triton (default: both on CUDA, torch elsewhere)")
    add(
        "--triton-configs",
        default="default",
        help="Triton launch settings to try, ';'-separated, each 'default' or KEY=VALUE,... of TritonConfig "
        "(e.g. 'default;graphs=0;iteration_block=256')",
    )
    add(
        "--variants",
        default=None,
        help="explicit variants instead of the above, comma-separated KERNEL[+KEY=VALUE...][@BATCH], "
        "e.g. torch@512,torch+compile=default@512,triton@512,triton+graphs=0@512",
    )
    add("--min-time", type=float, default=1.0, help="repeat each variant's timed run until this many seconds")
    add("--opencv-pairs", type=int, default=8, help="pairs for OpenCV single-thread and the EPE comparison")
    add("--jobs", type=int, default=os.cpu_count(), help="processes for OpenCV on all cores (0 skips)")
    add("--pool-pairs", type=int, default=None, help="pairs for the OpenCV pool (default: 4 per job)")
    add("--cpu-pairs", type=int, default=4, help="pairs for torch on the CPU when --device is a GPU (0 skips)")
    add("--cpu-batch-size", type=int, default=4, help="batch size for torch on the CPU when --device is a GPU")
    add("--cpu-threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add("--size", default="340x256", help="WIDTHxHEIGHT of the pairs")
    add("--video", default=None, help="take consecutive frames of this video file instead of synthetic pairs")
    add(
        "--minutes-per-video",
        type=float,
        default=None,
        help="average video length for the GPU-hours (your input; none is known in the repository)",
    )
    add("--flow-stack", type=int, default=None, help="flow pairs per kept frame (default: prepare's, 5)")
    add(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a TV-L1 parameter other than OpenCV's default, for OpenCV and torch alike (repeat), e.g. warps=3",
    )
    add("--profile", action="store_true", help="torch.profiler over one batch of each kind of variant")
    add("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)  # fmt: skip

    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    on_gpu = device.type == "cuda"
    n_pairs = args.pairs or (512 if on_gpu else 8)
    batch_sizes = args.batch_sizes or ([32, 64, 128, 256, 512] if on_gpu else [4])
    if args.variants:
        variants = [v for text in args.variants.split(",") if text.strip() for v in parse_variant(text, batch_sizes)]
    else:
        kernels = (args.kernels or ("torch,triton" if on_gpu else "torch")).split(",")
        variants = []
        if "torch" in kernels:
            for mode in (args.compile or ("off,default" if on_gpu else "off")).split(","):
                variants += parse_variant(f"torch+compile={mode}", batch_sizes)
        if "triton" in kernels:
            for config in args.triton_configs.split(";"):
                options = "" if config.strip() in ("", "default") else "+" + config.replace(",", "+")
                variants += parse_variant("triton" + options, batch_sizes)
    if not variants:
        parser.error("no torch variants to run")
    width, height = (int(v) for v in args.size.lower().split("x"))
    overrides = {}
    kinds = {f.name: type(f.default) for f in dataclasses.fields(TVL1Params)}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or key not in kinds:
            parser.error(f"--param expects KEY=VALUE with KEY one of {', '.join(kinds)}, got {item!r}")
        kind = kinds[key]
        overrides[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    params = TVL1Params(**overrides)
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    from ytfgvc.prepare.config import PrepareConfig

    flow_stack = args.flow_stack or PrepareConfig().flow_stack
    workload = dataset_workload(flow_stack)
    minutes = args.minutes_per_video

    largest = max(v.batch_size for v in variants)
    unique = max(args.opencv_pairs, min(n_pairs, 64))  # distinct pairs; torch's workload repeats them
    if args.video:
        firsts, seconds, truth = video_pairs(args.video, unique, width, height)
    else:
        firsts, seconds, truth = synthetic_pairs(unique, width, height)
    unique = len(firsts)
    n_pairs = max(n_pairs, largest)
    reps = -(-n_pairs // unique)
    all_firsts, all_seconds = np.tile(firsts, (reps, 1, 1))[:n_pairs], np.tile(seconds, (reps, 1, 1))[:n_pairs]
    gpu_name = torch.cuda.get_device_name(device) if on_gpu else None
    source = f"video {args.video}" if args.video else "synthetic"
    print(f"{unique} distinct {width}x{height} pairs ({source}), OpenCV {cv2.__version__}, torch {torch.__version__}, "
          f"device {gpu_name or device}, {os.cpu_count()} CPUs")  # fmt: skip
    defaults = "OpenCV defaults" if not overrides else f"OpenCV defaults but {overrides}"
    print(f"TV-L1 parameters ({defaults}): {asdict(params)}")
    print(describe_hours(workload, minutes))

    rows: list[dict] = []
    profiles: list[dict] = []
    accuracy: dict = {}
    state: dict = {"best": None, "baseline": None}

    def finish() -> dict:
        """The results so far, written to --out (after every variant: a run cut short keeps what it measured)."""
        result = {
            "schema": "ytfgvc-bench-flow-torch-2",
            "git_commit": git_commit(),
            "environment": {"python": platform.python_version(), "torch": torch.__version__,
                            "opencv": cv2.__version__, "device": gpu_name or str(device), "cpus": os.cpu_count(),
                            "platform": platform.platform(), "ncu": nsight_compute_available()},
            "size": [width, height], "source": args.video or "synthetic", "distinct_pairs": unique,
            "params": asdict(params), "workload": workload, "minutes_per_video": minutes,
            "minutes_per_video_source": "user input (--minutes-per-video)" if minutes is not None else None,
            "baseline_pairs_per_s": state["baseline"], "rows": rows, "accuracy": accuracy,
            "best": state["best"], "profiles": profiles,
        }  # fmt: skip
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        return result

    baseline = None
    opencv_flows = None
    n_cv = min(args.opencv_pairs, unique)
    if has_opencv_tvl1() and n_cv > 0:
        # OpenCV first: no CUDA context exists yet when the pool starts.
        per_pair, opencv_flows = run_opencv_single(firsts[:n_cv], seconds[:n_cv], params)
        baseline = state["baseline"] = 1 / per_pair
        rows.append({"method": "OpenCV, 1 thread", "pairs": n_cv, "pairs_per_s": baseline})
        if truth is not None:
            rows[-1]["epe"] = {"vs_truth": end_point_error(opencv_flows, truth[:n_cv])}
        if args.jobs:
            n_pool = args.pool_pairs or 4 * args.jobs
            reps_pool = -(-n_pool // unique)
            pool_a, pool_b = np.tile(firsts, (reps_pool, 1, 1))[:n_pool], np.tile(seconds, (reps_pool, 1, 1))[:n_pool]
            rate = 1 / run_opencv_pool(pool_a, pool_b, params, args.jobs)
            rows.append({"method": f"OpenCV, {args.jobs} processes", "pairs": n_pool, "pairs_per_s": rate})
        for row in rows:  # OpenCV's hours are of one core (1 thread) or of this whole machine (the pool)
            row["cpu_hours"] = gpu_hours(row["pairs_per_s"], workload, minutes)
        print_table(rows, baseline, minutes)
    else:
        print("OpenCV's DualTVL1OpticalFlow is missing (install opencv-contrib-python-headless): no baseline")
    finish()

    try:  # how many iterations the pairs need (the same for every variant: OpenCV's stopping rule)
        it = iteration_profile(firsts[: min(unique, 16)], seconds[: min(unique, 16)], params, device)
        print(
            f"\nIterations per warping (OpenCV's epsilon test, reference kernel, {it['pairs']} pairs): "
            f"{it['mean_pair_iterations_per_warp']:.1f} on average "
            f"({it['mean_pair_iterations_first_warp_of_level']:.1f} in the first warping of a level), "
            f"{it['max_pair_iterations_per_warp']:.0f} at most, of {it['max_iterations_per_warp']} "
            f"allowed; {it['full_size_iterations_per_pair']:.0f} full-size iterations per pair"
        )
        accuracy["iterations"] = it
    except Exception as e:  # noqa: BLE001
        accuracy["iterations"] = {"error": f"{type(e).__name__}: {e}"[:500]}

    reference_flows = None
    timed: list[dict] = []
    profiled: set[str] = set()
    for variant in variants:
        row: dict = {"method": f"{variant.name} ({device.type})", "kernel": variant.kernel,
                     "batch_size": variant.batch_size, "device": gpu_name or str(device)}  # fmt: skip
        if variant.kernel == "torch":
            row["compile"] = variant.compile
        else:
            row["triton_config"] = asdict(variant.config())
        try:
            release_workspaces()  # the peak memory below is this variant's own
            if on_gpu:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            per_pair, flows, runs = time_variant(all_firsts, all_seconds, params, device, variant, args.min_time)
        except Exception as e:  # noqa: BLE001 - one variant failing (memory, compilation) must not end the run
            row["error"] = f"{type(e).__name__}: {e}"[:500]
            if on_gpu:
                torch.cuda.empty_cache()
            rows.append(row)
            print_table(rows[-1:], baseline, minutes)
            finish()
            continue
        flows = flows[:unique]
        if reference_flows is None and variant.kernel == "torch":
            reference_flows = flows
        epe = {}
        if opencv_flows is not None:
            epe["vs_opencv"] = end_point_error(flows[:n_cv], opencv_flows)
        if reference_flows is not None:
            epe["vs_reference"] = end_point_error(flows, reference_flows)
        if truth is not None:
            epe["vs_truth"] = end_point_error(flows, truth)
        hours_key = "gpu_hours" if on_gpu else "cpu_hours"
        row.update({"pairs": n_pairs, "timed_runs": runs, "pairs_per_s": 1 / per_pair, "epe": epe,
                    hours_key: gpu_hours(1 / per_pair, workload, minutes)})  # fmt: skip
        if baseline:
            row["x_opencv_1_thread"] = row["pairs_per_s"] / baseline
        if on_gpu:
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        rows.append(row)
        timed.append(row)
        state["best"] = max(timed, key=lambda r: r["pairs_per_s"])
        print_table(rows[-1:], baseline, minutes)
        if args.profile and variant.batch_size == largest and variant.family not in profiled:
            profiled.add(variant.family)
            profiles.append(run_profile(all_firsts, all_seconds, params, device, variant))
        finish()

    if on_gpu and args.cpu_pairs:
        n_cpu = min(args.cpu_pairs, n_pairs)
        cpu_variant = Variant("torch", args.cpu_batch_size)
        per_pair, _ = run_torch(all_firsts[:n_cpu], all_seconds[:n_cpu], params, torch.device("cpu"), cpu_variant)
        rate = 1 / per_pair
        rows.append({"method": f"torch cpu, batch {args.cpu_batch_size}, {torch.get_num_threads()} threads",
                     "pairs": n_cpu, "pairs_per_s": rate, "cpu_hours": gpu_hours(rate, workload, minutes)})  # fmt: skip

    print(f"\nSummary (ratios to OpenCV single-thread; EPE: mean end-point error in px against OpenCV, the first "
          f"torch variant and the true flow):\n{describe_hours(workload, minutes)}")  # fmt: skip
    print_table(rows, baseline, minutes)
    best = state["best"]
    if best is not None:
        print(f"\nBest: {best['method']}, {best['pairs_per_s']:,.1f} pairs/s")
    result = finish()
    if args.out:
        print(f"results written to {args.out}")
    return result


if __name__ == "__main__":
    main()
