"""The fused TV-L1 solver of ``tvl1_flow(..., kernel="triton")``: the same scheme in a few Triton kernels.

The reference solver (``tvl1_torch._solve_level``) spends most of its time outside the
arithmetic of an iteration: ~25 separate kernels per iteration (a few after
``torch.compile``), each streaming whole planes through memory; a host synchronisation
every ``sync_every`` iterations; gathers that drop stopped pairs from the batch; a median
filter built from ``unfold`` and ``sort``. Here, per warping:

* one kernel warps the second image and its gradient and writes the data term
  (I1wx, I1wy, rho_c) -- 3 planes instead of the reference's ~30 plane-passes;
* one kernel per iteration does the whole primal-dual step (thresholding, primal update,
  dual update) reading u, p and the data term once (9 planes) and writing u and p once
  (6 planes). The dual update's forward differences need the updated flow one pixel to the
  right and below: it is recomputed there from the inputs (cache hits, not DRAM traffic),
  so u and p are double-buffered instead of updated in place;
* OpenCV's stopping rule is evaluated on the device: each block writes its partial sum of
  the squared flow change, and every program of the next iteration sums its pair's partials
  in a fixed order (so all agree, and the result is deterministic). A pair whose error is at
  most ``epsilon**2 * H * W`` stops exactly where the reference stops it; its programs
  then copy its state into the other buffer once and afterwards return at once, so stopped
  pairs cost (almost) nothing without any compaction of the batch;
* the median filter before each outer iteration is a kernel too (a min/max network for
  OpenCV's default 5 x 5, rank counting for other sizes), applied to the pairs still iterating.

The host only launches kernels; every ``sync_every`` iterations it reads back whether any
pair is still iterating, one check late (the copy is asynchronous), so the GPU never waits
for the host: at most ``sync_every`` extra launches do nothing when all pairs have stopped.

Same results as the reference up to float rounding (fused multiply-adds, ``sqrt`` for
``hypot``, the order of the error sums): tested through Triton's interpreter on the CPU.
Restrictions: float32 only, and ``gamma == 0`` (no illumination term).
"""

from __future__ import annotations

import importlib.util
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from ytfgvc.prepare.tvl1_ops import centered_gradient, median_network


@dataclass(frozen=True)
class TritonConfig:
    """Launch settings of the kernels (results do not depend on them, up to float rounding).

    Attributes:
        iteration_block, iteration_warps: pixels per program and warps of the iteration kernel
            (its error partials are one per block, so the block also sets how many each program sums).
        median_block, median_warps: the same for the 5 x 5 median.
        warp_block, warp_warps: the same for the warping kernel.
        graphs: replay each run of iterations between two checks as a CUDA graph: the host
            launches one graph instead of ``sync_every`` kernels. Only for batch and level sizes
            that recur across calls (from the second call of a size on; a video's last, smaller
            batch runs without), once each run has been launched eagerly (so its kernels are
            compiled). "emulate" records and replays the launches in Python instead (tests the
            bookkeeping on the CPU).
        max_workspaces: buffers (and graphs) kept per (batch, level size) between calls, so
            that batches of one size reuse them; the oldest are dropped beyond this.
    """

    iteration_block: int = 512
    iteration_warps: int = 8
    median_block: int = 256
    median_warps: int = 4
    warp_block: int = 256
    warp_warps: int = 4
    graphs: bool | str = True
    max_workspaces: int = 12


DEFAULT_CONFIG = TritonConfig()
_LOADED: dict[bool, ModuleType] = {}
_WORKSPACES: OrderedDict[tuple, _Workspace] = OrderedDict()
RANK_ELEMENTS = 8192  # window-pair comparisons per program of the median kernel of other sizes


def _interpreting() -> bool:
    from triton import knobs

    return bool(knobs.runtime.interpret)


def triton_kernels() -> ModuleType:
    """The kernels module, compiled for the GPU or, with ``TRITON_INTERPRET=1``, for Triton's interpreter.

    The module is loaded once per mode (Triton decides at decoration time), so tests can switch
    to the interpreter in a process that has already used the compiled kernels, and back.
    """
    interpret = _interpreting()
    if interpret not in _LOADED:
        name = f"ytfgvc.prepare._tvl1_triton_kernels_{'interpreted' if interpret else 'compiled'}"
        path = Path(__file__).with_name("tvl1_triton_kernels.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # Triton looks kernels' globals up through their module
        spec.loader.exec_module(module)
        _LOADED[interpret] = module
    return _LOADED[interpret]


def unsupported_reason(device: torch.device, dtype: torch.dtype, gamma: float) -> str | None:
    """Why ``kernel="triton"`` cannot run here, or None if it can."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return "Triton is not installed"
    if dtype != torch.float32:
        return f"the Triton kernels compute in float32 only (got {dtype}); use kernel='torch'"
    if gamma != 0:
        return "the Triton kernels have no illumination term (gamma must be 0); use kernel='torch'"
    if device.type != "cuda" and not _interpreting():
        return f"the Triton kernels need a CUDA device (got {device}), or TRITON_INTERPRET=1 on the CPU"
    return None


def median_network_source(count: int) -> list[str]:
    """``median_network(count)`` as Triton statements on ``v0 .. v{count-1}`` (the kernels file holds a copy)."""
    lines = []
    for i, j, keep_min, keep_max in median_network(count):
        if keep_min and keep_max:
            lines.append(f"v{i}, v{j} = tl.minimum(v{i}, v{j}), tl.maximum(v{i}, v{j})")
        elif keep_min:
            lines.append(f"v{i} = tl.minimum(v{i}, v{j})")
        else:
            lines.append(f"v{j} = tl.maximum(v{i}, v{j})")
    return lines


def _next_power_of_2(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


class _AnyActive:
    """'Is any pair still iterating?', read one check late so that the host never stalls the GPU."""

    def __init__(self, flags: torch.Tensor):
        self.flags = flags
        self.cuda = flags.device.type == "cuda"
        if self.cuda:
            self.host = [torch.zeros((), dtype=torch.bool).pin_memory() for _ in range(2)]
            self.events = [torch.cuda.Event(), torch.cuda.Event()]
        self.pending: int | None = None
        self.checks = 0

    def reset(self) -> None:
        self.pending = None

    def any_left(self) -> bool:
        """False once a check has seen no pair iterating (the previous check's answer on CUDA)."""
        if not self.cuda:
            return bool(self.flags.any())
        slot = self.checks % 2
        self.checks += 1
        self.host[slot].copy_(self.flags.any(), non_blocking=True)
        self.events[slot].record()
        previous, self.pending = self.pending, slot
        if previous is None:
            return True
        self.events[previous].synchronize()
        return bool(self.host[previous])


class _Workspace:
    """The buffers of one (device, batch size, level size, parameters, config), and its captured graphs."""

    def __init__(self, n: int, h: int, w: int, device: torch.device, config: TritonConfig):
        def planes(c: int) -> torch.Tensor:
            return torch.empty((n, c, h, w), dtype=torch.float32, device=device)

        self.blocks = -(-h * w // config.iteration_block)
        self.src, self.i0, self.data = planes(3), planes(1), planes(3)
        self.flows, self.duals = [planes(2), planes(2)], [planes(4), planes(4)]
        # separate allocations: every pointer is 16-byte aligned, so both parities launch one specialisation
        self.errors = [torch.empty((n, self.blocks), dtype=torch.float32, device=device) for _ in range(2)]
        self.flags = torch.zeros(n, dtype=torch.int32, device=device)
        self.counts = torch.zeros(n, dtype=torch.int32, device=device)
        self.any_active = _AnyActive(self.flags)
        self.seen: set[tuple] = set()  # runs of iterations launched once (their kernels are compiled)
        self.graphs: dict[tuple, object] = {}
        self.graphs_failed = False
        self.calls = 0


def _capture(run) -> torch.cuda.CUDAGraph:
    """A CUDA graph of what ``run()`` launches, captured on a side stream (without torch.cuda.graph's sync and gc)."""
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        graph.capture_begin()
        try:
            run()
        finally:
            graph.capture_end()
    torch.cuda.current_stream().wait_stream(stream)
    return graph


def _workspace(n: int, h: int, w: int, device: torch.device, params, config: TritonConfig) -> _Workspace:
    key = (str(device), n, h, w, params, config)
    ws = _WORKSPACES.pop(key, None)
    if ws is None:
        ws = _Workspace(n, h, w, device, config)
    _WORKSPACES[key] = ws  # most recent last
    while len(_WORKSPACES) > max(1, config.max_workspaces):
        _WORKSPACES.popitem(last=False)
    return ws


def clear_workspaces() -> None:
    """Free the buffers and graphs kept between calls."""
    _WORKSPACES.clear()


class _Recorded:
    """A CUDA graph stand-in for the CPU: the launches, recorded once and replayed in Python."""

    def __init__(self):
        self.launches: list = []

    def replay(self) -> None:
        for launch in self.launches:
            launch()


def solve_level_triton(
    i0: torch.Tensor,
    i1: torch.Tensor,
    u: torch.Tensor,
    params,
    sync_every: int,
    stats: dict | None,
    config: TritonConfig | None = None,
) -> torch.Tensor:
    """All warpings at one pyramid level, as ``tvl1_torch._solve_level`` (same arguments, same result)."""
    if u.device.type != "cuda":
        return _solve(i0, i1, u, params, sync_every, stats, config)
    with torch.cuda.device(u.device):  # Triton launches, streams and events follow the current device
        return _solve(i0, i1, u, params, sync_every, stats, config)


def _solve(i0, i1, u, params, sync_every: int, stats: dict | None, config: TritonConfig | None) -> torch.Tensor:
    config = config or DEFAULT_CONFIG
    k = triton_kernels()
    n, _, h, w = i0.shape
    hw = h * w
    ws = _workspace(n, h, w, u.device, params, config)
    ws.calls += 1
    blocks = ws.blocks
    blocks_pow2 = max(256, _next_power_of_2(blocks))  # one value for every level up to 512x512 (one compilation)
    scaled_eps = float(torch.tensor(params.epsilon**2 * h * w, dtype=torch.float32))
    l_t, taut, theta = params.lambda_ * params.theta, params.tau / params.theta, params.theta
    tiny = torch.finfo(torch.float32).tiny ** 0.5
    size = params.medianFiltering
    window = _next_power_of_2(size * size)
    rank_block = max(2, RANK_ELEMENTS // (window * window))

    i1x, i1y = centered_gradient(i1)
    torch.cat([i1, i1x, i1y], 1, out=ws.src)
    ws.i0.copy_(i0)
    ws.flows[0].copy_(u)
    ws.duals[0].zero_()
    flows, duals, errors, flags, counts = ws.flows, ws.duals, ws.errors, ws.flags, ws.counts
    counting = stats is not None
    use_graphs = (
        bool(config.graphs)
        and ws.calls >= 2
        and not ws.graphs_failed
        and (u.device.type == "cuda" or config.graphs == "emulate")
    )
    recording: list | None = None

    def launch(kernel, grid, *args, **meta) -> None:
        if recording is not None:
            recording.append(lambda: kernel[grid](*args, **meta))
        else:
            kernel[grid](*args, **meta)

    def iterations(count: int, cu: int, cd: int) -> tuple[int, int]:
        for _ in range(count):
            launch(
                k.tvl1_iteration_kernel, (blocks, n),
                flows[cu], duals[cd], ws.data, flows[1 - cu], duals[1 - cd], errors[cd], errors[1 - cd], flags,
                h, w, blocks, scaled_eps, l_t, theta, taut, tiny,
                BLOCK=config.iteration_block, T_POW2=blocks_pow2, num_warps=config.iteration_warps,
            )  # fmt: skip
            if counting:
                if recording is not None:
                    recording.append(lambda: counts.add_(flags))
                else:
                    counts.add_(flags)
            cu, cd = 1 - cu, 1 - cd
        return cu, cd

    def run(count: int, cu: int, cd: int) -> tuple[int, int]:
        """``count`` iterations from buffers (cu, cd): eagerly, or through a graph once this run was seen."""
        nonlocal recording, use_graphs
        key = (count, cu, cd, counting)
        if not use_graphs or key not in ws.seen:
            ws.seen.add(key)
            return iterations(count, cu, cd)
        graph = ws.graphs.get(key)
        if graph is None:
            if config.graphs == "emulate":
                graph, recording = _Recorded(), []
                try:
                    iterations(count, cu, cd)
                finally:
                    graph.launches, recording = recording, None
            else:
                try:
                    graph = _capture(lambda: iterations(count, cu, cd))
                except Exception as e:  # noqa: BLE001 - any capture failure: carry on without graphs
                    import warnings

                    message = f"TV-L1 Triton: CUDA graph capture failed, launching kernels instead: {e}"
                    warnings.warn(message, RuntimeWarning, stacklevel=2)
                    ws.graphs_failed, use_graphs = True, False
                    return iterations(count, cu, cd)
            ws.graphs[key] = graph
        graph.replay()
        return (cu, cd) if count % 2 == 0 else (1 - cu, 1 - cd)

    cu = cd = 0  # which buffer holds the current flow, and the current dual variables and last errors
    chunk = sync_every or params.innerIterations
    for _ in range(params.warps):
        launch(
            k.tvl1_warp_kernel, (-(-hw // config.warp_block), n), ws.src, ws.i0, flows[cu], ws.data, h, w,
            BLOCK=config.warp_block, num_warps=config.warp_warps,
        )  # fmt: skip
        errors[cd].zero_()
        errors[cd][:, 0] = float("inf")  # every pair iterates at least once per warping
        if counting:
            counts.zero_()
        ws.any_active.reset()
        launched, done = 0, False
        for _ in range(params.outerIterations):
            if size == 5:  # OpenCV's default: a min/max network
                launch(
                    k.tvl1_median5_kernel, (-(-hw // config.median_block), n),
                    flows[cu], flows[1 - cu], errors[cd], h, w, blocks, scaled_eps,
                    BLOCK=config.median_block, T_POW2=blocks_pow2, num_warps=config.median_warps,
                )  # fmt: skip
                cu = 1 - cu
            elif size > 1:
                launch(
                    k.tvl1_median_rank_kernel, (-(-hw // rank_block), n),
                    flows[cu], flows[1 - cu], errors[cd], h, w, blocks, scaled_eps,
                    BLOCK=rank_block, T_POW2=blocks_pow2, SIZE=size, WINDOW=window,
                )  # fmt: skip
                cu = 1 - cu
            inner = 0
            while inner < params.innerIterations:
                count = min(chunk, params.innerIterations - inner)
                cu, cd = run(count, cu, cd)
                inner += count
                launched += count
                if sync_every and not ws.any_active.any_left():
                    done = True
                    break
            if done:
                break
        if counting:
            stats.setdefault("warps", []).append(
                {"size": (h, w), "batch_iterations": launched, "pair_iterations": counts.tolist()}
            )
    return flows[cu].clone()  # the workspace is reused by the next batch of this size
