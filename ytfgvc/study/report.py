"""The reports of the studies (``baselines/synthetic/README*.md``), rebuilt from their results.

The results are the run folders (``metrics.json``, ``predictions.json`` of each run, and the
checkpoints for the attention numbers) on the machine that ran the study, or anywhere the
committed results folder (:mod:`ytfgvc.study.results`: ``runs.json``, ``study.json``,
``attention.json``), read by :func:`ytfgvc.study.results.load_results`. Every sentence that
says something about the results is generated from numbers computed with the functions of
:mod:`ytfgvc.study.stats` (through :mod:`ytfgvc.study.compare`: the runs by variant, two
variants compared) and :func:`ytfgvc.metrics.paired_bootstrap` (``tests/test_study_results.py``
recomputes every interval of the committed reports), written by :mod:`ytfgvc.study.fmt`.
Three kinds of report (the study file's ``report``):

* ``rra-vs-tsn``: the headline comparisons (RRA, TSN, average pooling) per seed, over seeds
  and pooled; every variant; Tables 3 and 4 beside the paper's (:mod:`ytfgvc.study.paper`);
  where the glimpses look;
* ``redundancy``: RRA − TSN against the share of frames that show the bird (:mod:`ytfgvc.study.dose`);
* ``attention``: the attention mass on the crest per glimpse, RRA against the reduction
  step's ablations, at an input where the feature map resolves the crest.
"""

from __future__ import annotations

from pathlib import Path

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles
from ytfgvc.study.compare import PairComparison, VariantRuns, by_variant, compare, correct_matrix
from ytfgvc.study.dose import dose_sections
from ytfgvc.study.fmt import (
    display,
    fmt_comparison,
    fmt_estimate,
    fmt_interval,
    fmt_p,
    names,
    p_is,
    plural,
    side_of_zero,
)
from ytfgvc.study.paper import ablation_tables
from ytfgvc.study.results import StudyData, load_results
from ytfgvc.study.run import Study
from ytfgvc.study.stats import N_BOOT, SEED, called
from ytfgvc.system.fsutil import write_text_atomic

# Imported from here before the report's helpers had their own modules (fmt, compare, paper, results).
__all__ = [
    "PairComparison",
    "StudyData",
    "VariantRuns",
    "attention_sections",
    "build_report",
    "by_variant",
    "compare",
    "correct_matrix",
    "fmt_comparison",
    "fmt_estimate",
    "fmt_interval",
    "fmt_p",
    "load_results",
    "measure_attention",
    "p_is",
    "pair_block",
    "setup_section",
    "side_of_zero",
    "verdict",
]

HEADLINE_PAIRS = [("rra", "tsn"), ("rra", "avgpool"), ("avgpool", "tsn")]
DISPLAY = {"rra": "RRA", "tsn": "TSN", "avgpool": "average pooling"}
FIGURE_VIDEOS = 2


# --------------------------------------------------------------------------- the report


def build_report(study: Study, data: StudyData, report: Path, figures: bool = True) -> str:
    """Render the study's report as Markdown (and its figures beside it); returns the text.

    The attention numbers are those of ``data.attention`` (:func:`measure_attention` first, with run folders).
    """
    if not data.runs:
        raise YtfgvcError(f"no finished runs of study {study.name} (profile {study.profile})", "run the study first")
    lines = [f"# Study `{study.name}` on the synthetic dataset (profile `{study.profile}`)", ""]
    lines += setup_section(study, data)
    runs = by_variant(study, data)
    if study.kind == "redundancy":
        lines += dose_sections(study, data, runs, report)
    elif study.kind == "attention":
        lines += _accuracy_section(study, runs)
        lines += attention_sections(study, data, runs, report, figures)
    else:
        lines += _headline_section(runs)
        lines += _summary_table(study, runs)
        lines += ablation_tables(runs)
        lines += attention_sections(study, data, runs, report, figures)
    text = "\n".join(lines).rstrip() + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report, text)
    return text


def measure_attention(study: Study, data: StudyData, echo=print) -> None:
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
    seeds_text = "; ".join(f"{', '.join(vs)}: seeds {rng}" for rng, vs in by_seeds.items())
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
    return [
        "## Every variant (top-1 and mean class accuracy: mean ± std over seeds, %)",
        "",
        "RRA − variant: over the seeds both have, the hierarchical bootstrap interval (percentage points).",
        "",
        *_variant_rows(study, runs, model_column=True),
    ]


def _accuracy_section(study: Study, runs: dict[str, VariantRuns]) -> list[str]:
    return ["## Accuracy (top-1, %)", "", *_variant_rows(study, runs, model_column=False)]


def _variant_rows(study: Study, runs: dict[str, VariantRuns], model_column: bool) -> list[str]:
    """A table of every variant: what it changes, its accuracy, RRA − variant over seeds."""
    cols = ["variant", *(["model"] if model_column else []), "changes", "top-1", "mean class"]
    cols.append("RRA − variant over seeds")
    lines = ["| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    rra = runs.get("rra")
    for v in study.variants:
        r = runs[v.name]
        changes = ", ".join(f"{k}={val}" for k, val in v.kwargs.items()) or "—"
        diff = "—"
        if rra is not None and v.name != "rra" and r.top1 and rra.top1:
            c = compare(rra, r)
            diff = fmt_estimate(c.seed_level) + f" (n={len(c.seeds)})" if c and c.seed_level else "n/a"
        cells = [v.name, *([v.model] if model_column else []), changes, r.cell("top1"), r.cell("mean_class"), diff]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def attention_sections(
    study: Study, data: StudyData, runs: dict[str, VariantRuns], report: Path, figures: bool
) -> list[str]:
    """Where the glimpses look, per attention variant; RRA against the others on the crest; eq. 7 figures."""
    from ytfgvc.study.attention import summarise

    if not study.attention:
        return []
    doc = data.attention
    lines = ["## Where the glimpses look", ""]
    if not doc.get("runs"):
        return lines + ["Not measured: it needs the runs' checkpoints and frames (run the study, then rebuild).", ""]
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
    glimpses = {}  # variant -> its number of glimpses, for those measured
    for name in study.attention:
        rows, m = summarise(doc, name)
        if not rows:
            lines += [f"### {name}: no measured run", ""]
            continue
        glimpses[name] = len(rows)
        lines += _glimpse_section(name, rows, m, study.config.get("input_size"))
    others = [n for n in study.attention if n != "rra" and n in glimpses]
    if "rra" in glimpses and others:
        lines += _reduction_section(doc, others, glimpses["rra"])
    lines += _figures(study, data, runs, report, figures)
    return lines


def _glimpse_section(name: str, rows: list, m: dict, size: int | None) -> list[str]:
    """One variant's attention per glimpse (:func:`ytfgvc.study.attention.summarise`): a table, then a line each."""
    h, w = m["map"] or ["?", "?"]
    lines = [
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
    return lines + [""]


def _reduction_section(doc: dict, others: list[str], k: int) -> list[str]:
    """RRA − each other variant, attention mass on the crest per glimpse (``k``: RRA's glimpses)."""
    from ytfgvc.study.attention import compare_on_crest

    lines = [
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
    return lines + ["", f"- Resolved differences: {names(resolved)}.", ""]


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
