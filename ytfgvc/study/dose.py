"""The dose-response report: RRA − TSN against the share of frames that show the bird.

The paper's argument is that RRA helps *because* fine-grained videos are redundant: the
evidence is in few frames, and attention can find them where averaging dilutes them. The
``redundancy`` study makes the same data at several values of
:attr:`~ytfgvc.synth.SynthConfig.visible_fraction` (every other property of the videos
unchanged) and trains TSN and RRA on each. The argument predicts that RRA − TSN grows as
the fraction falls, i.e. a negative slope of RRA − TSN against the fraction. The report
gives, per fraction, the seed-level estimate of RRA − TSN (as the headline of
``rra-vs-tsn``), the slope with a seed-level interval, a table and a figure, whatever they show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.study.compare import PairComparison, VariantRuns, compare, correct_matrix
from ytfgvc.study.fmt import fmt_estimate, fmt_interval, fmt_p, side_of_zero
from ytfgvc.study.stats import Estimate, called, hierarchical_slope, paired_t_test, seed_slopes


@dataclass
class DosePoint:
    fraction: float
    rra: str  # variant names
    tsn: str
    comparison: PairComparison | None
    data_key: str


def dose_points(study, runs: dict[str, VariantRuns]) -> list[DosePoint]:
    """One point per visible fraction that has an RRA and a TSN variant, by increasing fraction."""
    arms: dict[float, dict[str, Any]] = {}
    for v in study.variants:
        f = v.synth.get("visible_fraction")
        if f is None:
            continue
        arm = "rra" if v.model == "rra" else "tsn" if v.model == "tsn" else None
        if arm is not None:
            arms.setdefault(float(f), {})[arm] = v
    points = []
    for f in sorted(arms):
        if {"rra", "tsn"} <= set(arms[f]):
            a, b = runs[arms[f]["rra"].name], runs[arms[f]["tsn"].name]
            c = compare(a, b) if a.top1 and b.top1 else None
            points.append(DosePoint(f, a.name, b.name, c, arms[f]["rra"].data_key))
    return points


@dataclass
class DoseSlope:
    """The slope of RRA − TSN (pp per unit of the fraction) over the seeds every share has."""

    estimate: Estimate  # hierarchical bootstrap: seeds resampled once for all shares, then videos
    t_interval: list[float] | None  # 95% t interval of the per-seed slopes
    seeds: list[int]


def dose_slope(points: list[DosePoint], runs: dict[str, VariantRuns]) -> DoseSlope | None:
    """The slope of RRA − TSN (pp) against the fraction, over the seeds every point has (None: too few)."""
    usable = [p for p in points if p.comparison is not None]
    if len(usable) < 2:
        return None
    seeds = sorted(set.intersection(*(set(p.comparison.seeds) for p in usable)))
    if len(seeds) < 2:
        return None
    values = {}
    for p in usable:
        a, b = runs[p.rra], runs[p.tsn]
        videos = sorted(set.intersection(*(set(a.correct[s]) & set(b.correct[s]) for s in seeds)))
        values[p.fraction] = correct_matrix(a, seeds, videos) - correct_matrix(b, seeds, videos)
    t_interval = paired_t_test(seed_slopes(values, scale=100))[2]
    return DoseSlope(hierarchical_slope(values, scale=100), t_interval, seeds)


def dose_sections(study, data, runs: dict[str, VariantRuns], report: Path) -> list[str]:
    points = dose_points(study, runs)
    lines = [
        "## RRA − TSN against the share of frames that show the bird",
        "",
        "The paper's argument is that RRA helps because videos are redundant (the evidence is in few frames); it"
        " predicts that RRA − TSN grows as the share of frames showing the bird falls: a negative slope. Each"
        " share is its own dataset made by `ytfgvc synth --visible-fraction` (the same videos otherwise: only"
        " which frames show the bird changes); TSN and RRA are trained on each with every seed. Seed-level"
        " estimates as in the `rra-vs-tsn` study's headline: hierarchical bootstrap over seeds, then videos.",
        "",
        "| frames showing the bird | test videos whose test frames show it | seeds | TSN top-1 | RRA top-1 |"
        " RRA − TSN over seeds, 95% | t-test p | sign-flip p | RRA better on | pooled per-video, 95% |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    data_info = data.record.get("data") or {}
    for p in points:
        c = p.comparison
        seen = (data_info.get(p.data_key) or {}).get("test_frames") or {}
        seen_text = f"{seen['videos_seen'] * 100:.0f}%" if seen.get("videos_seen") is not None else "?"
        if c is None:
            lines.append(f"| {p.fraction:.0%} | {seen_text} | 0 | — | — | not run | | | | |")
            continue
        ta = runs[p.tsn].stat("top1")
        ra = runs[p.rra].stat("top1")
        wins, n, _ = c.wins
        lines.append(
            f"| {p.fraction:.0%} | {seen_text} | {len(c.seeds)} | {ta[0]:.2f} ± {ta[1]:.2f} |"
            f" {ra[0]:.2f} ± {ra[1]:.2f} | {fmt_estimate(c.seed_level)} | {fmt_p(c.test.t_p_value)} |"
            f" {fmt_p(c.test.sign_flip_p_value)} | {wins} of {n} | {fmt_interval(c.pooled.interval)} |"
        )
    lines.append("")
    slope = dose_slope(points, runs)
    measured = [p for p in points if p.comparison is not None]
    if measured:
        lines.append(
            "- Mean RRA − TSN by share of frames: "
            + ", ".join(f"{p.fraction:.0%}: {p.comparison.test.mean:+.2f} pp" for p in measured)
            + "."
        )
    if slope is not None:
        e = slope.estimate
        per_tenth = replace(e, mean=round(e.mean / 10, 4), interval=_tenth(e.interval))
        t_tenth = _tenth(slope.t_interval)
        n = len(slope.seeds)
        reading = {
            "below": "as the argument predicts, RRA − TSN grows as the share falls",
            "above": "against the argument's prediction, RRA − TSN shrinks as the share falls",
            None: f"with {n} seeds the study does not resolve whether RRA − TSN changes with the share",
        }[called(per_tenth.interval, t_tenth)]
        lines.append(
            f"- **Slope of RRA − TSN against the share: {fmt_estimate(per_tenth)} per 0.1 of the frames** (least"
            f" squares over the {len(measured)} shares; seed-level interval over the {n} seeds every share has:"
            f" seeds resampled once for all shares, then videos within each): the interval"
            f" {side_of_zero(per_tenth.interval)}; the t interval of the {n} seeds' own slopes"
            f" {fmt_interval(t_tenth)} {side_of_zero(t_tenth) if t_tenth else 'is not defined'}. Called only where"
            f" both exclude 0 on the same side: {reading}."
        )
    else:
        lines.append("- Slope: needs at least two shares with two seeds in common.")
    lines.append("")
    png = report.parent / "figures" / f"{study.figure_prefix}dose.png"
    if measured and _figure(points, runs, png):
        lines += [f"![RRA − TSN against the share of frames showing the bird](figures/{png.name})", ""]
    lines += ["### Per seed", "", "| frames showing the bird | seed | TSN | RRA | RRA − TSN | 95% over videos |"]
    lines.append("|---|---|---|---|---|---|")
    for p in measured:
        for s, (ta, tb, comp) in p.comparison.per_seed.items():
            lines.append(
                f"| {p.fraction:.0%} | {s} | {tb:.2f} | {ta:.2f} | {comp.diff:+.2f} | {fmt_interval(comp.interval)} |"
            )
    return lines + [""]


def _tenth(interval: list[float] | None) -> list[float] | None:
    """An interval per unit of the fraction, per 0.1 of it."""
    return None if interval is None else [round(x / 10, 4) for x in interval]


def _figure(points: list[DosePoint], runs: dict[str, VariantRuns], png: Path) -> bool:
    """Left: top-1 of TSN and RRA per share (seeds as dots, the mean as a line); right: RRA − TSN with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [p for p in points if p.comparison is not None]
    x = np.array([p.fraction for p in measured])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for arm, colour in (("tsn", "tab:blue"), ("rra", "tab:orange")):
        means = []
        for p in measured:
            vals = [runs[getattr(p, arm)].top1[s] for s in p.comparison.seeds]
            ax1.scatter([p.fraction] * len(vals), vals, s=10, color=colour, alpha=0.4)
            means.append(np.mean(vals))
        ax1.plot(x, means, "-o", color=colour, label=arm.upper())
    ax1.set_xlabel("share of frames showing the bird")
    ax1.set_ylabel("top-1 (%)")
    ax1.legend(frameon=False)
    ax1.set_title("accuracy (dots: seeds)", fontsize=10)
    for p in measured:
        diffs = [comp.diff for _, _, comp in p.comparison.per_seed.values()]
        ax2.scatter([p.fraction] * len(diffs), diffs, s=10, color="grey", alpha=0.5)
    have = [p for p in measured if p.comparison.seed_level is not None]
    if have:
        m = np.array([p.comparison.seed_level.mean for p in have])
        lo = np.array([p.comparison.seed_level.interval[0] for p in have])
        hi = np.array([p.comparison.seed_level.interval[1] for p in have])
        ax2.errorbar([p.fraction for p in have], m, yerr=[m - lo, hi - m], fmt="-o", color="black", capsize=3)
    ax2.axhline(0, color="grey", lw=0.8, ls="--")
    ax2.set_xlabel("share of frames showing the bird")
    ax2.set_ylabel("RRA − TSN (pp)")
    ax2.set_title("RRA − TSN: seed-level 95% interval", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xticks(x)
        ax.set_xticklabels([f"{f:.0%}" for f in x])
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, metadata={"Software": None})
    plt.close(fig)
    return True
