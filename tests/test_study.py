"""The studies: attention mass on the planted detail (exact, hand-made), the seed-level statistics,
the study files, every kind of report rebuilt from a results folder, merging results, and the
micro profile end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ytfgvc.errors import YtfgvcError
from ytfgvc.study.attention import attention_on_detail, attention_on_visible_frames, crest_mask
from ytfgvc.study.run import load_study, run_study
from ytfgvc.study.stats import (
    hierarchical_bootstrap,
    hierarchical_slope,
    paired_t_test,
    seed_test,
    sign_flip_test,
    win_share,
)

from .study_fixtures import fake_results
from .test_study_results import check_report


def _hand_made() -> tuple[np.ndarray, np.ndarray]:
    # 2 frames of 4x4 pixels, 2x2 cells. Frame 0: the detail fills cell (0, 0) and half of cell (0, 1).
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0:2, 0:2] = True
    masks[0, 0:2, 2] = True
    att = np.zeros((2, 2, 2, 2))
    att[0, 0, 0, 0] = 1.0  # glimpse 1: all on the detail's full cell
    att[1, 0, 0, 1] = 0.5  # glimpse 2: half on the half-covered cell ...
    att[1, 1, 0, 0] = 0.5  # ... half on the frame without the detail
    return att, masks


def test_attention_mass_on_detail_is_exact():
    att, masks = _hand_made()
    on, chance = attention_on_detail(att, masks)
    assert on.tolist() == [1.0, 0.25]
    assert chance == (1 + 0.5) / 8  # the detail's area share: 6 of 32 pixels


def test_attention_mass_on_frames_showing_the_detail():
    att, masks = _hand_made()
    on, share = attention_on_visible_frames(att, masks)
    assert on.tolist() == [1.0, 0.5]
    assert share == 0.5


def test_crest_mask_maps_source_pixels_to_the_centre_crop():
    # A 200x100 source written as 128x64 frames, centre-cropped to 64x64: x -> 0.64 x - 32.
    mask = crest_mask([1, 100, 50, 10], (200, 100), (128, 64), 64)
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() + 0.5 - 32) < 0.01 and abs(ys.mean() + 0.5 - 32) < 0.01
    assert abs(mask.sum() - np.pi * 6.4**2) < 8
    assert not crest_mask([0, 100, 50, 10], (200, 100), (128, 64), 64).any()
    assert not crest_mask([1, 10, 50, 10], (200, 100), (128, 64), 64).any()  # outside the crop


# --------------------------------------------------------------------------- seed-level statistics


def test_the_issue_s_three_seeds_give_its_paired_test():
    t, p, interval = paired_t_test([3.5, 30.1, 13.3])
    assert abs(p - 0.18) < 0.005 and interval[0] < 0 < interval[1]
    assert sign_flip_test([3.5, 30.1, 13.3]) == (0.25, 8)  # all positive: 2 of 8 sign assignments as extreme
    assert win_share([3.5, 30.1, 13.3])[:2] == (3, 3)
    assert paired_t_test([1.0]) == (None, None, None) and paired_t_test([2.0, 2.0]) == (None, None, None)


def test_sign_flip_is_exact_and_two_sided():
    p, n = sign_flip_test([1.0, -2.0, 3.0, 4.0])
    assert n == 16
    # |mean| of +-1 +-2 +-3 +-4 over 4 >= |1 - 2 + 3 + 4| / 4 = 1.5: sums of absolute value >= 6.
    sums = [abs(a + b + c + d) for a in (1, -1) for b in (2, -2) for c in (3, -3) for d in (4, -4)]
    assert p == sum(x >= 6 for x in sums) / 16
    # Beyond 20 seeds, random assignments and the observed one: p is never 0, and the report says it is not exact.
    from ytfgvc.study.report import VariantRuns, compare, pair_block

    p, n = sign_flip_test([5.0] * 25, n_boot=999)
    assert n == 1000 and p == 0.001
    videos = [f"v{i:010d}" for i in range(20)]
    a, b = VariantRuns("rra", "rra"), VariantRuns("tsn", "tsn")
    for seed in range(22):
        a.correct[seed] = {v: i < 10 + seed % 3 for i, v in enumerate(videos)}
        b.correct[seed] = {v: i < 10 for i, v in enumerate(videos)}
        a.top1[seed], b.top1[seed] = 50.0, 50.0
    text = "\n".join(pair_block(compare(a, b)))
    assert "10000 random sign assignments and the observed one" in text and "Exact sign-flip" not in text


def test_hierarchical_interval_sees_seed_variance_that_the_pooled_one_hides():
    """Three seeds that disagree (+20, -10, +5 points on every video): pooled per video, each video's
    mean difference is +5 with no spread, so the per-video bootstrap is a point; over seeds it is wide."""
    from ytfgvc.metrics import paired_bootstrap

    per_seed = np.array([0.2, -0.1, 0.05])
    values = np.repeat(per_seed[:, None], 50, axis=1)
    pooled = paired_bootstrap(values.mean(0), np.zeros(50))
    assert pooled.interval == [5.0, 5.0]
    e = hierarchical_bootstrap(values, scale=100)
    assert e.mean == 5.0 and e.interval[0] < -5 and e.interval[1] > 15 and not e.excludes_zero
    assert e.n_seeds == 3 and e.n_videos == 50


def test_hierarchical_bootstrap_is_seeded_and_its_two_samplers_agree():
    import ytfgvc.study.stats as stats

    rng = np.random.default_rng(3)
    d = (rng.random((6, 80)) < 0.6).astype(float) - (rng.random((6, 80)) < 0.45).astype(float)
    a = hierarchical_bootstrap(d, scale=100)
    assert hierarchical_bootstrap(d, scale=100) == a  # seeded
    cells = stats.MAX_CELLS
    try:
        stats.MAX_CELLS = 0  # draw video indices instead of multinomial counts: the same distribution
        b = hierarchical_bootstrap(d, scale=100)
    finally:
        stats.MAX_CELLS = cells
    assert a.mean == b.mean and all(abs(x - y) < 1.5 for x, y in zip(a.interval, b.interval, strict=True))
    assert hierarchical_bootstrap(np.full((3, 10), 0.25)).interval == [0.25, 0.25]


def test_slope_of_a_clean_dose_response():
    rows = {f: np.full((4, 30), 0.5 - 0.4 * f) for f in (0.1, 0.3, 0.6, 1.0)}  # -0.4 per unit, no noise
    e = hierarchical_slope(rows, scale=100)
    assert e.mean == -40.0 and e.interval == [-40.0, -40.0] and e.n_seeds == 4
    with pytest.raises(ValueError):
        hierarchical_slope({0.1: np.zeros((2, 5)), 0.5: np.zeros((3, 5))})
    assert seed_test([1.0, 2.0, 3.0]).sign_flip_assignments == 8


# --------------------------------------------------------------------------- study files


def test_study_files_share_one_training_setup_and_plan_the_issue_s_runs():
    import yaml

    main = load_study("rra-vs-tsn", "gpu")
    red = load_study("redundancy", "gpu")
    att = load_study("crest-attention", "gpu")
    assert red.config == main.config  # the same backbone, input, epochs and optimizer
    assert {**att.config, "input_size": 112} == main.config and att.config["input_size"] == 224
    assert att.short_side >= 224
    jobs = main.jobs()
    assert len(jobs) == 16 * 3 + 3 * 10
    for v in ("tsn", "rra", "avgpool"):
        assert main.seeds_of(main.variant(v)) == list(range(10))
    seeds = [s for _, s in jobs]
    assert seeds == sorted(seeds)  # seed by seed: a study stopped early has whole seeds
    assert main.folder == "study-gpu" and main.results_dir.name == "results-gpu" and main.report_file == "README.md"
    fractions = sorted({v.synth["visible_fraction"] for v in red.variants})
    assert fractions == [0.1, 0.3, 0.6, 1.0] and len(red.jobs()) == 4 * 2 * len(red.seeds) and len(red.seeds) >= 3
    roots = {red.data_root("R", v) for v in red.variants}
    assert len(roots) == 4 and all("visible_fraction" in str(r) for r in roots)
    assert [v.name for v in att.variants] == att.attention == ["rra", "no_bn", "no_relu", "no_tanh"]
    for name in ("study.yaml", "redundancy.yaml", "attention.yaml"):
        yaml.safe_load((main.path.parent / name).read_text())


# --------------------------------------------------------------------------- reports from results folders


@pytest.mark.parametrize("name", ["rra-vs-tsn", "redundancy", "crest-attention"])
def test_every_report_is_rebuilt_from_a_results_folder_and_its_intervals_recomputed(name: str, tmp_path: Path):
    study = load_study(name, "gpu")
    results = fake_results(study, tmp_path / "results", skill={"rra": 0.7, "tsn": 0.3, "rra-vf10": 0.6})
    report = tmp_path / "report" / "README.md"
    summary = run_study(name, "gpu", tmp_path / "none", tmp_path / "none", report=report, results_only=True,
                        results=results, progress=False, echo=lambda s: None)  # fmt: skip
    assert summary.source.endswith("runs.json`")
    text = report.read_text()
    assert check_report(study, results, text) > 10
    assert "Regenerated by" in text and "100 s of wall time in 1 session" in text
    if name == "rra-vs-tsn":
        assert "### RRA − TSN" in text and "**Over seeds (the headline): " in text
        assert "Paired t-test across the 10 seeds" in text and "(1024 sign assignments)" in text
        assert "Over seeds, RRA beats TSN here" in text  # 0.7 against 0.3 on every seed
        assert "Pooled per-video (the trained models fixed" in text
        assert "in the paper 82.39, rank 7 of the 12 models" in text  # parallel glimpses, stated from the paper
        assert "above k2, k3, spatial_attention, k1, avgpool" in text
        assert "Spearman ρ" in text and "### rra (10 seeds" in text
    elif name == "redundancy":
        assert "| 10% |" in text and "| 100% |" in text and "Slope of RRA − TSN against the share" in text
        assert (report.parent / "figures" / "redundancy-gpu-dose.png").is_file()
        assert "![RRA − TSN against the share" in text
    else:
        assert "### The reduction step: RRA − variant" in text and "| no_tanh |" in text
        assert "7 × 7 feature map at 224 px" in text and "### no_bn (3 seeds" in text


def test_results_merge_unites_sessions_and_refuses_conflicts(tmp_path: Path):
    from ytfgvc.study.record import merge_results
    from ytfgvc.study.results import read_runs_json

    study = load_study("rra-vs-tsn", "gpu")
    full = fake_results(study, tmp_path / "full")
    _, runs = read_runs_json(full / "runs.json")
    doc = json.loads((full / "runs.json").read_text())
    halves = []
    for i, keep in enumerate((lambda r: r["seed"] < 3, lambda r: r["seed"] >= 3)):
        d = tmp_path / f"part{i}" / study.results
        d.mkdir(parents=True)
        part = dict(doc, runs=[r for r in doc["runs"] if keep(r)])
        (d / "runs.json").write_text(json.dumps(part))
        rec = json.loads((full / "study.json").read_text())
        rec["sessions"] = [dict(rec["sessions"][0], command=f"session {i}", seconds=50.0 + i)]
        (d / "study.json").write_text(json.dumps(rec))
        att = json.loads((full / "attention.json").read_text())
        att["runs"] = {k: v for k, v in att["runs"].items() if keep(v)}
        (d / "attention.json").write_text(json.dumps(att))
        halves.append(tmp_path / f"part{i}")
    into = tmp_path / "committed"
    into.mkdir()
    (into / "study.json").write_text("{}")  # an old results folder, without runs.json: replaced
    import tarfile

    tar = tmp_path / "part1.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(halves[1] / study.results, arcname=study.results)
    line = merge_results(study, halves[0], into, tmp_path / "figures")
    assert "replaced study.json" in line
    merge_results(study, tar, into, tmp_path / "figures")
    merge_results(study, tar, into, tmp_path / "figures")  # again: nothing new, nothing refused
    _, merged = read_runs_json(into / "runs.json")
    assert sorted(r.name for r in merged) == sorted(r.name for r in runs)
    rec = json.loads((into / "study.json").read_text())
    assert [s["command"] for s in rec["sessions"]] == ["session 0", "session 1"] and rec["wall_time_s"] == 101.0
    assert len(json.loads((into / "attention.json").read_text())["runs"]) == 10
    doc1 = json.loads((halves[1] / study.results / "runs.json").read_text())
    doc1["runs"][0]["top1"] += 1
    (halves[1] / study.results / "runs.json").write_text(json.dumps(doc1))
    with pytest.raises(YtfgvcError, match="other results"):
        merge_results(study, halves[1], into, tmp_path / "figures")
    # Another study's (or profile's) results folder is refused, even where its videos and labels agree.
    doc0 = json.loads((halves[0] / study.results / "runs.json").read_text())
    (halves[0] / study.results / "runs.json").write_text(json.dumps(dict(doc0, study="redundancy")))
    with pytest.raises(YtfgvcError, match="not of rra-vs-tsn"):
        merge_results(study, halves[0] / study.results, into, tmp_path / "figures")
    (halves[0] / study.results / "runs.json").write_text(json.dumps(dict(doc0, profile="cpu")))
    with pytest.raises(YtfgvcError, match="profile cpu"):
        merge_results(study, halves[0] / study.results, into, tmp_path / "figures")


# --------------------------------------------------------------------------- the micro profile, end to end


def test_micro_study_end_to_end(synth_root: Path, tmp_path: Path):
    from ytfgvc.cli import main

    root = tmp_path / "data"
    shutil.copytree(synth_root / "synthetic", root / "study-micro" / "synthetic")  # same config as the profile
    runs = tmp_path / "runs"
    args = ["study", "rra-vs-tsn", "--profile", "micro", "--root", str(root), "--out", str(runs), "--no-progress"]
    export = tmp_path / "export"
    res = CliRunner().invoke(main, [*args, "--export", str(export)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = runs / "study-micro" / "README.md"
    text = report.read_text()
    assert "| tsn | tsn |" in text and "| rra | rra |" in text
    assert "### RRA − TSN" in text and "Pooled per-video" in text and "pp [" in text
    assert "With one seed this study cannot say" in text
    assert "### Table 4 (right)" in text and "| 1 | spatio-temporal average pooling" in text
    assert "80.20" in text and "83.42" in text  # the paper's numbers beside ours
    assert "### rra (1 seed, 2 videos" in text
    assert list((runs / "study-micro" / "figures").glob("micro-*.png"))
    record = json.loads((runs / "study-micro" / "study.json").read_text())
    assert record["sessions"][0]["finished_runs"] == 2 and record["wall_time_s"] > 0
    assert record["data"][""]["test_frames"]["videos"] == 3
    # The export: compact results (every run's top-5 per test video) and the run folders' small files.
    results = export / "results-micro"
    doc = json.loads((results / "runs.json").read_text())
    assert len(doc["runs"]) == 2 and all(len(r["top5"]) == 3 and len(r["top5"][0]) == 3 for r in doc["runs"])
    assert not list(export.rglob("checkpoint.pt")) and not list(export.rglob("curves.png"))
    assert (export / "study-micro" / "figures").is_dir()
    # Rebuilding from the run folders gives the same text; so does rebuilding from the compact results alone.
    report.unlink()
    res = CliRunner().invoke(main, [*args, "--results-only", "--no-figures"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert report.read_text() == text
    again = tmp_path / "again" / "README.md"
    shutil.copytree(export / "study-micro" / "figures", again.parent / "figures")
    args2 = ["study", "rra-vs-tsn", "--profile", "micro", "--root", str(tmp_path / "none"), "--out",
             str(tmp_path / "none"), "--results-only", "--results", str(results), "--report", str(again)]  # fmt: skip
    res = CliRunner().invoke(main, args2, catch_exceptions=False)
    assert res.exit_code == 0, res.output

    def body(t: str) -> str:  # all but the line naming the source
        return "\n".join(line for line in t.splitlines() if not line.startswith("Regenerated by"))

    assert body(again.read_text()) == body(text)
    assert check_report(load_study("rra-vs-tsn", "micro"), results, again.read_text()) > 0


def test_gpu_session_script_covers_every_planned_run():
    import re
    import subprocess

    script = load_study("rra-vs-tsn", "gpu").path.parent / "gpu_session.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    ablations = re.search(r"ABLATIONS=\$\{ABLATIONS:-([a-z0-9_,]+)\}", text).group(1).split(",")
    headline = re.search(r"study rra-vs-tsn 1 \d+ \d+ --variants ([a-z,]+)", text).group(1).split(",")
    main = load_study("rra-vs-tsn", "gpu")
    assert sorted(ablations + headline) == sorted(v.name for v in main.variants)
    assert sorted(headline) == sorted(main.more_seeds)  # the 10-seed variants run first
    for name in ("redundancy", "crest-attention"):
        assert f"study {name} " in text and load_study(name, "gpu").variants
    assert "timeout -k" in text and "--stop-after" in text and "nvidia-smi --query-gpu=name --format=csv" in text


def test_runs_go_seed_by_seed_and_none_starts_after_stop_after(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import ytfgvc.study.record as record
    import ytfgvc.study.run as run

    study = load_study("redundancy", "gpu")
    study.parallel = 1
    started: list[str] = []

    class Session:
        def update(self, seconds, finished=None):
            pass

    monkeypatch.setattr(run, "ensure_data", lambda *a, **k: None)
    monkeypatch.setattr(record, "open_session", lambda *a, **k: Session())
    monkeypatch.setattr(run, "_run_in_process", lambda s, root, out, v, seed, p: started.append(s.run_name(v, seed)))
    res = run.run_variants(study, tmp_path, tmp_path, progress=False, echo=lambda s: None, seeds=[0, 1])
    assert started[:8] == [f"{v.name}-seed0" for v in study.variants] and len(started) == 16
    started.clear()
    res = run.run_variants(study, tmp_path, tmp_path, progress=False, echo=lambda s: None, stop_after=-1)
    assert started == [] and len(res.not_started) == len(study.jobs())
    with pytest.raises(YtfgvcError, match="matches"):
        run.run_variants(study, tmp_path, tmp_path, progress=False, echo=lambda s: None, variants=["nope"])
    # A typo among good names is refused too (it was left out in silence); a variant of the file that
    # this profile does not run is left out.
    micro = load_study("rra-vs-tsn", "micro")
    with pytest.raises(YtfgvcError, match="rraa matches no variant") as e:
        micro.jobs(["tsn", "rraa"])
    assert "--variants takes some of tsn, rra, k1," in str(e.value)
    assert [v.name for v, _ in micro.jobs(["tsn", "rra", "avgpool"])] == ["tsn", "rra"]
    with pytest.raises(YtfgvcError, match="runs tsn, rra with seeds 0"):
        run.run_variants(micro, tmp_path, tmp_path, progress=False, echo=lambda s: None, variants=["avgpool"])


def test_few_seeds_do_not_make_a_verdict_the_t_interval_does_not_back():
    from ytfgvc.study.report import VariantRuns, compare, verdict

    videos = [f"v{i:010d}" for i in range(50)]
    rra, tsn = VariantRuns("rra", "rra"), VariantRuns("tsn", "tsn")
    for seed, n_right in ((0, 50), (1, 10)):  # RRA − TSN: +100 points on seed 0, +20 on seed 1
        rra.correct[seed] = {v: i < n_right for i, v in enumerate(videos)}
        tsn.correct[seed] = dict.fromkeys(videos, False)
        rra.top1[seed], tsn.top1[seed] = 2.0 * n_right, 0.0
    c = compare(rra, tsn)
    assert c.seed_level.interval[0] > 0 and c.test.t_interval[0] < 0  # the bootstrap over 2 seeds is too narrow
    assert "does not establish" in verdict(c) and "beats" not in verdict(c)


def test_attention_comparison_without_common_seeds_says_n_a(tmp_path: Path):
    """RRA and an ablation measured on different seeds (a part of a session): no comparison, no crash."""
    from ytfgvc.study.attention import compare_on_crest
    from ytfgvc.study.report import attention_sections, by_variant, load_results

    study = load_study("crest-attention", "gpu")
    results = fake_results(study, tmp_path / "results")
    att = json.loads((results / "attention.json").read_text())
    att["runs"] = {k: e for k, e in att["runs"].items() if (e["variant"] == "rra") == (e["seed"] == 0)}
    (results / "attention.json").write_text(json.dumps(att))
    doc = json.loads((results / "attention.json").read_text())
    assert compare_on_crest(doc, "rra", "no_bn") == []
    data = load_results(study, tmp_path, tmp_path, results)
    lines = attention_sections(study, data, by_variant(study, data), tmp_path / "README.md", figures=False)
    assert "| no_bn | n/a | n/a | n/a | n/a |" in lines


def test_a_difference_is_called_only_where_the_bootstrap_and_t_intervals_agree():
    """The headline's rule holds for the ablations' "resolved" too: 2 seeds at +100 and +20 points give a
    bootstrap interval above 0 and a t interval across 0, so nothing is resolved."""
    from ytfgvc.study.compare import VariantRuns
    from ytfgvc.study.paper import _resolved
    from ytfgvc.study.stats import called, seed_slopes

    assert called([1.0, 2.0], [0.5, 3.0]) == "above" and called([-2.0, -1.0], [-3.0, -0.1]) == "below"
    assert called([1.0, 2.0], [-1.0, 3.0]) is None and called([1.0, 2.0], None) is None
    assert called([-1.0, 2.0], [0.5, 3.0]) is None
    videos = [f"v{i:010d}" for i in range(50)]
    runs = {"rra": VariantRuns("rra", "rra"), "k1": VariantRuns("k1", "rra")}
    for seed, n_right in ((0, 50), (1, 10)):
        runs["rra"].correct[seed] = {v: i < n_right for i, v in enumerate(videos)}
        runs["k1"].correct[seed] = dict.fromkeys(videos, False)
        runs["rra"].top1[seed], runs["k1"].top1[seed] = 2.0 * n_right, 0.0
    assert _resolved(runs, ["k1"]) == []
    # Each seed's own slope: seed 0 falls by 1 per unit, seed 1 rises by 2.
    values = {x: np.array([[1.0 - x] * 3, [2.0 * x] * 3]) for x in (0.0, 0.5, 1.0)}
    assert np.allclose(seed_slopes(values, scale=100), [-100.0, 200.0])
