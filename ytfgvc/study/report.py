"""The report of the RRA-vs-TSN study: ``baselines/synthetic/README.md``, rebuilt from run folders.

Reads, per (variant, seed), ``metrics.json`` (top-1, mean-class accuracy, device, wall
time) and ``predictions.json`` (top-1 label per test video), the official test list for the
true labels, and ``study.json`` in the study's runs folder (the command, the device and
the study's wall time, written by :func:`write_study_record`).
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles
from ytfgvc.study.run import Study
from ytfgvc.system.fsutil import write_json_atomic, write_text_atomic

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
ATTENTION_VIDEOS = 6
FIGURE_VIDEOS = 2


@dataclass
class VariantRuns:
    name: str
    model: str
    top1: dict[int, float] = field(default_factory=dict)  # seed -> %
    mean_class: dict[int, float] = field(default_factory=dict)
    correct: dict[int, dict[str, bool]] = field(default_factory=dict)  # seed -> video -> top-1 right
    folders: dict[int, Path] = field(default_factory=dict)
    wall_s: float = 0.0
    device: str = ""

    def stat(self, what: str) -> tuple[float, float, int] | None:
        vals = list(getattr(self, what).values())
        if not vals:
            return None
        return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals)

    def cell(self, what: str = "top1") -> str:
        s = self.stat(what)
        return "not run" if s is None else f"{s[0]:.2f} ± {s[1]:.2f} (n={s[2]})"


def collect(study: Study, root: Path | str, out: Path | str) -> dict[str, VariantRuns]:
    """Every finished run of the study, by variant name (unfinished runs are left out)."""
    from ytfgvc.datasets.official import load_official

    record = study.runs_root(out) / "study.json"
    if (study.data_root(root) / study.dataset).is_dir():
        truth = dict(load_official(study.data_root(root), study.dataset).test)
    elif record.is_file() and "test_labels" in json.loads(record.read_text()):
        truth = json.loads(record.read_text())["test_labels"]  # exported runs, without the data
    else:
        raise YtfgvcError(f"no data under {study.data_root(root)} and no test labels in {record}",
                          "pass the --root the study ran with")  # fmt: skip
    runs: dict[str, VariantRuns] = {}
    for v in study.variants:
        vr = runs[v.name] = VariantRuns(v.name, v.model)
        for seed in study.seeds:
            folder = study.run_folder(out, v, seed)
            if not RunFiles(folder).finished:
                continue
            m = json.loads(RunFiles(folder).metrics.read_text())
            preds = json.loads(RunFiles(folder).predictions.read_text())["results"]
            vr.top1[seed] = m["scores"]["top1"]
            vr.mean_class[seed] = m["scores"]["mean_class"]
            vr.correct[seed] = {vid: bool(r and r[0]["label"] == truth.get(vid)) for vid, r in preds.items()}
            vr.folders[seed] = folder
            vr.wall_s += m.get("wall_time_s", 0.0)
            d = m.get("device", {})
            vr.device = f"{d.get('name', '?')} ({d.get('type', '?')})"
    return runs


def compare(a: VariantRuns, b: VariantRuns) -> dict[str, Any]:
    """Paired bootstrap of a − b (top-1) per seed on the same videos, and pooled over seeds.

    Pooled: each video's correctness averaged over the seeds both have, videos resampled.
    """
    from ytfgvc.metrics import paired_bootstrap

    seeds = sorted(set(a.correct) & set(b.correct))
    out: dict[str, Any] = {"per_seed": {}, "pooled": None}
    if not seeds:
        return out
    videos = sorted(set.intersection(*(set(a.correct[s]) & set(b.correct[s]) for s in seeds)))
    if not videos:
        return out
    ca = np.array([[a.correct[s][v] for v in videos] for s in seeds], np.float64)
    cb = np.array([[b.correct[s][v] for v in videos] for s in seeds], np.float64)
    for i, s in enumerate(seeds):
        out["per_seed"][s] = paired_bootstrap(ca[i], cb[i]).to_dict()
    out["pooled"] = paired_bootstrap(ca.mean(0), cb.mean(0)).to_dict()
    return out


def write_study_record(study: Study, root: Path | str, out: Path | str, seconds: float, device: str) -> Path:
    """Write ``study.json`` in the study's runs folder: command, device, test labels, wall time.

    The wall time is summed over the sessions that ran the study (a resumed study adds to it).
    """
    from ytfgvc.datasets.official import load_official

    labels = dict(load_official(study.data_root(root), study.dataset).test)
    path = study.runs_root(out) / "study.json"
    before = json.loads(path.read_text()).get("wall_time_s", 0.0) if path.is_file() else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    command = "ytfgvc " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""
    write_json_atomic(
        path,
        {"study": study.name, "profile": study.profile, "command": command, "device": device,
         "host": platform.node(), "wall_time_s": round(before + seconds, 1), "test_labels": labels},
    )  # fmt: skip
    return path


def _run_root(run: Path) -> str:
    """The data root a run was trained on (its config.yaml)."""
    import yaml

    return str((yaml.safe_load(RunFiles(run).config.read_text()) or {}).get("root", ""))


def _fmt_interval(c: dict[str, Any]) -> str:
    lo, hi = c["interval"]
    sig = "significant" if c["significant"] else "not significant"
    return f"{c['diff']:+.2f} pp [{lo:+.2f}, {hi:+.2f}] (p = {c['p_value']:.3f}, {c['n_videos']} videos, {sig})"


def build_report(study: Study, root: Path | str, out: Path | str, report: Path, figures: bool = True) -> str:
    """Render the report as Markdown (and the eq. 7 figures beside it); returns the text."""
    runs = collect(study, root, out)
    if not any(r.top1 for r in runs.values()):
        raise YtfgvcError(f"no finished runs under {study.runs_root(out)}", "run the study first")
    record_path = study.runs_root(out) / "study.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    lines = [f"# Study `{study.name}` on the synthetic dataset (profile `{study.profile}`)", ""]
    lines += _setup_section(study, runs, record)
    lines += _headline_section(runs)
    lines += _summary_table(study, runs)
    lines += _ablation_tables(runs)
    lines += _attention_section(study, runs, report, figures)
    text = "\n".join(lines) + "\n"
    report.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(report, text)
    return text


def _setup_section(study: Study, runs: dict[str, VariantRuns], record: dict[str, Any]) -> list[str]:
    cfg = study.config
    kw = cfg.get("model", {}).get("kwargs", {})
    devices = sorted({r.device for r in runs.values() if r.device})
    wall = record.get("wall_time_s")
    return [
        "Regenerated by `ytfgvc study` from the run folders; do not edit by hand.",
        "",
        f"- command: `{record.get('command') or 'ytfgvc study ' + study.name + ' --profile ' + study.profile}`",
        f"- device: {', '.join(devices) or record.get('device', '?')}; study wall time: "
        + (f"{wall:.0f} s" if wall is not None else "unknown")
        + f" (sum of run times {sum(r.wall_s for r in runs.values()):.0f} s)",
        f"- data: `ytfgvc synth` with {study.synth}, frames at short side {study.short_side}",
        f"- every run: backbone {kw.get('backbone')} from scratch (no ImageNet weights), input {cfg.get('input_size')}"
        f" px, {cfg.get('num_segments')} segments, {cfg.get('epochs')} epochs, Adam lr {cfg.get('lr')}, batch"
        f" {cfg.get('batch_size')}, dropout {kw.get('dropout')}; test {cfg.get('test_segments')} frames x"
        f" {cfg.get('test_crops')} crop; seeds {study.seeds}",
        f"- study definition: `{study.path.name}` (variants and profiles)",
        "",
    ]


def _headline_section(runs: dict[str, VariantRuns]) -> list[str]:
    lines = ["## RRA − TSN (top-1, paired bootstrap on the same test videos)", ""]
    if "rra" not in runs or "tsn" not in runs:
        return lines + ["RRA or TSN is not part of this profile.", ""]
    c = compare(runs["rra"], runs["tsn"])
    if c["pooled"] is None:
        return lines + ["No seed has both runs finished.", ""]
    for s, comp in c["per_seed"].items():
        lines.append(f"- seed {s}: {_fmt_interval(comp)}")
    pooled = c["pooled"]
    lines += [f"- pooled over seeds (per-video correctness averaged): {_fmt_interval(pooled)}", ""]
    lo, hi = pooled["interval"]
    if lo > 0:
        verdict = "RRA beats TSN here: the pooled interval lies above 0."
    elif hi < 0:
        verdict = "RRA does NOT beat TSN here: TSN is better (the pooled interval lies below 0)."
    else:
        verdict = "RRA does NOT beat TSN here: the pooled interval contains 0 (no detectable difference)."
    return lines + [f"**{verdict}**", ""]


def _summary_table(study: Study, runs: dict[str, VariantRuns]) -> list[str]:
    lines = ["## Every variant (mean ± std over seeds, %)", "", "| variant | model | changes | top-1 | mean class |"]
    lines.append("|---|---|---|---|---|")
    for v in study.variants:
        r = runs[v.name]
        changes = ", ".join(f"{k}={val}" for k, val in v.kwargs.items()) or "—"
        lines.append(f"| {v.name} | {v.model} | {changes} | {r.cell('top1')} | {r.cell('mean_class')} |")
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


def _ordering(runs: dict[str, VariantRuns]) -> list[str]:
    """Does the paper's ordering hold? Stated from the numbers, whichever way they fall."""
    mean = {n: r.stat("top1")[0] for n, r in runs.items() if r.top1}
    out = ["### Does the paper's ordering hold here?", ""]
    if "rra" not in mean:
        return out + ["- the full model was not run."]
    right = [(no, n) for no, _, _, n in TABLE4_RIGHT if n in mean]
    if right:
        worst = min(right, key=lambda t: mean[t[1]])
        beaten = [n for _, n in right if mean[n] < mean["rra"]]
        out.append(
            f"- Table 4 right: the paper's full model beats all six changes and average pooling (No. 1) is worst;"
            f" here the full model beats {len(beaten)} of {len(right)} ({', '.join(beaten) or 'none'}) and the"
            f" worst is No. {worst[0]} ({worst[1]})."
        )
    left = [k for k, n in TABLE4_LEFT.items() if n in mean]
    if len(left) > 1:
        best = max(left, key=lambda k: mean[TABLE4_LEFT[k]])
        out.append(f"- Table 4 left: the paper's best is 4 glimpses; here it is {best}.")
    t3 = [(label, n) for label, _, n in TABLE3_ROWS if n in mean]
    if len(t3) > 1:
        best = max(t3, key=lambda t: mean[t[1]])
        worst = min(t3, key=lambda t: mean[t[1]])
        out.append(f"- Table 3: the paper's best is Le + Li and Le alone is worst; here best is {best[0]}, worst"
                   f" {worst[0]}.")  # fmt: skip
    if "parallel" in mean:
        word = "beats" if mean["rra"] > mean["parallel"] else "does not beat"
        out.append(f"- Parallel glimpses: the paper's RRA beats them; here RRA {word} them.")
    out.append("- Differences smaller than the seeds' std are not evidence either way.")
    return out


def _attention_section(study: Study, runs: dict[str, VariantRuns], report: Path, figures: bool) -> list[str]:
    from ytfgvc.study.attention import VideoAttention, analyse_run

    lines = ["## Where the glimpses look (RRA, K = 4, seed " + "{seed})", ""]
    rra = runs.get("rra")
    if rra is None or not rra.folders:
        return ["## Where the glimpses look", "", "No finished RRA run.", ""]
    seed = min(rra.folders)
    lines[0] = lines[0].format(seed=seed)
    run = rra.folders[seed]
    # The first test videos in id order: a fixed choice, not a picked one.
    videos = sorted(rra.correct[seed])[:ATTENTION_VIDEOS]
    n = int(study.config.get("test_segments", 8))
    saved = study.runs_root(run.parents[3]) / "attention.json"
    if RunFiles(run).checkpoint.is_file() and (Path(_run_root(run)) / study.dataset).is_dir():
        stats = analyse_run(run, videos, n)
        write_json_atomic(saved, {"run": str(run), "frames": n, "videos": [s.to_dict() for s in stats]})
    elif saved.is_file():  # re-rendered from exported run folders: the numbers computed with the data
        stats = [VideoAttention(**v) for v in json.loads(saved.read_text())["videos"]]
        figures = False
    else:
        return lines + [f"Not computed: needs {run}/checkpoint.pt and the frames under the run's data root.", ""]
    k = len(stats[0].on_detail) if stats else 0
    lines += [
        f"Fraction of each glimpse's attention mass on the planted detail (the crest) over {n} test frames,"
        " against chance (the crest's area share: what uniform attention gets); then the mass on frames that"
        " show the bird, against their share of the frames. Method: `ytfgvc/study/attention.py`.",
        "",
        "| video | "
        + " | ".join(f"glimpse {i + 1} on crest" for i in range(k))
        + " | chance | "
        + " | ".join(f"g{i + 1} on bird frames" for i in range(k))
        + " | bird frames share |",
        "|---" * (2 * k + 3) + "|",
    ]
    for s in stats:
        lines.append(
            f"| {s.video_id} | "
            + " | ".join(f"{v:.3f}" for v in s.on_detail)
            + f" | {s.chance:.3f} | "
            + " | ".join(f"{v:.3f}" for v in s.on_visible_frames)
            + f" | {s.visible_share:.3f} |"
        )
    if stats:
        on = np.array([s.on_detail for s in stats]).mean(0)
        chance = float(np.mean([s.chance for s in stats]))
        ratio = ", ".join(f"g{i + 1} {v / chance:.1f}x" if chance > 0 else f"g{i + 1} n/a" for i, v in enumerate(on))
        lines += ["", f"Mean over these videos: on crest / chance = {ratio}."]
    lines.append("")
    fig_dir = report.parent / "figures"
    for vid in [s.video_id for s in stats if s.visible_frames][:FIGURE_VIDEOS]:
        png = fig_dir / f"{study.profile}-{vid}.png"
        if figures:
            from ytfgvc.benchmark.visualize import visualize_run

            visualize_run(run, vid, out=png, num_frames=n)
        if png.is_file():
            lines += [f"![eq. 7 heat maps of {vid}](figures/{png.name})", ""]
    return lines
