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

import collections
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, get_worker_info
from torchvision.io import ImageReadMode, decode_jpeg

from ytfgvc.data.ring import SlotRing, TaggedKeys
from ytfgvc.data.sampling import sample_clip_indices, sample_test_indices, sample_train_indices
from ytfgvc.data.transforms import MultiScaleCrop, OverSample, apply_views, apply_views_batch
from ytfgvc.datasets.official import MAX_LABEL_ID
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import DatasetLayout, is_valid_video_id

MAX_LIST_LINES = 10_000_000
MAX_LIST_FRAMES = 10_000_000  # frames of one video: 29 days at 4 fps


def _count(text: str, limit: int) -> int | None:
    """``text`` as a non-negative integer of at most ``limit``, or None (signs, non-ASCII digits, huge numbers)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(limit)):
        return None
    value = int(text)
    return value if value <= limit else None


FRAME_KINDS = ("segments", "clip")
# What a loader worker hands over: cropped views, or decoded frames (cropped on the device).
WORKER_STAGES = ("pixels", "frames")


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
            n_frames, label_id = _count(frames, MAX_LIST_FRAMES), _count(label, MAX_LABEL_ID)
            if n_frames is None or n_frames < 1 or label_id is None:
                problems.append(
                    f"{where}: frame count and label must be integers (1 to {MAX_LIST_FRAMES} and 0 to {MAX_LABEL_ID})"
                )
                continue
            if video_id in seen:
                problems.append(f"{where}: {video_id} is listed twice")
                continue
            seen.add(video_id)
            records.append(VideoRecord(video_id, n_frames, label_id))
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


class Sample(NamedTuple):
    """What an item shows: frame ``t`` of the sample is file ``paths[inverse[t]]`` (each file read once)."""

    index: int
    draw: object
    paths: list[Path]
    inverse: np.ndarray


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
    * ``"frames"``: ``frames`` ``uint8 (T, H, W, 3)`` decoded here (channels last, as the
      decoder writes them: no transposing copy on the CPU), and the crop ``draw``.

    :class:`ytfgvc.data.loader.DeviceBatch` crops ``"frames"`` on the device. With
    ``"frames"``, a loader worker fetches a whole batch at once (:meth:`__getitems__`) and
    decodes every frame straight into the batch's one shared-memory buffer.
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
        self.ring: SlotRing | None = None  # given by the loader (ytfgvc.data.loader.make_loader)
        self.read_ahead, self.drop_cache = READ_AHEAD, False  # see read_frames

    def __len__(self) -> int:
        return len(self.records)

    def frame_paths(self, record: VideoRecord, indices: np.ndarray) -> list[Path]:
        d = self.layout.frames_dir(record.video_id)
        return [d / self.layout.frame_name(int(i) + 1) for i in indices]

    def _sample(self, key: tuple[int, int] | int) -> Sample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        indices = self.plan.indices(record.num_frames, rng)
        draw = self.crop.sample(rng)
        # Short videos repeat frames: read (and decode) each file once.
        unique, inverse = np.unique(indices, return_inverse=True)
        return Sample(index, draw, self.frame_paths(record, unique), inverse)

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, draw, paths, inverse = self._sample(key)
        blobs = read_frames(paths, self.read_ahead, self.drop_cache)
        item = {"index": index, "label": self.records[index].label}
        frames = torch.stack([image.permute(1, 2, 0) for image in decode_frames(paths, blobs)])
        if not np.array_equal(inverse, np.arange(len(inverse))):  # else no copy
            frames = frames[torch.from_numpy(inverse)]
        if self.stage == "frames":
            item.update(frames=frames, draw=draw)
        else:
            item["pixels"] = crop_clip(frames.permute(0, 3, 1, 2).contiguous(), self.crop, draw)
        return item

    def __getitems__(self, keys: list | TaggedKeys) -> list[dict] | dict:
        """A batch's items at once (the DataLoader's batched fetch; its ``collate_fn`` gets the result).

        With ``stage="frames"``: the batch, collated as :func:`frames_batch` lays it out, every
        frame decoded straight into its place: a slot of :attr:`ring` when the loader has one
        and the batch gets a slot (the batch then names it: ``slot``, ``nbytes``), else a new
        buffer (in a loader worker, in shared memory). The batch also says what it cost the
        worker: ``load_s`` (wall and CPU seconds) and ``decoded`` (frames). Other stages: the
        items.
        """
        tag, keys = keys if isinstance(keys, TaggedKeys) else (0, keys)
        if self.stage != "frames":
            return [self[k] for k in keys]
        wall, cpu = time.perf_counter(), time.thread_time()
        samples = [self._sample(k) for k in keys]
        # Every file of the batch is read ahead of its decoding (read_frames), in one pass.
        blobs = iter(read_frames([p for s in samples for p in s.paths], self.read_ahead, self.drop_cache))
        files = [[next(blobs) for _ in s.paths] for s in samples]
        # The first frame of each video gives its size; every other frame is checked against it.
        firsts = [decode_frames(s.paths[:1], f[:1])[0].permute(1, 2, 0) for s, f in zip(samples, files, strict=True)]
        shapes = torch.tensor([(len(s.inverse), *f.shape[:2]) for s, f in zip(samples, firsts, strict=True)])
        nbytes = frames_nbytes(shapes)
        claim = self.ring.claim(nbytes, tag) if self.ring is not None and tag else None
        flat = batch_buffer(nbytes) if claim is None else claim[1]
        for clip, sample, blobs_, first in zip(clip_views(flat, shapes), samples, files, firsts, strict=True):
            images = [first, *(im.permute(1, 2, 0) for im in decode_frames(sample.paths[1:], blobs_[1:]))]
            # Where each decoded file goes in the clip (short videos repeat files; usually one place each).
            places = (
                [(i,) for i in range(len(images))]
                if len(sample.inverse) == len(images)  # np.unique's inverse of distinct indices: 0, 1, 2...
                else [np.flatnonzero(sample.inverse == i) for i in range(len(images))]
            )
            for path, image, where in zip(sample.paths, images, places, strict=True):
                if image.shape != clip.shape[1:]:
                    raise YtfgvcError(
                        f"frame {path} is {image.shape[1]}x{image.shape[0]}, the video's first frame "
                        f"{clip.shape[2]}x{clip.shape[1]}",
                        "run `ytfgvc prepare` again to re-extract the video's frames",
                    )
                for t in where:
                    clip[t].copy_(image)  # libjpeg's own HWC memory: a plain copy
        batch = {
            "index": torch.tensor([s.index for s in samples]),
            "label": torch.tensor([self.records[s.index].label for s in samples]),
            "shapes": shapes,
            "draws": [s.draw for s in samples],
            "load_s": (time.perf_counter() - wall, time.thread_time() - cpu),
            "decoded": sum(len(s.paths) for s in samples),
        }
        return batch | ({"frames": flat} if claim is None else {"slot": claim[0], "nbytes": nbytes})

    def frame_bytes(self, probe: int = 32) -> int:
        """Bytes of the largest decoded frame among the first frames of up to ``probe`` videos (0 if unreadable)."""
        largest = 0
        for record in self.records[:probe]:
            path = self.layout.frames_dir(record.video_id) / self.layout.frame_name(1)
            try:
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
            except (OSError, ValueError):  # unreadable, or not an image (PIL's UnidentifiedImageError)
                return 0
            largest = max(largest, 3 * height * width)
        return largest


def batch_buffer(numel: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """An empty 1-D tensor for a batch; in a loader worker, in shared memory (sent without a copy)."""
    if get_worker_info() is None:
        return torch.empty(numel, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(numel)


def frames_batch(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded clips ``(T, H, W, 3)`` end to end in one flat buffer, and their ``(T, H, W)`` shapes.

    One buffer whatever the frame sizes (videos differ in aspect ratio): one shared-memory
    segment, one pinned copy and one transfer per batch. :func:`clip_views` undoes it.
    """
    shapes = torch.tensor([c.shape[:3] for c in clips])
    flat = batch_buffer(frames_nbytes(shapes))
    for view, clip in zip(clip_views(flat, shapes), clips, strict=True):
        view.copy_(clip)
    return flat, shapes


def frames_nbytes(shapes: torch.Tensor) -> int:
    """Bytes of a :func:`frames_batch` buffer for clips of ``shapes`` ``(T, H, W)``."""
    return int((shapes.prod(1) * 3).sum())


def clip_views(flat: torch.Tensor, shapes: torch.Tensor) -> list[torch.Tensor]:
    """The ``(T, H, W, 3)`` clips laid end to end in ``flat`` (see :func:`frames_batch`)."""
    sizes = (shapes.prod(1) * 3).tolist()
    return [v.view(*s, 3) for v, s in zip(torch.split(flat, sizes), shapes.tolist(), strict=True)]


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


# torchvision's errors may start with where they were raised: "decode_jpeg, /path/decode_jpeg.cpp:171, "
_SOURCE_LOCATION = re.compile(r"^.*?\.cpp:\d+, ")
_HINT = "run `ytfgvc prepare` again to re-extract it"


def decode_frames(paths: list[Path], blobs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``uint8 (3, H, W)`` each (libjpeg-turbo), in one call; a file it cannot decode is named, with the reason."""
    if not blobs:
        return []
    try:
        return decode_jpeg(blobs, mode=ImageReadMode.RGB)
    except RuntimeError:
        for path, blob in zip(paths, blobs, strict=True):
            _decode(path, blob)  # the file at fault, named
        raise


def _decode(path: Path, blob: torch.Tensor) -> torch.Tensor:
    """``uint8 (3, H, W)``; a file libjpeg cannot decode (not a JPEG, cut short) is named, with the reason and fix."""
    try:
        return decode_jpeg(blob, mode=ImageReadMode.RGB)
    except RuntimeError as e:
        reason = _SOURCE_LOCATION.sub("", str(e).strip().splitlines()[0])
        raise YtfgvcError(f"cannot decode frame {path}: {reason}", _HINT) from None


READ_AHEAD = 32  # files a loader worker asks the kernel to read ahead of the one it reads
_FADVISE = hasattr(os, "posix_fadvise")


def read_frames(paths: list[Path], read_ahead: int = READ_AHEAD, drop_cache: bool = False) -> list[torch.Tensor]:
    """The bytes of each file, as uint8 tensors; a file that cannot be read or is not a JPEG is named.

    Up to ``read_ahead`` files past the one being read are opened and announced to the kernel
    (``POSIX_FADV_WILLNEED``), so on a dataset that is not in the page cache their reads run in
    parallel instead of one after another (0: none). ``drop_cache`` first drops each file's pages
    from the cache (``POSIX_FADV_DONTNEED``): every read goes to the disk, as on a dataset larger
    than memory (``benchmarks/train_throughput.py --cold``).
    """
    out: list[torch.Tensor] = []
    opened: collections.deque[tuple[Path, int | OSError]] = collections.deque()
    ahead = max(0, read_ahead) if _FADVISE else 0
    i = 0
    try:
        while len(out) < len(paths):
            while i < len(paths) and len(opened) <= ahead:
                opened.append((paths[i], _open(paths[i], drop_cache, ahead > 0)))
                i += 1
            path, fd = opened.popleft()
            out.append(_read_fd(path, fd))
    finally:
        for _, fd in opened:
            if isinstance(fd, int):
                os.close(fd)
    return out


def _open(path: Path, drop_cache: bool, announce: bool) -> int | OSError:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:  # raised when its turn to be read comes
        return e
    if drop_cache:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if announce:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    return fd


def _read_fd(path: Path, fd: int | OSError) -> torch.Tensor:
    """The whole file open at ``fd`` (closed here), without copying it after the read."""
    try:
        if isinstance(fd, OSError):
            raise fd
        try:
            data = bytearray(os.fstat(fd).st_size)
            view, done = memoryview(data), 0
            while done < len(data) and (n := os.readv(fd, [view[done:]])):
                done += n
        finally:
            os.close(fd)
    except OSError as e:
        raise YtfgvcError(f"cannot read frame {path}: {e}", _HINT) from None
    if data[:2] != b"\xff\xd8" or done < len(data):
        why = "cut short while read" if done < len(data) else "not a JPEG file (no start-of-image marker)"
        raise YtfgvcError(f"cannot decode frame {path}: {why}", _HINT)
    return torch.frombuffer(data, dtype=torch.uint8)
