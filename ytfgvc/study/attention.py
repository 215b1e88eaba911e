"""Where RRA's glimpses look, measured against the planted detail of the synthetic dataset.

The generator records, per native frame of a video, ``[visible, crest_x, crest_y, crest_r]``
in source pixels (``<root>/synthetic/truth/<id>.json``, see :mod:`ytfgvc.synth`). The
frames' ``meta.json`` (written by ``ytfgvc prepare``) says which native frame each kept
frame is (``native_index``) and the sizes (``source.width``/``height`` native, ``width``/
``height`` as written). The frames the model sees are those of
:func:`ytfgvc.benchmark.visualize.read_frames`: short side resized to ``input_size``, centre
square crop. A feature-map cell (i, j) of an h x w map covers the crop's pixels
[i S/h, (i+1) S/h) x [j S/w, (j+1) S/w).

The attention mass on the detail of a glimpse is Σ a(t, i, j) · cover(t, i, j), where cover
is the fraction of the cell's pixels inside the crest disk (attention spread evenly over a
cell); attention sums to 1 over n·h·w. Chance is what uniform attention gets: the mean of
cover over all cells of all frames (the detail's area share).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.store import read_meta


def cell_cover(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """(n, H, W) bool masks -> (n, h, w): the fraction of each cell's pixels inside the mask."""
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(np.asarray(masks, np.float64))[:, None]
    return F.adaptive_avg_pool2d(t, (h, w))[:, 0].numpy()


def attention_on_detail(attention: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float]:
    """Per glimpse, the fraction of attention mass on the detail; and the chance level.

    Args:
        attention: (K, n, h, w) non-negative attention of K glimpses over n frames.
        masks: (n, H, W) bool, True on the detail's pixels (all False where it is not visible).

    Returns:
        ``(fractions (K,), chance)``.
    """
    a = np.asarray(attention, np.float64)
    cover = cell_cover(masks, a.shape[2], a.shape[3])
    fractions = (a * cover[None]).sum((1, 2, 3)) / a.sum((1, 2, 3))
    return fractions, float(cover.mean())


def attention_on_visible_frames(attention: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, float]:
    """Per glimpse, the fraction of attention mass on frames showing the detail; chance = their share."""
    a = np.asarray(attention, np.float64)
    visible = np.asarray(masks).reshape(len(masks), -1).any(1)
    per_frame = a.sum((2, 3))
    return per_frame[:, visible].sum(1) / per_frame.sum(1), float(visible.mean())


def crest_mask(truth_row: list, native_wh: tuple[int, int], frame_wh: tuple[int, int], size: int) -> np.ndarray:
    """The (size, size) bool mask of the crest in the model's centre crop of one frame.

    Args:
        truth_row: ``[visible, crest_x, crest_y, crest_r]`` in native pixels.
        native_wh: the source video's (width, height).
        frame_wh: the prepared frame's (width, height).
        size: the crop side (the run's ``input_size``).
    """
    mask = np.zeros((size, size), bool)
    visible, cx, cy, r = truth_row
    if not visible:
        return mask
    fw, fh = frame_wh
    scale = size / min(fw, fh)
    nw, nh = max(size, round(fw * scale)), max(size, round(fh * scale))
    left, top = (nw - size) // 2, (nh - size) // 2
    sx, sy = nw / native_wh[0], nh / native_wh[1]
    x0, y0, rr = cx * sx - left, cy * sy - top, r * (sx + sy) / 2
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return (xs - x0) ** 2 + (ys - y0) ** 2 <= rr**2


def video_masks(layout: DatasetLayout, video_id: str, frame_indices: list[int], size: int) -> np.ndarray:
    """(n, size, size) crest masks of the frames ``frame_indices`` (0-based file order) of a video."""
    meta = read_meta(layout, "frames", video_id)
    if meta is None:
        raise YtfgvcError(f"no frames meta.json for {video_id}", f"run `ytfgvc prepare {layout.dataset}`")
    truth = json.loads(layout.truth_path(video_id).read_text())
    native = (meta["source"]["width"], meta["source"]["height"])
    frame = (meta["width"], meta["height"])
    rows = [truth["frames"][meta["native_index"][i]] for i in frame_indices]
    return np.stack([crest_mask(row, native, frame, size) for row in rows])


@dataclass
class VideoAttention:
    video_id: str
    on_detail: list[float]  # per glimpse
    chance: float
    on_visible_frames: list[float]
    visible_share: float
    visible_frames: int
    frames: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def analyse_run(run: Path, video_ids: list[str], num_frames: int) -> list[VideoAttention]:
    """Attention mass on the detail, per glimpse, for ``video_ids`` under a trained RRA run."""
    import torch

    from ytfgvc.benchmark.visualize import load_run_model, normalise, read_frames, read_run_config

    cfg = read_run_config(run)
    model = load_run_model(run, cfg)
    layout = DatasetLayout(Path(cfg["root"]), cfg["dataset"])
    size = int(cfg["input_size"])
    out = []
    for vid in video_ids:
        frames, indices = read_frames(layout, vid, num_frames, size)
        x = normalise(frames, model.input_mean, model.input_std)
        with torch.no_grad():
            att = model(x[None]).extras["attention"][0].float().numpy()
        masks = video_masks(layout, vid, indices, size)
        on, chance = attention_on_detail(att, masks)
        on_vis, share = attention_on_visible_frames(att, masks)
        out.append(
            VideoAttention(
                vid,
                [round(float(v), 4) for v in on],
                round(chance, 4),
                [round(float(v), 4) for v in on_vis],
                round(share, 4),
                int(masks.reshape(len(masks), -1).any(1).sum()),
                len(masks),
            )
        )
    return out
