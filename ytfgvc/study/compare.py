"""A study's finished runs by variant, and the comparison of two variants (per seed, over seeds, pooled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ytfgvc.metrics import Comparison, paired_bootstrap
from ytfgvc.study.results import RunRecord, StudyData
from ytfgvc.study.stats import Estimate, SeedTest, called, hierarchical_bootstrap, seed_test, win_share

if TYPE_CHECKING:
    from ytfgvc.study.run import Study


@dataclass
class VariantRuns:
    name: str
    model: str
    top1: dict[int, float] = field(default_factory=dict)  # seed -> %
    mean_class: dict[int, float] = field(default_factory=dict)
    correct: dict[int, dict[str, bool]] = field(default_factory=dict)  # seed -> video -> top-1 right
    records: dict[int, RunRecord] = field(default_factory=dict)
    compared: dict[str, Any] = field(default_factory=dict, repr=False)  # other variant -> PairComparison

    def stat(self, what: str) -> tuple[float, float, int] | None:
        vals = list(getattr(self, what).values())
        if not vals:
            return None
        return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)

    def cell(self, what: str = "top1") -> str:
        s = self.stat(what)
        return "not run" if s is None else f"{s[0]:.2f} ± {s[1]:.2f} (n={s[2]})"


def by_variant(study: Study, data: StudyData) -> dict[str, VariantRuns]:
    """The finished runs by variant name (every variant of the profile, possibly without runs)."""
    out = {v.name: VariantRuns(v.name, v.model) for v in study.variants}
    for r in data.runs:
        if r.variant not in out:
            continue
        vr = out[r.variant]
        vr.top1[r.seed], vr.mean_class[r.seed] = r.top1, r.mean_class
        # The videos the run was tested on (the official list less those the download filters dropped).
        vr.correct[r.seed] = {vid: r.predicted(vid) == label for vid, label in data.labels.items() if vid in r.top5}
        vr.records[r.seed] = r
    return out


@dataclass
class PairComparison:
    """``a`` − ``b`` (top-1, percentage points) on the seeds both have and the same test videos."""

    a: str
    b: str
    seeds: list[int]
    n_videos: int
    per_seed: dict[int, tuple[float, float, Comparison]]  # seed -> (top-1 a, top-1 b, paired bootstrap)
    seed_level: Estimate | None
    test: SeedTest
    wins: tuple[int, int, list[float]]
    pooled: Comparison

    @property
    def called(self) -> str | None:
        """Where the seed-level and t intervals exclude 0 (:func:`~ytfgvc.study.stats.called`)."""
        return called(self.seed_level.interval if self.seed_level else None, self.test.t_interval)


def correct_matrix(vr: VariantRuns, seeds: list[int], videos: list[str]) -> np.ndarray:
    return np.array([[vr.correct[s][v] for v in videos] for s in seeds], np.float64)


def compare(a: VariantRuns, b: VariantRuns) -> PairComparison | None:
    """Per seed (paired bootstrap over videos), over seeds (hierarchical bootstrap, t and sign-flip tests), pooled."""
    if b.name not in a.compared:
        a.compared[b.name] = _compare(a, b)
    return a.compared[b.name]


def _compare(a: VariantRuns, b: VariantRuns) -> PairComparison | None:
    seeds = sorted(set(a.correct) & set(b.correct))
    if not seeds:
        return None
    videos = sorted(set.intersection(*(set(a.correct[s]) & set(b.correct[s]) for s in seeds)))
    ca, cb = correct_matrix(a, seeds, videos), correct_matrix(b, seeds, videos)
    per_seed = {
        s: (float(ca[i].mean() * 100), float(cb[i].mean() * 100), paired_bootstrap(ca[i], cb[i]))
        for i, s in enumerate(seeds)
    }
    diffs = (ca - cb).mean(1) * 100
    return PairComparison(
        a=a.name,
        b=b.name,
        seeds=seeds,
        n_videos=len(videos),
        per_seed=per_seed,
        seed_level=hierarchical_bootstrap(ca - cb, scale=100) if len(seeds) > 1 else None,
        test=seed_test(diffs),
        wins=win_share(diffs),
        pooled=paired_bootstrap(ca.mean(0), cb.mean(0)),
    )
