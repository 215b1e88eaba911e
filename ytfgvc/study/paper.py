"""The paper's ablations (Tables 3 and 4, section 5.2) beside a study's runs: the tables and the orderings."""

from __future__ import annotations

from ytfgvc.study.compare import VariantRuns, compare
from ytfgvc.study.fmt import fmt_estimate, names

# The paper's ActivityNet v1.3 numbers (mAP, ResNet-152), copied from Tables 3 and 4.
PAPER_TABLE3 = {  # loss: (mAP_c, mAP_e)
    "lc": (80.27, 77.84),
    "le": (25.75, 36.24),
    "lc+le": (81.48, 80.45),
    "lc+li+le": (82.28, 82.59),
    "li": (82.60, 82.97),
    "lc+li": (82.41, 82.80),
    "li+le": (82.90, 83.42),
}
TABLE3_ROWS = [  # (label, loss, variant name in the study)
    ("Lc", "lc", "loss_lc"),
    ("Le", "le", "loss_le"),
    ("Lc + Le", "lc+le", "loss_lc_le"),
    ("Lc + Li + Le", "lc+li+le", "loss_lc_li_le"),
    ("Li", "li", "loss_li"),
    ("Lc + Li", "lc+li", "loss_lc_li"),
    ("Le + Li", "li+le", "rra"),
]
PAPER_TABLE4_LEFT = {1: 80.89, 2: 82.14, 3: 82.12, 4: 83.42, 5: 82.94}
TABLE4_LEFT = {1: "k1", 2: "k2", 3: "k3", 4: "rra", 5: "k5"}
TABLE4_RIGHT = [  # (No., what, paper mAP, variant)
    (1, "spatio-temporal average pooling instead of attention", 80.20, "avgpool"),
    (2, "spatial attention and temporal average pooling", 81.97, "spatial_attention"),
    (3, "no BN", 82.41, "no_bn"),
    (4, "no ReLU", 83.15, "no_relu"),
    (5, "no tanh", 82.75, "no_tanh"),
    (6, "-ReLU(x) instead of tanh(x)", 82.75, "neg_relu"),
]
PAPER_FULL, PAPER_PARALLEL = 83.42, 82.39  # the 83.42 model; 4 parallel glimpses (section 5.2)
# Every model of Table 4 and section 5.2 by variant name, with the paper's mAP.
PAPER_TABLE4_MODELS = {
    **{name: PAPER_TABLE4_LEFT[k] for k, name in TABLE4_LEFT.items()},
    **{name: paper for _, _, paper, name in TABLE4_RIGHT},
    "parallel": PAPER_PARALLEL,
}


def _ours(runs: dict[str, VariantRuns], name: str) -> str:
    return runs[name].cell("top1") if name in runs else "not in this profile"


def ablation_tables(runs: dict[str, VariantRuns]) -> list[str]:
    lines = [
        "## Ablations in the paper's layout",
        "",
        "Paper: mAP on ActivityNet v1.3 validation, ResNet-152 (Tables 3 and 4). Ours: top-1 % on the synthetic"
        " test set (the ensemble score of eq. 6, or the concatenation score where the model predicts with it),"
        " mean ± std over seeds. The two are different metrics on different data: compare orderings, not values.",
        "",
        "### Table 3: losses (4 glimpses)",
        "",
        "| loss | paper mAP_c | paper mAP_e | ours top-1 |",
        "|---|---|---|---|",
    ]
    for label, loss, name in TABLE3_ROWS:
        pc, pe = PAPER_TABLE3[loss]
        lines.append(f"| {label} | {pc:.2f} | {pe:.2f} | {_ours(runs, name)} |")
    lines += ["", "### Table 4 (left): number of glimpses (Li + Le)", "", "| #glimpses | paper mAP | ours top-1 |"]
    lines.append("|---|---|---|")
    for k, name in TABLE4_LEFT.items():
        lines.append(f"| {k} | {PAPER_TABLE4_LEFT[k]:.2f} | {_ours(runs, name)} |")
    lines += ["", "### Table 4 (right): the RRA module changed", "", "| No. | change | paper mAP | ours top-1 |"]
    lines.append("|---|---|---|---|")
    for no, what, paper, name in TABLE4_RIGHT:
        lines.append(f"| {no} | {what} | {paper:.2f} | {_ours(runs, name)} |")
    lines.append(f"| — | none (the full model) | {PAPER_FULL:.2f} | {_ours(runs, 'rra')} |")
    lines.append(f"| — | 4 parallel glimpses (section 5.2) | {PAPER_PARALLEL:.2f} | {_ours(runs, 'parallel')} |")
    lines += ["", *_ordering(runs), ""]
    return lines


def _rank(values: dict[str, float], name: str) -> int:
    return 1 + sum(v > values[name] for k, v in values.items() if k != name)


def _resolved(runs: dict[str, VariantRuns], variants: list[str]) -> list[str]:
    """The variants whose RRA − variant is called (the seed-level and t intervals exclude 0 on one side)."""
    out = []
    for n in variants:
        c = compare(runs["rra"], runs[n]) if runs[n].top1 else None
        if c is not None and c.called:
            out.append(f"{n} ({fmt_estimate(c.seed_level)})")
    return out


def _ordering(runs: dict[str, VariantRuns]) -> list[str]:
    """The paper's orderings, stated from its numbers, beside ours, stated from the runs."""
    mean = {n: r.stat("top1")[0] for n, r in runs.items() if r.top1}
    out = [
        "### The paper's orderings here",
        "",
        "Ours are mean top-1 over seeds; a difference is *resolved* when the seed-level interval of RRA − variant"
        " and the t interval across seeds exclude 0 on the same side (the headline's rule).",
        "",
    ]
    if "rra" not in mean:
        return out + ["- The full model was not run."]
    found = [
        *_table4_right(runs, mean),
        *_table4_left(runs, mean),
        *_table3(runs, mean),
        *_parallel(runs, mean),
    ]
    common = [n for n in PAPER_TABLE4_MODELS if n in mean]
    if not found and len(common) < 3:
        found.append("- No ablation of the paper's tables was run in this profile.")
    return out + found + _rank_correlation(mean, common)


def _table4_right(runs: dict[str, VariantRuns], mean: dict[str, float]) -> list[str]:
    right = [n for _, _, _, n in TABLE4_RIGHT if n in mean]
    if not right:
        return []
    paper_low = min(TABLE4_RIGHT, key=lambda t: t[2])
    lowest = min(right, key=lambda n: mean[n])
    below = [n for n in right if mean[n] < mean["rra"]]
    return [
        f"- Table 4 (right): in the paper the full model ({PAPER_FULL:.2f}) is above all six changes and the"
        f" lowest is No. {paper_low[0]}, {paper_low[3]} ({paper_low[2]:.2f}). Here the full model's mean"
        f" ({mean['rra']:.2f}) is above {len(below)} of {len(right)} ({names(below)}) and the lowest is"
        f" {lowest} ({mean[lowest]:.2f}); resolved: {names(_resolved(runs, right))}."
    ]


def _table4_left(runs: dict[str, VariantRuns], mean: dict[str, float]) -> list[str]:
    left = [k for k, n in TABLE4_LEFT.items() if n in mean]
    if len(left) < 2:
        return []
    best = max(left, key=lambda k: mean[TABLE4_LEFT[k]])
    paper_best = max(PAPER_TABLE4_LEFT, key=PAPER_TABLE4_LEFT.get)
    others = [TABLE4_LEFT[k] for k in left if TABLE4_LEFT[k] != "rra"]
    return [
        f"- Table 4 (left): in the paper {paper_best} glimpses is best ({PAPER_TABLE4_LEFT[paper_best]:.2f}). Here"
        f" the highest mean is {best} glimpses ({mean[TABLE4_LEFT[best]]:.2f}); RRA (4) against the other numbers"
        f" resolved: {names(_resolved(runs, others))}."
    ]


def _table3(runs: dict[str, VariantRuns], mean: dict[str, float]) -> list[str]:
    t3 = [(label, loss, n) for label, loss, n in TABLE3_ROWS if n in mean]
    if len(t3) < 2:
        return []
    p_best = max(TABLE3_ROWS, key=lambda t: PAPER_TABLE3[t[1]][1])
    p_worst = min(TABLE3_ROWS, key=lambda t: PAPER_TABLE3[t[1]][1])
    best = max(t3, key=lambda t: mean[t[2]])
    worst = min(t3, key=lambda t: mean[t[2]])
    others = [n for _, _, n in t3 if n != "rra"]
    return [
        f"- Table 3: in the paper (mAP_e) the best loss is {p_best[0]} ({PAPER_TABLE3[p_best[1]][1]:.2f}) and the"
        f" worst {p_worst[0]} ({PAPER_TABLE3[p_worst[1]][1]:.2f}). Here the best is {best[0]}"
        f" ({mean[best[2]]:.2f}) and the worst {worst[0]} ({mean[worst[2]]:.2f}); RRA (Le + Li) against the"
        f" others resolved: {names(_resolved(runs, others))}."
    ]


def _parallel(runs: dict[str, VariantRuns], mean: dict[str, float]) -> list[str]:
    if "parallel" not in mean:
        return []
    models = PAPER_TABLE4_MODELS
    paper_above = sorted((n for n in models if models[n] < PAPER_PARALLEL), key=lambda n: -models[n])
    paper_below = sorted((n for n in models if models[n] > PAPER_PARALLEL), key=lambda n: -models[n])
    ours = {n: mean[n] for n in models if n in mean}
    ours_above = sorted((n for n in ours if ours[n] < ours["parallel"]), key=lambda n: -ours[n])
    c = compare(runs["rra"], runs["parallel"])
    return [
        f"- Parallel glimpses (section 5.2): in the paper {PAPER_PARALLEL:.2f}, rank {_rank(models, 'parallel')}"
        f" of the {len(models)} models of Table 4 and section 5.2: below {names(paper_below)}, above"
        f" {names(paper_above)}. Here {ours['parallel']:.2f}, rank {_rank(ours, 'parallel')} of {len(ours)},"
        f" above {names(ours_above)}; RRA − parallel over seeds:"
        f" {fmt_estimate(c.seed_level) if c and c.seed_level else 'n/a'}."
    ]


def _rank_correlation(mean: dict[str, float], common: list[str]) -> list[str]:
    """Spearman's ρ between the paper's numbers and our means, over the models of Table 4 and section 5.2 run."""
    from scipy import stats

    if len(common) < 3:
        return []
    rho = stats.spearmanr([PAPER_TABLE4_MODELS[n] for n in common], [mean[n] for n in common]).statistic
    return [
        f"- Rank correlation between the paper's numbers and our means over the {len(common)} models of Table 4"
        f" and section 5.2 run here: Spearman ρ = {rho:+.2f}."
    ]
