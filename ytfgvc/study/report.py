"""The reports of the studies (``baselines/synthetic/README*.md``), rebuilt from their results.

The results are the run folders (``metrics.json``, ``predictions.json`` of each run, and the
checkpoints for the attention numbers) on the machine that ran the study, or anywhere the
committed results folder (:mod:`ytfgvc.study.results`: ``runs.json``, ``study.json``,
``attention.json``). Every sentence that says something about the results is generated
from numbers computed here, with the functions of :mod:`ytfgvc.study.stats` and
:func:`ytfgvc.metrics.paired_bootstrap` (``tests/test_study_results.py`` recomputes every
interval of the committed reports). Three kinds of report (the study file's ``report``):

* ``rra-vs-tsn``: the headline comparisons (RRA, TSN, average pooling) per seed, over seeds
  and pooled; every variant; Tables 3 and 4 beside the paper's; where the glimpses look;
* ``redundancy``: RRA − TSN against the share of frames that show the bird (:mod:`ytfgvc.study.dose`);
* ``attention``: the attention mass on the crest per glimpse, RRA against the reduction
  step's ablations, at an input where the feature map resolves the crest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles
from ytfgvc.metrics import Comparison, paired_bootstrap
from ytfgvc.study.results import RunRecord
from ytfgvc.study.run import Study
from ytfgvc.study.stats import (
    N_BOOT,
    SEED,
    Estimate,
    SeedTest,
    called,
    hierarchical_bootstrap,
    seed_test,
    win_share,
)
from ytfgvc.system.fsutil import write_text_atomic

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
HEADLINE_PAIRS = [("rra", "tsn"), ("rra", "avgpool"), ("avgpool", "tsn")]
DISPLAY = {"rra": "RRA", "tsn": "TSN", "avgpool": "average pooling"}
FIGURE_VIDEOS = 2


# --------------------------------------------------------------------------- formatting (tests use these)


def fmt_interval(iv: list[float] | None, signed: bool = True, digits: int = 2) -> str:
    if iv is None:
        return "n/a"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"[{f.format(iv[0])}, {f.format(iv[1])}]"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float | None) -> str:
    """``p = 0.123`` or ``p < 0.001``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def fmt_estimate(e: Estimate | None, unit: str = " pp", digits: int = 2) -> str:
    if e is None:
        return "n/a"
    return f"{e.mean:+.{digits}f}{unit} {fmt_interval(e.interval, digits=digits)}"


def fmt_comparison(c: Comparison | dict[str, Any]) -> str:
    c = c if isinstance(c, dict) else c.to_dict()
    return f"{c['diff']:+.2f} pp {fmt_interval(c['interval'])}"


def side_of_zero(interval: list[float]) -> str:
    lo, hi = interval
    return "lies above 0" if lo > 0 else "lies below 0" if hi < 0 else "contains 0"


def display(name: str) -> str:
    return DISPLAY.get(name, name)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


# --------------------------------------------------------------------------- the results


@dataclass
class StudyData:
    """Everything a report is computed from."""

    runs: list[RunRecord]
    labels: dict[str, int]
    record: dict[str, Any]
    attention: dict[str, Any]
    source: str
    runs_root: Path | None = None  # run folders (checkpoints: attention and figures can be computed)


def load_results(
    study: Study, root: Path | str, out: Path | str, results: Path | None = None, prefer_results: bool = False
) -> StudyData:
    """The study's runs: the finished run folders under ``out``, else the results folder.

    ``results``: the results folder (default the committed one, :attr:`Study.results_dir`);
    ``prefer_results``: read it even where run folders exist.
    """
    from ytfgvc.datasets.official import load_official
    from ytfgvc.study.record import ATTENTION, RECORD, RUNS, read_record
    from ytfgvc.study.results import read_run_folder, read_runs_json

    runs_root = study.runs_root(out)
    folders = []
    if not prefer_results and results is None:
        for v, s in study.jobs():
            folder = study.run_folder(out, v, s)
            if RunFiles(folder).finished:
                folders.append(read_run_folder(folder, study.run_name(v, s), v.name, v.model, s))
    if folders:
        record = read_record(runs_root / RECORD)
        labels = record.get("test_labels")
        if labels is None:
            for v in [None, *study.variants]:
                if (study.data_root(root, v) / study.dataset).is_dir():
                    labels = dict(load_official(study.data_root(root, v), study.dataset).test)
                    break
        if labels is None:
            raise YtfgvcError(f"no data under {study.data_root(root)} and no test labels in {runs_root / RECORD}",
                              "pass the --root the study ran with")  # fmt: skip
        att_path = runs_root / ATTENTION
        attention = json.loads(att_path.read_text()) if att_path.is_file() else {}
        return StudyData(folders, labels, record, attention, f"the run folders under {runs_root}", runs_root)
    rdir = Path(results) if results is not None else study.results_dir
    if not (rdir / RUNS).is_file():
        raise YtfgvcError(
            f"no finished runs under {runs_root} and no {RUNS} in {rdir}",
            "run the study first, or pass --out with its runs or --results with its results folder",
        )
    _, runs = read_runs_json(rdir / RUNS)
    known = {(v.name, s) for v, s in study.jobs()}
    runs = [r for r in runs if (r.variant, r.seed) in known]
    record = read_record(rdir / RECORD)
    attention = json.loads((rdir / ATTENTION).read_text()) if (rdir / ATTENTION).is_file() else {}
    try:
        shown = rdir.resolve().relative_to(study.path.parent.resolve())
    except ValueError:
        shown = rdir
    return StudyData(runs, dict(record.get("test_labels") or {}), record, attention, f"`{shown}/{RUNS}`")


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

    @property
    def seeds(self) -> list[int]:
        return sorted(self.top1)


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


# --------------------------------------------------------------------------- the report


def build_report(study: Study, data: StudyData, report: Path, figures: bool = True, echo=print) -> str:
    """Render the study's report as Markdown (and its figures beside it); returns the text."""
    if not data.runs:
        raise YtfgvcError(f"no finished runs of study {study.name} (profile {study.profile})", "run the study first")
    _attention_data(study, data, echo)
    lines = [f"# Study `{study.name}` on the synthetic dataset (profile `{study.profile}`)", ""]
    lines += setup_section(study, data)
    runs = by_variant(study, data)
    if study.kind == "redundancy":
        from ytfgvc.study.dose import dose_sections

        lines += dose_sections(study, data, runs, report)
    elif study.kind == "attention":
        lines += _accuracy_section(study, runs)
        lines += attention_sections(study, data, runs, report, figures)
    else:
        lines += _headline_section(runs)
        lines += _summary_table(study, runs)
        lines += _ablation_tables(runs)
        lines += attention_sections(study, data, runs, report, figures)
    text = "\n".join(lines).rstrip() + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report, text)
    return text


def _attention_data(study: Study, data: StudyData, echo) -> None:
    """With run folders: measure the attention of every run of the study's attention variants not measured yet."""
    from ytfgvc.study.attention import analyse_runs

    if data.runs_root is None or not study.attention:
        return
    runs = [r for r in data.runs if r.variant in study.attention]
    # The test videos every run was tested on (they have frames), in id order.
    videos = sorted(set(data.labels).intersection(*(r.top5 for r in runs))) if runs else []
    if study.attention_videos is not None:
        videos = videos[: study.attention_videos]
    frames = int(study.config.get("test_segments", 8))
    data.attention = analyse_runs(runs, videos, frames, data.runs_root / "attention.json", echo=echo)


def _seed_ranges(seeds: list[int]) -> str:
    if not seeds:
        return "none"
    parts, start = [], seeds[0]
    for a, b in zip(seeds, [*seeds[1:], None], strict=True):
        if b != a + 1:
            parts.append(f"{start}" if start == a else f"{start}–{a}")
            start = b
    return ", ".join(parts)


def setup_section(study: Study, data: StudyData) -> list[str]:
    cfg = study.config
    kw = cfg.get("model", {}).get("kwargs", {})
    rec = data.record
    sessions = rec.get("sessions") or []
    total = sum(s.get("seconds", 0.0) for s in sessions)
    devices = ", ".join(dict.fromkeys(s.get("device", "?") for s in sessions)) or "unknown"
    planned = study.jobs()
    by_seeds: dict[str, list[str]] = {}
    for v in study.variants:
        by_seeds.setdefault(_seed_ranges(study.seeds_of(v)), []).append(v.name)
    seeds_text = "; ".join(f"{', '.join(names)}: seeds {rng}" for rng, names in by_seeds.items())
    run_time = sum(r.wall_time_s for r in data.runs)
    tested = set(data.labels).intersection(*(r.top5 for r in data.runs)) if data.runs else set()
    lines = [
        f"Regenerated by `ytfgvc study {study.name} --profile {study.profile} --results-only` from {data.source};"
        " do not edit by hand. Every interval below is recomputed from the committed results by"
        " `tests/test_study_results.py`.",
        "",
        f"- device and time: {devices}; the study took {total:.0f} s of wall time in {plural(len(sessions), 'session')}"
        f" (the runs' own wall times sum to {run_time:.0f} s: {study.parallel} ran at a time)",
    ]
    for i, s in enumerate(sessions, 1):
        finished, already = s.get("finished_runs"), s.get("already_finished") or 0
        what = ""
        if finished is not None:
            what = f", {finished} of {s.get('runs')} runs finished" + (f" ({already} done before)" if already else "")
        lines.append(
            f"  - session {i}: `{s.get('command') or '?'}` on {s.get('device', '?')}, {s.get('seconds', 0):.0f} s{what}"
        )
    lines += [
        f"- runs: {len(data.runs)} of the {len(planned)} the profile plans ({seeds_text})",
        f"- data: `ytfgvc synth` with {study.synth}, frames at short side {study.short_side}; {len(tested)} test"
        f" videos tested (of the {len(data.labels)} of the official list: the others are the ones the download"
        " filters drop, made too long or too small on purpose)",
        f"- every run: backbone {kw.get('backbone')} from scratch (no ImageNet weights), input {cfg.get('input_size')}"
        f" px, {cfg.get('num_segments')} segments, {cfg.get('epochs')} epochs, Adam lr {cfg.get('lr')}, batch"
        f" {cfg.get('batch_size')}, dropout {kw.get('dropout')}; test {cfg.get('test_segments')} frames x"
        f" {cfg.get('test_crops')} crop",
        f"- study definition: `{study.path.name}`; results: `{study.results}/` (`runs.json`: every run's scores and"
        " top-5 labels per test video; `study.json`: test labels, data, sessions; `attention.json`)",
        "",
    ]
    return lines


def _headline_section(runs: dict[str, VariantRuns]) -> list[str]:
    lines = [
        "## Headline: RRA, TSN and average pooling (top-1, percentage points)",
        "",
        "The headline of each comparison is its **seed-level** estimate: the question is what happens on a new"
        " training run, and a run's accuracy varies with its seed as well as with the test videos. It is the mean"
        " over seeds of the difference, with a hierarchical bootstrap interval (seeds resampled, then test videos"
        f" within each resampled seed; {N_BOOT} resamples, seed {SEED}), a paired t-test and an exact sign-flip test"
        " across seeds. The pooled per-video interval beside it resamples test videos only: it holds the trained"
        " models fixed and answers a narrower question (these models, new videos). With few seeds a bootstrap"
        " over seeds is too narrow (it can only recombine the seeds it has: 3 seeds give 10 distinct draws), so"
        " read it beside the t interval, and a sign-flip p can be no smaller than 2 / 2^seeds. A comparison is"
        " called only where the bootstrap interval and the t interval exclude 0 on the same side.",
        "",
    ]
    any_pair = False
    for a, b in HEADLINE_PAIRS:
        if a in runs and b in runs and runs[a].top1 and runs[b].top1:
            c = compare(runs[a], runs[b])
            if c is not None:
                lines += pair_block(c)
                any_pair = True
    if not any_pair:
        lines += ["RRA and TSN do not both have finished runs in this profile.", ""]
    return lines


def pair_block(c: PairComparison) -> list[str]:
    a, b = display(c.a), display(c.b)
    lines = [
        f"### {a} − {b}",
        "",
        f"| seed | {b} | {a} | {a} − {b} | 95% over videos (paired bootstrap) | p |",
        "|---|---|---|---|---|---|",
    ]
    for s, (ta, tb, comp) in c.per_seed.items():
        lines.append(
            f"| {s} | {tb:.2f} | {ta:.2f} | {comp.diff:+.2f} | {fmt_interval(comp.interval)} | {fmt_p(comp.p_value)} |"
        )
    t = c.test
    wins, n, share_ci = c.wins
    lines.append("")
    if c.seed_level is not None:
        e = c.seed_level
        lines.append(
            f"- **Over seeds (the headline): {fmt_estimate(e)}**, hierarchical bootstrap over {e.n_seeds} seeds and"
            f" {e.n_videos} test videos; the interval {side_of_zero(e.interval)}."
        )
    else:
        lines.append(f"- Over seeds: only {len(c.seeds)} seed, no seed-level interval.")
    if t.t is not None:
        lines.append(
            f"- Paired t-test across the {t.n_seeds} seeds (per-seed differences: mean {t.mean:+.2f}, sd {t.sd:.2f}):"
            f" t = {t.t:.2f}, df = {t.df}, {p_is(t.t_p_value)}; 95% t interval {fmt_interval(t.t_interval)}."
        )
    if t.sign_flip_p_value is not None and t.n_seeds > 1 and t.sign_flip_assignments == 2**t.n_seeds:
        lines.append(
            f"- Exact sign-flip test across seeds ({t.sign_flip_assignments} sign assignments):"
            f" {p_is(t.sign_flip_p_value)} (the smallest p it can give with {t.n_seeds} seeds is"
            f" {fmt_p(min(1.0, 2 / t.sign_flip_assignments))})."
        )
    elif t.sign_flip_p_value is not None and t.n_seeds > 1:
        lines.append(
            f"- Sign-flip test across seeds ({t.sign_flip_assignments - 1} random sign assignments and the observed"
            f" one): {p_is(t.sign_flip_p_value)}."
        )
    lines.append(
        f"- {a} is better on {wins} of {plural(n, 'seed')}; exact 95% interval of the share of new seeds on which it is"
        f" better: {fmt_interval(share_ci, signed=False)}."
    )
    p = c.pooled
    lines.append(
        f"- Pooled per-video (the trained models fixed; each video's correctness averaged over"
        f" {plural(len(c.seeds), 'seed')}, videos resampled): {fmt_comparison(p)} ({p_is(p.p_value)});"
        f" the interval {side_of_zero(p.interval)}."
    )
    lines += ["", f"**{verdict(c)}**", ""]
    return lines


def verdict(c: PairComparison) -> str:
    a, b = display(c.a), display(c.b)
    if c.seed_level is None:
        return f"With one seed this study cannot say how {a} and {b} compare on a new training run."
    if c.called == "above":
        return f"Over seeds, {a} beats {b} here: the seed-level interval and the t interval lie above 0."
    if c.called == "below":
        return f"Over seeds, {b} beats {a} here: the seed-level interval and the t interval lie below 0."
    side = side_of_zero(c.seed_level.interval)
    pooled = side_of_zero(c.pooled.interval)
    if side != "contains 0":
        # A bootstrap over few seeds is too narrow; the t interval must agree before a claim is made.
        t_side = side_of_zero(c.test.t_interval) if c.test.t_interval is not None else "contains 0"
        n = len(c.seeds)
        return (
            f"Over seeds, the bootstrap interval {side} but the t interval across the {n} seeds"
            f" {t_side} ({p_is(c.test.t_p_value)}): with {n} seeds this study does not establish how {a} and {b}"
            " compare on a new training run."
        )
    return (
        f"Over seeds, this study does not show a difference between {a} and {b} on a new training run: the"
        f" seed-level interval contains 0 (the pooled per-video interval, which holds the models fixed, {pooled})."
    )


def _summary_table(study: Study, runs: dict[str, VariantRuns]) -> list[str]:
    lines = [
        "## Every variant (top-1 and mean class accuracy: mean ± std over seeds, %)",
        "",
        "RRA − variant: over the seeds both have, the hierarchical bootstrap interval (percentage points).",
        "",
        "| variant | model | changes | top-1 | mean class | RRA − variant over seeds |",
        "|---|---|---|---|---|---|",
    ]
    rra = runs.get("rra")
    for v in study.variants:
        r = runs[v.name]
        changes = ", ".join(f"{k}={val}" for k, val in v.kwargs.items()) or "—"
        diff = "—"
        if rra is not None and v.name != "rra" and r.top1 and rra.top1:
            c = compare(rra, r)
            diff = fmt_estimate(c.seed_level) + f" (n={len(c.seeds)})" if c and c.seed_level else "n/a"
        lines.append(f"| {v.name} | {v.model} | {changes} | {r.cell('top1')} | {r.cell('mean_class')} | {diff} |")
    return lines + [""]


def _ours(runs: dict[str, VariantRuns], name: str) -> str:
    return runs[name].cell("top1") if name in runs else "not in this profile"


def _ablation_tables(runs: dict[str, VariantRuns]) -> list[str]:
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


def _names(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _rank(values: dict[str, float], name: str) -> int:
    return 1 + sum(v > values[name] for k, v in values.items() if k != name)


def _resolved(runs: dict[str, VariantRuns], names: list[str]) -> list[str]:
    """The variants whose RRA − variant is called (the seed-level and t intervals exclude 0 on one side)."""
    out = []
    for n in names:
        c = compare(runs["rra"], runs[n]) if runs[n].top1 else None
        if c is not None and c.called:
            out.append(f"{n} ({fmt_estimate(c.seed_level)})")
    return out


def _ordering(runs: dict[str, VariantRuns]) -> list[str]:
    """The paper's orderings, stated from its numbers, beside ours, stated from the runs."""
    from scipy import stats

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
    right = [n for _, _, _, n in TABLE4_RIGHT if n in mean]
    if right:
        paper_low = min(TABLE4_RIGHT, key=lambda t: t[2])
        lowest = min(right, key=lambda n: mean[n])
        below = [n for n in right if mean[n] < mean["rra"]]
        out.append(
            f"- Table 4 (right): in the paper the full model ({PAPER_FULL:.2f}) is above all six changes and the"
            f" lowest is No. {paper_low[0]}, {paper_low[3]} ({paper_low[2]:.2f}). Here the full model's mean"
            f" ({mean['rra']:.2f}) is above {len(below)} of {len(right)} ({_names(below)}) and the lowest is"
            f" {lowest} ({mean[lowest]:.2f}); resolved: {_names(_resolved(runs, right))}."
        )
    left = [k for k, n in TABLE4_LEFT.items() if n in mean]
    if len(left) > 1:
        best = max(left, key=lambda k: mean[TABLE4_LEFT[k]])
        paper_best = max(PAPER_TABLE4_LEFT, key=PAPER_TABLE4_LEFT.get)
        others = [TABLE4_LEFT[k] for k in left if TABLE4_LEFT[k] != "rra"]
        out.append(
            f"- Table 4 (left): in the paper {paper_best} glimpses is best ({PAPER_TABLE4_LEFT[paper_best]:.2f}). Here"
            f" the highest mean is {best} glimpses ({mean[TABLE4_LEFT[best]]:.2f}); RRA (4) against the other numbers"
            f" resolved: {_names(_resolved(runs, others))}."
        )
    t3 = [(label, loss, n) for label, loss, n in TABLE3_ROWS if n in mean]
    if len(t3) > 1:
        p_best = max(TABLE3_ROWS, key=lambda t: PAPER_TABLE3[t[1]][1])
        p_worst = min(TABLE3_ROWS, key=lambda t: PAPER_TABLE3[t[1]][1])
        best = max(t3, key=lambda t: mean[t[2]])
        worst = min(t3, key=lambda t: mean[t[2]])
        others = [n for _, _, n in t3 if n != "rra"]
        out.append(
            f"- Table 3: in the paper (mAP_e) the best loss is {p_best[0]} ({PAPER_TABLE3[p_best[1]][1]:.2f}) and the"
            f" worst {p_worst[0]} ({PAPER_TABLE3[p_worst[1]][1]:.2f}). Here the best is {best[0]}"
            f" ({mean[best[2]]:.2f}) and the worst {worst[0]} ({mean[worst[2]]:.2f}); RRA (Le + Li) against the"
            f" others resolved: {_names(_resolved(runs, others))}."
        )
    models = {n: p for n, p in PAPER_TABLE4_MODELS.items()}
    if "parallel" in mean:
        paper_above = sorted((n for n in models if models[n] < PAPER_PARALLEL), key=lambda n: -models[n])
        paper_below = sorted((n for n in models if models[n] > PAPER_PARALLEL), key=lambda n: -models[n])
        ours = {n: mean[n] for n in models if n in mean}
        ours_above = sorted((n for n in ours if ours[n] < ours["parallel"]), key=lambda n: -ours[n])
        c = compare(runs["rra"], runs["parallel"])
        out.append(
            f"- Parallel glimpses (section 5.2): in the paper {PAPER_PARALLEL:.2f}, rank {_rank(models, 'parallel')}"
            f" of the {len(models)} models of Table 4 and section 5.2: below {_names(paper_below)}, above"
            f" {_names(paper_above)}. Here {ours['parallel']:.2f}, rank {_rank(ours, 'parallel')} of {len(ours)},"
            f" above {_names(ours_above)}; RRA − parallel over seeds:"
            f" {fmt_estimate(c.seed_level) if c and c.seed_level else 'n/a'}."
        )
    common = [n for n in models if n in mean]
    if len(out) == 4 and len(common) < 3:
        out.append("- No ablation of the paper's tables was run in this profile.")
    if len(common) >= 3:
        rho = stats.spearmanr([models[n] for n in common], [mean[n] for n in common]).statistic
        out.append(
            f"- Rank correlation between the paper's numbers and our means over the {len(common)} models of Table 4"
            f" and section 5.2 run here: Spearman ρ = {rho:+.2f}."
        )
    return out


def _accuracy_section(study: Study, runs: dict[str, VariantRuns]) -> list[str]:
    lines = [
        "## Accuracy (top-1, %)",
        "",
        "| variant | changes | top-1 | mean class | RRA − variant over seeds |",
        "|---|---|---|---|---|",
    ]
    rra = runs.get("rra")
    for v in study.variants:
        r = runs[v.name]
        changes = ", ".join(f"{k}={val}" for k, val in v.kwargs.items()) or "—"
        diff = "—"
        if rra is not None and v.name != "rra" and r.top1 and rra.top1:
            c = compare(rra, r)
            diff = fmt_estimate(c.seed_level) + f" (n={len(c.seeds)})" if c and c.seed_level else "n/a"
        lines.append(f"| {v.name} | {changes} | {r.cell('top1')} | {r.cell('mean_class')} | {diff} |")
    return lines + [""]


def attention_sections(
    study: Study, data: StudyData, runs: dict[str, VariantRuns], report: Path, figures: bool
) -> list[str]:
    """Where the glimpses look, per attention variant; RRA against the others on the crest; eq. 7 figures."""
    from ytfgvc.study.attention import compare_on_crest, summarise

    if not study.attention:
        return []
    doc = data.attention
    lines = ["## Where the glimpses look", ""]
    if not doc.get("runs"):
        return lines + ["Not measured: it needs the runs' checkpoints and frames (run the study, then rebuild).", ""]
    size = study.config.get("input_size")
    lines += [
        f"Per glimpse, the share of its attention mass on the planted crest over the {doc.get('frames')} test frames"
        " (method: `ytfgvc/study/attention.py`), against chance: the crest's share of the frames' area, what"
        " uniform attention gets. Then the share of its mass on the frames that show the bird, against those"
        " frames' share. Over the test videos whose test frames show the crest at least once and over seeds;"
        " the intervals are the seed-level hierarchical bootstrap. These numbers say where attention lands;"
        " they do not by themselves show what the redundancy-reduction step does, which only a comparison with"
        " the variants that change it (no BN, no ReLU, no tanh) can.",
        "",
    ]
    summaries = {}
    for name in study.attention:
        rows, m = summarise(doc, name)
        if not rows:
            lines += [f"### {name}: no measured run", ""]
            continue
        summaries[name] = rows
        h, w = m["map"] or ["?", "?"]
        lines += [
            f"### {name} ({plural(len(m['seeds']), 'seed')}, {plural(len(m['videos']), 'video')}; {h} × {w} feature"
            f" map at {size} px)",
            "",
            "| glimpse | on crest | chance | on crest / chance | on crest − chance, 95% | on bird frames |"
            " bird frames' share | on bird frames − share, 95% |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for g in rows:
            lines.append(
                f"| {g.glimpse} | {g.on_crest:.4f} | {g.chance:.4f} | {g.ratio:.2f} |"
                f" {fmt_estimate(g.excess, unit='', digits=4)} | {g.on_bird:.3f} | {g.bird_share:.3f} |"
                f" {fmt_estimate(g.bird_excess, unit='', digits=3)} |"
            )
        lines.append("")
        for g in rows:
            lines.append(
                f"- glimpse {g.glimpse}: {g.ratio:.2f} times chance on the crest (the interval of on − chance"
                f" {side_of_zero(g.excess.interval)}); {g.on_bird / g.bird_share:.2f} times their share on the bird's"
                f" frames (interval {side_of_zero(g.bird_excess.interval)})."
            )
        lines.append("")
    others = [n for n in study.attention if n != "rra" and n in summaries]
    if "rra" in summaries and others:
        k = len(summaries["rra"])
        lines += [
            "### The reduction step: RRA − variant, attention mass on the crest",
            "",
            "The reduction acts between glimpses (eq. 2): glimpse 1 attends over the backbone's map in every"
            " variant, glimpses 2 and later over the reduced one. Seeds paired by number, the same videos; the"
            " seed-level interval. A difference is resolved where it and the t interval across seeds (of each"
            " seed's mean over the videos) exclude 0 on the same side, as in the `rra-vs-tsn` headline.",
            "",
            "| variant | " + " | ".join(f"glimpse {i + 1}" for i in range(k)) + " |",
            "|---" * (k + 1) + "|",
        ]
        resolved = []
        for n in others:
            diffs = compare_on_crest(doc, "rra", n)
            cells = [fmt_estimate(e, unit="", digits=4) for e, _ in diffs] + ["n/a"] * (k - len(diffs))
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
            resolved += [f"{n} glimpse {i + 1} (both intervals lie {side} 0)"
                         for i, (e, t) in enumerate(diffs) if (side := called(e.interval, t))]  # fmt: skip
        lines += ["", f"- Resolved differences: {_names(resolved)}.", ""]
    lines += _figures(study, data, runs, report, figures)
    return lines


def _figures(study: Study, data: StudyData, runs: dict[str, VariantRuns], report: Path, figures: bool) -> list[str]:
    """eq. 7 heat maps of the first test videos (id order) whose test frames show the crest, RRA's first seed."""
    rra = runs.get("rra")
    if rra is None or not rra.records:
        return []
    seed = min(rra.records)
    entry = data.attention.get("runs", {}).get(study.run_name(study.variant("rra"), seed))
    if entry is None:
        return []
    videos = [v["video_id"] for v in entry["videos"] if v["chance"] > 0][:FIGURE_VIDEOS]
    fig_dir = report.parent / "figures"
    n = int(study.config.get("test_segments", 8))
    lines = []
    record = rra.records[seed]
    for vid in videos:
        png = fig_dir / f"{study.figure_prefix}{vid}.png"
        if figures and record.folder is not None and RunFiles(record.folder).checkpoint.is_file():
            from ytfgvc.benchmark.visualize import visualize_run

            visualize_run(record.folder, vid, out=png, num_frames=n)
        if png.is_file():
            lines += [f"![eq. 7 heat maps of {vid}, RRA seed {seed}](figures/{png.name})", ""]
    return lines
