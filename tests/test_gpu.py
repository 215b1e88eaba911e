"""The GPU paths (opt in with ``-m gpu``): the slot ring, the prefetch stream, bf16 and channels-last runs."""

import json

import pytest
import torch

from ytfgvc.benchmark.config import load_config
from ytfgvc.benchmark.run import run_benchmark
from ytfgvc.data.loader import (
    DeviceBatch,
    EpochSampler,
    auto_workers,
    collate,
    device_batches,
    make_loader,
)
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, read_list
from ytfgvc.data.transforms import MultiScaleCrop, OverSample

from . import tiny_models  # noqa: F401
from .rawframes_utils import make_prepared

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    return make_prepared(tmp_path_factory.mktemp("gpu"), frames=(4, 30), size=(72, 96))


def test_gpu_crops_give_the_pixels_the_workers_crop_on_a_cpu(layout):
    records = read_list(layout, "train")
    for plan, crop in [
        (FramePlan("segments", 4, True), MultiScaleCrop(64)),
        (FramePlan("segments", 5, False), OverSample(64)),
        (FramePlan("clip", 8, False), OverSample(64, 1)),
    ]:
        cpu = RawFrameDataset(layout, records, plan, crop, seed=2, stage="pixels")
        keys = [(0, i) for i in range(6)]
        expected = collate([cpu[k] for k in keys])["pixels"].float()
        ds = RawFrameDataset(layout, records, plan, crop, seed=2, stage="frames")
        got = DeviceBatch(ds, torch.device("cuda")).pixels(collate(ds.__getitems__(keys))).float().cpu()
        assert got.shape == expected.shape
        # The same decoded frames (libjpeg-turbo in the workers); resizing a crop on the GPU (in float) and on
        # the CPU (uint8 kernels) may round a level apart, far below a decoding difference.
        assert (got - expected).abs().mean() < 1.0


def test_prefetch_stream_yields_the_batches_in_order(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, True), MultiScaleCrop(32), stage="frames")
    batches = [collate([ds[(0, i)], ds[(0, i + 1)]]) for i in range(0, 10, 2)]
    to_dev = DeviceBatch(ds, torch.device("cuda"), channels_last=True)
    direct = [to_dev(b) for b in batches]
    for (x, y, i), (x2, y2, i2) in zip(device_batches(iter(batches), to_dev), direct, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(i, i2)


def test_clips_are_decoded_by_the_workers_and_cropped_on_the_gpu(layout, tmp_path):
    over = {
        "dataset": "synthetic", "root": str(layout.root), "model": {"name": "test_tiny_clip"}, "sampling": "clip",
        "num_segments": 4, "test_segments": 4, "test_crops": 1, "input_size": 32, "workers": "auto", "batch_size": 4,
    }  # fmt: skip
    r = run_benchmark(load_config("i3d", "smoke", overrides=over), tmp_path, progress=False)
    assert r.metrics["training"]["workers"] == auto_workers()
    assert r.status == "finished" and r.metrics["scores"]["n_scored"] > 0


def test_smoke_run_on_the_gpu(layout, tmp_path):
    over = {
        "dataset": "synthetic", "root": str(layout.root), "model": {"name": "test_tiny_frames"},
        "input_size": 32, "workers": 2, "batch_size": 4, "test_segments": 3,
    }  # fmt: skip
    r = run_benchmark(load_config("tsn", "smoke", overrides=over), tmp_path, progress=False)
    t = r.metrics["training"]
    assert (t["amp"], t["channels_last"]) == ("bf16", True) and "decode" not in t
    assert r.metrics["device"]["type"] == "cuda" and r.metrics["gpu_hours"] > 0
    log = [json.loads(x) for x in (r.run_dir / "log.jsonl").read_text().splitlines()]
    assert all(e["gpu_memory_gb"] > 0 for e in log)


def test_frames_decoded_into_pinned_slots_reach_the_gpu_intact(layout):
    """Workers decode into the ring's slots (pinned once the workers exist); the GPU gets the same frames."""
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("clip", 6, True), MultiScaleCrop(32), stage="frames")
    sampler = EpochSampler(len(ds), shuffle=True)
    loader = make_loader(ds, sampler, batch_size=3, workers=2, pin_memory=True)
    to_dev = DeviceBatch(ds, torch.device("cuda"), "clip", channels_last=True)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for x, _, index in device_batches(loader, to_dev):
            expected = to_dev(collate([ds[(epoch, int(i))] for i in index]))[0]
            assert torch.equal(x, expected)
    assert ds.ring is not None and ds.ring.misses == 0
    assert all(b.is_pinned() for b in ds.ring.buffers)  # registered: the copies were DMA from the slots


def test_slots_that_cannot_be_pinned_are_copied_unpinned_and_leave_cuda_clean(layout, caplog):
    """A failed ``cudaHostRegister`` (here: a slot registered already) costs speed only, not a later CUDA error."""
    records = read_list(layout, "test")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 2, False), OverSample(32, 1), stage="frames")
    loader = make_loader(ds, EpochSampler(len(ds)), batch_size=2, workers=1, pin_memory=True)
    batches = iter(loader)  # the worker starts: slots are registered only after that
    first = ds.ring.buffers[0]
    assert int(torch.cuda.cudart().cudaHostRegister(first.data_ptr(), ds.ring.slot_bytes, 0)) == 0
    try:
        to_dev = DeviceBatch(ds, torch.device("cuda"))
        with caplog.at_level("WARNING"):
            got = [x for x, _, _ in device_batches(batches, to_dev)]
        assert "cannot pin the loader's slots" in caplog.text and not ds.ring._pinned
        assert len(got) == len(loader) and ds.ring.misses == 0
        torch.cuda.synchronize()
        assert float(torch.ones(3, device="cuda").sum()) == 3.0  # no error left for the next kernel
    finally:
        torch.cuda.cudart().cudaHostUnregister(first.data_ptr())
