"""The torch TV-L1 backend against OpenCV's DualTVL1OpticalFlow and against known flow.

Image pairs are made here (tests/flow_pairs.py): a smooth random texture and the same
texture displaced by a known flow, with noise and a brightness change.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import asdict, fields

import cv2
import numpy as np
import pytest
import torch

from ytfgvc.prepare.tvl1_ops import image_pyramid, median_filter, median_filter_network, resize_linear, warp_bicubic
from ytfgvc.prepare.tvl1_torch import TorchTVL1, TVL1Params, tvl1_flow

from .flow_pairs import end_point_error, make_pair


def _opencv_flows(params: TVL1Params, firsts: np.ndarray, seconds: np.ndarray, init=None) -> np.ndarray:
    flows = []
    for k, (a, b) in enumerate(zip(firsts, seconds, strict=True)):
        flow = None if init is None else init[k].copy()
        flows.append(params.opencv().calc(a, b, flow))
    return np.stack(flows)


def _stacked(triples: list[tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
    """[(first, second, flow), ...] -> (firsts, seconds, flows)."""
    return tuple(np.stack(x) for x in zip(*triples, strict=True))


def _torch_flows(params: TVL1Params, firsts: np.ndarray, seconds: np.ndarray, **kw) -> np.ndarray:
    a, b = torch.from_numpy(firsts).unsqueeze(1), torch.from_numpy(seconds).unsqueeze(1)
    return tvl1_flow(a, b, params, **kw).permute(0, 2, 3, 1).numpy()


@pytest.fixture(autouse=True)
def _few_threads():
    old, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)  # OpenMP threads on a busy 2-core machine are far slower than one
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(old)
    cv2.setNumThreads(old_cv)


@pytest.fixture(scope="module")
def ground_truth_run():
    """Smooth and piecewise-constant flows at 96x96 and 80x96, default parameters, both backends."""
    specs = [(96, 96, "smooth", 1), (96, 96, "piecewise", 2), (80, 96, "smooth", 3), (80, 96, "piecewise", 4)]
    params = TVL1Params()
    runs = []
    for size in ((96, 96), (80, 96)):
        triples = [make_pair(h, w, kind, seed=seed) for h, w, kind, seed in specs if (h, w) == size]
        firsts, seconds, truth = _stacked(triples)
        runs.append((truth, _opencv_flows(params, firsts, seconds), _torch_flows(params, firsts, seconds)))
    return runs


# ---------------------------------------------------------------- parameters


def test_defaults_are_opencv_defaults():
    algo = cv2.optflow.DualTVL1OpticalFlow_create()
    opencv = {
        "tau": algo.getTau(), "lambda_": algo.getLambda(), "theta": algo.getTheta(),
        "nscales": algo.getScalesNumber(), "warps": algo.getWarpingsNumber(), "epsilon": algo.getEpsilon(),
        "innerIterations": algo.getInnerIterations(), "outerIterations": algo.getOuterIterations(),
        "scaleStep": algo.getScaleStep(), "gamma": algo.getGamma(), "medianFiltering": algo.getMedianFiltering(),
        "useInitialFlow": algo.getUseInitialFlow(),
    }  # fmt: skip
    assert asdict(TVL1Params()) == pytest.approx(opencv)
    signature = inspect.signature(TorchTVL1)
    assert {f.name: signature.parameters[f.name].default for f in fields(TVL1Params)} == asdict(TVL1Params())
    assert asdict(TorchTVL1(device="cpu").params) == asdict(TVL1Params())


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="scaleStep must be in"):
        TVL1Params(scaleStep=1.2)
    with pytest.raises(ValueError, match="warps must be an integer >= 1.*medianFiltering must be odd"):
        TVL1Params(warps=0, medianFiltering=4)


def test_compute_rejects_bad_frames():
    backend = TorchTVL1(device="cpu")
    frames = np.zeros((2, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        backend.compute(frames.astype(np.float32), frames)
    with pytest.raises(ValueError, match="one shape"):
        backend.compute(frames, frames[:1])


# ---------------------------------------------------------------- building blocks against OpenCV


def test_pyramid_and_resize_match_cv2():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (61, 83)).astype(np.float32)
    levels = image_pyramid(torch.from_numpy(image)[None, None], 5, 0.8)
    assert [tuple(level.shape[-2:]) for level in levels] == [(61, 83), (49, 66), (39, 53), (31, 42), (25, 34)]
    expected = image
    for level in levels[1:]:
        expected = cv2.resize(expected, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(level[0, 0].numpy(), expected, atol=1e-3)
    up = resize_linear(levels[2], (49, 66))[0, 0].numpy()
    np.testing.assert_allclose(up, cv2.resize(levels[2][0, 0].numpy(), (66, 49)), atol=1e-3)
    # a level under 16 px on a side ends the pyramid, as in OpenCV
    assert len(image_pyramid(torch.zeros(1, 1, 24, 200), 5, 0.8)) == 2


def test_warp_and_median_match_cv2():
    rng = np.random.default_rng(1)
    _, image, flow = make_pair(50, 70, "smooth", seed=5, magnitude=4.0)
    image = image.astype(np.float32)
    ys, xs = np.mgrid[0:50, 0:70].astype(np.float32)
    expected = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
    warped = warp_bicubic(torch.from_numpy(image)[None, None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    np.testing.assert_allclose(warped[0, 0].numpy(), expected, atol=0.01)
    noisy = rng.normal(0, 3, (2, 40, 45)).astype(np.float32)
    noisy[0, 10:20, 10:20] = 1.5  # ties
    for median in (median_filter, median_filter_network):  # eager (sort) and compiled-path (min/max network)
        filtered = median(torch.from_numpy(noisy)[None], 5)[0].numpy()
        for channel, result in zip(noisy, filtered, strict=True):
            np.testing.assert_array_equal(result, cv2.medianBlur(channel, 5))


# ---------------------------------------------------------------- accuracy


def test_accuracy_matches_opencv_against_ground_truth(ground_truth_run):
    for truth, opencv, torch_flow in ground_truth_run:
        for k in range(len(truth)):
            epe_opencv = end_point_error(opencv[k], truth[k])
            epe_torch = end_point_error(torch_flow[k], truth[k])
            assert epe_opencv < 0.5, "OpenCV itself should recover these flows"
            assert abs(epe_torch - epe_opencv) < 0.1, (k, epe_torch, epe_opencv)
            assert end_point_error(torch_flow[k], opencv[k]) < 0.3


def test_translation_is_recovered():
    first, second, truth = make_pair(72, 88, "translation", seed=11, magnitude=2.5)
    flow = _torch_flows(TVL1Params(nscales=3), first[None], second[None])[0]
    interior = flow[8:-8, 8:-8].reshape(-1, 2)
    assert np.abs(np.median(interior, 0) - truth[0, 0]).max() < 0.5
    assert end_point_error(flow[8:-8, 8:-8], truth[8:-8, 8:-8]) < 0.5


def test_batch_equals_pairs_one_at_a_time():
    triples = [make_pair(48, 56, kind, seed=20 + k) for k, kind in enumerate(("smooth", "piecewise", "smooth"))]
    firsts, seconds, _ = _stacked(triples)
    backend = TorchTVL1(nscales=3, warps=3, device="cpu", batch_size=2)
    batched = backend.compute(firsts, seconds)
    assert batched.shape == (3, 48, 56, 2) and batched.dtype == np.float32
    for k in range(3):
        single = backend.compute(firsts[k : k + 1], seconds[k : k + 1])[0]
        assert end_point_error(batched[k], single) < 1e-3


def test_early_stopping_is_exact_per_pair():
    """Stopped pairs are frozen or dropped from the batch: same flow as never checking (all max iterations)."""
    triples = [make_pair(40, 48, kind, seed=30 + k) for k, kind in enumerate(("smooth", "piecewise", "translation"))]
    firsts, seconds, _ = _stacked(triples)
    params = TVL1Params(nscales=2, warps=2, innerIterations=20, outerIterations=4)
    stats: dict = {}
    checked = _torch_flows(params, firsts, seconds, sync_every=1, stats=stats)
    unchecked = _torch_flows(params, firsts, seconds, sync_every=0)
    assert end_point_error(checked, unchecked) < 1e-4
    per_pair = np.array([w["pair_iterations"] for w in stats["warps"]])
    assert (per_pair < 80).any(), "some pair should stop before the maximum"
    assert (per_pair.max(1) == [w["batch_iterations"] for w in stats["warps"]]).all()


def test_float64_agrees_with_float32():
    first, second, _ = make_pair(48, 48, "smooth", seed=40)
    params = TVL1Params(nscales=3, warps=3)
    single = _torch_flows(params, first[None], second[None])
    double = _torch_flows(params, first[None].astype(np.float64), second[None].astype(np.float64))
    assert end_point_error(single, double) < 0.05


def test_gamma_and_initial_flow_match_opencv():
    first, second, truth = make_pair(48, 64, "smooth", seed=50, brightness=12.0)
    with_gamma = TVL1Params(nscales=3, warps=3, gamma=0.4)
    assert end_point_error(
        _torch_flows(with_gamma, first[None], second[None]), _opencv_flows(with_gamma, first[None], second[None])
    ) < 0.3  # fmt: skip
    initial = TVL1Params(nscales=2, warps=2, useInitialFlow=True)
    init = (truth + 0.5)[None].astype(np.float32)
    from_torch = TorchTVL1(**{f.name: getattr(initial, f.name) for f in fields(initial)}, device="cpu")
    ours = from_torch.compute(first[None], second[None], flow=init)
    assert end_point_error(ours, _opencv_flows(initial, first[None], second[None], init=init)) < 0.3


# ---------------------------------------------------------------- streaming


# ---------------------------------------------------------------- opt-in


@pytest.mark.slow
def test_benchmark_size_matches_opencv():
    """340x256 with default parameters, as the benchmark and `prepare` use."""
    triples = [make_pair(256, 340, kind, seed=70 + k) for k, kind in enumerate(("smooth", "piecewise"))]
    firsts, seconds, truth = _stacked(triples)
    opencv, ours = _opencv_flows(TVL1Params(), firsts, seconds), _torch_flows(TVL1Params(), firsts, seconds)
    assert abs(end_point_error(ours, truth) - end_point_error(opencv, truth)) < 0.1
    assert end_point_error(ours, opencv) < 0.3


@pytest.mark.slow
def test_compiled_step_matches_eager():
    first, second, _ = make_pair(48, 56, "smooth", seed=80)
    params = TVL1Params(nscales=2, warps=2)
    eager = _torch_flows(params, first[None], second[None])
    compiled = _torch_flows(params, first[None], second[None], compile="default")
    assert end_point_error(eager, compiled) < 0.01


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_and_opencv():
    """Eager and compiled on the GPU agree with the CPU and with OpenCV (run: pytest -m gpu)."""
    triples = [make_pair(96, 128, kind, seed=90 + k) for k, kind in enumerate(("smooth", "piecewise", "translation"))]
    firsts, seconds, truth = _stacked(triples)
    on_cpu = TorchTVL1(device="cpu").compute(firsts, seconds)
    opencv = _opencv_flows(TVL1Params(), firsts, seconds)
    for compile in (False, "default"):
        on_gpu = TorchTVL1(device="cuda", compile=compile).compute(firsts, seconds)
        assert end_point_error(on_gpu, on_cpu) < 0.1, compile
        assert end_point_error(on_gpu, opencv) < 0.3, compile
        assert abs(end_point_error(on_gpu, truth) - end_point_error(opencv, truth)) < 0.1, compile


def _benchmark_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "flow_torch.py"
    spec = importlib.util.spec_from_file_location("bench_flow_torch", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.modules.pop(spec.name, None)
    return bench


def test_benchmark_script_runs_small(tmp_path):
    bench = _benchmark_module()
    out = tmp_path / "results.json"
    args = ["--device", "cpu", "--size", "48x40", "--pairs", "2", "--batch-sizes", "1,2", "--opencv-pairs", "2"]
    result = bench.main([*args, "--jobs", "0", "--cpu-threads", "1", "--out", str(out)])
    assert out.exists() and result["best"]["pairs_per_s"] > 0
    assert [row["method"] for row in result["rows"]][0] == "OpenCV, 1 thread"
    assert result["best"]["epe"]["vs_opencv"] < 0.3 and result["best"]["epe"]["vs_reference"] < 1e-3
    birds = result["workload"]["birds"]
    assert birds["videos"] == 12666 + 5684 and birds["pairs_per_video_minute"] == 2 * 60 * 5
    assert result["workload"]["cars"]["pairs_per_video_minute"] == 4 * 60 * 5
    hours = result["best"]["cpu_hours"]["cars"]
    assert hours["per_minute_of_average_video_length"] == pytest.approx(
        15220 * 1200 / result["best"]["pairs_per_s"] / 3600
    )
    assert "total" not in hours and result["minutes_per_video"] is None  # no invented video length


def test_benchmark_script_reads_a_video_file(tmp_path):
    """--video takes consecutive frames of an H.264 file (here a panning texture, 2 px per frame)."""
    from .prepare_utils import encode, panning_frames

    video = encode(tmp_path / "pan.mp4", panning_frames(6, 40, 48, dx=2), fps=10, pix_fmt="yuv444p")
    args = ["--device", "cpu", "--video", str(video), "--size", "48x40", "--pairs", "2", "--variants", "torch@2",
            "--opencv-pairs", "2", "--jobs", "0", "--cpu-threads", "1", "--min-time", "0", "--minutes-per-video", "3",
            "--param", "nscales=2", "--param", "warps=2"]  # fmt: skip
    result = _benchmark_module().main(args)
    assert result["source"] == str(video) and result["distinct_pairs"] == 2
    assert result["params"]["warps"] == 2 and result["minutes_per_video"] == 3
    assert "vs_truth" not in result["best"]["epe"] and result["best"]["epe"]["vs_opencv"] < 0.3
    assert result["best"]["cpu_hours"]["birds"]["total"] == pytest.approx(
        3 * result["best"]["cpu_hours"]["birds"]["per_minute_of_average_video_length"]
    )
