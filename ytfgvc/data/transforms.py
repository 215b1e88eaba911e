"""Where the protocol looks inside a frame: TSN's multi-scale crop (training) and the test crops.

Everything here works on a whole clip at once, so every frame of a clip gets the same
crop and the same flip (the paper: "the same multi-scale cropping and random flipping to
each frame as TSN"). A *view* is a crop box in the frame's pixels plus a flip flag;
:func:`apply_views` cuts views out of a ``(T, 3, H, W)`` uint8 clip on any device.

Training (TSN's ``GroupMultiScaleCrop(input_size, [1, .875, .75, .66])`` with
``max_distort=1, fix_crop=True, more_fix_crop=True``, then ``GroupRandomHorizontalFlip``):

* crop sides are ``int(s * min(H, W))`` for each scale ``s`` (a side within 3 px of the
  input size snaps to it); a (width, height) pair is two scales at most ``max_distort``
  steps apart (10 pairs for 4 scales), drawn uniformly;
* the offset is one of 13 fixed positions on a 4 × 4 grid of steps
  ``((W - w) // 4, (H - h) // 4)`` (:func:`fixed_offsets`), drawn uniformly;
* the crop is resized to ``input_size²`` and flipped with probability 1/2.

Testing (TSN's ``GroupScale(scale_size)`` + ``GroupOverSample(input_size)``): frames are
resized so the short side is ``scale_size`` (default ``input_size * 256 // 224``), then
cut into the 4 corners and the centre (the first 5 of :func:`fixed_offsets`) and their
horizontal flips: 10 views (:func:`ten_crop_views`); ``crops=1`` keeps only the centre.

Flow (``flow=True``): a clip's channels are flow stacks, ``x₁, y₁, …, x_L, y_L`` encoded as
8-bit codes. Mirroring a flow field negates its x component, so a flipped view also maps
every x channel to ``255 − x``, as TSN does (tsn-pytorch ``transforms.py``:
``GroupRandomHorizontalFlip(is_flow=True)`` inverts the x images of a flipped group, and
``GroupOverSample`` the x images of its flipped crops, with ``ImageOps.invert``). With this
project's encoding (128 = no motion, :mod:`ytfgvc.prepare.flow`) ``255 − q`` is the exact
negation shifted by one code (−0.156 px); TSN's ``dense_flow`` maps 0 px to 127.5, where it
is exact. Crops are resized like frames: displacements are not rescaled (TSN neither).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

SCALES = (1.0, 0.875, 0.75, 0.66)


@dataclass(frozen=True)
class View:
    """A crop box ``(x, y, w, h)`` in frame pixels, and whether to flip it horizontally."""

    x: int
    y: int
    w: int
    h: int
    flip: bool = False


def fixed_offsets(image_w: int, image_h: int, crop_w: int, crop_h: int, more_fix_crop: bool = True) -> list[tuple]:
    """TSN's fixed crop offsets ``(x, y)``: 5 (corners and centre), or 13 with ``more_fix_crop``.

    Order: upper left, upper right, lower left, lower right, centre; then centre left,
    centre right, lower centre, upper centre and the four quarter points.
    """
    ws, hs = (image_w - crop_w) // 4, (image_h - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2)]
    if more_fix_crop:
        grid += [(0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(i * ws, j * hs) for i, j in grid]


def scale_pairs(num_scales: int, max_distort: int) -> list[tuple[int, int]]:
    """Index pairs ``(i_h, j_w)`` of scales at most ``max_distort`` apart, in TSN's order."""
    return [(i, j) for i in range(num_scales) for j in range(num_scales) if abs(i - j) <= max_distort]


def crop_sizes(image_w: int, image_h: int, input_size: int, scales: tuple[float, ...] = SCALES) -> list[int]:
    """Crop sides ``int(s * min(H, W))``, snapped to ``input_size`` when within 3 pixels."""
    base = min(image_w, image_h)
    return [input_size if abs(int(base * s) - input_size) < 3 else int(base * s) for s in scales]


def ten_crop_views(image_w: int, image_h: int, crop: int, crops: int = 10) -> list[View]:
    """The test views: 4 corners + centre, then the same 5 flipped (``crops=10``); the centre alone (``crops=1``)."""
    if crops not in (1, 10):
        raise ValueError(f"test crops must be 1 or 10, got {crops}")
    if crop > min(image_w, image_h):
        raise ValueError(f"a {crop} px crop does not fit a {image_w}x{image_h} frame")
    offsets = fixed_offsets(image_w, image_h, crop, crop, more_fix_crop=False)
    if crops == 1:
        x, y = offsets[4]
        return [View(x, y, crop, crop)]
    views = [View(x, y, crop, crop) for x, y in offsets]
    return views + [View(v.x, v.y, v.w, v.h, flip=True) for v in views]


def scaled_size(image_w: int, image_h: int, short_side: int) -> tuple[int, int]:
    """``(w, h)`` after resizing the short side to ``short_side`` (torchvision's ``Resize(int)`` rounding)."""
    if image_w <= image_h:
        return short_side, int(short_side * image_h / image_w)
    return int(short_side * image_w / image_h), short_side


@dataclass(frozen=True)
class MultiScaleCrop:
    """Multi-scale crop + flip, drawn once per clip (see the module docstring)."""

    input_size: int
    scales: tuple[float, ...] = SCALES
    max_distort: int = 1
    more_fix_crop: bool = True
    flip: bool = True

    num_views = 1

    def sample(self, rng: np.random.Generator) -> tuple[int, int, bool]:
        """A random draw that does not depend on the frame size: (pair index, offset index, flip)."""
        pair = int(rng.integers(len(scale_pairs(len(self.scales), self.max_distort))))
        offset = int(rng.integers(13 if self.more_fix_crop else 5))
        flip = bool(rng.integers(2)) if self.flip else False
        return pair, offset, flip

    def views(self, draw: tuple[int, int, bool], image_w: int, image_h: int) -> tuple[int | None, list[View]]:
        """``(None, [view])`` for a frame of ``image_w`` × ``image_h`` (no resize before cropping)."""
        pair, offset, flip = draw
        sizes = crop_sizes(image_w, image_h, self.input_size, self.scales)
        i, j = scale_pairs(len(self.scales), self.max_distort)[pair]
        w, h = sizes[j], sizes[i]
        x, y = fixed_offsets(image_w, image_h, w, h, self.more_fix_crop)[offset]
        return None, [View(x, y, w, h, flip)]


@dataclass(frozen=True)
class OverSample:
    """Resize the short side to ``scale_size``, then 10 crops (or the centre one)."""

    input_size: int
    crops: int = 10
    scale_size: int = 0  # 0: input_size * 256 // 224, as TSN

    @property
    def num_views(self) -> int:
        return self.crops

    @property
    def short_side(self) -> int:
        return self.scale_size or self.input_size * 256 // 224

    def sample(self, rng: np.random.Generator) -> None:
        return None

    def views(self, draw: None, image_w: int, image_h: int) -> tuple[int | None, list[View]]:
        w, h = scaled_size(image_w, image_h, self.short_side)
        return self.short_side, ten_crop_views(w, h, self.input_size, self.crops)


def mirror(crops: torch.Tensor, flow: bool = False) -> torch.Tensor:
    """Horizontal flip of uint8 ``(…, C, H, W)``; for ``flow`` stacks, x channels (0, 2, …) become ``255 − x``."""
    out = crops.flip(-1)
    if flow:
        out[..., 0::2, :, :] = 255 - out[..., 0::2, :, :]
    return out


def apply_views(
    frames: torch.Tensor, views: list[View], out_size: int, short_side: int | None = None, flow: bool = False
) -> torch.Tensor:
    """Cut ``views`` out of a clip ``(T, C, H, W)`` (uint8, any device) -> ``(V, T, C, out, out)``.

    ``short_side`` first resizes every frame (bilinear, antialiased) so its short side has
    that length; the boxes are in the resized frame's pixels. Crops that are not
    ``out_size`` square are resized to it. Flipped views are :func:`mirror`-ed (``flow``:
    x negated too).
    """
    if short_side is not None and min(frames.shape[-2:]) != short_side:
        frames = TF.resize(frames, [short_side], antialias=True)
    out = []
    for v in views:
        crop = frames[..., v.y : v.y + v.h, v.x : v.x + v.w]
        if crop.shape[-2:] != (v.h, v.w):
            raise ValueError(f"view {v} falls outside a {frames.shape[-1]}x{frames.shape[-2]} frame")
        if (v.h, v.w) != (out_size, out_size):
            crop = TF.resize(crop, [out_size, out_size], antialias=True)
        out.append(mirror(crop, flow) if v.flip else crop)
    return torch.stack(out)


def apply_views_batch(
    clips: Sequence[torch.Tensor],
    views: Sequence[list[View]],
    out_size: int,
    short_side: int | None = None,
    flow: bool = False,
) -> torch.Tensor:
    """:func:`apply_views` for a batch of clips in a few kernel launches -> ``(B, V, T, 3, out, out)``.

    The result equals ``torch.stack([apply_views(c, v, ...) for c, v in zip(clips, views)])``
    (every resize works image by image), but clips of one frame size are resized together
    and views of one box size are cut, resized and flipped together: a batch of 256
    single-frame clips costs tens of launches instead of a thousand, which matters when a
    loader thread shares the interpreter with the training loop.
    """
    if len(clips) != len(views) or not clips:
        raise ValueError("apply_views_batch needs one list of views per clip, and at least one clip")
    t, nv = clips[0].shape[0], len(views[0])
    if any(c.shape[0] != t for c in clips) or any(len(v) != nv for v in views):
        raise ValueError("every clip of a batch must have the same number of frames and of views")
    clips = _resize_short_sides(list(clips), short_side)
    groups: dict[tuple[int, int], list[tuple[int, int, View]]] = {}
    for i, vs in enumerate(views):
        for j, v in enumerate(vs):
            groups.setdefault((v.w, v.h), []).append((i, j, v))
    parts, slots, flips = [], [], []
    for (w, h), members in groups.items():
        crops = []
        for i, _, v in members:
            crop = clips[i][..., v.y : v.y + h, v.x : v.x + w]
            if crop.shape[-2:] != (h, w) or v.x < 0 or v.y < 0:
                raise ValueError(f"view {v} falls outside a {clips[i].shape[-1]}x{clips[i].shape[-2]} frame")
            crops.append(crop)
        stacked = torch.stack(crops)
        if (h, w) != (out_size, out_size):
            stacked = TF.resize(stacked.flatten(0, 1), [out_size, out_size], antialias=True).unflatten(0, (-1, t))
        parts.append(stacked)
        slots += [i * nv + j for i, j, _ in members]
        flips += [v.flip for _, _, v in members]
    flat = torch.cat(parts) if len(parts) > 1 else parts[0]
    if any(flips):
        mask = torch.tensor(flips).view(-1, 1, 1, 1, 1).to(flat.device, non_blocking=True)
        flat = torch.where(mask, mirror(flat, flow), flat)
    order = torch.empty(len(slots), dtype=torch.long)
    order[torch.tensor(slots)] = torch.arange(len(slots))
    if not torch.equal(order, torch.arange(len(slots))):
        flat = flat.index_select(0, order.to(flat.device, non_blocking=True))
    return flat.unflatten(0, (len(clips), nv))


def _resize_short_sides(clips: list[torch.Tensor], short_side: int | None) -> list[torch.Tensor]:
    """Resize every clip whose short side is not ``short_side``, one call per frame size."""
    if short_side is None:
        return clips
    by_shape: dict[tuple, list[int]] = {}
    for i, c in enumerate(clips):
        if min(c.shape[-2:]) != short_side:
            by_shape.setdefault(tuple(c.shape), []).append(i)
    for idx in by_shape.values():
        stacked = torch.stack([clips[i] for i in idx]) if len(idx) > 1 else clips[idx[0]][None]
        resized = TF.resize(stacked.flatten(0, 1), [short_side], antialias=True).unflatten(0, (len(idx), -1))
        for k, i in enumerate(idx):
            clips[i] = resized[k]
    return clips
