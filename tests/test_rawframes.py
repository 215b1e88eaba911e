"""Rawframe lists, the dataset over them, rank sharding and the device batch."""

import os
import shutil
from pathlib import Path

import pytest
import torch
from torchvision.io import encode_jpeg

from ytfgvc.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DeviceBatch,
    EpochSampler,
    collate,
    make_loader,
    worker_stage,
)
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, clip_views, missing_frames, read_list
from ytfgvc.data.transforms import MultiScaleCrop, OverSample
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import DatasetLayout

from .rawframes_utils import make_prepared


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> DatasetLayout:
    return make_prepared(tmp_path_factory.mktemp("rawframes"), frames=(2, 9), size=(40, 48))


def test_read_list_parses_rawframe_lines(layout):
    records = read_list(layout, "train")
    assert len(records) == 12 and all(1 <= r.num_frames <= 9 for r in records)
    assert missing_frames(layout, records) == []


def test_read_list_reports_every_bad_line(tmp_path):
    lay = DatasetLayout(tmp_path, "synthetic")
    lay.lists_dir.mkdir(parents=True)
    lay.list_path("train").write_text(
        "frames/aaaaaaaaaaa 10 0\n"
        "frames/../../etc/passwd 3 1\n"
        "frames/bbbbbbbbbbb ten 0\n"
        "frames/aaaaaaaaaaa 4 0\n"
        "frames/ccccccccccc 5\n"
        f"frames/ddddddddddd 3 {2**63}\n"  # a label no tensor holds (OverflowError, later, if let in)
        f"frames/eeeeeeeeeee {'9' * 5000} 1\n"  # more digits than int() converts
        "frames/fffffffffff 3 \u00b2\n"  # a digit to str.isdigit, not to int()
    )
    with pytest.raises(ValidationError) as e:
        read_list(lay, "train")
    problems = "\n".join(e.value.problems)
    assert "train.txt:2" in problems and "train.txt:3" in problems and "listed twice" in problems
    assert "train.txt:5" in problems and len(e.value.problems) == 7
    assert all(f"train.txt:{n}: frame count and label must be integers (1 to" in problems for n in (6, 7, 8))
    with pytest.raises(YtfgvcError, match="ytfgvc prepare synthetic"):
        read_list(lay, "test")


def test_missing_frames_are_found(tmp_path):
    lay = make_prepared(tmp_path, classes=2, train_per_class=2, test_per_class=1)
    rec = read_list(lay, "test")[0]
    (lay.frames_dir(rec.video_id) / lay.frame_name(rec.num_frames)).unlink()
    assert missing_frames(lay, read_list(lay, "test")) == [rec.video_id]


def test_items_are_deterministic_per_epoch_and_shaped_by_the_protocol(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 4, train=True), MultiScaleCrop(32), seed=3)
    a, b, c = ds[(0, 5)], ds[(0, 5)], ds[(1, 5)]
    assert a["pixels"].shape == (1, 4, 3, 32, 32) and a["pixels"].dtype == torch.uint8
    assert torch.equal(a["pixels"], b["pixels"]) and a["label"] == records[5].label
    assert any(not torch.equal(ds[(e, 5)]["pixels"], a["pixels"]) for e in range(1, 6)) or c is None
    test = RawFrameDataset(layout, records, FramePlan("segments", 25, train=False), OverSample(32, 10))
    assert test[(0, 0)]["pixels"].shape == (10, 25, 3, 32, 32)
    clip = RawFrameDataset(layout, records, FramePlan("clip", 8, train=False), OverSample(32, 1))
    assert clip[(0, 0)]["pixels"].shape == (1, 8, 3, 32, 32)


def test_cropping_on_the_device_gives_the_same_pixels(layout):
    """The GPU path (decoded frames to DeviceBatch, cropped there), run on the CPU, equals the worker's."""
    records = read_list(layout, "train")
    plan, crop = FramePlan("segments", 3, train=True), MultiScaleCrop(24)
    here = RawFrameDataset(layout, records, plan, crop, seed=1, stage="pixels")
    keys = [(2, i) for i in range(4)]
    expected = collate([here[k] for k in keys])["pixels"]
    there = RawFrameDataset(layout, records, plan, crop, seed=1, stage="frames")
    to_dev = DeviceBatch(there, torch.device("cpu"))
    assert torch.equal(to_dev.pixels(collate([there[k] for k in keys])), expected)
    assert torch.equal(to_dev.pixels(collate(there.__getitems__(keys))), expected)


def test_device_batch_normalizes_and_lays_out_frames_and_clips(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 2, train=False), OverSample(16, 10))
    batch = collate([ds[(0, 0)], ds[(0, 1)]])
    for channels_last in (False, True):
        x, label, index = DeviceBatch(ds, torch.device("cpu"), "frames", channels_last=channels_last)(batch)
        assert x.shape == (20, 2, 3, 16, 16) and index.tolist() == [0, 1]
        u8 = batch["pixels"].view(20, 2, 3, 16, 16).float() / 255
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        assert torch.allclose(x, (u8 - mean) / std, atol=1e-6)
        assert x.view(40, 3, 16, 16).is_contiguous(memory_format=torch.channels_last) == channels_last
    x, _, _ = DeviceBatch(ds, torch.device("cpu"), "clip", channels_last=True)(batch)
    assert x.shape == (20, 3, 2, 16, 16) and x.is_contiguous(memory_format=torch.channels_last_3d)


def test_training_shards_make_the_same_global_batches_on_any_number_of_ranks():
    one = list(EpochSampler(10, shuffle=True, seed=4, global_batch=4))
    assert len(one) == 8 and one == list(EpochSampler(10, shuffle=True, seed=4, global_batch=4))
    ranks = [list(EpochSampler(10, 2, r, shuffle=True, seed=4, global_batch=4)) for r in range(2)]
    for step in range(2):  # global batch `step` = rank 0's and rank 1's micro-batches of 2
        merged = {i for r in ranks for _, i in r[2 * step : 2 * step + 2]}
        assert merged == {i for _, i in one[4 * step : 4 * step + 4]}
    s = EpochSampler(10, shuffle=True, seed=4, global_batch=4)
    s.set_epoch(1)
    assert [i for _, i in s] != [i for _, i in one] and all(e == 1 for e, _ in s)


def test_workers_crop_on_a_cpu_and_leave_the_crops_to_a_gpu():
    assert worker_stage(torch.device("cpu")) == "pixels" and worker_stage(torch.device("cuda")) == "frames"
    with pytest.raises(ValueError, match="stage must be one of"):
        RawFrameDataset(DatasetLayout(Path("."), "x"), [], FramePlan("clip", 8, False), OverSample(8), stage="jpeg")


def test_test_shards_cover_every_video_with_padding():
    shards = [[i for _, i in EpochSampler(5, 2, r)] for r in range(2)]
    assert shards == [[0, 2, 4], [1, 3, 0]]
    assert [i for _, i in EpochSampler(5)] == [0, 1, 2, 3, 4]


def test_an_unreadable_frame_names_the_file(layout, tmp_path):
    records = read_list(layout, "train")[:1]
    lay = DatasetLayout(tmp_path, "synthetic")
    ds = RawFrameDataset(lay, records, FramePlan("segments", 1, train=False), OverSample(16, 1))
    with pytest.raises(YtfgvcError, match=f"cannot read frame .*{records[0].video_id}"):
        ds[(0, 0)]
    assert Path(tmp_path).is_dir()


def test_frames_batches_are_one_shared_buffer_from_the_workers(layout):
    """A worker decodes a batch's frames straight into one shared buffer, whatever the frame sizes."""
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, train=True), MultiScaleCrop(24), stage="frames")
    loader = make_loader(ds, EpochSampler(len(ds)), batch_size=4, workers=1)
    batch = next(iter(loader))
    assert batch["frames"].is_shared() and batch["frames"].dim() == 1
    items = [ds[(0, i)] for i in range(4)]
    expected = collate(items)
    assert torch.equal(batch["frames"], expected["frames"]) and torch.equal(batch["shapes"], expected["shapes"])
    for view, item in zip(clip_views(batch["frames"], batch["shapes"]), items, strict=True):
        assert torch.equal(view, item["frames"])
    direct = collate(ds.__getitems__([(0, i) for i in range(4)]))  # the batched fetch, outside a worker
    assert torch.equal(direct["frames"], expected["frames"]) and direct["draws"] == expected["draws"]
    odd = [dict(items[0]), dict(items[1])]
    odd[1]["frames"] = odd[1]["frames"][:, :-2]  # another frame size
    mixed = collate(odd)
    assert mixed["shapes"].tolist() == [list(odd[0]["frames"].shape[:3]), list(odd[1]["frames"].shape[:3])]
    pixels = DeviceBatch(ds, torch.device("cpu")).pixels(mixed)
    assert pixels.shape == (2, 1, 3, 3, 24, 24)


def test_a_frame_of_another_size_in_a_clip_names_the_file(layout, tmp_path):
    records = read_list(layout, "train")[:1]
    lay = DatasetLayout(tmp_path, "synthetic")
    src, dst = layout.frames_dir(records[0].video_id), lay.frames_dir(records[0].video_id)
    shutil.copytree(src, dst)
    odd = dst / lay.frame_name(records[0].num_frames)
    odd.write_bytes(encode_jpeg(torch.zeros(3, 8, 8, dtype=torch.uint8)).numpy().tobytes())
    ds = RawFrameDataset(
        lay, records, FramePlan("clip", records[0].num_frames, False), OverSample(8, 1), stage="frames"
    )
    with pytest.raises(YtfgvcError, match=f"frame .*{odd.name} is 8x8"):
        ds.__getitems__([(0, 0)])
    odd.write_bytes(b"\xff\xd8\xff\xdb\x00\x43" + bytes(40))  # truncated
    with pytest.raises(YtfgvcError, match=f"{odd.name}.*prepare"):
        ds[(0, 0)]


@pytest.mark.parametrize(
    "cut, reason, header_readable",
    [
        (lambda data: b"GIF89a" + bytes(40), "not a JPEG file", False),
        (lambda data: b"", "not a JPEG file", False),
        (lambda data: data[:60], "truncated", False),  # a cut header, as a killed writer would leave
        (lambda data: data[: len(data) // 2], "truncated", True),  # a cut scan
    ],
)
@pytest.mark.parametrize("stage", ["pixels", "frames"])
def test_a_corrupt_frame_is_named_with_the_reason_and_a_fix(layout, tmp_path, cut, reason, header_readable, stage):
    record = read_list(layout, "train")[0]
    lay = DatasetLayout(tmp_path, "synthetic")
    shutil.copytree(layout.frames_dir(record.video_id), lay.frames_dir(record.video_id))
    frame = lay.frames_dir(record.video_id) / DatasetLayout.frame_name(1)
    frame.write_bytes(cut(frame.read_bytes()))
    plan = FramePlan("clip", record.num_frames, train=False)  # every frame
    ds = RawFrameDataset(lay, [record], plan, OverSample(16, 1), stage=stage)
    with pytest.raises(YtfgvcError, match=f"cannot decode frame .*{record.video_id}.*img_00001.jpg: .*{reason}") as e:
        ds.__getitems__([(0, 0)])
    assert "ytfgvc prepare" in e.value.hint
    assert "\n" not in str(e.value) and ".cpp" not in str(e.value)  # one line, without torchvision's source location
    assert ds.frame_bytes() == (3 * 40 * 48 if header_readable else 0)  # the ring's size: PIL reads the header


def test_the_ring_is_sized_from_the_first_frames_headers(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 2, train=False), OverSample(16, 1), stage="frames")
    assert ds.frame_bytes() == 3 * 40 * 48


def test_workers_decode_into_a_slot_ring_and_reuse_slots_a_dropped_pass_left(layout):
    """Batches come through the ring's slots exactly as without it; slots a dropped iterator held are reclaimed."""
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, train=True), MultiScaleCrop(24), stage="frames")
    sampler = EpochSampler(len(ds), shuffle=True)
    loader = make_loader(ds, sampler, batch_size=4, workers=2, ring=True)
    to_dev = DeviceBatch(ds, torch.device("cpu"))
    assert ds.ring is not None and ds.ring.slot_bytes == 4 * 3 * ds.frame_bytes()

    def check(batch, epoch: int) -> None:
        assert "slot" in batch and "frames" not in batch
        keys = [(epoch, int(i)) for i in batch["index"]]
        expected = to_dev.pixels(collate([ds[k] for k in keys]))
        assert torch.equal(to_dev.pixels(batch), expected)

    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        seen = 0
        for batch in loader:  # each batch's slot is free again once it is on the device
            check(batch, epoch)
            seen += 1
        assert seen == len(loader) == 3
    dropped = iter(loader)
    next(dropped)  # the pass's other batches stay in their slots, never taken
    del dropped
    for batch in loader:
        check(batch, 1)
    assert ds.ring.misses == 0

    small = make_loader(ds, sampler, batch_size=4, workers=2, ring=True)
    ds.ring = type(ds.ring)(2, 2, 16)  # too small for any batch: each goes into a new buffer
    batches = list(small)
    assert all("frames" in b for b in batches) and ds.ring.misses == len(batches)


def test_a_ring_made_under_inference_mode_can_be_written_by_the_workers(layout):
    records = read_list(layout, "test")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 2, train=False), OverSample(24, 1), stage="frames")
    with torch.inference_mode():  # as the test loop makes its loader
        loader = make_loader(ds, EpochSampler(len(ds)), batch_size=2, workers=1, ring=True)
        batches = list(loader)
    assert batches and all("slot" in b for b in batches)


def test_files_are_read_ahead_in_order_and_errors_come_at_their_turn(layout, tmp_path, monkeypatch):
    from ytfgvc.data import rawframes

    record = read_list(layout, "train")[0]
    paths = [layout.frames_dir(record.video_id) / DatasetLayout.frame_name(i + 1) for i in range(record.num_frames)]
    expected = [p.read_bytes() for p in paths]
    hints, real_fadvise = [], os.posix_fadvise
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, o, n, how: hints.append(how) or real_fadvise(fd, o, n, how))
    for ahead, drop in [(0, False), (1, False), (32, False), (3, True)]:
        hints.clear()
        got = rawframes.read_frames(paths, ahead, drop)
        assert [bytes(t.numpy()) for t in got] == expected
        assert hints.count(os.POSIX_FADV_WILLNEED) == (len(paths) if ahead else 0)
        assert hints.count(os.POSIX_FADV_DONTNEED) == (len(paths) if drop else 0)
    # A missing file is named when its turn comes; the files opened ahead of it are closed.
    missing = tmp_path / "img_00009.jpg"
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(YtfgvcError, match=f"cannot read frame {missing}: No such file or directory;"):
        rawframes.read_frames([*paths[:2], missing, *paths[2:]], 8)
    assert len(os.listdir("/proc/self/fd")) == before


def test_an_archives_members_are_read_ahead_and_dropped_from_the_cache_as_files_are(tmp_path, monkeypatch):
    """``--cold`` and read-ahead apply to the packed store too (they once applied to folders only)."""
    packed = make_prepared(tmp_path, classes=2, train_per_class=2, test_per_class=1, store="packed")
    records = read_list(packed, "train")
    plan, crop = FramePlan("segments", 2, train=False), OverSample(24, 1)
    hints, real_fadvise = [], os.posix_fadvise
    monkeypatch.setattr(
        os, "posix_fadvise", lambda fd, o, n, how: hints.append((o, n, how)) or real_fadvise(fd, o, n, how)
    )
    batches = {}
    for ahead, drop in [(0, False), (32, False), (32, True)]:
        ds = RawFrameDataset(packed, records, plan, crop, stage="frames")
        ds.read_ahead, ds.drop_cache = ahead, drop
        hints.clear()
        batches[(ahead, drop)] = ds.__getitems__([0, 1, 2])["frames"]
        members = sum(len(ds._sample(k).units) for k in [0, 1, 2])
        assert [h for _, _, h in hints].count(os.POSIX_FADV_WILLNEED) == (members if ahead else 0)
        assert [h for _, _, h in hints].count(os.POSIX_FADV_DONTNEED) == (members if drop else 0)
        assert all(n > 30 for _, n, _ in hints)  # a member's header and data, not the whole archive
    assert all(torch.equal(b, batches[(0, False)]) for b in batches.values())


def test_read_ahead_stays_within_its_window(layout, monkeypatch):
    from ytfgvc.data import rawframes

    record = read_list(layout, "train")[0]
    paths = [layout.frames_dir(record.video_id) / DatasetLayout.frame_name(i + 1) for i in range(record.num_frames)]
    open_now, most = set(), [0]
    real_open, real_close = os.open, os.close

    def tracked_open(p, flags):
        fd = real_open(p, flags)
        open_now.add(fd)
        most[0] = max(most[0], len(open_now))
        return fd

    monkeypatch.setattr(os, "open", tracked_open)
    monkeypatch.setattr(os, "close", lambda fd: open_now.discard(fd) or real_close(fd))
    rawframes.read_frames(paths, 2)
    assert most[0] == min(3, len(paths)) and not open_now  # the file being read and 2 ahead; all closed


def test_batches_say_what_they_cost_the_workers_and_the_stats_add_it_up(layout):
    from ytfgvc.data.loader import PipelineStats, device_batches

    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, train=True), MultiScaleCrop(24), stage="frames")
    loader = make_loader(ds, EpochSampler(len(ds)), batch_size=4, workers=1)
    stats = PipelineStats()
    got = list(device_batches(loader, DeviceBatch(ds, torch.device("cpu")), stats=stats))
    files = sum(len(ds._sample((0, i)).units) for i in range(len(ds)))  # short videos repeat a file: decoded once
    assert stats.batches == len(got) == 3 and stats.decoded == files
    assert stats.worker_cpu_s > 0 and stats.worker_wall_s > 0 and stats.loader_wait_s <= stats.consumer_wait_s
    stats.reset()
    assert stats.to_dict() == PipelineStats().to_dict()


def test_device_batch_normalizes_clips_into_either_memory_layout(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("clip", 2, train=False), OverSample(16, 1))
    batch = collate([ds[(0, 0)], ds[(0, 1)]])
    u8 = batch["pixels"].view(2, 2, 3, 16, 16).permute(0, 2, 1, 3, 4).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    for channels_last in (False, True):
        x, _, _ = DeviceBatch(ds, torch.device("cpu"), "clip", channels_last=channels_last)(batch)
        assert x.shape == (2, 3, 2, 16, 16) and torch.allclose(x, (u8 - mean) / std, atol=1e-6)
        assert x.is_contiguous(memory_format=torch.channels_last_3d if channels_last else torch.contiguous_format)


def test_loaders_keep_the_batches_in_flight_they_are_given(layout):
    records = read_list(layout, "train")
    ds = RawFrameDataset(layout, records, FramePlan("segments", 3, train=True), MultiScaleCrop(24), stage="frames")
    loader = make_loader(ds, EpochSampler(len(ds)), batch_size=4, workers=2, ring=True, prefetch=3)
    assert ds.ring.slots_per_worker == 4 and loader.prefetch_factor == 3
    loader = make_loader(ds, EpochSampler(len(ds)), batch_size=4, workers=2, ring=False, prefetch=3)
    assert ds.ring is None and loader.prefetch_factor == 3
