"""Longer runs (opt in with ``-m slow``): the real models' smoke benchmark, and the throughput script."""

import json
import sys
from pathlib import Path

import pytest

from ytfgvc.benchmark.config import METHODS, load_config
from ytfgvc.benchmark.run import run_benchmark
from ytfgvc.models import list_models

from .rawframes_utils import make_prepared

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", METHODS)
def test_smoke_preset_of_the_real_models(method, tmp_path):
    if method not in list_models():
        pytest.skip(f"model {method!r} is not registered yet")
    make_prepared(tmp_path, frames=(8, 20), size=(128, 160), train_per_class=3)
    cfg = load_config(method, "smoke", overrides={"dataset": "synthetic", "root": str(tmp_path)})
    r = run_benchmark(cfg, tmp_path / "runs", progress=False)
    assert r.status == "finished" and r.metrics["scores"]["n_scored"] == 6
    assert r.metrics["pretrained_source"] == "from scratch"


def test_throughput_script_runs_tiny_on_a_cpu(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import train_throughput

    out = tmp_path / "results.json"
    argv = ["--device", "cpu", "--tiny", "--methods", "test_tiny_frames,test_tiny_clip"]
    results = train_throughput.main([*argv, "--import", "tests.tiny_models", "--out", str(out)])
    assert json.loads(out.read_text())["methods"].keys() == {"test_tiny_frames", "test_tiny_clip"}
    for r in results["methods"].values():
        assert r["train"]["ceiling"]["off"]["rate"] > 0 and r["train"]["pipeline"]["rate"] > 0
        assert r["train"]["data_only"]["steps"] == 4 and r["test"]["ratio"] > 0  # --tiny: 4 timed steps


def test_a_compiled_run_on_a_cpu_trains_the_frozen_and_the_unfrozen_epochs(tmp_path):
    """``compile`` wiring through the engine: recompiled when the frozen set changes, and for the test pass."""
    from . import tiny_models  # noqa: F401

    make_prepared(tmp_path, frames=(4, 8), size=(40, 48))
    over = {
        "dataset": "synthetic", "root": str(tmp_path),
        "model": {"name": "test_tiny_frames", "kwargs": {"pretrained": True}}, "input_size": 24, "workers": 0,
        "batch_size": 4, "epochs": 2, "freeze_epochs": 1, "test_segments": 3, "compile": "default",
    }  # fmt: skip
    r = run_benchmark(load_config("tsn", "smoke", overrides=over), tmp_path / "runs", progress=False)
    assert r.status == "finished" and r.metrics["training"]["compile"] == {
        "config": "default", "train": "default", "test": "default"
    }  # fmt: skip
    log = [json.loads(x) for x in (r.run_dir / "log.jsonl").read_text().splitlines()]
    assert [e["frozen"] for e in log] == [True, False]


def test_time_to_table6_and_the_session_summary_run_tiny_on_a_cpu(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import speed_summary
    import time_to_table6
    import train_throughput

    t6 = time_to_table6.main(["--device", "cpu", "--tiny", "--methods", "rra,i3d", "--out", str(tmp_path / "t.json")])
    rra, i3d = t6["methods"]["rra"], t6["methods"]["i3d"]
    assert rra["freeze_epochs"] == 30 and rra["frozen"]["clips_per_s"] > 0 and "frozen" not in i3d
    assert [(r["dataset"], r["method"]) for r in t6["runs"]] == [
        ("birds", "rra"), ("birds", "i3d"), ("cars", "rra"), ("cars", "i3d")
    ]  # fmt: skip
    assert t6["gpu_hours"] == pytest.approx(sum(r["hours"] for r in t6["runs"]))
    (tmp_path / "time_to_table6.json").write_text((tmp_path / "t.json").read_text())

    argv = ["--device", "cpu", "--tiny", "--methods", "test_tiny_clip", "--import", "tests.tiny_models"]
    train_throughput.main([*argv, "--worker-stage", "frames", "--out", str(tmp_path / "throughput.json")])
    train_throughput.main(
        [*argv, "--splits", "test", "--variants", "before:workers=1,read_ahead=0;cold:cold=1,data_only=1",
         "--worker-stage", "frames", "--out", str(tmp_path / "loader.json")]
    )  # fmt: skip
    loader = json.loads((tmp_path / "loader.json").read_text())["methods"]["test_tiny_clip"]["test"]
    assert loader["variants"].keys() == {"before", "cold"} and "pipeline" not in loader["variants"]["cold"]
    assert loader["variants"]["before"]["pipeline"]["stats"]["worker_capacity_frames_per_s"] > 0
    (tmp_path / "i3d_test_loader.json").write_text((tmp_path / "loader.json").read_text())
    # A compiled ceiling 10% above eager, checked: what compile: auto would adopt
    fake = json.loads((tmp_path / "throughput.json").read_text())
    ceiling = fake["methods"]["test_tiny_clip"]["train"]["ceiling"]
    ceiling["default"] = {"rate": ceiling["off"]["rate"] * 1.1, "check": {"ok": True}}
    (tmp_path / "c.json").write_text(json.dumps(fake))
    speed_summary.main([str(tmp_path), "--merge-compile", str(tmp_path / "c.json")])
    assert speed_summary.compile_auto(json.loads((tmp_path / "compile.json").read_text())) == {
        "test_tiny_clip": {"train": "default"}
    }
