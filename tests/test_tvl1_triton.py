"""The fused Triton TV-L1 (``kernel="triton"``) against the reference torch path, on the CPU.

The kernels run under Triton's interpreter (``TRITON_INTERPRET=1``, set per test), which
executes each program with numpy: slow, so the images are tiny and the iterations few.
The same kernels are also compiled for an H100 (sm_90) without a GPU, which catches what
the interpreter lets through (types, control flow, register spills).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ytfgvc.errors import YtfgvcError
from ytfgvc.prepare import get_flow_backend
from ytfgvc.prepare.tvl1_ops import centered_gradient, median_filter, warp_bicubic
from ytfgvc.prepare.tvl1_torch import TorchTVL1, TVL1Params, primal_dual_step, tvl1_flow

from .flow_pairs import end_point_error, make_pair
from .torch_threads import one_torch_thread  # noqa: F401 - autouse

triton = pytest.importorskip("triton")

from ytfgvc.prepare import tvl1_triton  # noqa: E402  (needs triton)

KERNELS_FILE = Path(tvl1_triton.__file__).with_name("tvl1_triton_kernels.py")
# One program per pair in the interpreter (it runs programs one after the other).
ONE_BLOCK = tvl1_triton.TritonConfig(iteration_block=512, median_block=512, warp_block=512, graphs="emulate")


@pytest.fixture
def kernels(monkeypatch: pytest.MonkeyPatch):
    """The kernels module under Triton's interpreter (skips, with the reason, where it cannot load)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    tvl1_triton.clear_workspaces()
    try:
        module = tvl1_triton.triton_kernels()
    except Exception as e:  # noqa: BLE001 - any failure to interpret is a reason to skip, not a result
        pytest.skip(f"Triton's interpreter cannot load the kernels here: {e}")
    yield module
    tvl1_triton.clear_workspaces()


def _pairs(h: int, w: int, kinds: tuple[str, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    triples = [make_pair(h, w, kind, seed=seed + k, magnitude=2.0) for k, kind in enumerate(kinds)]
    firsts, seconds = (np.stack([t[i] for t in triples]) for i in (0, 1))
    return torch.from_numpy(firsts).unsqueeze(1), torch.from_numpy(seconds).unsqueeze(1)


def _pair_errors(n: int, blocks: int, states: list[str]) -> torch.Tensor:
    """Error partials that make each pair iterate ("active"), just stopped ("stopped") or stopped before ("old")."""
    errors = torch.zeros(n, blocks)
    for i, state in enumerate(states):
        errors[i, 0] = {"active": float("inf"), "stopped": 0.0, "old": -1.0}[state]
    return errors


def _stack_bytes(cubin: bytes, tmp_path: Path) -> int | None:
    """The per-thread stack (register spills) of a compiled kernel, from cuobjdump (None without it)."""
    import subprocess

    import triton.backends.nvidia as nvidia

    tool = Path(nvidia.__file__).parent / "bin" / "cuobjdump"
    if not tool.exists():
        return None
    path = tmp_path / "kernel.cubin"
    path.write_bytes(cubin)
    out = subprocess.run([str(tool), "--dump-resource-usage", str(path)], capture_output=True, text=True).stdout
    found = re.search(r"STACK:(\d+)", out)
    return int(found.group(1)) if found else None


# ---------------------------------------------------------------- without the interpreter


def test_kernel_file_holds_the_median_network():
    """The 5 x 5 median's straight-line network in the kernels file is tvl1_ops.median_network(25)."""
    text = KERNELS_FILE.read_text()
    block = re.search(r"# BEGIN median_network\(25\)\n(.*?)\n\s*# END median_network\(25\)", text, re.S).group(1)
    assert [line.strip() for line in block.splitlines()] == tvl1_triton.median_network_source(25)


def test_kernel_option_is_checked_early():
    with pytest.raises(ValueError, match="kernel must be one of torch, triton"):
        TorchTVL1(device="cpu", kernel="cuda")
    with pytest.raises(ValueError, match="gamma must be 0"):
        TorchTVL1(device="cpu", kernel="triton", gamma=0.4)
    if not tvl1_triton._interpreting():
        with pytest.raises(ValueError, match="need a CUDA device"):
            TorchTVL1(device="cpu", kernel="triton")
        with pytest.raises(YtfgvcError, match="--flow-param: kernel='triton'.*CUDA"):
            get_flow_backend("torch", kernel="triton", device="cpu")
    backend = get_flow_backend("torch", kernel="torch", device="cpu")
    assert backend.params["kernel"] == "torch"
    with pytest.raises(ValueError, match="float32 only"):
        tvl1_flow(torch.zeros(1, 1, 20, 20, dtype=torch.float64), torch.zeros(1, 1, 20, 20, dtype=torch.float64),
                  kernel="triton")  # fmt: skip


def test_kernels_compile_for_h100(tmp_path):
    """Every kernel compiles for sm_90 with the default launch settings, without spilling registers."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    try:
        module = tvl1_triton.triton_kernels()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"cannot load the kernels: {e}")
    if tvl1_triton._interpreting():
        pytest.skip("TRITON_INTERPRET is set in the environment")
    cfg = tvl1_triton.DEFAULT_CONFIG
    ptr, i32, f32 = "*fp32", "i32", "fp32"
    iteration = dict.fromkeys(["u_in", "p_in", "data", "u_out", "p_out", "err_prev", "err_next"], ptr)
    iteration |= {"flags": "*i32", "H": i32, "W": i32, "T": i32} | dict.fromkeys(
        ["eps", "l_t", "theta", "taut", "tiny"], f32
    )
    median = {"u_in": ptr, "u_out": ptr, "err_prev": ptr, "H": i32, "W": i32, "T": i32, "eps": f32}
    cases = [
        (module.tvl1_iteration_kernel, iteration, {"BLOCK": cfg.iteration_block, "T_POW2": 256}, cfg.iteration_warps),
        (module.tvl1_median5_kernel, median, {"BLOCK": cfg.median_block, "T_POW2": 256}, cfg.median_warps),
        (module.tvl1_median_rank_kernel, median, {"BLOCK": 32, "T_POW2": 256, "SIZE": 3, "WINDOW": 16}, 4),
        (module.tvl1_warp_kernel, {"src": ptr, "i0": ptr, "u": ptr, "data": ptr, "H": i32, "W": i32},
         {"BLOCK": cfg.warp_block}, cfg.warp_warps),
    ]  # fmt: skip
    for fn, signature, constants, warps in cases:
        source = ASTSource(fn=fn, signature=signature | dict.fromkeys(constants, "constexpr"), constexprs=constants)
        try:
            compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
        except RuntimeError as e:
            if "ptxas" in str(e).lower() and "not found" in str(e).lower():
                pytest.skip(f"no ptxas: {e}")
            raise
        stack = _stack_bytes(compiled.asm["cubin"], tmp_path)
        assert stack in (None, 0), f"{fn.__name__} spills registers ({stack} bytes of stack)"


# ---------------------------------------------------------------- each kernel against the reference ops


def test_warp_kernel_matches_grid_sample(kernels):
    n, h, w = 2, 23, 29
    gen = torch.Generator().manual_seed(0)
    i0 = torch.rand(n, 1, h, w, generator=gen) * 255
    i1 = torch.rand(n, 1, h, w, generator=gen) * 255
    u = (torch.rand(n, 2, h, w, generator=gen) - 0.5) * 8  # some samples fall outside the image
    src = torch.cat([i1, *centered_gradient(i1)], 1)
    data = torch.empty(n, 3, h, w)
    kernels.tvl1_warp_kernel[(1, n)](src, i0, u, data, h, w, BLOCK=1024)
    i1w, i1wx, i1wy = warp_bicubic(src, u).split(1, 1)
    expected = torch.cat([i1wx, i1wy, i1w - i1wx * u[:, :1] - i1wy * u[:, 1:2] - i0], 1)
    torch.testing.assert_close(data, expected, atol=2e-3, rtol=1e-5)


@pytest.mark.parametrize("size", [5, 3])
def test_median_kernels_match_median_filter_and_respect_stopping(kernels, size):
    n, h, w = 3, 11, 13
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(n, 2, h, w, generator=gen).round(decimals=1)  # ties
    out = torch.full_like(u, 7.0)
    errors = _pair_errors(n, 2, ["active", "stopped", "old"])
    if size == 5:
        kernels.tvl1_median5_kernel[(1, n)](u, out, errors, h, w, 2, 0.5, BLOCK=256, T_POW2=2)
    else:
        kernels.tvl1_median_rank_kernel[(5, n)](u, out, errors, h, w, 2, 0.5, BLOCK=32, T_POW2=2, SIZE=3, WINDOW=16)
    assert torch.equal(out[0], median_filter(u[:1], size)[0])  # iterating: filtered exactly
    assert torch.equal(out[1], u[1])  # just stopped: copied
    assert (out[2] == 7).all()  # stopped before: untouched


def test_iteration_kernel_matches_primal_dual_step(kernels):
    n, h, w = 3, 12, 14
    gen = torch.Generator().manual_seed(2)
    u = torch.randn(n, 2, h, w, generator=gen)
    p = torch.randn(n, 4, h, w, generator=gen).clamp(-1, 1)
    data = torch.randn(n, 3, h, w, generator=gen) * torch.tensor([3.0, 3.0, 10.0]).view(1, 3, 1, 1)
    data[0, :2, 3, 4] = 0  # a flat pixel: |grad I1w|^2 = 0
    u_out, p_out = torch.full_like(u, 7.0), torch.full_like(p, 7.0)
    errors_next, flags = torch.full((n, 1), 5.0), torch.full((n,), 9, dtype=torch.int32)
    params = TVL1Params()
    l_t, theta, taut = params.lambda_ * params.theta, params.theta, params.tau / params.theta
    tiny = torch.finfo(torch.float32).tiny ** 0.5
    kernels.tvl1_iteration_kernel[(1, n)](
        u, p, data, u_out, p_out, _pair_errors(n, 1, ["active", "stopped", "old"]), errors_next, flags,
        h, w, 1, 0.5, l_t, theta, taut, tiny, BLOCK=256, T_POW2=1,
    )  # fmt: skip
    neg_inv_grad = -1 / (data[:, :1] ** 2 + data[:, 1:2] ** 2).clamp_min(tiny)
    dual = p.view(n, 2, 2, h, w)
    ref_u, ref_dual, _ = primal_dual_step(
        u, dual, data[:, :2], data[:, 2:], neg_inv_grad, torch.ones(n, dtype=torch.bool), torch.tensor(0.0),
        l_t, theta, taut,
    )  # fmt: skip
    torch.testing.assert_close(u_out[0], ref_u[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p_out[0], ref_dual[0].reshape(4, h, w), atol=1e-5, rtol=1e-5)
    change = (ref_u[0] - u[0]).square().sum()
    torch.testing.assert_close(errors_next[0, 0], change, rtol=1e-4, atol=1e-6)
    assert flags.tolist() == [1, 0, 0]
    assert torch.equal(u_out[1], u[1]) and torch.equal(p_out[1], p[1])  # just stopped: copied once
    assert (u_out[2] == 7).all() and (p_out[2] == 7).all()  # stopped before: nothing written
    assert errors_next[1:, 0].tolist() == [-1.0, -1.0]


# ---------------------------------------------------------------- the whole solver


def test_triton_flow_equals_reference_with_per_pair_stopping(kernels):
    """Same flow and the same iterations per pair and warping as the reference, stops and medians included.

    The bound: 1e-3 px mean end-point error between the two paths (float rounding only; seen: ~1e-5).
    Where rounding moves a pair's stop by one iteration (it happens at default parameters on
    larger images), single pixels near the border can move by pixels: end to end at 64x85 the
    two paths differ by 0.011 px mean EPE, as much as the reference in float32 and in float64
    (0.013 px, up to 3.7 px on the border) or the reference and OpenCV (0.013 px).
    """
    first, second = _pairs(20, 25, ("translation", "piecewise", "smooth"), seed=3)  # two levels
    params = TVL1Params(nscales=2, warps=2, innerIterations=4, outerIterations=3, epsilon=0.06)
    ref_stats, tri_stats = {}, {}
    reference = tvl1_flow(first, second, params, sync_every=1, stats=ref_stats)
    ours = tvl1_flow(first, second, params, sync_every=2, stats=tri_stats, kernel="triton", triton_config=ONE_BLOCK)
    ref_iters = [w["pair_iterations"] for w in ref_stats["warps"]]
    assert [w["pair_iterations"] for w in tri_stats["warps"]] == ref_iters
    per_pair = np.array(ref_iters)  # warps x pairs; here [[9, 12, 12], [11, 11, 11], [10, 10, 12], [6, 8, 10]]
    assert (per_pair == 12).any() and (per_pair % 4 == 0).any() and (per_pair % 4 != 0).any(), per_pair
    assert any(len(set(row)) > 1 for row in per_pair), "pairs of one warping should stop at different iterations"
    assert end_point_error(ours.permute(0, 2, 3, 1).numpy(), reference.permute(0, 2, 3, 1).numpy()) < 1e-3


def test_triton_never_checking_and_other_median_sizes(kernels):
    """sync_every=0 (every launch; stopped pairs frozen on the device), medianFiltering 3, and 1 (off)."""
    first, second = _pairs(16, 18, ("smooth", "translation"), seed=7)
    params = TVL1Params(nscales=1, warps=2, innerIterations=3, outerIterations=2, epsilon=0.15, medianFiltering=3)
    stats: dict = {}
    reference = tvl1_flow(first, second, params, sync_every=1, stats=stats)
    assert [w["pair_iterations"] for w in stats["warps"]] == [[5, 5], [3, 4]]  # stops before 6
    ours = tvl1_flow(first, second, params, sync_every=0, kernel="triton", triton_config=ONE_BLOCK)
    assert end_point_error(ours.permute(0, 2, 3, 1).numpy(), reference.permute(0, 2, 3, 1).numpy()) < 1e-3
    params = TVL1Params(nscales=1, warps=1, innerIterations=2, outerIterations=1, medianFiltering=1)
    reference = tvl1_flow(first, second, params)
    ours = tvl1_flow(first, second, params, kernel="triton", triton_config=ONE_BLOCK)
    assert end_point_error(ours.permute(0, 2, 3, 1).numpy(), reference.permute(0, 2, 3, 1).numpy()) < 1e-3


def test_recurring_batches_replay_recorded_runs(kernels):
    """From the second call of a shape on, runs of iterations are replayed (as CUDA graphs are on a GPU)."""
    first, second = _pairs(16, 16, ("smooth", "translation"), seed=7)
    params = TVL1Params(nscales=1, warps=2, innerIterations=4, outerIterations=1, epsilon=0.2)
    stats: dict = {}
    reference = tvl1_flow(first, second, params, sync_every=1, stats=stats)
    assert [w["pair_iterations"] for w in stats["warps"]] == [[3, 4], [2, 3]]
    results = [tvl1_flow(first, second, params, sync_every=1, kernel="triton", triton_config=ONE_BLOCK) for _ in "ab"]
    (workspace,) = tvl1_triton._WORKSPACES.values()
    assert workspace.calls == 2 and workspace.graphs, "the second call should replay recorded runs"
    assert torch.equal(results[0], results[1])
    assert end_point_error(results[1].permute(0, 2, 3, 1).numpy(), reference.permute(0, 2, 3, 1).numpy()) < 1e-3


def test_backend_runs_the_triton_kernel_under_the_interpreter(kernels):
    backend = get_flow_backend("torch", kernel="triton", device="cpu", nscales=1, warps=1, innnerIterations=2,
                               outerIterations=1)  # fmt: skip
    assert backend.params["kernel"] == "triton"
    frames = _pairs(16, 16, ("translation",), seed=9)
    flow = backend.compute(frames[0][:, 0].numpy(), frames[1][:, 0].numpy())
    assert flow.shape == (1, 16, 16, 2) and np.isfinite(flow).all()


def check_against_reference_and_opencv(device: str, h: int, w: int, **config) -> None:
    """Triton vs the reference and OpenCV on three pairs at default parameters, CUDA graphs off and on.

    End to end, a stop moved by one iteration through rounding moves border pixels (see
    test_triton_flow_equals_reference_with_per_pair_stopping), hence 0.05 px against the
    reference; the coarsest level, from the same input, runs the same iterations per pair and
    agrees to 1e-2 px at every pixel.
    """
    from ytfgvc.prepare.tvl1_ops import image_pyramid
    from ytfgvc.prepare.tvl1_torch import _solve_level, kernels

    kinds = ("smooth", "piecewise", "translation")
    triples = [make_pair(h, w, kind, seed=11 + k, magnitude=2.0) for k, kind in enumerate(kinds)]
    firsts, seconds, truth = (np.stack([t[i] for t in triples]) for i in range(3))
    opencv = np.stack([TVL1Params().opencv().calc(a, b, None) for a, b in zip(firsts, seconds, strict=True)])
    first = torch.from_numpy(firsts).unsqueeze(1).to(device)
    second = torch.from_numpy(seconds).unsqueeze(1).to(device)
    reference = tvl1_flow(first, second).permute(0, 2, 3, 1).cpu().numpy()
    results = []
    for graphs in (False, config.pop("graphs", True), True):  # the last call replays what the second captured
        cfg = tvl1_triton.TritonConfig(graphs=graphs, **config)
        ours = tvl1_flow(first, second, kernel="triton", triton_config=cfg).permute(0, 2, 3, 1).cpu().numpy()
        assert end_point_error(ours, reference) < 0.05, graphs
        assert end_point_error(ours, opencv) < 0.3, graphs
        assert abs(end_point_error(ours, truth) - end_point_error(opencv, truth)) < 0.1, graphs
        results.append(ours)
    assert np.array_equal(results[0], results[2]), "replayed graphs should launch exactly the same kernels"
    params = TVL1Params()
    level = image_pyramid(torch.cat([first, second], 1).float(), params.nscales, params.scaleStep)[-1]
    u = torch.zeros(3, 2, *level.shape[-2:], device=device)
    step, median = kernels(False)
    ref_stats, tri_stats = {}, {}
    ref_u = _solve_level(level[:, :1], level[:, 1:], u, params, step, median, 5, ref_stats)
    tri_u = tvl1_triton.solve_level_triton(level[:, :1], level[:, 1:], u, params, 5, tri_stats,
                                           tvl1_triton.TritonConfig(**config))  # fmt: skip
    assert [w["pair_iterations"] for w in tri_stats["warps"]] == [w["pair_iterations"] for w in ref_stats["warps"]]
    assert (tri_u - ref_u).abs().max() < 1e-2


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_triton_on_cuda_matches_reference_and_opencv():
    """96x128, default parameters and launch settings, on the GPU (run: pytest -m gpu)."""
    tvl1_triton.clear_workspaces()
    check_against_reference_and_opencv("cuda", 96, 128)
