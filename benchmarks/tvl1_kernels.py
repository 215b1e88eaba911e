"""Per-kernel timings of the TV-L1 Triton kernels against the memory roofline (and Nsight Compute's target).

On full-size planes (340x256 by default) for a batch of pairs, times with CUDA events:
  * a device copy (the achievable memory bandwidth of this GPU, the roofline),
  * the iteration kernel with every pair iterating (15 float32 planes of DRAM traffic per
    pixel: reads u, p, I1wx, I1wy, rho_c; writes u, p), and with every pair stopped (the cost
    of launching over stopped pairs),
  * the 5 x 5 median and the warping kernel,
  * the reference's eager iteration (tvl1_torch.primal_dual_step) and median on the same data,
and reports each kernel's time per full-size pair-iteration and its effective bandwidth
(nominal bytes / time) as a fraction of the copy's. A fused kernel near the copy's
bandwidth is memory bound and done; far below it, it is bound by something else
(latency, instruction issue, the partial sums).

--ncu launches each Triton kernel once, untimed, for Nsight Compute to profile, e.g.
    ncu --section SpeedOfLight --csv -k regex:tvl1_ python benchmarks/tvl1_kernels.py --ncu

Example:
    python benchmarks/tvl1_kernels.py --batch 256 --out kernels.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's ytfgvc, installed or not

import torch  # noqa: E402

from ytfgvc.prepare import tvl1_triton  # noqa: E402
from ytfgvc.prepare.tvl1_ops import median_filter  # noqa: E402
from ytfgvc.prepare.tvl1_torch import TVL1Params, primal_dual_step  # noqa: E402

NOMINAL_BYTES_PER_PIXEL = {  # float32 DRAM traffic per pixel if every neighbour load hits the cache
    "iteration": 4 * (2 + 4 + 3 + 2 + 4),
    "iteration_all_stopped": 0,
    "median5": 4 * (2 + 2),
    "warp": 4 * (2 + 1 + 3 + 3),
    "copy": 8,
    "reference_iteration_eager": None,
    "reference_median_eager": None,
}


def cuda_time(fn, repeat: int) -> float:
    """Mean seconds per call of ``fn`` (after one warm-up call), by CUDA events (wall time on the CPU)."""
    fn()
    if not torch.cuda.is_available():  # a smoke test under TRITON_INTERPRET=1
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        return (time.perf_counter() - start) / repeat
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / repeat


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256, help="pairs per launch")
    parser.add_argument("--size", default="340x256", help="WIDTHxHEIGHT")
    parser.add_argument("--repeat", type=int, default=20, help="timed launches per kernel")
    parser.add_argument("--iteration-blocks", default="256,512,1024", help="iteration kernel block sizes to time")
    parser.add_argument("--ncu", action="store_true", help="launch each Triton kernel once, untimed (for ncu)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif tvl1_triton._interpreting():
        device = torch.device("cpu")  # Triton's interpreter: checks that this script runs, times nothing useful
    else:
        sys.exit("needs CUDA (or TRITON_INTERPRET=1 for a smoke test on the CPU)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    n, h, w = args.batch, height, width
    hw = h * w
    params = TVL1Params()
    l_t, theta, taut = params.lambda_ * params.theta, params.theta, params.tau / params.theta
    tiny = torch.finfo(torch.float32).tiny ** 0.5
    eps = params.epsilon**2 * hw
    k = tvl1_triton.triton_kernels()
    cfg = tvl1_triton.DEFAULT_CONFIG

    gen = torch.Generator(device).manual_seed(0)
    u = torch.randn(n, 2, h, w, device=device, generator=gen)
    p = (torch.randn(n, 4, h, w, device=device, generator=gen) * 0.3).clamp(-1, 1)
    data = torch.randn(n, 3, h, w, device=device, generator=gen) * torch.tensor([5.0, 5.0, 20.0], device=device).view(
        1, 3, 1, 1
    )
    i1 = torch.rand(n, 1, h, w, device=device, generator=gen) * 255
    src = torch.cat([i1, i1, i1], 1)
    i0 = torch.rand(n, 1, h, w, device=device, generator=gen) * 255
    u_out, p_out = torch.empty_like(u), torch.empty_like(p)
    flags = torch.zeros(n, dtype=torch.int32, device=device)

    def iteration(block: int, warps: int, active: bool):
        blocks = -(-hw // block)
        prev = torch.zeros(n, blocks, device=device)
        prev[:, 0] = float("inf") if active else -1.0
        nxt = torch.empty_like(prev)
        pow2 = 1 << (blocks - 1).bit_length()
        return lambda: k.tvl1_iteration_kernel[(blocks, n)](
            u, p, data, u_out, p_out, prev, nxt, flags, h, w, blocks, eps, l_t, theta, taut, tiny,
            BLOCK=block, T_POW2=pow2, num_warps=warps,
        )  # fmt: skip

    blocks = -(-hw // cfg.iteration_block)
    active = torch.zeros(n, blocks, device=device)
    active[:, 0] = float("inf")
    pow2 = 1 << (blocks - 1).bit_length()

    def median5():
        k.tvl1_median5_kernel[(-(-hw // cfg.median_block), n)](
            u, u_out, active, h, w, blocks, eps, BLOCK=cfg.median_block, T_POW2=pow2, num_warps=cfg.median_warps
        )

    def warp():
        k.tvl1_warp_kernel[(-(-hw // cfg.warp_block), n)](
            src, i0, u, data, h, w, BLOCK=cfg.warp_block, num_warps=cfg.warp_warps
        )

    if args.ncu:
        iteration(cfg.iteration_block, cfg.iteration_warps, True)()
        iteration(cfg.iteration_block, cfg.iteration_warps, False)()
        median5()
        warp()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return {}

    copy_src = torch.empty(n * 2 * hw, device=device)
    copy_dst = torch.empty_like(copy_src)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)"
    results: dict = {"device": name, "batch": n, "size": [w, h], "kernels": {}}
    timings = {"copy": cuda_time(lambda: copy_dst.copy_(copy_src), args.repeat)}
    copy_bw = NOMINAL_BYTES_PER_PIXEL["copy"] * n * hw / timings["copy"]
    warps_for = {256: 8, 512: 8, 1024: 8}
    for block in (int(b) for b in args.iteration_blocks.split(",")):
        name = "iteration" if block == cfg.iteration_block else f"iteration_block{block}"
        NOMINAL_BYTES_PER_PIXEL.setdefault(name, NOMINAL_BYTES_PER_PIXEL["iteration"])
        timings[name] = cuda_time(iteration(block, warps_for.get(block, 8), True), args.repeat)
    timings["iteration_all_stopped"] = cuda_time(
        iteration(cfg.iteration_block, cfg.iteration_warps, False), args.repeat
    )
    timings["median5"] = cuda_time(median5, args.repeat)
    timings["warp"] = cuda_time(warp, args.repeat)
    dual = p.view(n, 2, 2, h, w)
    neg_inv_grad = -1 / (data[:, :1] ** 2 + data[:, 1:2] ** 2).clamp_min(tiny)
    all_active = torch.ones(n, dtype=torch.bool, device=device)
    zero = torch.tensor(0.0, device=device)
    timings["reference_iteration_eager"] = cuda_time(
        lambda: primal_dual_step(u, dual, data[:, :2], data[:, 2:], neg_inv_grad, all_active, zero, l_t, theta, taut),
        max(3, args.repeat // 4),
    )
    timings["reference_median_eager"] = cuda_time(lambda: median_filter(u, 5), max(3, args.repeat // 4))
    for name, seconds in timings.items():
        nominal = NOMINAL_BYTES_PER_PIXEL.get(name)
        entry = {"ms_per_launch": seconds * 1e3, "us_per_full_size_pair": seconds * 1e6 / n}
        if nominal:
            bandwidth = nominal * n * hw / seconds
            entry.update({"nominal_bytes_per_pixel": nominal, "effective_GBps": bandwidth / 1e9,
                          "fraction_of_copy_bandwidth": bandwidth / copy_bw})  # fmt: skip
        results["kernels"][name] = entry
        shown = (
            f"{entry['effective_GBps']:8.0f} GB/s ({entry['fraction_of_copy_bandwidth']:.0%} of copy)"
            if nominal
            else ""
        )
        print(f"{name:<28} {entry['ms_per_launch']:8.3f} ms  {entry['us_per_full_size_pair']:7.2f} us/pair  {shown}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
