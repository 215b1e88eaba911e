"""The GPU paths (opt in with ``-m gpu``): nvjpeg decoding, the prefetch stream, bf16 and channels-last runs."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import decode_jpeg, encode_jpeg

from ytfgvc.benchmark.config import load_config
from ytfgvc.benchmark.run import run_benchmark
from ytfgvc.data.jpeg import jpeg_header
from ytfgvc.data.loader import (
    DeviceBatch,
    EpochSampler,
    auto_workers,
    collate,
    decode_clips,
    device_batches,
    gpu_decode_available,
    make_loader,
)
from ytfgvc.data.nvjpeg import batched_decoder, image_bytes
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


def test_nvjpeg_decoding_matches_cpu_decoding(layout):
    assert gpu_decode_available(torch.device("cuda"))
    records = read_list(layout, "train")
    for plan, crop in [
        (FramePlan("segments", 4, True), MultiScaleCrop(64)),
        (FramePlan("segments", 5, False), OverSample(64)),
    ]:
        cpu = RawFrameDataset(layout, records, plan, crop, seed=2, stage="pixels")
        keys = [(0, i) for i in range(6)]
        expected = collate([cpu[k] for k in keys])["pixels"].float()
        for stage in ("frames", "jpeg"):
            ds = RawFrameDataset(layout, records, plan, crop, seed=2, stage=stage)
            got = DeviceBatch(ds, torch.device("cuda")).pixels(collate([ds[k] for k in keys])).float().cpu()
            assert got.shape == expected.shape
            # nvjpeg and libjpeg differ in IDCT and chroma upsampling: about 3 levels on average on this noisy
            # texture (2.8 measured on an H200), far below a real decoding error.
            assert (got - expected).abs().mean() < 4.0, stage


def _jpeg_batch(images: list[bytes], counts: list[int]) -> dict:
    blobs = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in images]
    headers = [(h.height, h.width, int(h.batchable)) for h in map(jpeg_header, images)]
    return {
        "jpeg": torch.cat(blobs),
        "lengths": torch.tensor([len(b) for b in blobs]),
        "headers": torch.tensor(headers, dtype=torch.int32),
        "counts": counts,
    }


@pytest.fixture(params=["gpu_hybrid", "hybrid", "hardware"])
def backend(request, monkeypatch):
    """Each nvjpeg backend in turn, chosen as a user would (YTFGVC_JPEG_BACKEND); skipped where missing."""
    monkeypatch.setenv("YTFGVC_JPEG_BACKEND", request.param)
    if batched_decoder(torch.device("cuda")) is None:
        pytest.skip(f"no nvjpeg {request.param} decoding on this GPU")
    return request.param


def _noise_jpegs(n: int, h: int, w: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    images = (torch.from_numpy((rng.random((3, h, w)) * 255).astype(np.uint8)) for _ in range(n))
    return [encode_jpeg(i).numpy().tobytes() for i in images]


def test_batched_decoding_matches_torchvision(backend):
    """Uniform batches, mixed sizes, a progressive file (torchvision's path); the engines give its exact output."""
    cuda = torch.device("cuda")
    rng = np.random.default_rng(1)

    def encode(h, w, progressive=False):
        f = io.BytesIO()
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(f, "JPEG", progressive=progressive)
        return f.getvalue()

    for images, counts in [
        ([encode(72, 96) for _ in range(12)], [4, 4, 4]),
        ([encode(64, 80) for _ in range(128)], [32] * 4),  # GPU Huffman decoding needs over 100 images
        ([encode(37, 53), encode(37, 53), encode(64, 48)], [2, 1]),
        ([encode(40, 40), encode(40, 40, progressive=True)], [1, 1]),
    ]:
        batch = _jpeg_batch(images, counts)
        clips = decode_clips(batch, cuda)
        ref = decode_jpeg([torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in images], device=cuda)
        assert [c.shape[0] for c in clips] == counts
        pairs = list(zip([f for c in clips for f in c], ref, strict=True))
        if backend == "hardware":  # the same library and backend as torchvision's
            assert all(torch.equal(a, b) for a, b in pairs)
        else:  # another IDCT (both hybrid backends): 0.04 levels on average and at most 3 on an H200
            diff = torch.cat([(a.float() - b.float()).abs().flatten() for a, b in pairs])
            assert diff.mean() < 0.25 and diff.max() <= 6


def test_batched_decoding_never_writes_memory_that_queued_work_still_reads(backend):
    """nvjpeg writes out of stream order (see torchcodec#1634): the decoder must fence its call."""
    cuda = torch.device("cuda")
    batch = _jpeg_batch(_noise_jpegs(128, 64, 80, seed=2), [128])
    nbytes = image_bytes(batch["headers"][:, 0].numpy(), batch["headers"][:, 1].numpy())
    with torch.cuda.stream(torch.cuda.Stream()):
        for _ in range(10):
            a = torch.full((nbytes,), 7, dtype=torch.uint8, device=cuda)
            torch.cuda._sleep(50_000_000)  # tens of ms of queued work before the sum reads `a`
            total = a.sum(dtype=torch.int64)
            del a  # freed while the sum is queued: the decoder's output may get its block
            decode_clips(batch, cuda)
            assert total.item() == 7 * nbytes


def test_work_queued_after_batched_decoding_reads_the_decoded_frames(backend):
    cuda = torch.device("cuda")
    batch = _jpeg_batch(_noise_jpegs(512, 256, 340, seed=3), [32] * 16)
    with torch.cuda.stream(torch.cuda.Stream()):
        expected = torch.stack(decode_clips(batch, cuda)).sum(dtype=torch.int64).item()
        sums = [torch.stack(decode_clips(batch, cuda)).sum(dtype=torch.int64) for _ in range(20)]  # no sync between
        assert [t.item() for t in sums] == [expected] * 20


def test_a_bad_batch_leaves_the_decoder_working(backend):
    """A file whose header is whole but whose data is cut: an error or frames, never a broken decoder."""
    cuda = torch.device("cuda")
    good = _noise_jpegs(128, 64, 80, seed=5)
    expected = torch.stack(decode_clips(_jpeg_batch(good, [128]), cuda))
    bad = list(good)
    bad[70] = bad[70][: len(bad[70]) // 2]
    # Decoded (nvjpeg and libjpeg fill a cut scan), or refused by nvjpeg and then by torchvision's decoder
    with contextlib.suppress(RuntimeError):
        assert len(decode_clips(_jpeg_batch(bad, [128]), cuda)[0]) == 128
    assert torch.equal(torch.stack(decode_clips(_jpeg_batch(good, [128]), cuda)), expected)


def test_prefetch_stream_yields_the_batches_in_order(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, True), MultiScaleCrop(32), stage="jpeg")
    batches = [collate([ds[(0, i)], ds[(0, i + 1)]]) for i in range(0, 10, 2)]
    to_dev = DeviceBatch(ds, torch.device("cuda"), channels_last=True)
    direct = [to_dev(b) for b in batches]
    for (x, y, i), (x2, y2, i2) in zip(device_batches(iter(batches), to_dev), direct, strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(i, i2)


@pytest.mark.parametrize("decode, record", [("auto", "cpu"), ("gpu", "gpu (train hybrid, test gpu_hybrid)")])
def test_clips_are_decoded_by_the_workers_or_by_nvjpeg_on_cpu_threads_and_the_gpu(
    layout, tmp_path, monkeypatch, decode, record
):
    monkeypatch.delenv("YTFGVC_JPEG_BACKEND", raising=False)
    over = {
        "dataset": "synthetic", "root": str(layout.root), "model": {"name": "test_tiny_clip"}, "sampling": "clip",
        "num_segments": 4, "test_segments": 4, "test_crops": 1, "input_size": 32, "workers": "auto", "batch_size": 4,
        "decode": decode,
    }  # fmt: skip
    r = run_benchmark(load_config("i3d", "smoke", overrides=over), tmp_path, progress=False)
    assert r.metrics["training"]["decode"] == record and r.metrics["training"]["workers"] == auto_workers()
    assert r.status == "finished" and r.metrics["scores"]["n_scored"] > 0


@pytest.mark.parametrize("decode", ["gpu", "cpu"])
def test_smoke_run_on_the_gpu(layout, tmp_path, decode):
    over = {
        "dataset": "synthetic", "root": str(layout.root), "model": {"name": "test_tiny_frames"},
        "input_size": 32, "workers": 2, "batch_size": 4, "decode": decode, "test_segments": 3,
    }  # fmt: skip
    r = run_benchmark(load_config("tsn", "smoke", overrides=over), tmp_path, progress=False)
    t = r.metrics["training"]
    assert (t["amp"], t["channels_last"], t["decode"].split()[0]) == ("bf16", True, decode)
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
