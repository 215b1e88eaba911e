"""Datasets over prepared frames: the rawframe lists and the clips the protocol samples from them.

List format (MMAction2 rawframes, written by ``ytfgvc prepare`` as ``lists/{train,test}.txt``),
one video per line, paths relative to ``<root>/<dataset>``::

    frames/<youtube_id> <num_frames> <label_id>

Frames are ``frames/<id>/img_00001.jpg …`` (1-based, JPEG; every frame of a video has the
same size). A :class:`RawFrameDataset` item is addressed by ``(epoch, index)``: all its
randomness (which frames, which crop, which flip) comes from a generator seeded with
``(seed, epoch, index)``, so a sample is the same whichever worker, rank or resumed
process draws it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_jpeg

from ytfgvc.data.jpeg import jpeg_header
from ytfgvc.data.sampling import sample_clip_indices, sample_test_indices, sample_train_indices
from ytfgvc.data.transforms import MultiScaleCrop, OverSample, apply_views, apply_views_batch
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import DatasetLayout, is_valid_video_id

MAX_LIST_LINES = 10_000_000
FRAME_KINDS = ("segments", "clip")
# What a loader worker hands over: cropped views, decoded frames (cropped on the device),
# or JPEG bytes (decoded and cropped on the device).
WORKER_STAGES = ("pixels", "frames", "jpeg")


@dataclass(frozen=True)
class VideoRecord:
    """One line of a rawframe list."""

    video_id: str
    num_frames: int
    label: int


def read_list(layout: DatasetLayout, split: str) -> list[VideoRecord]:
    """Parse ``lists/<split>.txt``; every malformed line is reported with its number."""
    path = layout.list_path(split)
    if not path.is_file():
        raise YtfgvcError(
            f"no {split} list at {path}", f"run `ytfgvc prepare {layout.dataset}` first to extract frames and lists"
        )
    records, problems, seen = [], [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if n > MAX_LIST_LINES:
                problems.append(f"{path}: more than {MAX_LIST_LINES} lines")
                break
            if not line.strip():
                continue
            parts = line.split()
            where = f"{path.name}:{n}"
            if len(parts) != 3:
                problems.append(f"{where}: expected 'frames/<id> <num_frames> <label>', got {line.strip()[:80]!r}")
                continue
            rel, frames, label = parts
            video_id = rel.rsplit("/", 1)[-1]
            if not is_valid_video_id(video_id) or rel != layout.list_entry_dir(video_id):
                problems.append(f"{where}: {rel[:80]!r} is not frames/<11-character id>")
                continue
            if not (frames.isdigit() and int(frames) >= 1) or not label.isdigit():
                problems.append(f"{where}: frame count and label must be integers (>= 1 and >= 0)")
                continue
            if video_id in seen:
                problems.append(f"{where}: {video_id} is listed twice")
                continue
            seen.add(video_id)
            records.append(VideoRecord(video_id, int(frames), int(label)))
    if problems:
        raise ValidationError(f"rawframe list {path}", problems, f"run `ytfgvc prepare {layout.dataset}` again")
    if not records:
        raise YtfgvcError(f"{path} lists no videos", f"run `ytfgvc prepare {layout.dataset}` first")
    return records


def missing_frames(layout: DatasetLayout, records: list[VideoRecord]) -> list[str]:
    """Ids whose first or last listed frame is not on disk."""
    missing = []
    for r in records:
        d = layout.frames_dir(r.video_id)
        if not (d / layout.frame_name(1)).is_file() or not (d / layout.frame_name(r.num_frames)).is_file():
            missing.append(r.video_id)
    return missing


@dataclass(frozen=True)
class FramePlan:
    """Which frames a sample holds: ``segments`` (TSN, RRA, BN-Inception) or one ``clip`` (I3D).

    ``length`` is the number of segments, or the clip length. In training (``train``) the
    segment frames and the clip start are random; in testing they are the middle ones.
    """

    kind: str
    length: int
    train: bool

    def __post_init__(self) -> None:
        if self.kind not in FRAME_KINDS:
            raise ValueError(f"frame plan kind must be one of {FRAME_KINDS}, got {self.kind!r}")

    def indices(self, num_frames: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "clip":
            return sample_clip_indices(num_frames, self.length, rng if self.train else None)
        if self.train:
            return sample_train_indices(num_frames, self.length, rng)
        return sample_test_indices(num_frames, self.length)


class RawFrameDataset(Dataset):
    """Clips of prepared frames, addressed by ``(epoch, index)``.

    What an item holds besides ``index`` and ``label`` depends on ``stage``:

    * ``"pixels"``: ``uint8 (V, T, 3, S, S)``, decoded and cropped here (in a loader worker);
    * ``"frames"``: ``frames`` ``uint8 (T, 3, H, W)`` decoded here, and the crop ``draw``;
    * ``"jpeg"``: ``jpeg`` (the T files' bytes end to end), ``lengths`` ``(T,)``, ``headers``
      ``(T, 3)`` (height, width, and 1 where nvjpeg's batched GPU paths take the file; see
      :func:`ytfgvc.data.jpeg.jpeg_header`) and ``draw``.

    :class:`ytfgvc.data.loader.DeviceBatch` does the rest on the device (nvjpeg decoding
    for ``"jpeg"``, the crops for both).
    """

    def __init__(
        self,
        layout: DatasetLayout,
        records: list[VideoRecord],
        plan: FramePlan,
        crop: MultiScaleCrop | OverSample,
        seed: int = 0,
        stage: str = "pixels",
    ):
        if stage not in WORKER_STAGES:
            raise ValueError(f"stage must be one of {WORKER_STAGES}, got {stage!r}")
        self.layout, self.records, self.plan, self.crop = layout, records, plan, crop
        self.seed, self.stage = seed, stage

    def __len__(self) -> int:
        return len(self.records)

    def frame_paths(self, record: VideoRecord, indices: np.ndarray) -> list[Path]:
        d = self.layout.frames_dir(record.video_id)
        return [d / self.layout.frame_name(int(i) + 1) for i in indices]

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        indices = self.plan.indices(record.num_frames, rng)
        draw = self.crop.sample(rng)
        # Short videos repeat frames: read (and decode) each file once.
        unique, inverse = np.unique(indices, return_inverse=True)
        paths = self.frame_paths(record, unique)
        blobs = [_read(p) for p in paths]
        item = {"index": index, "label": record.label}
        if self.stage == "jpeg":
            headers = [_header(p, b) for p, b in zip(paths, blobs, strict=True)]
            order = [blobs[i] for i in inverse]
            item.update(
                jpeg=torch.cat(order),
                lengths=torch.tensor([len(b) for b in order]),
                headers=torch.tensor([headers[i] for i in inverse], dtype=torch.int32).view(-1, 3),
                draw=draw,
            )
            return item
        frames = torch.stack(decode_jpeg(blobs, mode=ImageReadMode.RGB))
        if len(unique) < len(indices) or not np.array_equal(unique, indices):  # else no copy
            frames = frames[torch.from_numpy(inverse)]
        if self.stage == "frames":
            item.update(frames=frames, draw=draw)
        else:
            item["pixels"] = crop_clip(frames, self.crop, draw)
        return item


def crop_clip(frames: torch.Tensor, crop: MultiScaleCrop | OverSample, draw) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 -> the views of ``crop`` for ``draw``, ``(V, T, 3, S, S)``."""
    h, w = frames.shape[-2:]
    short_side, views = crop.views(draw, w, h)
    return apply_views(frames, views, crop.input_size, short_side)


def crop_batch(clips: list[torch.Tensor], crop: MultiScaleCrop | OverSample, draws: list) -> torch.Tensor:
    """:func:`crop_clip` for each clip, batched (see :func:`apply_views_batch`): ``(B, V, T, 3, S, S)``."""
    short_side, views = None, []
    for frames, draw in zip(clips, draws, strict=True):
        h, w = frames.shape[-2:]
        short_side, clip_views = crop.views(draw, w, h)
        views.append(clip_views)
    return apply_views_batch(clips, views, crop.input_size, short_side)


def _header(path: Path, blob: torch.Tensor) -> tuple[int, int, int]:
    try:
        h = jpeg_header(blob.numpy())
    except ValueError as e:
        raise YtfgvcError(f"frame {path}: {e}", "run `ytfgvc prepare` again to re-extract it") from None
    return h.height, h.width, int(h.batchable)


def _read(path: Path) -> torch.Tensor:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise YtfgvcError(f"cannot read frame {path}: {e}", "run `ytfgvc prepare` again to re-extract it") from None
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)
