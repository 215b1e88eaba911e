"""Every interval of the committed study reports, recomputed from the committed results files.

For each study profile whose results folder (``baselines/synthetic/results-*/``) holds a
``runs.json``: (1) the report rebuilt from the committed files with ``--results-only`` is
the committed report, byte for byte; (2) independently of the report's code, every
interval is recomputed here from ``runs.json`` and ``attention.json`` with the same
functions and seeds (the per-seed paired bootstraps, the pooled one, the hierarchical
bootstrap over seeds and videos, the t interval of the paired test across seeds, the
interval of the share of seeds won, the dose-response points and slope, the attention
masses), and every interval printed in the report must be one of them; the headline
ones must be printed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ytfgvc.metrics import paired_bootstrap
from ytfgvc.study.report import fmt_estimate, fmt_interval
from ytfgvc.study.run import STUDIES, load_study, run_study
from ytfgvc.study.stats import hierarchical_bootstrap, hierarchical_slope, paired_t_test, win_share

INTERVAL = re.compile(r"\[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def _correct(results: Path) -> dict[str, dict[int, dict[str, bool]]]:
    """variant -> seed -> video -> top-1 right, for the videos each run was tested on."""
    doc = json.loads((results / "runs.json").read_text())
    labels = json.loads((results / "study.json").read_text())["test_labels"]
    out: dict[str, dict[int, dict[str, bool]]] = {}
    for r in doc["runs"]:
        right = {v: t[0] == labels[v] for v, t in zip(doc["videos"], r["top5"], strict=True) if t}
        out.setdefault(r["variant"], {})[r["seed"]] = right
    return out


def _pair(ca: dict[int, dict[str, bool]], cb: dict[int, dict[str, bool]]) -> tuple[set[str], list[str]]:
    """All intervals of one comparison; and the ones a report must print (seed level and pooled)."""
    seeds = sorted(set(ca) & set(cb))
    videos = sorted(set.intersection(*(set(ca[s]) & set(cb[s]) for s in seeds)))
    a = np.array([[ca[s][v] for v in videos] for s in seeds], np.float64)
    b = np.array([[cb[s][v] for v in videos] for s in seeds], np.float64)
    found = {fmt_interval(paired_bootstrap(a[i], b[i]).interval) for i in range(len(seeds))}
    pooled = fmt_interval(paired_bootstrap(a.mean(0), b.mean(0)).interval)
    found.add(pooled)
    must = []
    diffs = (a - b).mean(1) * 100
    found.add(fmt_interval(win_share(diffs)[2], signed=False))
    if len(seeds) > 1:
        e = hierarchical_bootstrap(a - b, scale=100)
        found.add(fmt_interval(e.interval))
        must.append(fmt_estimate(e))
        _, _, t_interval = paired_t_test(diffs)
        if t_interval is not None:
            found.add(fmt_interval(t_interval))
    return found, must


def _attention(results: Path) -> dict[str, dict[str, np.ndarray]]:
    """variant -> arrays over (seed, video[, glimpse]) for the videos whose test frames show the crest."""
    path = results / "attention.json"
    if not path.is_file():
        return {}
    runs = json.loads(path.read_text())["runs"]
    out = {}
    for variant in sorted({e["variant"] for e in runs.values()}):
        entries = sorted((e for e in runs.values() if e["variant"] == variant), key=lambda e: e["seed"])
        rows = [{v["video_id"]: v for v in e["videos"]} for e in entries]
        videos = sorted(set.intersection(*({k for k, v in r.items() if v["chance"] > 0} for r in rows)))
        out[variant] = {
            "seeds": [e["seed"] for e in entries],
            "videos": videos,
            "on": np.array([[r[v]["on_detail"] for v in videos] for r in rows]),
            "chance": np.array([[r[v]["chance"] for v in videos] for r in rows]),
            "bird": np.array([[r[v]["on_visible_frames"] for v in videos] for r in rows]),
            "share": np.array([[r[v]["visible_share"] for v in videos] for r in rows]),
        }
    return out


def recomputed(study, results: Path) -> tuple[set[str], list[str]]:
    """Every interval the study's report may print, recomputed; and those it must print."""
    correct = _correct(results)
    found: set[str] = set()
    must: list[str] = []

    def pair(a: str, b: str, required: bool = False) -> None:
        if correct.get(a) and correct.get(b):
            f, m = _pair(correct[a], correct[b])
            found.update(f)
            if required:
                must.extend(m)

    if study.kind == "redundancy":
        by_fraction: dict[float, dict[str, str]] = {}
        for v in study.variants:
            by_fraction.setdefault(v.synth["visible_fraction"], {})[v.model] = v.name
        values = {}
        for f, arms in sorted(by_fraction.items()):
            pair(arms["rra"], arms["tsn"], required=True)
            values[f] = arms
        usable = {f: a for f, a in values.items() if correct.get(a["rra"]) and correct.get(a["tsn"])}
        seeds = sorted(set.intersection(*(set(correct[a["rra"]]) & set(correct[a["tsn"]]) for a in usable.values())))
        if len(usable) > 1 and len(seeds) > 1:
            mats = {}
            for f, a in usable.items():
                ra, rt = correct[a["rra"]], correct[a["tsn"]]
                videos = sorted(set.intersection(*(set(ra[s]) & set(rt[s]) for s in seeds)))
                mats[f] = np.array([[ra[s][v] - rt[s][v] for v in videos] for s in seeds], np.float64)
            slope = hierarchical_slope(mats, scale=100)
            found.add(fmt_interval([round(x / 10, 4) for x in slope.interval]))
            must.append(fmt_interval([round(x / 10, 4) for x in slope.interval]))
            # Each seed's own least-squares slope, and the t interval across seeds.
            fractions = sorted(mats)
            per_seed = [
                np.polyfit(fractions, [mats[f][i].mean() * 100 for f in fractions], 1)[0] for i in range(len(seeds))
            ]
            _, _, t_interval = paired_t_test(per_seed)
            if t_interval is not None:
                found.add(fmt_interval([round(x / 10, 4) for x in t_interval]))
                must.append(fmt_interval([round(x / 10, 4) for x in t_interval]))
    else:
        for a, b in (("rra", "tsn"), ("rra", "avgpool"), ("avgpool", "tsn")):
            pair(a, b, required=True)
        for v in study.variants:
            if v.name != "rra":
                pair("rra", v.name)
    att = _attention(results)
    for m in att.values():
        for k in range(m["on"].shape[2]):
            e = hierarchical_bootstrap(m["on"][:, :, k] - m["chance"])
            found.add(fmt_interval(e.interval, digits=4))
            must.append(fmt_estimate(e, unit="", digits=4))
            found.add(fmt_interval(hierarchical_bootstrap(m["bird"][:, :, k] - m["share"]).interval, digits=3))
    if "rra" in att:
        for variant, m in att.items():
            if variant == "rra":
                continue
            seeds = sorted(set(att["rra"]["seeds"]) & set(m["seeds"]))
            ra = {s: i for i, s in enumerate(att["rra"]["seeds"])}
            rb = {s: i for i, s in enumerate(m["seeds"])}
            videos = sorted(set(att["rra"]["videos"]) & set(m["videos"]))
            va = [att["rra"]["videos"].index(v) for v in videos]
            vb = [m["videos"].index(v) for v in videos]
            for k in range(min(att["rra"]["on"].shape[2], m["on"].shape[2])):
                a = att["rra"]["on"][[ra[s] for s in seeds]][:, va, k]
                b = m["on"][[rb[s] for s in seeds]][:, vb, k]
                found.add(fmt_interval(hierarchical_bootstrap(a - b).interval, digits=4))
    return found, must


def check_report(study, results: Path, text: str) -> int:
    """Every interval in ``text`` is recomputed from ``results``; the required ones are there. Returns the count."""
    found, must = recomputed(study, results)
    printed = [m.group(0) for m in INTERVAL.finditer(text)]
    stray = sorted({p for p in printed if p not in found})
    assert not stray, f"intervals in the report that the committed results do not give: {stray}"
    missing = [m for m in must if m not in text]
    assert not missing, f"recomputed intervals missing from the report: {missing}"
    return len(printed)


def _committed() -> list[tuple[str, str]]:
    out = []
    for name in STUDIES:
        for profile in ("gpu", "cpu"):
            try:
                load_study(name, profile)
            except Exception:
                continue
            out.append((name, profile))
    return out


@pytest.mark.parametrize(("name", "profile"), _committed())
def test_committed_reports_are_recomputed_from_the_committed_results(name: str, profile: str, tmp_path: Path):
    study = load_study(name, profile)
    results = study.results_dir
    report = study.path.parent / study.report_file
    if not (results / "runs.json").is_file():
        pytest.skip(f"{results.name}/runs.json is not committed yet (the session that runs the profile has not run)")
    text = report.read_text()
    n = check_report(study, results, text)
    assert n > 0
    # Rebuilt from the committed files alone, the report is the committed one.
    (tmp_path / "figures").mkdir()
    for png in (report.parent / "figures").glob(f"{study.figure_prefix}*.png"):
        shutil.copy2(png, tmp_path / "figures" / png.name)
    again = tmp_path / report.name
    run_study(name, profile, tmp_path / "none", tmp_path / "none", report=again, results_only=True,
              results=results, figures=False, progress=False, echo=lambda s: None)  # fmt: skip
    assert again.read_text() == text
