"""Seed-level statistics of a study: what happens on a new training run, not only on new test videos.

A study trains every variant with several seeds and tests each run on the same test
videos. Two sources of variation follow: the videos (a run scores some right and some
wrong) and the seeds (another run of the same method scores differently). The per-video
bootstrap of :func:`ytfgvc.metrics.paired_bootstrap` sees only the first; pooled over
seeds, it answers "on these trained models, how much do the methods differ on new
videos?". The question of a study is "how much will they differ on a new training run?",
which needs the seeds resampled too. This module gives, for values indexed by (seed,
video), e.g. one method's top-1 correctness minus another's:

* :func:`hierarchical_bootstrap`: resample seeds with replacement, then videos with
  replacement within each resampled seed, and take the mean; 95% percentile interval;
* :func:`paired_t_test`: one-sample t-test of the per-seed differences (scipy), with its
  95% t interval;
* :func:`sign_flip_test`: the exact permutation test of the per-seed differences (every
  assignment of signs: 2^n for n seeds);
* :func:`win_share`: on how many seeds the difference is positive, with the exact
  (Clopper-Pearson) 95% interval of that share;
* :func:`hierarchical_slope`: the least-squares slope of a difference against a dose
  (the visible fraction of the dose-response study), seeds and videos resampled, and
  :func:`seed_slopes`, each seed's own slope (for the t interval across seeds);
* :func:`called`: the rule by which a difference is called: the bootstrap interval and the
  t interval across seeds exclude 0 on the same side.

Every random draw is seeded (:data:`N_BOOT` resamples, seed :data:`SEED`), so every number
a report prints can be recomputed from the committed results (``tests/test_study_results.py``
does).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

N_BOOT = 10000
SEED = 0
EXACT_SIGN_FLIP_MAX = 20  # seeds; beyond, N_BOOT random sign assignments
CHUNK_VALUES = 2_000_000  # values drawn at a time by the bootstrap (memory bound)
MAX_CELLS = 16  # distinct values up to which videos are resampled as multinomial counts


def _percentile_interval(samples: np.ndarray) -> list[float]:
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return [round(float(lo), 4), round(float(hi), 4)]


def _two_sided_p(samples: np.ndarray) -> float:
    """How often a resample falls on the other side of 0, doubled (as :func:`~ytfgvc.metrics.paired_bootstrap`)."""
    return round(min(1.0, 2 * min(float((samples <= 0).mean()), float((samples >= 0).mean()))), 6)


@dataclass
class Estimate:
    """A mean and its 95% interval (``method`` says which)."""

    mean: float
    interval: list[float]
    p_value: float | None
    n_seeds: int
    n_videos: int
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.interval[0] > 0 or self.interval[1] < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_matrix(values: Any) -> np.ndarray:
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ValueError("expected a non-empty (seeds, videos) array")
    return v


def _resampled_means(
    v: np.ndarray, rng: np.random.Generator, n_boot: int, rows: np.ndarray | None = None
) -> np.ndarray:
    """``n_boot`` hierarchical resample means of ``v`` (seeds, videos); ``rows`` (n_boot, seeds): the seeds drawn.

    Where ``v`` takes few distinct values (top-1 differences: -1, 0, 1), a seed's video
    resample is drawn as multinomial counts of those values (the cell method of
    :mod:`ytfgvc.metrics`: the same bootstrap distribution, a different random stream);
    otherwise video indices are drawn.
    """
    s, n = v.shape
    if rows is None:
        rows = rng.integers(0, s, size=(n_boot, s))
    values, inverse = np.unique(v, return_inverse=True)
    inverse = inverse.reshape(v.shape)
    if len(values) <= MAX_CELLS:
        p = np.stack([np.bincount(inverse[i], minlength=len(values)) / n for i in range(s)])
        counts = rng.multinomial(n, p[rows])  # (n_boot, s, cells)
        return (counts @ values).sum(1) / (s * n)
    out = np.empty(n_boot)
    step = max(1, CHUNK_VALUES // (s * n))
    for b0 in range(0, n_boot, step):
        m = min(step, n_boot - b0)
        cols = rng.integers(0, n, size=(m, s, n))
        out[b0 : b0 + m] = v[rows[b0 : b0 + m, :, None], cols].mean(axis=(1, 2))
    return out


def hierarchical_bootstrap(values: Any, scale: float = 1.0, n_boot: int = N_BOOT, seed: int = SEED) -> Estimate:
    """Mean of ``values`` (seeds, videos) and its 95% interval, seeds then videos within each seed resampled.

    One resample draws ``S`` seed rows with replacement and, for each drawn row
    independently, ``V`` videos with replacement; its statistic is the mean over the drawn
    (seed, video) values. ``scale`` multiplies everything (100: fractions to percentage points).
    """
    v = _as_matrix(values) * scale
    s, n = v.shape
    samples = _resampled_means(v, np.random.default_rng(seed), n_boot)
    return Estimate(
        mean=round(float(v.mean()), 4),
        interval=_percentile_interval(samples),
        p_value=_two_sided_p(samples),
        n_seeds=s,
        n_videos=n,
        method=f"hierarchical bootstrap ({n_boot} resamples of seeds, then of videos within each seed; seed {seed})",
    )


def hierarchical_slope(
    values: dict[float, Any], scale: float = 1.0, n_boot: int = N_BOOT, seed: int = SEED
) -> Estimate:
    """Least-squares slope of the mean of ``values[x]`` (seeds, videos) against ``x``, with its 95% interval.

    The seeds are paired across ``x`` (row ``i`` of every matrix is the same seed): a
    resample draws seed rows once for all ``x``, then videos within each (seed, ``x``).
    """
    xs = sorted(values)
    if len(xs) < 2:
        raise ValueError("a slope needs at least two doses")
    mats = [_as_matrix(values[x]) * scale for x in xs]
    s = mats[0].shape[0]
    if any(m.shape[0] != s for m in mats):
        raise ValueError("every dose needs the same seeds")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, s, size=(n_boot, s))
    means = np.stack([_resampled_means(m, rng, n_boot, rows) for m in mats], axis=1)
    x = np.asarray(xs, np.float64)
    xc = x - x.mean()
    slopes = (means - means.mean(1, keepdims=True)) @ xc / (xc @ xc)
    observed = np.array([m.mean() for m in mats])
    slope = float((observed - observed.mean()) @ xc / (xc @ xc))
    return Estimate(
        mean=round(slope, 4),
        interval=_percentile_interval(slopes),
        p_value=_two_sided_p(slopes),
        n_seeds=s,
        n_videos=int(min(m.shape[1] for m in mats)),
        method=f"least-squares slope, hierarchical bootstrap ({n_boot} resamples; seed {seed})",
    )


@dataclass
class SeedTest:
    """Tests of the per-seed differences."""

    n_seeds: int
    mean: float
    sd: float
    t: float | None
    df: int
    t_p_value: float | None
    t_interval: list[float] | None
    sign_flip_p_value: float | None
    sign_flip_assignments: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_t_test(diffs: Any) -> tuple[float | None, float | None, list[float] | None]:
    """One-sample t-test of per-seed differences against 0: ``(t, two-sided p, 95% t interval)``.

    ``None`` where it is not defined (fewer than 2 seeds, or all differences equal).
    """
    from scipy import stats

    d = np.asarray(diffs, np.float64)
    if len(d) < 2 or float(np.ptp(d)) == 0.0:
        return None, None, None
    res = stats.ttest_1samp(d, 0.0)
    ci = res.confidence_interval(0.95)
    return (
        round(float(res.statistic), 4),
        round(float(res.pvalue), 6),
        [round(float(ci.low), 4), round(float(ci.high), 4)],
    )


def sign_flip_test(diffs: Any, n_boot: int = N_BOOT, seed: int = SEED) -> tuple[float | None, int]:
    """Two-sided permutation test of per-seed differences: ``(p, sign assignments used)``.

    Under the null each difference is as likely negative as positive; p is the share of
    sign assignments whose |mean| is at least the observed one. Exact (all 2^n) up to
    :data:`EXACT_SIGN_FLIP_MAX` seeds, else ``n_boot`` random assignments (seeded) and the
    observed one: ``(hits + 1) / (n_boot + 1)``, never 0.
    """
    d = np.asarray(diffs, np.float64)
    if len(d) == 0:
        return None, 0
    observed = abs(d.mean())
    if len(d) <= EXACT_SIGN_FLIP_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        hits = int((np.abs(signs @ d / len(d)) >= observed - 1e-9).sum())
        return round(hits / len(signs), 6), len(signs)
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_boot, len(d)))
    hits = int((np.abs(signs @ d / len(d)) >= observed - 1e-9).sum())
    return round((hits + 1) / (n_boot + 1), 6), n_boot + 1


def seed_test(diffs: Any) -> SeedTest:
    d = np.asarray(diffs, np.float64)
    t, p, ci = paired_t_test(d)
    sp, n_assign = sign_flip_test(d)
    return SeedTest(
        n_seeds=len(d),
        mean=round(float(d.mean()), 4) if len(d) else float("nan"),
        sd=round(float(d.std(ddof=1)), 4) if len(d) > 1 else 0.0,
        t=t,
        df=max(0, len(d) - 1),
        t_p_value=p,
        t_interval=ci,
        sign_flip_p_value=sp,
        sign_flip_assignments=n_assign,
    )


def called(interval: list[float] | None, t_interval: list[float] | None) -> str | None:
    """``"above"`` or ``"below"``: the side of 0 that the bootstrap interval and the t interval both exclude; else None.

    The rule by which a report calls a difference across seeds: with few seeds a bootstrap
    over seeds is too narrow to call one alone (it only recombines the seeds it has).
    """
    if interval is None or t_interval is None:
        return None
    if interval[0] > 0 and t_interval[0] > 0:
        return "above"
    if interval[1] < 0 and t_interval[1] < 0:
        return "below"
    return None


def seed_slopes(values: dict[float, Any], scale: float = 1.0) -> np.ndarray:
    """Per seed, the least-squares slope of its mean of ``values[x]`` (seeds, videos) against ``x``."""
    xs = sorted(values)
    means = np.stack([_as_matrix(values[x]).mean(1) * scale for x in xs], axis=1)  # (seeds, doses)
    xc = np.asarray(xs, np.float64) - np.mean(xs)
    return (means - means.mean(1, keepdims=True)) @ xc / (xc @ xc)


def win_share(diffs: Any) -> tuple[int, int, list[float]]:
    """``(seeds with a positive difference, seeds, exact 95% interval of the share)``."""
    from scipy import stats

    d = np.asarray(diffs, np.float64)
    wins, n = int((d > 0).sum()), len(d)
    if n == 0:
        return 0, 0, [0.0, 1.0]
    ci = stats.binomtest(wins, n).proportion_ci(0.95, method="exact")
    return wins, n, [round(float(ci.low), 4), round(float(ci.high), 4)]
