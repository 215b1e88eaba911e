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
        assert r["train"]["ceiling_clips_per_s"] > 0 and r["train"]["pipeline_clips_per_s"] > 0
        assert r["test"]["ratio"] > 0


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
