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

A study measures this for every test video whose test frames show the crest (the others
have nothing to find: chance 0) under every run of its ``attention`` variants
(:func:`analyse_runs`, cached per run in ``attention.json``), and summarises it per glimpse
with seed-level intervals (:func:`summarise`: the hierarchical bootstrap of
:mod:`ytfgvc.study.stats` over seeds and videos).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, RunFiles
from ytfgvc.store import read_meta

ATTENTION_VERSION = "ytfgvc-study-attention-2"


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


def analyse_run(
    run: Path, video_ids: list[str], num_frames: int, device: str | None = None
) -> tuple[list[VideoAttention], list[int]]:
    """Attention mass on the detail, per glimpse, for ``video_ids`` under a trained RRA run.

    Returns the per-video numbers and the attention map's ``[h, w]``. ``device``: where the
    model runs (default: the first GPU if there is one, else the CPU).
    """
    import torch

    from ytfgvc.benchmark.visualize import load_run_model, normalise, read_frames, read_run_config

    cfg = read_run_config(run)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_run_model(run, cfg).to(device)
    layout = DatasetLayout(Path(cfg["root"]), cfg["dataset"])
    size = int(cfg["input_size"])
    out = []
    shape = [0, 0]
    for vid in video_ids:
        frames, indices = read_frames(layout, vid, num_frames, size)
        x = normalise(frames, model.input_mean, model.input_std).to(device)
        with torch.no_grad():
            att = model(x[None]).extras["attention"][0].float().cpu().numpy()
        shape = [int(att.shape[2]), int(att.shape[3])]
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
    return out, shape


def test_frame_visibility(data_root: Path, dataset: str, video_ids: list[str], num_frames: int) -> dict[str, Any]:
    """How often the test frames (``num_frames`` per video, the test protocol's) show the bird.

    Returns the number of test videos with frames, the mean share of their prepared frames
    and of their test frames that show the bird, and the share of videos whose test frames
    show it at least once (only those can be answered from the test frames).
    """
    from ytfgvc.data.sampling import sample_test_indices

    layout = DatasetLayout(Path(data_root), dataset)
    prepared, tested, any_seen = [], [], []
    for vid in video_ids:
        meta_path = layout.frames_dir(vid) / "meta.json"
        if not meta_path.is_file() or not layout.truth_path(vid).is_file():
            continue
        meta = json.loads(meta_path.read_text())
        rows = json.loads(layout.truth_path(vid).read_text())["frames"]
        visible = np.array([bool(rows[i][0]) for i in meta["native_index"]])
        if len(visible) == 0:
            continue
        shown = visible[sample_test_indices(len(visible), num_frames)]
        prepared.append(visible.mean())
        tested.append(shown.mean())
        any_seen.append(shown.any())
    n = len(prepared)
    return {
        "videos": n,
        "test_frames": num_frames,
        "prepared_share": round(float(np.mean(prepared)), 4) if n else None,
        "test_share": round(float(np.mean(tested)), 4) if n else None,
        "videos_seen": round(float(np.mean(any_seen)), 4) if n else None,
    }


def _checkpoint_stamp(run: Path) -> list[float]:
    st = RunFiles(run).checkpoint.stat()
    return [st.st_size, round(st.st_mtime, 3)]


def analyse_runs(runs: list[Any], videos: list[str], num_frames: int, cache: Path, echo=print) -> dict[str, Any]:
    """:func:`analyse_run` for every run (:class:`~ytfgvc.study.results.RunRecord` with a folder) not in ``cache``.

    ``cache`` (``attention.json``) keeps one entry per run (variant, seed, map size, the
    checkpoint's size and time, the videos); an entry is redone when the checkpoint
    changed. Runs without a checkpoint or data keep their cached entry, if any.
    Returns the whole document.
    """
    from ytfgvc.system.fsutil import write_json_atomic

    doc = json.loads(cache.read_text()) if cache.is_file() else {}
    if doc.get("version") != ATTENTION_VERSION:
        doc = {"version": ATTENTION_VERSION, "frames": num_frames, "runs": {}}
    entries = doc["runs"]
    for r in runs:
        folder = r.folder
        if folder is None or not RunFiles(folder).checkpoint.is_file():
            continue
        stamp = _checkpoint_stamp(folder)
        old = entries.get(r.name)
        if old and old.get("checkpoint") == stamp and [v["video_id"] for v in old["videos"]] == videos:
            continue
        dataset = folder.parent.parent.name  # <runs>/<dataset>/<model>/<run>
        if not (Path(_run_root(folder)) / dataset).is_dir():
            continue
        t0 = time.perf_counter()
        stats, shape = analyse_run(folder, videos, num_frames)
        entries[r.name] = {
            "variant": r.variant, "seed": r.seed, "map": shape, "checkpoint": stamp,
            "videos": [s.to_dict() for s in stats],
        }  # fmt: skip
        echo(f"attention: {r.name}, {len(videos)} videos in {time.perf_counter() - t0:.0f}s")
        write_json_atomic(cache, doc, indent=None)
    return doc


def _run_root(run: Path) -> str:
    """The data root a run was trained on (its config.yaml)."""
    import yaml

    return str((yaml.safe_load(RunFiles(run).config.read_text()) or {}).get("root", ""))


@dataclass
class GlimpseSummary:
    """One glimpse of one variant, over seeds and the videos whose test frames show the crest."""

    variant: str
    glimpse: int  # 1-based
    on_crest: float  # mean attention mass on the crest
    chance: float  # mean crest area share (uniform attention)
    excess: Any  # Estimate of (on crest - chance)
    on_bird: float  # mean mass on the frames showing the bird
    bird_share: float  # their mean share of the frames
    bird_excess: Any  # Estimate of (on bird frames - share)

    @property
    def ratio(self) -> float:
        return self.on_crest / self.chance if self.chance > 0 else float("nan")


def attention_matrices(doc: dict[str, Any], variant: str, seeds: list[int] | None = None) -> dict[str, Any] | None:
    """Per seed and video (those whose test frames show the crest, the same under every seed): the arrays.

    Returns ``{"seeds", "videos", "on" (S, V, K), "chance" (S, V), "on_bird" (S, V, K),
    "share" (S, V), "map"}`` or ``None`` when the variant has no entry.
    """
    entries = {e["seed"]: e for e in doc.get("runs", {}).values() if e["variant"] == variant}
    if seeds is not None:
        entries = {s: e for s, e in entries.items() if s in seeds}
    if not entries:
        return None
    order = sorted(entries)
    by_seed = [{v["video_id"]: v for v in entries[s]["videos"]} for s in order]
    videos = sorted(set.intersection(*(set(k for k, v in d.items() if v["chance"] > 0) for d in by_seed)))
    if not videos:
        return None
    on = np.array([[d[v]["on_detail"] for v in videos] for d in by_seed], np.float64)
    chance = np.array([[d[v]["chance"] for v in videos] for d in by_seed], np.float64)
    on_bird = np.array([[d[v]["on_visible_frames"] for v in videos] for d in by_seed], np.float64)
    share = np.array([[d[v]["visible_share"] for v in videos] for d in by_seed], np.float64)
    return {"seeds": order, "videos": videos, "on": on, "chance": chance, "on_bird": on_bird, "share": share,
            "map": entries[order[0]].get("map")}  # fmt: skip


def summarise(doc: dict[str, Any], variant: str) -> tuple[list[GlimpseSummary], dict[str, Any] | None]:
    """Per glimpse of ``variant``: mass on the crest against chance, and on the bird's frames against their share."""
    from ytfgvc.study.stats import hierarchical_bootstrap

    m = attention_matrices(doc, variant)
    if m is None:
        return [], None
    out = []
    for k in range(m["on"].shape[2]):
        out.append(
            GlimpseSummary(
                variant=variant,
                glimpse=k + 1,
                on_crest=float(m["on"][:, :, k].mean()),
                chance=float(m["chance"].mean()),
                excess=hierarchical_bootstrap(m["on"][:, :, k] - m["chance"]),
                on_bird=float(m["on_bird"][:, :, k].mean()),
                bird_share=float(m["share"].mean()),
                bird_excess=hierarchical_bootstrap(m["on_bird"][:, :, k] - m["share"]),
            )
        )
    return out, m


def compare_on_crest(doc: dict[str, Any], a: str, b: str) -> list[tuple[Any, list[float] | None]]:
    """Per glimpse, ``a``'s mass on the crest minus ``b``'s: seeds paired by number, videos by id.

    Per glimpse ``(seed-level Estimate, 95% t interval of the per-seed mean differences or None)``;
    ``[]`` where the two have no measured seed or no video in common.
    """
    from ytfgvc.study.stats import hierarchical_bootstrap, paired_t_test

    ma, mb = attention_matrices(doc, a), attention_matrices(doc, b)
    if ma is None or mb is None:
        return []
    seeds = sorted(set(ma["seeds"]) & set(mb["seeds"]))
    if not seeds:
        return []
    ma, mb = attention_matrices(doc, a, seeds), attention_matrices(doc, b, seeds)
    videos = sorted(set(ma["videos"]) & set(mb["videos"]))
    if not videos:
        return []
    ia = [ma["videos"].index(v) for v in videos]
    ib = [mb["videos"].index(v) for v in videos]
    k = min(ma["on"].shape[2], mb["on"].shape[2])
    diffs = [ma["on"][:, ia, g] - mb["on"][:, ib, g] for g in range(k)]
    return [(hierarchical_bootstrap(d), paired_t_test(d.mean(1))[2]) for d in diffs]
