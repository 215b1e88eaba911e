"""MMAction2 on ytfgvc's flow: its index arithmetic replayed on lists/flow_*.txt and the files (no mmaction2 needed).

The three MMAction2 steps are copied from open-mmlab/mmaction2 at 4d6c934,
``mmaction/datasets/transforms/loading.py`` (``SampleFrames`` with ``clip_len=1,
frame_interval=1``, ``RawFrameDecode`` for ``modality='Flow'``) and
``mmaction/datasets/transforms/formatting.py`` (``FormatShape('NCHW')`` for flow), and
``mmaction/datasets/rawframe_dataset.py`` (how a list line is read).
"""

import os

import numpy as np
import pytest
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from ytfgvc.data.rawframes import unit_names
from ytfgvc.datasets import Dataset
from ytfgvc.prepare.lists import write_lists
from ytfgvc.prepare.mmaction import FlowStackFields

from .rawframes_utils import make_prepared

STACK = 3


def sample_frames(total: int, num_clips: int, test_mode: bool, start_index: int, rng) -> np.ndarray:
    """``SampleFrames(clip_len=1, frame_interval=1, num_clips)``: ``_get_train_clips`` / ``_get_test_clips``."""
    ori_clip_len = 1  # clip_len * frame_interval (train), (clip_len - 1) * frame_interval + 1 (test)
    if test_mode:  # clip_len == 1: "2D recognizer"
        avg_interval = total / float(num_clips)
        clip_offsets = np.arange(num_clips) * avg_interval + avg_interval / 2.0
    else:
        avg_interval = (total - ori_clip_len + 1) // num_clips
        if avg_interval > 0:
            clip_offsets = np.arange(num_clips) * avg_interval + rng.randint(avg_interval, size=num_clips)
        elif total > max(num_clips, ori_clip_len):
            clip_offsets = np.sort(rng.randint(total - ori_clip_len + 1, size=num_clips))
        elif avg_interval == 0:
            clip_offsets = np.around(np.arange(num_clips) * (total - ori_clip_len + 1.0) / num_clips)
        else:
            clip_offsets = np.zeros((num_clips,), dtype=np.int32)
    frame_inds = np.concatenate(clip_offsets[:, None] + np.arange(1)[None, :] * 1).reshape((-1, 1))
    frame_inds = np.mod(frame_inds, total)  # out_of_bound_opt='loop'
    return (np.concatenate(frame_inds) + start_index).astype(np.int32)


def raw_frame_decode(results: dict) -> list[np.ndarray]:
    """``RawFrameDecode`` for Flow: per index, ``filename_tmpl.format('x', idx)`` and ``'y'``, stacked (H, W, 2)."""
    imgs, offset = [], results.get("offset", 0)
    for frame_idx in results["frame_inds"]:
        frame_idx += offset
        planes = []
        for axis in ("x", "y"):
            path = os.path.join(results["frame_dir"], results["filename_tmpl"].format(axis, frame_idx))
            with open(path, "rb") as f:
                data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            planes.append(decode_jpeg(data, mode=ImageReadMode.GRAY)[0].numpy())  # the test's decoder, both sides
        imgs.append(np.stack(planes, axis=-1))
    return imgs


def format_nchw_flow(imgs: list[np.ndarray], clip_len: int) -> np.ndarray:
    """``FormatShape('NCHW')`` with ``modality == 'Flow'``."""
    a = np.transpose(np.array(imgs), (0, 3, 1, 2))
    return a.reshape((-1, clip_len * a.shape[1]) + a.shape[2:])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    layout = make_prepared(tmp_path_factory.mktemp("mma"), classes=2, train_per_class=3, test_per_class=2,
                           frames=(1, 9), flow_stack=STACK)  # fmt: skip
    write_lists(Dataset.open(layout.root, "synthetic"))
    return layout


def test_the_flow_lists_name_every_video_with_flow_by_its_stacks(prepared):
    for split in ("train", "test"):
        frames = prepared.list_path(split).read_text().splitlines()
        flow = prepared.flow_list_path(split).read_text().splitlines()
        assert flow == [line.replace("frames/", "flow/", 1) for line in frames] and flow


@pytest.mark.parametrize("test_mode", [False, True])
def test_mmaction2s_sampling_with_flowstackfields_reads_whole_stacks_in_tsns_channel_order(prepared, test_mode):
    num_clips, rng = 4, np.random.RandomState(0)
    lines = prepared.flow_list_path("train").read_text().splitlines()
    for line in lines:  # RawframeDataset.load_data_list: frame_dir, total_frames, label
        frame_dir, total, _ = line.split()
        results = {"frame_dir": os.path.join(prepared.base, frame_dir), "total_frames": int(total),
                   "start_index": 1, "filename_tmpl": "flow_{}_{:05d}.jpg", "modality": "Flow"}  # fmt: skip
        for _ in range(5 if not test_mode else 1):
            stacks = sample_frames(int(total), num_clips, test_mode, 1, rng)
            results["frame_inds"] = stacks
            FlowStackFields(STACK).transform(results)
            assert results["clip_len"] == STACK and len(results["frame_inds"]) == num_clips * STACK
            clips = format_nchw_flow(raw_frame_decode(results), results["clip_len"])
            assert clips.shape[:2] == (num_clips, 2 * STACK)
            vid = frame_dir.split("/")[1]
            for clip, k in zip(clips, stacks, strict=True):  # stack k (1-based): ytfgvc's unit of frame k-1
                ours = [raw_frame_decode_one(prepared, vid, name) for name in unit_names("flow", int(k) - 1, STACK)]
                assert np.array_equal(clip, np.stack(ours)), (vid, k)
                assert set(results["frame_inds"]) <= set(range(1, int(total) * STACK + 1))


def raw_frame_decode_one(layout, vid: str, name: str) -> np.ndarray:
    with open(layout.flow_dir(vid) / name, "rb") as f:
        data = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    return decode_jpeg(data, mode=ImageReadMode.GRAY)[0].numpy()


def test_flowstackfields_follows_the_start_index():
    out = FlowStackFields(5).transform({"frame_inds": np.array([1, 3]), "start_index": 1})
    assert out["frame_inds"].tolist() == [1, 2, 3, 4, 5, 11, 12, 13, 14, 15]
    out = FlowStackFields(2).transform({"frame_inds": np.array([0, 2]), "start_index": 0})
    assert out["frame_inds"].tolist() == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="stack must be a positive integer"):
        FlowStackFields(0)
