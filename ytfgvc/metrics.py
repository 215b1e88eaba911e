"""Scoring shared by ``benchmark`` and ``leaderboard``: top-1, top-5, mean class accuracy,
per-class accuracy, 95% bootstrap intervals and paired comparisons.

Everything starts from *ranked labels*: for each video, label ids best first (a
predictions file's order, or :func:`rank_scores` of a score matrix). Ties in a score
matrix are broken by the lower label id, deterministically. Accuracies are percentages.

Bootstrap intervals resample test videos with replacement (``n_boot`` times, seeded);
mean class accuracy is recomputed in each resample over the classes it contains.
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


def _boot_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _boot_mean_class(correct: np.ndarray, targets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    classes, inverse = np.unique(targets, return_inverse=True)
    c = len(classes)
    flat = (inverse[idx] + c * np.arange(idx.shape[0])[:, None]).ravel()
    size = c * idx.shape[0]
    counts = np.bincount(flat, minlength=size).reshape(-1, c)
    right = np.bincount(flat, weights=correct[idx].ravel(), minlength=size).reshape(-1, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(counts > 0, right / np.maximum(counts, 1), np.nan), axis=1) * 100


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
    idx = _boot_indices(n, n_boot, seed)
    classes, inverse = np.unique(targets, return_inverse=True)
    per_class = np.bincount(inverse, weights=c1) / np.bincount(inverse) * 100
    n_official = n if n_official is None else n_official
    return Scores(
        top1=round(float(c1.mean() * 100), 4),
        top5=round(float(c5.mean() * 100), 4),
        mean_class=round(mean_class_accuracy(c1, targets), 4),
        intervals={
            "top1": _interval(c1[idx].mean(axis=1) * 100),
            "top5": _interval(c5[idx].mean(axis=1) * 100),
            "mean_class": _interval(_boot_mean_class(c1, targets, idx)),
        },
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
    idx = _boot_indices(len(d), n_boot, seed)
    samples = d[idx].mean(axis=1) * 100
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
