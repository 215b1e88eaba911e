"""`ytfgvc benchmark` end to end (smoke preset, tiny stand-in models), its records, presets and Table 6."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from ytfgvc.benchmark.config import METHODS, baseline_configs, baseline_yaml, load_config, parse_set
from ytfgvc.benchmark.recipes import RECIPES
from ytfgvc.benchmark.table6 import build_table, paper_top1, write_table
from ytfgvc.cli import main
from ytfgvc.data.loader import auto_workers
from ytfgvc.demo import DemoContext, stage_benchmark
from ytfgvc.errors import YtfgvcError
from ytfgvc.metrics import score_ranked
from ytfgvc.predictions import run_predictions

from . import tiny_models  # noqa: F401  (registers test_tiny_frames and test_tiny_clip)
from .rawframes_utils import make_prepared

BASELINES_DIR = Path(__file__).resolve().parent.parent / "baselines"
REGENERATE = "regenerate: python -c 'from tests.test_benchmark import write_baselines; write_baselines()'"


def write_baselines() -> None:
    """Rewrite ``baselines/*.yaml`` from the presets (after a deliberate preset change)."""
    for name, cfg in baseline_configs().items():
        (BASELINES_DIR / f"{name}.yaml").write_text(baseline_yaml(cfg))


# Until the real models are merged, each method's protocol runs with a tiny stand-in.
STAND_INS = [
    "--set", "model.name=test_tiny_frames", "--set", "i3d:model.name=test_tiny_clip",
    "--input-size", "24", "--set", "i3d:input_size=24", "--workers", "0", "--batch-size", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def table6_runs(tmp_path_factory):
    """``ytfgvc benchmark synthetic --table6 --preset smoke`` over a prepared dataset with 1 test video missing."""
    root = tmp_path_factory.mktemp("bench")
    make_prepared(root, missing_test=1)
    out = root / "runs"
    args = ["benchmark", "synthetic", "--table6", "--preset", "smoke", "--root", str(root), "--out", str(out)]
    res = CliRunner().invoke(main, [*args, *STAND_INS, "--no-progress", "--json"])
    assert res.exit_code == 0, res.output
    return root, out, json.loads(res.output)


def test_smoke_benchmark_of_every_method_writes_every_record(table6_runs):
    root, out, summary = table6_runs
    assert [Path(r["run_dir"]).parent.name for r in summary["runs"]] == list(METHODS)
    for r in summary["runs"]:
        d = Path(r["run_dir"])
        assert sorted(p.name for p in d.iterdir()) == [
            ".lock", "checkpoint.pt", "config.yaml", "curves.png", "log.jsonl", "metrics.json", "predictions.json",
            "scores.npz",
        ]  # fmt: skip
        cfg = yaml.safe_load((d / "config.yaml").read_text())
        for key in ("dataset", "root", "model", "num_classes", "num_segments", "input_size"):
            assert key in cfg
        assert cfg["model"]["kwargs"]["num_segments"] == cfg["num_segments"] and cfg["num_classes"] == 3
        log = [json.loads(x) for x in (d / "log.jsonl").read_text().splitlines()]
        frozen_first = Path(r["run_dir"]).parent.name == "rra"  # only RRA's recipe has a frozen phase
        assert [e["epoch"] for e in log] == [1, 2] and [e["frozen"] for e in log] == [frozen_first, False]
        assert {"loss", "accuracy", "lr", "clips_per_s", "gpu_memory_gb"} <= set(log[0])
        assert log[1]["lr"] == pytest.approx(log[0]["lr"] * 0.1)  # smoke decays every epoch
        m = json.loads((d / "metrics.json").read_text())
        assert m["schema"] == "ytfgvc-run-1" and m["scores"]["n_scored"] == 5 and m["scores"]["n_official"] == 6
        assert m["scores"]["coverage"] == pytest.approx(5 / 6, abs=1e-5) and m["pretrained_source"] == "from scratch"
        assert {"versions", "git", "device", "wall_time_s", "gpu_hours", "data", "protocol"} <= set(m)
        assert m["versions"]["torch"] and m["gpu_hours"] == 0.0 and m["data"]["annotations"]
        assert m["weights"] == {"source": "from scratch", "file": None, "sha256": None}
        assert m["training"]["compile"] == {"config": "off", "train": "off", "test": "off"}  # smoke: eager
        recipe = {"rra": "rra-paper", "tsn": "tsn-official", "bninception": "tsn-official-bninception",
                  "i3d": "i3d-mmaction2"}[d.parent.name]  # fmt: skip
        assert m["recipe"]["name"] == recipe and {"epochs", "lr_steps", "batch_size"} <= set(m["recipe"]["changed"])
        assert all(m["recipe"]["sources"][k] for k in m["recipe"]["values"])  # every number has its source
        p = json.loads((d / "predictions.json").read_text())
        assert p["provenance"]["weights"] == "from scratch" and p["provenance"]["recipe"].startswith(
            recipe + "; changed"
        )
        assert p["version"] == "ytfgvc-predictions-1" and p["dataset"] == "synthetic" and len(p["results"]) == 5
        for labels in p["results"].values():
            scores = [e["score"] for e in labels]
            assert len(labels) == 3 and scores == sorted(scores, reverse=True)
        assert (d / "curves.png").read_bytes()[:4] == b"\x89PNG"
        assert "model" in __import__("torch").load(d / "checkpoint.pt", weights_only=True)
    protocols = {Path(r["run_dir"]).parent.name: r["metrics"]["protocol"] for r in summary["runs"]}
    assert protocols["tsn"]["test_crops"] == 10 and protocols["tsn"]["test_frames"] == 3
    assert protocols["bninception"]["test_frames"] == 1 and protocols["bninception"]["train_frames"] == 1
    assert protocols["i3d"]["sampling"] == "clip"


def test_table6_files_and_command(table6_runs, tmp_path):
    root, out, summary = table6_runs
    files = summary["table6"]
    md = Path(files["md"]).read_text()
    assert "| TSN (resnet18) | — |" in md and "5 / 6 (83.3%)" in md  # synthetic: no paper number
    assert "starting weights | recipe" in md and "| *from scratch* | tsn-official; changed: batch_size" in md
    assert Path(files["png"]).read_bytes()[:4] == b"\x89PNG" and "\\toprule" in Path(files["tex"]).read_text()
    res = CliRunner().invoke(main, ["table6", str(out), "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)["rows"]
    assert [r["method"] for r in rows] == list(METHODS) and all(r["diff"] is None for r in rows)
    csv_lines = (tmp_path / "table6.csv").read_text().splitlines()
    assert (
        csv_lines[0].startswith("dataset,method,paper_top1,top1") and ",weights,weights_sha256,recipe," in csv_lines[0]
    )
    assert all(",from scratch,," in line for line in csv_lines[1:])
    assert "from scratch & rra-paper" in (tmp_path / "table6.tex").read_text()


def test_a_finished_benchmark_is_not_run_again(table6_runs):
    root, out, _ = table6_runs
    args = ["benchmark", "synthetic", "--model", "tsn", "--preset", "smoke", "--root", str(root), "--out", str(out)]
    res = CliRunner().invoke(main, [*args, *STAND_INS, "--no-progress"])
    assert res.exit_code == 0 and "already finished" in res.output


def _metrics(dataset: str, method: str, top1: float, finished: str = "2026-01-01T00:00:00") -> dict:
    iv = {"top1": [top1 - 1, top1 + 1], "top5": [89.0, 91.0], "mean_class": [top1 - 2, top1 + 1]}
    scores = {"top1": top1, "top5": 90.0, "mean_class": top1 - 0.5, "intervals": iv}
    scores |= {"n_scored": 5000, "n_official": 5684, "coverage": 5000 / 5684}
    return {"schema": "ytfgvc-run-1", "dataset": dataset, "method": method, "preset": "paper", "run": "r",
            "scores": scores, "finished": finished}  # fmt: skip


def test_table6_puts_the_papers_numbers_beside_ours(tmp_path):
    for i, (method, top1) in enumerate([("rra", 70.0), ("tsn", 72.361), ("rra", 75.0)]):
        d = tmp_path / "birds" / method / f"r{i}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps(_metrics("birds", method, top1, f"2026-01-0{i + 1}")))
    table = build_table([tmp_path])
    assert [(r.method, r.top1, r.paper_top1, r.diff) for r in table.rows] == [
        ("tsn", 72.361, 72.361, 0.0),
        ("rra", 75.0, 73.205, 1.8),  # the latest run of a method is shown
    ]
    assert table.ignored == [str(tmp_path / "birds" / "rra" / "r0")]
    md = table.to_markdown()
    assert "| RRA | 73.21 | 75.00 [74.0, 76.0] | +1.80 |" in md and "5000 / 5684 (88.0%)" in md
    files = write_table(table, tmp_path / "out")
    assert Path(files["png"]).stat().st_size > 0
    cars = {m: paper_top1("cars", m) for m in METHODS}
    assert cars == {"bninception": 61.96, "i3d": 40.92, "tsn": 74.34, "rra": 77.625}
    with pytest.raises(YtfgvcError, match="no finished runs"):
        build_table([tmp_path / "out"])


def test_predictions_score_as_hand_computed():
    # 4 videos, 6 classes; targets 0, 1, 2, 2
    probs = np.array(
        [
            [0.50, 0.10, 0.10, 0.10, 0.10, 0.10],  # top-1 right
            [0.30, 0.05, 0.20, 0.15, 0.20, 0.10],  # target 1 ranked last: wrong at top-5
            [0.10, 0.10, 0.40, 0.20, 0.10, 0.10],  # top-1 right
            [0.30, 0.25, 0.20, 0.10, 0.10, 0.05],  # target 2 third: top-5 only
        ]
    )
    origin = {"weights": "from scratch", "recipe": "rra-paper"}
    doc = run_predictions("synthetic", "abc", ["a" * 11, "b" * 11, "c" * 11, "d" * 11], probs, origin)
    assert [e["label"] for e in doc["results"]["b" * 11]] == [0, 2, 4, 3, 5, 1]  # ties: lower label first
    assert doc["external_data"] == {"used": False, "details": ""} and doc["manifest"] == "abc"
    assert doc["provenance"] == origin
    ranked = np.array([[e["label"] for e in v] for v in doc["results"].values()])
    s = score_ranked(ranked, np.array([0, 1, 2, 2]), n_official=5)
    assert (s.top1, s.top5, s.mean_class, s.n_scored, s.coverage) == (50.0, 75.0, 50.0, 4, 0.8)
    assert s.per_class == {0: 100.0, 1: 0.0, 2: 50.0}


def test_baselines_are_the_paper_preset():
    files = sorted(p.name for p in BASELINES_DIR.glob("*.yaml"))
    expected = ["bninception_bninception_1_rgb.yaml", "i3d_resnet50_32_rgb.yaml", "rra_tsninceptionv3_4_rgb.yaml"]
    flow = ["bninception_bninception_1_flow.yaml", "rra_tsninceptionv3_4_flow.yaml", "tsn_tsninceptionv3_4_flow.yaml"]
    assert files == sorted([*expected, "tsn_tsninceptionv3_4_rgb.yaml", *flow])
    for name, cfg in baseline_configs().items():
        assert (BASELINES_DIR / f"{name}.yaml").read_text() == baseline_yaml(cfg), REGENERATE
        loaded = load_config(config_file=BASELINES_DIR / f"{name}.yaml")
        assert loaded == cfg
    rra = load_config("rra", "paper")
    assert (rra.optimizer, rra.epochs, rra.lr, rra.lr_steps, rra.lr_gamma, rra.freeze_epochs, rra.batch_size) == (
        "adam", 120, 2e-4, (30, 60, 90), 0.1, 30, 256,
    )  # fmt: skip
    assert (rra.weight_decay, rra.clip_grad_norm, rra.param_groups, rra.recipe) == (0.0, 0.0, "uniform", "rra-paper")
    assert (rra.num_segments, rra.test_segments, rra.test_crops, rra.model.kwargs["dropout"]) == (4, 25, 10, 0.7)
    assert tuple(rra.scales) == (1.0, 0.875, 0.75, 0.66) and rra.model.kwargs["backbone"] == "tsn_inception_v3"
    tsn = load_config("tsn", "paper")
    assert (tsn.optimizer, tsn.momentum, tsn.weight_decay, tsn.lr, tsn.lr_steps, tsn.epochs) == (
        "sgd", 0.9, 5e-4, 0.001, (30, 60), 80,
    )  # fmt: skip
    assert (tsn.clip_grad_norm, tsn.param_groups, tsn.freeze_epochs, tsn.batch_size) == (20.0, "tsn", 0, 256)
    assert tsn.model.kwargs["dropout"] == 0.8 and tsn.model.kwargs["partial_bn"] is True
    assert tsn.model.kwargs["backbone"] == "tsn_inception_v3" and tsn.recipe == "tsn-official"
    i3d = load_config("i3d", "paper")
    assert (i3d.sampling, i3d.num_segments, i3d.test_crops, i3d.model.kwargs["backbone"]) == ("clip", 32, 1, "resnet50")
    assert (i3d.optimizer, i3d.lr, i3d.weight_decay, i3d.clip_grad_norm, i3d.lr_steps, i3d.batch_size) == (
        "sgd", 0.01, 1e-4, 40.0, (40, 80), 64,
    )  # fmt: skip
    assert load_config("bninception", "paper").recipe == "tsn-official-bninception"


def test_the_flow_presets_follow_the_paper_for_rra_and_tsns_flow_command_for_tsn():
    flow = {"modality": "flow"}
    rra = load_config("rra", "paper", overrides=flow)
    assert (rra.recipe, rra.model.kwargs["dropout"], rra.epochs, rra.lr, rra.freeze_epochs) == (
        "rra-paper-flow", 0.5, 120, 2e-4, 30,
    )  # fmt: skip
    assert (rra.flow_stack, rra.num_segments, tuple(rra.scales), rra.run_name) == (
        5, 4, (1.0, 0.875, 0.75), "paper-flow-seed0",
    )  # fmt: skip
    assert rra.model_kwargs()["modality"] == "flow" and rra.model_kwargs()["flow_stack"] == 5
    tsn = load_config("tsn", "paper", overrides=flow)
    assert (tsn.recipe, tsn.lr, tsn.lr_steps, tsn.epochs, tsn.clip_grad_norm, tsn.model.kwargs["dropout"]) == (
        "tsn-official-flow", 0.001, (190, 300), 340, 20.0, 0.7,
    )  # fmt: skip
    assert "flow training command" in RECIPES["tsn-official-flow"].sources["lr_steps"]
    assert "0.7/0.5 for RGB/flow" in RECIPES["rra-paper-flow"].sources["model.kwargs.dropout"]
    assert load_config("bninception", "paper", overrides=flow).recipe == "tsn-official-bninception-flow"
    assert "flow_stack" not in load_config("tsn", "paper").model_kwargs()  # RGB models are built as before
    with pytest.raises(YtfgvcError, match="clip models .I3D. have no flow stream"):
        load_config("i3d", "paper", overrides=flow)
    with pytest.raises(YtfgvcError, match="--modality must be rgb or flow"):
        load_config("tsn", overrides={"modality": "depth"})


def test_a_config_from_before_the_flow_stream_still_loads_and_resumes(tmp_path):
    from ytfgvc.benchmark.config import upgrade_config_dict

    old = yaml.safe_load((BASELINES_DIR / "tsn_tsninceptionv3_4_rgb.yaml").read_text())
    old.pop("flow_stack")
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump(old))
    assert load_config(config_file=f) == load_config("tsn", "paper")
    assert upgrade_config_dict(old)["flow_stack"] == 5  # what a checkpoint's config is compared with on --resume


def test_an_older_config_with_lr_step_still_loads(tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("schema: ytfgvc-benchmark-config-1\nmethod: rra\nepochs: 100\nlr_step: 40\n")
    cfg = load_config(config_file=f)
    assert cfg.lr_steps == (40, 80) and cfg.schema == "ytfgvc-benchmark-config-2"


@pytest.mark.parametrize("decode", ["auto", "cpu", "gpu"])
def test_a_config_with_the_removed_decode_key_still_loads(tmp_path, decode):
    """``decode`` chose nvjpeg on the GPU (``gpu``), since removed: the loader workers decode in every config."""
    old = yaml.safe_load((BASELINES_DIR / "i3d_resnet50_32_rgb.yaml").read_text()) | {"decode": decode}
    f = tmp_path / "old.yaml"
    f.write_text(yaml.safe_dump(old))
    cfg = load_config(config_file=f)
    assert "decode" not in cfg.to_dict() and cfg == load_config("i3d", "paper")


def test_config_layers_and_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("method: tsn\nepochs: 7\nmodel: {kwargs: {dropout: 0.5}}\n")
    cfg = load_config(preset="smoke", config_file=f, overrides=parse_set(["epochs=9", "model.kwargs.backbone=x"]))
    assert (cfg.method, cfg.preset, cfg.epochs, cfg.model.kwargs["dropout"], cfg.model.kwargs["backbone"]) == (
        "tsn", "smoke", 9, 0.5, "x",
    )  # fmt: skip
    with pytest.raises(YtfgvcError, match="did you mean 'epochs'"):
        load_config("tsn", overrides={"epoch": 3})
    with pytest.raises(YtfgvcError, match="--micro-batch: must divide"):
        load_config("tsn", overrides={"micro_batch": 100})
    with pytest.raises(YtfgvcError, match="no method"):
        load_config()


def test_loader_workers_are_auto_in_the_paper_preset_or_a_count(monkeypatch):
    assert load_config("i3d", "paper").workers == "auto" and load_config("i3d", "smoke").workers == 1
    assert load_config("tsn", overrides=parse_set(["workers=3"])).workers == 3
    for bad in ("many", -1, True):
        with pytest.raises(YtfgvcError, match="--workers: must be auto or a non-negative integer"):
            load_config("tsn", overrides={"workers": bad})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert auto_workers() == 14  # 16 cores per process: 2 kept for the training process itself
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert auto_workers() == 14  # 32 cores: at most 14
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert auto_workers() == 6
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert auto_workers() == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert auto_workers() == 1
    res = CliRunner().invoke(main, ["benchmark", "synthetic", "--model", "tsn", "--workers", "some"])
    assert res.exit_code == 2 and "neither auto nor a number" in res.output


def test_cli_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["benchmark", "synthetic", "--model", "tsn", "--root", str(tmp_path)])
    assert res.exit_code == 2 and "ytfgvc prepare synthetic" in res.output and "Traceback" not in res.output
    root = tmp_path / "r"
    lay = make_prepared(root, classes=2, train_per_class=2, test_per_class=1)
    vid = lay.list_path("test").read_text().split()[0].split("/")[1]
    for p in lay.frames_dir(vid).iterdir():
        p.unlink()
    res = CliRunner().invoke(main, ["benchmark", "synthetic", "--model", "tsn", "--root", str(root), *STAND_INS])
    assert res.exit_code == 2 and f"no frames for 1 of 2 test videos (first: {vid})" in res.output
    res = CliRunner().invoke(main, ["benchmark", "synthetic", "--model", "tsn", "--table6"])
    assert res.exit_code == 2 and "drop --model" in res.output


def test_demo_stage_skips_without_prepared_frames(tmp_path):
    ctx = DemoContext(root=tmp_path, echo=lambda s: None)
    line = stage_benchmark(ctx)
    assert line.startswith("skipped: no prepared frames") and "benchmark" not in ctx.results


def test_demo_stage_runs_rra_and_tsn_and_prints_the_table(tmp_path, monkeypatch):
    """With stand-ins for the two models (the real ones come with the models package)."""
    from ytfgvc.benchmark import config

    make_prepared(tmp_path, train_per_class=2)  # 6 training videos: fewer than the smoke batch
    for method in ("rra", "tsn"):
        preset = config._PAPER[method] | {"model": {"name": "test_tiny_frames", "kwargs": {}}}
        monkeypatch.setitem(config._PAPER, method, preset)
    monkeypatch.setitem(config._SMOKE_COMMON, "input_size", 24)
    monkeypatch.setattr("ytfgvc.models.list_models", lambda pattern="*": ["rra", "tsn"])
    lines: list[str] = []
    ctx = DemoContext(root=tmp_path, echo=lines.append)
    summary = stage_benchmark(ctx)
    assert summary.startswith("smoke runs of rra and tsn")
    result = ctx.results["benchmark"]
    assert set(result["predictions"]) == {"rra", "tsn"} and all(
        Path(p).is_file() for p in result["predictions"].values()
    )
    assert any("| RRA (resnet18) | — |" in line for line in lines)
    assert stage_benchmark(ctx) == summary  # a second demo run finds the runs finished


def test_compile_is_off_auto_or_a_mode_and_auto_is_what_was_measured_faster_on_a_gpu(monkeypatch):
    import torch

    from ytfgvc.benchmark import hardware

    assert load_config("tsn", "paper").compile == "auto" and load_config("tsn", "smoke").compile == "off"
    assert load_config("tsn", overrides={"compile": True}).compile == "default"  # --compile, and older configs
    assert load_config("tsn", overrides={"compile": False}).compile == "off"
    with pytest.raises(YtfgvcError, match="--set compile: one of off, auto, default, reduce-overhead"):
        load_config("tsn", overrides={"compile": "fast"})
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    cfg = load_config("i3d", "paper")
    assert hardware.compile_modes(cfg, gpu) == {"train": None, "test": None}  # nothing measured yet: eager
    monkeypatch.setitem(hardware.COMPILE_AUTO, "i3d", {"train": "max-autotune-no-cudagraphs"})
    assert hardware.compile_modes(cfg, gpu) == {"train": "max-autotune-no-cudagraphs", "test": None}
    assert hardware.compile_modes(cfg, cpu) == {"train": None, "test": None}  # auto never compiles on a CPU
    assert hardware.compile_modes(cfg.replace(compile="default"), cpu) == {"train": "default", "test": "default"}
    assert hardware.compile_modes(cfg.replace(compile="off"), gpu) == {"train": None, "test": None}

    calls, steps = [], []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(kw) or fn)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    fn = lambda x: x + 1  # noqa: E731
    assert hardware.compiled(fn, None) is fn and not calls
    assert hardware.compiled(fn, "default")(1) == 2 and calls == [{}] and not steps
    graphs = hardware.compiled(fn, "reduce-overhead")
    assert graphs(1) == 2 and graphs(2) == 3 and calls[-1] == {"mode": "reduce-overhead"} and len(steps) == 2
