"""Datasets over prepared frames: the rawframe lists and the clips the protocol samples from them.

List format (MMAction2 rawframes, written by ``ytfgvc prepare`` as ``lists/{train,test}.txt``),
one video per line, paths relative to ``<root>/<dataset>``::

    frames/<youtube_id> <num_frames> <label_id>

Frames are ``img_00001.jpg …`` (1-based, JPEG; every frame of a video has the same size),
read through :mod:`ytfgvc.store` from either store (``frames/<id>/`` or ``frames/<id>.zip``).
A :class:`RawFrameDataset` item is addressed by ``(epoch, index)``: all its randomness (which
frames, which crop, which flip) comes from a generator seeded with ``(seed, epoch, index)``,
so a sample is the same whichever worker, rank or resumed process draws it.

**Flow** (``modality="flow"``): the sampler picks kept frames exactly as for RGB, and each
picked frame ``k`` (1-based) brings its stack of ``L`` fields, files ``(k-1)·L+1 … k·L``
(:mod:`ytfgvc.prepare.flowstack`), as ``2·L`` channels in TSN's order ``x₁, y₁, x₂, y₂, …,
x_L, y_L`` (tsn-pytorch ``dataset.py`` loads x then y per field; ``transforms.py``'s ``Stack``
concatenates them). A horizontal flip of a flow clip also turns every x channel into
``255 − x`` (TSN's ``GroupRandomHorizontalFlip(is_flow=True)`` and ``GroupOverSample``).
"""

from __future__ import annotations

import collections
import contextlib
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
from ytfgvc.store import FolderFiles, PackedError, PackedFiles, StoreReader, VideoFiles, open_video

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
MODALITIES = ("rgb", "flow")


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


def unit_names(modality: str, index: int, flow_stack: int = 5) -> tuple[str, ...]:
    """The files of kept frame ``index`` (0-based): its JPEG, or its flow stack's ``x₁, y₁, …, x_L, y_L``."""
    if modality == "rgb":
        return (DatasetLayout.frame_name(index + 1),)
    first = index * flow_stack + 1
    return tuple(name for n in range(first, first + flow_stack) for name in DatasetLayout.flow_names(n))


def missing_frames(
    layout: DatasetLayout, records: list[VideoRecord], modality: str = "rgb", flow_stack: int = 5
) -> list[str]:
    """Ids whose first or last listed frame (or flow stack) is not in the store."""
    kind = "frames" if modality == "rgb" else "flow"
    missing = []
    for r in records:
        try:
            files = open_video(layout, kind, r.video_id)
        except (PackedError, OSError):
            files = None
        if files is None:
            missing.append(r.video_id)
            continue
        ends = (*unit_names(modality, 0, flow_stack)[:1], unit_names(modality, r.num_frames - 1, flow_stack)[-1])
        try:
            if not all(files.has(name) for name in ends):
                missing.append(r.video_id)
        finally:
            files.close()
    return missing


class Sample(NamedTuple):
    """What an item shows: frame ``t`` of the sample is the files ``units[inverse[t]]`` of ``video`` (each read once).

    A unit is one JPEG for RGB, the ``2·L`` JPEGs of a stack for flow.
    """

    index: int
    draw: object
    video: VideoFiles
    units: list[tuple[str, ...]]
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
        modality: str = "rgb",
        flow_stack: int = 5,
    ):
        if stage not in WORKER_STAGES:
            raise ValueError(f"stage must be one of {WORKER_STAGES}, got {stage!r}")
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        self.layout, self.records, self.plan, self.crop = layout, records, plan, crop
        self.seed, self.stage, self.modality, self.flow_stack = seed, stage, modality, flow_stack
        self.kind = "frames" if modality == "rgb" else "flow"
        self.channels = 3 if modality == "rgb" else 2 * flow_stack
        self.reader = StoreReader(layout)  # each loader worker opens its own archives
        self.ring: SlotRing | None = None  # given by the loader (ytfgvc.data.loader.make_loader)
        self.read_ahead, self.drop_cache = READ_AHEAD, False  # see read_frames

    @property
    def flow(self) -> bool:
        return self.modality == "flow"

    def __len__(self) -> int:
        return len(self.records)

    def _sample(self, key: tuple[int, int] | int) -> Sample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        record = self.records[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        indices = self.plan.indices(record.num_frames, rng)
        draw = self.crop.sample(rng)
        # Short videos repeat frames: read (and decode) each file once.
        unique, inverse = np.unique(indices, return_inverse=True)
        units = [unit_names(self.modality, int(i), self.flow_stack) for i in unique]
        return Sample(index, draw, self.reader.video(self.kind, record.video_id), units, inverse)

    def _read_units(self, units: list[tuple[VideoFiles, tuple[str, ...]]]) -> list[torch.Tensor]:
        """The bytes of every file of ``units`` (video, names), in order; a folder store's files in one pass
        of :func:`read_frames`, an archive's through its reader, both read ahead (and dropped from the
        page cache first with :attr:`drop_cache`)."""
        files = [(video, name) for video, names in units for name in names]
        paths = [video.folder / name for video, name in files if isinstance(video, FolderFiles)]
        members: dict[int, tuple[PackedFiles, list[str]]] = {}
        for video, name in files:
            if isinstance(video, PackedFiles):
                members.setdefault(id(video), (video, []))[1].append(name)
        for video, names in members.values():
            _advise_members(video, names, self.read_ahead, self.drop_cache)
        folder_blobs = iter(read_frames(paths, self.read_ahead, self.drop_cache))
        return [next(folder_blobs) if isinstance(v, FolderFiles) else _read(v, n) for v, n in files]

    def _decode_units(
        self, video: VideoFiles, units: list[tuple[str, ...]], blobs: list[list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        """Each frame (or flow stack) as ``uint8 (H, W, C)`` (a view for RGB: libjpeg's own layout)."""
        if not self.flow:
            wheres = [video.where(names[0]) for names in units]
            return [im.permute(1, 2, 0) for im in decode_frames(wheres, [b[0] for b in blobs])]
        out = []
        for names, files in zip(units, blobs, strict=True):
            planes = [_decode(video.where(n), b, ImageReadMode.GRAY)[0] for n, b in zip(names, files, strict=True)]
            out.append(_stack_planes(video, names, planes))
        return out

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        index, draw, video, units, inverse = self._sample(key)
        item = {"index": index, "label": self.records[index].label}
        blobs = iter(self._read_units([(video, u) for u in units]))
        frames = torch.stack(self._decode_units(video, units, [[next(blobs) for _ in u] for u in units]))
        if not np.array_equal(inverse, np.arange(len(inverse))):  # else no copy
            frames = frames[torch.from_numpy(inverse)]
        if self.stage == "frames":
            item.update(frames=frames, draw=draw)
        else:
            clip = frames.permute(0, 3, 1, 2).contiguous()
            item["pixels"] = crop_clip(clip, self.crop, draw, flow=self.flow)
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
        flat_blobs = iter(self._read_units([(s.video, u) for s in samples for u in s.units]))
        blobs = [[[next(flat_blobs) for _ in u] for u in s.units] for s in samples]
        # The first unit of each video gives its size; every other one is checked against it.
        firsts = [self._decode_units(s.video, s.units[:1], b[:1])[0] for s, b in zip(samples, blobs, strict=True)]
        shapes = torch.tensor([(len(s.inverse), *f.shape[:2]) for s, f in zip(samples, firsts, strict=True)])
        nbytes = frames_nbytes(shapes, self.channels)
        claim = self.ring.claim(nbytes, tag) if self.ring is not None and tag else None
        flat = batch_buffer(nbytes) if claim is None else claim[1]
        clips = clip_views(flat, shapes, self.channels)
        for clip, sample, unit_blobs, first in zip(clips, samples, blobs, firsts, strict=True):
            images = [first, *self._decode_units(sample.video, sample.units[1:], unit_blobs[1:])]
            # Where each decoded unit goes in the clip (short videos repeat files; usually one place each).
            places = (
                [(i,) for i in range(len(images))]
                if len(sample.inverse) == len(images)  # np.unique's inverse of distinct indices: 0, 1, 2...
                else [np.flatnonzero(sample.inverse == i) for i in range(len(images))]
            )
            for names, image, where in zip(sample.units, images, places, strict=True):
                if image.shape != clip.shape[1:]:
                    raise YtfgvcError(
                        f"frame {sample.video.where(names[0])} is {image.shape[1]}x{image.shape[0]}, the video's "
                        f"first frame {clip.shape[2]}x{clip.shape[1]}",
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
            "decoded": sum(len(s.units) for s in samples),
        }
        return batch | ({"frames": flat} if claim is None else {"slot": claim[0], "nbytes": nbytes})

    def frame_bytes(self, probe: int = 32) -> int:
        """Bytes of the largest decoded frame (or flow stack) among the first of up to ``probe`` videos.

        0 if one is unreadable.
        """
        import io

        largest = 0
        for record in self.records[:probe]:
            try:
                video = self.reader.video(self.kind, record.video_id)
                with Image.open(io.BytesIO(video.read(unit_names(self.modality, 0, self.flow_stack)[0]))) as image:
                    width, height = image.size  # the header only
            except (OSError, ValueError, YtfgvcError):  # unreadable, or not an image (PIL's UnidentifiedImageError)
                return 0
            largest = max(largest, self.channels * height * width)
        return largest


def batch_buffer(numel: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """An empty 1-D tensor for a batch; in a loader worker, in shared memory (sent without a copy)."""
    if get_worker_info() is None:
        return torch.empty(numel, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage).view(numel)


def frames_batch(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded clips ``(T, H, W, C)`` end to end in one flat buffer, and their ``(T, H, W)`` shapes.

    One buffer whatever the frame sizes (videos differ in aspect ratio): one shared-memory
    segment, one pinned copy and one transfer per batch. :func:`clip_views` undoes it.
    """
    shapes, channels = torch.tensor([c.shape[:3] for c in clips]), clips[0].shape[3]
    flat = batch_buffer(frames_nbytes(shapes, channels))
    for view, clip in zip(clip_views(flat, shapes, channels), clips, strict=True):
        view.copy_(clip)
    return flat, shapes


def frames_nbytes(shapes: torch.Tensor, channels: int = 3) -> int:
    """Bytes of a :func:`frames_batch` buffer for clips of ``shapes`` ``(T, H, W)`` and ``channels``."""
    return int((shapes.prod(1) * channels).sum())


def clip_views(flat: torch.Tensor, shapes: torch.Tensor, channels: int = 3) -> list[torch.Tensor]:
    """The ``(T, H, W, C)`` clips laid end to end in ``flat`` (see :func:`frames_batch`)."""
    sizes = (shapes.prod(1) * channels).tolist()
    return [v.view(*s, channels) for v, s in zip(torch.split(flat, sizes), shapes.tolist(), strict=True)]


def crop_clip(frames: torch.Tensor, crop: MultiScaleCrop | OverSample, draw, flow: bool = False) -> torch.Tensor:
    """``(T, C, H, W)`` uint8 -> the views of ``crop`` for ``draw``, ``(V, T, C, S, S)`` (``flow``: x mirrored too)."""
    h, w = frames.shape[-2:]
    short_side, views = crop.views(draw, w, h)
    return apply_views(frames, views, crop.input_size, short_side, flow=flow)


def crop_batch(
    clips: list[torch.Tensor], crop: MultiScaleCrop | OverSample, draws: list, flow: bool = False
) -> torch.Tensor:
    """:func:`crop_clip` for each clip, batched (see :func:`apply_views_batch`): ``(B, V, T, C, S, S)``."""
    short_side, views = None, []
    for frames, draw in zip(clips, draws, strict=True):
        h, w = frames.shape[-2:]
        short_side, clip_views = crop.views(draw, w, h)
        views.append(clip_views)
    return apply_views_batch(clips, views, crop.input_size, short_side, flow=flow)


# torchvision's errors may start with where they were raised: "decode_jpeg, /path/decode_jpeg.cpp:171, "
_SOURCE_LOCATION = re.compile(r"^.*?\.cpp:\d+, ")
_HINT = "run `ytfgvc prepare` again to re-extract it"


def decode_frames(wheres: list[str], blobs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``uint8 (3, H, W)`` each (libjpeg-turbo), in one call; a file it cannot decode is named, with the reason."""
    if not blobs:
        return []
    try:
        return decode_jpeg(blobs, mode=ImageReadMode.RGB)
    except RuntimeError:
        for where, blob in zip(wheres, blobs, strict=True):
            _decode(where, blob)  # the file at fault, named
        raise


def _decode(where: str, blob: torch.Tensor, mode: ImageReadMode = ImageReadMode.RGB) -> torch.Tensor:
    """``uint8 (3, H, W)`` (``(1, H, W)`` in GRAY mode); a file libjpeg cannot decode (not a JPEG, cut short)
    is named, with the reason and fix."""
    try:
        if len(blob) < 2 or blob[0] != 0xFF or blob[1] != 0xD8:
            raise RuntimeError("not a JPEG file (no start-of-image marker)")
        return decode_jpeg(blob, mode=mode)
    except RuntimeError as e:
        reason = _SOURCE_LOCATION.sub("", str(e).strip().splitlines()[0])
        raise YtfgvcError(f"cannot decode frame {where}: {reason}", _HINT) from None


def _stack_planes(video: VideoFiles, names: tuple[str, ...], planes: list[torch.Tensor]) -> torch.Tensor:
    """A flow stack's ``(H, W)`` planes as ``(H, W, 2·L)``; a plane of another size is named."""
    h, w = planes[0].shape
    for name, plane in zip(names, planes, strict=True):
        if plane.shape != (h, w):
            raise YtfgvcError(
                f"flow field {video.where(name)} is {plane.shape[1]}x{plane.shape[0]}, its stack's first {w}x{h}",
                "run `ytfgvc prepare --flow --force` again to re-make the video's flow",
            )
    return torch.stack(planes, dim=-1)


def _read(video: VideoFiles, name: str) -> torch.Tensor:
    """One file's bytes as a ``uint8`` tensor; a file that cannot be read is named, with the fix."""
    try:
        data = video.read(name)
    except (OSError, PackedError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise YtfgvcError(f"cannot read frame {video.where(name)}: {reason}", _HINT) from None
    if not data:  # an empty file (torch.frombuffer refuses an empty buffer): _decode names it
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


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


def _advise_members(video: PackedFiles, names: list[str], read_ahead: int, drop_cache: bool) -> None:
    """:func:`read_frames`'s page-cache advice for members of one archive: all of them ahead (no descriptor
    each to hold open), dropped from the cache first with ``drop_cache``; a member it lacks is named
    when it is read."""
    if not _FADVISE:
        return
    with contextlib.suppress(OSError, PackedError):  # advice only: what cannot be read is named by the read
        if drop_cache:
            video.reader.advise(names, os.POSIX_FADV_DONTNEED)
        if read_ahead > 0:
            video.reader.advise(names, os.POSIX_FADV_WILLNEED)


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
        raise YtfgvcError(f"cannot read frame {path}: {e.strerror or e}", _HINT) from None  # the path once
    if data[:2] != b"\xff\xd8" or done < len(data):
        why = "cut short while read" if done < len(data) else "not a JPEG file (no start-of-image marker)"
        raise YtfgvcError(f"cannot decode frame {path}: {why}", _HINT)
    return torch.frombuffer(data, dtype=torch.uint8)
