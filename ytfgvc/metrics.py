"""Scoring shared by ``benchmark`` and ``leaderboard``: top-1, top-5, mean class accuracy,
per-class accuracy, 95% bootstrap intervals and paired comparisons.

Everything starts from *ranked labels*: for each video, label ids best first (a
predictions file's order, or :func:`rank_scores` of a score matrix). Ties in a score
matrix are broken by the lower label id, deterministically. Accuracies are percentages.

Bootstrap intervals resample test videos with replacement (``n_boot`` times, seeded);
mean class accuracy is recomputed in each resample over the classes it contains.

How the resampling is computed (why it is fast): every statistic here depends on a
video only through a small *cell* -- (class, top-1 right, top-5 right) for the scores,
(A right, B right) for a paired comparison. Drawing ``n`` videos with replacement is
then exactly a multinomial draw of ``n`` over the occupied cells with probabilities
``count / n``, so each resample costs O(cells) instead of O(videos). This is the same
nonparametric bootstrap (the same distribution of every statistic), not an
approximation; only the random stream differs from drawing video indices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

DEFAULT_BOOT = 1000
DEFAULT_SEED = 0


def rank_scores(scores: np.ndarray, k: int = 5) -> np.ndarray:
    """The ``k`` best labels of each row of ``scores`` (N, C), ties to the lower label id."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, : min(k, scores.shape[1])]


def hits(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """1.0 where the target is among the first ``k`` ranked labels, per video."""
    ranked = np.asarray(ranked)
    return (ranked[:, :k] == np.asarray(targets)[:, None]).any(axis=1).astype(np.float64)


def mean_class_accuracy(correct: np.ndarray, targets: np.ndarray) -> float:
    classes, inverse = np.unique(targets, return_inverse=True)
    per_class = np.bincount(inverse, weights=correct) / np.bincount(inverse)
    return float(per_class.mean() * 100) if len(classes) else float("nan")


def _resample_cells(cells: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap ``cells`` (one small int per video): the occupied cell ids and their counts per resample.

    Returns ``(ids, draws)`` with ``draws[b, j]`` the number of videos of cell ``ids[j]`` in
    resample ``b``; each row sums to ``len(cells)``.
    """
    ids, counts = np.unique(cells, return_counts=True)
    n = int(counts.sum())
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot)
    return ids, draws


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _boot_scores(
    c1: np.ndarray, c5: np.ndarray, inverse: np.ndarray, n_classes: int, n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """Top-1, top-5 and mean class accuracy of each bootstrap resample (percentages)."""
    # Cell = class * 3 + (top-1 right) + (top-5 right): 0 wrong, 1 top-5 only, 2 top-1 (hence top-5).
    cells = inverse * 3 + c1.astype(np.int64) + c5.astype(np.int64)
    ids, draws = _resample_cells(cells, n_boot, seed)
    n = len(cells)
    full = np.zeros((n_boot, n_classes * 3), dtype=np.int64)
    full[:, ids] = draws
    full = full.reshape(n_boot, n_classes, 3)
    videos = full.sum(axis=2)
    right1, right5 = full[:, :, 2], full[:, :, 1] + full[:, :, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(videos > 0, right1 / np.maximum(videos, 1), np.nan)
    return {
        "top1": right1.sum(axis=1) / n * 100,
        "top5": right5.sum(axis=1) / n * 100,
        "mean_class": np.nanmean(per_class, axis=1) * 100,
    }


@dataclass
class Scores:
    """What every result reports."""

    top1: float
    top5: float
    mean_class: float
    intervals: dict[str, list[float]]
    n_scored: int
    n_official: int
    coverage: float
    per_class: dict[int, float] = field(default_factory=dict)
    n_boot: int = DEFAULT_BOOT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_class"] = {str(k): v for k, v in self.per_class.items()}
        return d


def score_ranked(
    ranked: np.ndarray,
    targets: np.ndarray,
    n_official: int | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> Scores:
    """Score ranked labels (N, K>=1) against ``targets`` (N,). ``n_official``: the test list's size."""
    ranked, targets = np.asarray(ranked), np.asarray(targets)
    n = len(targets)
    if n == 0:
        raise ValueError("nothing to score: no test videos")
    c1, c5 = hits(ranked, targets, 1), hits(ranked, targets, 5)
    classes, inverse = np.unique(targets, return_inverse=True)
    per_class = np.bincount(inverse, weights=c1) / np.bincount(inverse) * 100
    n_official = n if n_official is None else n_official
    boot = _boot_scores(c1, c5, inverse, len(classes), n_boot, seed)
    return Scores(
        top1=round(float(c1.mean() * 100), 4),
        top5=round(float(c5.mean() * 100), 4),
        mean_class=round(mean_class_accuracy(c1, targets), 4),
        intervals={k: _interval(v) for k, v in boot.items()},
        n_scored=n,
        n_official=n_official,
        coverage=round(n / n_official, 6) if n_official else 0.0,
        per_class={int(k): round(float(v), 4) for k, v in zip(classes, per_class, strict=True)},
        n_boot=n_boot,
    )


def score_matrix(scores: np.ndarray, targets: np.ndarray, **kw: Any) -> Scores:
    """Score a (N, C) score matrix; see :func:`score_ranked`."""
    return score_ranked(rank_scores(scores, 5), targets, **kw)


@dataclass
class Comparison:
    """Paired bootstrap of A − B on the same videos (top-1, percentage points)."""

    diff: float
    interval: list[float]
    p_value: float  # two-sided: how often a resample's difference falls on the other side of 0
    n_videos: int
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_bootstrap(
    correct_a: np.ndarray, correct_b: np.ndarray, n_boot: int = 10000, seed: int = DEFAULT_SEED
) -> Comparison:
    """Compare two methods' per-video correctness (same videos, same order)."""
    a, b = np.asarray(correct_a, np.float64), np.asarray(correct_b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError("paired comparison needs two equal-length, non-empty per-video vectors")
    d = a - b
    # The cell of a video is its difference itself (for 0/1 correctness: -1, 0 or +1).
    values, inverse = np.unique(d, return_inverse=True)
    _, draws = _resample_cells(inverse.ravel(), n_boot, seed)
    samples = draws @ values / len(d) * 100
    diff = float(d.mean() * 100)
    below, above = float((samples <= 0).mean()), float((samples >= 0).mean())
    p = min(1.0, 2 * min(below, above))
    interval = _interval(samples)
    return Comparison(
        diff=round(diff, 4),
        interval=interval,
        p_value=round(p, 6),
        n_videos=len(d),
        significant=bool(interval[0] > 0 or interval[1] < 0),
    )
