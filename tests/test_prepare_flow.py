"""Optical flow: the registry, TV-L1 accuracy, the +-20 px encoding, and flow stacks on disk."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ytfgvc.errors import YtfgvcError
from ytfgvc.prepare.flow import (
    OPENCV_TVL1_DEFAULTS,
    FlowBackend,
    decode_flow,
    encode_flow,
    encode_flow_files,
    get_flow_backend,
    list_flow_backends,
    read_flow,
    register_flow_backend,
)

from .prepare_utils import encode, panning_frames, run_video, texture


def _shifted_pair(dx: float, dy: float, h: int = 96, w: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = texture(h, w, seed)
    m = np.float32([[1, 0, dx], [0, 1, dy]])  # content of a appears at (x + dx, y + dy) in b
    b = cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return a, b


def test_tvl1_recovers_a_known_subpixel_shift():
    shifts = [(2.5, -1.5), (-3.25, 0.75)]
    pairs = [_shifted_pair(dx, dy, seed=i) for i, (dx, dy) in enumerate(shifts)]
    prev, nxt = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    flow = get_flow_backend("opencv").compute(prev, nxt)
    assert flow.shape == (2, 96, 128, 2) and flow.dtype == np.float32
    for f, (dx, dy) in zip(flow, shifts, strict=True):
        inner = f[12:-12, 12:-12].reshape(-1, 2)
        err = np.abs(inner - [dx, dy])
        assert np.all(np.abs(np.median(inner, axis=0) - [dx, dy]) < 0.5)
        assert (err.max(axis=1) < 0.5).mean() > 0.95  # almost every pixel within 0.5 px


def test_encoding_is_the_documented_linear_map():
    f = np.array([-25, -20, -10, -0.05, 0, 0.05, 10, 19.84375, 20, 25], np.float32)
    q = encode_flow(f)
    assert q.tolist() == [0, 0, 64, 128, 128, 128, 192, 255, 255, 255]
    assert decode_flow(np.array([0, 64, 128, 192, 255], np.uint8)).tolist() == [-20, -10, 0, 10, 19.84375]
    grid = np.linspace(-20, 19.84, 5001, dtype=np.float32)
    assert np.abs(decode_flow(encode_flow(grid)) - grid).max() <= 20 / 256 + 1e-6  # half a step


def test_jpg_and_npy_files_round_trip(tmp_path: Path):
    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    field = np.stack([np.sin(xx / 9) * 8, np.cos(yy / 7) * 5], axis=-1).astype(np.float32)
    for fmt, tol in (("jpg", 0.5), ("npy", 0.01)):
        fx, fy = encode_flow_files(field, fmt)
        (tmp_path / f"x.{fmt}").write_bytes(fx)
        (tmp_path / f"y.{fmt}").write_bytes(fy)
        back = read_flow(tmp_path / f"x.{fmt}", tmp_path / f"y.{fmt}")
        assert back.shape == field.shape and np.abs(back - field).max() < tol, fmt
    big = np.full((4, 4, 2), 37.5, np.float32)  # npy keeps what jpg clamps
    fx, _ = encode_flow_files(big, "npy")
    (tmp_path / "b.npy").write_bytes(fx)
    assert np.load(tmp_path / "b.npy").dtype == np.float16 and float(np.load(tmp_path / "b.npy")[0, 0]) == 37.5


def test_registry_names_parameters_and_defaults():
    assert "opencv" in list_flow_backends()
    fresh = cv2.optflow.DualTVL1OpticalFlow_create()
    getters = {
        "tau": fresh.getTau,
        "lambda_": fresh.getLambda,
        "theta": fresh.getTheta,
        "nscales": fresh.getScalesNumber,
        "warps": fresh.getWarpingsNumber,
        "epsilon": fresh.getEpsilon,
        "innnerIterations": fresh.getInnerIterations,
        "outerIterations": fresh.getOuterIterations,
        "scaleStep": fresh.getScaleStep,
        "gamma": fresh.getGamma,
        "medianFiltering": fresh.getMedianFiltering,
        "useInitialFlow": fresh.getUseInitialFlow,
    }
    assert set(getters) == set(OPENCV_TVL1_DEFAULTS)
    for name, get in getters.items():
        assert get() == pytest.approx(OPENCV_TVL1_DEFAULTS[name]), name
    b = get_flow_backend("opencv", warps=3, tau=0.2)
    assert b.params["warps"] == 3 and b._tvl1.getWarpingsNumber() == 3 and b.params["theta"] == 0.3
    with pytest.raises(YtfgvcError, match="did you mean 'warps'"):
        get_flow_backend("opencv", wraps=3)
    with pytest.raises(YtfgvcError, match="warps must be int"):
        get_flow_backend("opencv", warps="many")
    with pytest.raises(YtfgvcError, match="did you mean 'opencv'"):
        get_flow_backend("opencvv")


def test_a_registered_backend_is_used_by_name():
    @register_flow_backend("test-constant")
    class Constant(FlowBackend):
        name = "test-constant"

        def compute(self, prev, next):  # noqa: A002
            return np.full((*prev.shape, 2), self.params.get("v", 1.0), np.float32)

    with pytest.raises(ValueError, match="already registered"):
        register_flow_backend("test-constant")(Constant)
    out = get_flow_backend("test-constant", v=2.0).compute(np.zeros((3, 4, 5), np.uint8), np.zeros((3, 4, 5), np.uint8))
    assert out.shape == (3, 4, 5, 2) and float(out.max()) == 2.0


def test_flow_stacks_on_disk(tmp_path: Path):
    # 12 frames at 10 fps, content moving 2 px right per frame; 4 fps keeps natives 0, 2, 5, 7, 10.
    src = encode(tmp_path / "pan00000000.mp4", panning_frames(12, 72, 96, dx=2), fps=10, pix_fmt="yuv444p")
    res, frames, flow = run_video(tmp_path, src, flow=True, flow_stack=3)
    assert res.error is None, res.error
    fmeta = json.loads((frames / "meta.json").read_text())
    wmeta = json.loads((flow / "meta.json").read_text())
    assert fmeta["native_index"] == [0, 2, 5, 7, 10]
    assert [s["native"] for s in wmeta["stacks"]] == fmeta["native_index"]  # RGB and flow agree
    assert wmeta["num_files"] == 15 and len(list(flow.glob("flow_x_*.jpg"))) == 15 == len(list(flow.glob("flow_y_*")))
    assert wmeta["stacks"][1] == {
        "frame": 2,
        "native": 2,
        "files": [4, 6],
        "pairs": [[2, 3], [3, 4], [4, 5]],
        "times": [[0.2, 0.3], [0.3, 0.4], [0.4, 0.5]],
        "padded": 0,
    }
    last = wmeta["stacks"][-1]  # native 10 of 0..11: one real field, two copies of it
    assert last["pairs"] == [[10, 11]] * 3 and last["padded"] == 2
    assert (flow / "flow_x_00014.jpg").read_bytes() == (flow / "flow_x_00013.jpg").read_bytes()
    assert res.flow_pairs == 11  # overlapping stacks share their pairs: each computed once
    for n in (1, 6, 13):  # file n holds the motion: +2 px in x, 0 in y
        f = read_flow(flow / f"flow_x_{n:05d}.jpg", flow / f"flow_y_{n:05d}.jpg")[8:-8, 8:-8]
        assert np.abs(np.median(f.reshape(-1, 2), axis=0) - [2, 0]).max() < 0.5, n


def test_npy_flow_and_a_single_frame_video(tmp_path: Path):
    src = encode(tmp_path / "pan00000001.mp4", panning_frames(4, 64, 80, dx=-3), fps=10, pix_fmt="yuv444p")
    res, _, flow = run_video(tmp_path, src, flow=True, flow_stack=2, flow_format="npy")
    assert res.error is None, res.error
    f = read_flow(flow / "flow_x_00001.npy", flow / "flow_y_00001.npy")
    assert f.dtype == np.float32 and np.abs(np.median(f[8:-8, 8:-8].reshape(-1, 2), axis=0) - [-3, 0]).max() < 0.5
    one = encode(tmp_path / "single00000.mp4", panning_frames(1, 64, 80, dx=1), fps=10)
    res, frames, flow = run_video(tmp_path / "one", one, flow=True, flow_stack=2)
    assert res.error is None, res.error
    wmeta = json.loads((flow / "meta.json").read_text())
    assert wmeta["stacks"][0]["pairs"] == [None, None] and wmeta["stacks"][0]["padded"] == 2
    assert np.all(read_flow(flow / "flow_x_00001.jpg", flow / "flow_y_00001.jpg") == 0)  # no motion: 128
