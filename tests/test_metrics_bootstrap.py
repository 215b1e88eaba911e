"""Bootstrap intervals of ytfgvc.metrics: they hold the estimate, shrink with more videos, match index resampling."""

from __future__ import annotations

import numpy as np

from ytfgvc.metrics import paired_bootstrap, score_ranked


def ranked_with_accuracy(n: int, n_classes: int, acc1: float, acc5: float, seed: int = 0):
    """Ranked labels (n, 5) whose top-1 / top-5 accuracy is exactly ``acc1`` / ``acc5``."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, n_classes, n)
    wrong = (targets[:, None] + 1 + np.arange(5)) % n_classes  # five labels, none of them the target
    ranked = wrong.copy()
    k1, k5 = int(round(acc1 * n)), int(round(acc5 * n))
    order = rng.permutation(n)
    ranked[order[:k1], 0] = targets[order[:k1]]
    ranked[order[k1:k5], 3] = targets[order[k1:k5]]
    return ranked, targets


def index_bootstrap_top1(correct: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """The textbook way: resample video indices. An oracle for the cell-count resampling."""
    idx = np.random.default_rng(seed).integers(0, len(correct), size=(n_boot, len(correct)))
    return list(np.percentile(correct[idx].mean(axis=1) * 100, [2.5, 97.5]))


def test_intervals_contain_the_point_estimate():
    ranked, targets = ranked_with_accuracy(800, 20, 0.6, 0.85)
    s = score_ranked(ranked, targets)
    assert (s.top1, s.top5) == (60.0, 85.0)
    for key in ("top1", "top5", "mean_class"):
        lo, hi = s.intervals[key]
        assert lo < getattr(s, key) < hi, key


def test_intervals_shrink_with_more_videos():
    widths = []
    for n in (200, 2000, 20000):
        ranked, targets = ranked_with_accuracy(n, 20, 0.6, 0.85, seed=n)
        s = score_ranked(ranked, targets)
        widths.append({k: s.intervals[k][1] - s.intervals[k][0] for k in ("top1", "top5", "mean_class")})
    for key in ("top1", "top5", "mean_class"):
        assert widths[0][key] > widths[1][key] > widths[2][key], (key, widths)
    # A binomial proportion's 95% interval is about 2 * 1.96 * sqrt(p(1-p)/n): 1.36 points at n = 20000, p = 0.6.
    assert abs(widths[2]["top1"] - 2 * 1.96 * np.sqrt(0.6 * 0.4 / 20000) * 100) < 0.15


def test_cell_resampling_matches_resampling_video_indices():
    ranked, targets = ranked_with_accuracy(1000, 10, 0.6, 0.8, seed=3)
    ours = score_ranked(ranked, targets, n_boot=4000, seed=1).intervals["top1"]
    oracle = index_bootstrap_top1((ranked[:, 0] == targets).astype(float), 4000, seed=2)
    assert np.allclose(ours, oracle, atol=0.5), (ours, oracle)


def test_intervals_are_seeded():
    ranked, targets = ranked_with_accuracy(300, 10, 0.5, 0.7)
    assert score_ranked(ranked, targets).intervals == score_ranked(ranked, targets).intervals


def test_paired_bootstrap_tells_a_real_difference_from_noise():
    rng = np.random.default_rng(0)
    a = (rng.random(3000) < 0.75).astype(float)
    flip = rng.random(3000) < 0.2
    b = np.where(flip, 0.0, a)  # B is A with 20% of its right answers lost
    result = paired_bootstrap(a, b)
    assert result.significant and result.diff > 0 and result.interval[0] > 0 and result.p_value < 0.01
    same = paired_bootstrap(a, np.roll(a, 0))
    assert same.diff == 0.0 and not same.significant
    c = a.copy()
    c[np.flatnonzero(a == 1)[:3]] = 0  # three videos out of 3000: noise
    close = paired_bootstrap(a, c)
    assert not close.significant and close.interval[0] <= 0 <= close.interval[1]


def test_paired_bootstrap_handles_non_binary_scores():
    a = np.linspace(0, 1, 500)
    result = paired_bootstrap(a, a - 0.1)
    assert result.diff == 10.0 and result.interval == [10.0, 10.0]
