"""`prepare --flow-backend torch`: the torch TV-L1 through the same registry, stacks and files as OpenCV's."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ytfgvc.errors import YtfgvcError
from ytfgvc.prepare import get_flow_backend, list_flow_backends, read_flow
from ytfgvc.prepare.flowstack import FlowStackWriter
from ytfgvc.prepare.tvl1_torch import TorchTVL1, worker_device

from .prepare_utils import encode, panning_frames, run_video
from .torch_threads import one_torch_thread  # noqa: F401 - autouse

FAST = {"nscales": 2, "warps": 2, "innnerIterations": 10, "outerIterations": 2}


def test_torch_backend_is_registered_with_opencvs_parameter_names():
    assert {"opencv", "torch"} <= set(list_flow_backends())
    b = get_flow_backend("torch", **FAST)
    assert b.params["innnerIterations"] == 10 and b.params["tau"] == 0.25 and b.params["device"] == "auto"
    with pytest.raises(YtfgvcError, match="did you mean 'innnerIterations'"):
        get_flow_backend("torch", innerIteration=3)
    assert worker_device(3).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_prepare_with_the_torch_backend_recovers_the_motion_and_matches_the_library(tmp_path: Path):
    src = encode(tmp_path / "pan00000002.mp4", panning_frames(10, 64, 80, dx=2), fps=10, pix_fmt="yuv444p")
    res, frames, flow = run_video(tmp_path, src, flow=True, flow_stack=2, flow_backend="torch", flow_params=FAST)
    assert res.error is None, res.error
    meta = json.loads((flow / "meta.json").read_text())
    assert meta["backend"] == "torch"
    fmeta = json.loads((frames / "meta.json").read_text())
    assert [s["native"] for s in meta["stacks"]] == fmeta["native_index"]
    f = read_flow(flow / "flow_x_00001.jpg", flow / "flow_y_00001.jpg")
    assert np.abs(np.median(f[8:-8, 8:-8].reshape(-1, 2), axis=0) - [2, 0]).max() < 0.5
    # The same numbers as calling the library on the decoded grey frames (up to the JPEG mapping).
    direct = TorchTVL1(**{k.replace("innner", "inner"): v for k, v in FAST.items()}, device="cpu")
    grey = [np.asarray(im[..., 1], np.uint8) for im in panning_frames(10, 64, 80, dx=2)]
    expected = direct.compute(np.stack(grey[:1]), np.stack(grey[1:2]))[0]
    assert np.abs(f[8:-8, 8:-8] - np.clip(expected, -20, 20)[8:-8, 8:-8]).mean() < 0.25


def test_a_long_video_streams_through_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # 1100 native frames, every one kept (sample_fps = fps): 1099 pairs through the torch backend
    # in batches of 32, while the writer never holds more than a batch's worth of grey frames.
    n = 1100
    src = encode(tmp_path / "long0000000.mp4", panning_frames(n, 16, 24, dx=1), fps=25, pix_fmt="yuv444p")
    peak = {"grey": 0}
    original = FlowStackWriter.add_grey

    def spy(self, index, t, grey):
        original(self, index, t, grey)
        peak["grey"] = max(peak["grey"], len(self.grey))

    monkeypatch.setattr(FlowStackWriter, "add_grey", spy)
    params = {"nscales": 1, "warps": 1, "innnerIterations": 2, "outerIterations": 1, "medianFiltering": 1}
    params["batch_size"] = 32
    res, frames, flow = run_video(
        tmp_path, src, flow=True, flow_stack=1, flow_backend="torch", flow_params=params, sample_fps=25.0
    )
    assert res.error is None, res.error
    assert res.flow_pairs == n - 1
    assert len(list(flow.glob("flow_x_*.jpg"))) == n
    assert peak["grey"] <= 32 + 2, peak
