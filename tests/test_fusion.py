"""Two streams: a flow TSN trained by the smoke preset, fused with its RGB run (TSN's rule), and Table 6's columns."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ytfgvc.benchmark.fusion import TSN_WEIGHTS, fuse_runs, fuse_scores, parse_weights
from ytfgvc.benchmark.records import read_scores, write_scores
from ytfgvc.benchmark.table6 import build_table, write_table
from ytfgvc.cli import main
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles

from .rawframes_utils import make_prepared

# Hand-made scores of 3 test videos (labels 1, 2, 2) over 3 classes.
RGB = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 0.5], [1.0, 0.0, 3.0]])  # argmax 0, 1, 2: 1 of 3 right
FLOW = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 0.0, 0.0]])  # argmax 1, 2, 0: 2 of 3 right
LABELS = np.array([1, 2, 2])
IDS = ["aaaaaaaaaaa", "bbbbbbbbbbb", "ccccccccccc"]


def _run(folder: Path, modality: str, scores: np.ndarray, top1: float) -> Path:
    """A finished run folder with just what fuse reads."""
    folder.mkdir(parents=True)
    iv = {"top1": [0.0, 100.0], "top5": [0.0, 100.0], "mean_class": [0.0, 100.0]}
    metrics = {
        "schema": "ytfgvc-run-1", "dataset": "synthetic", "method": "tsn", "model": "tsn", "backbone": "tiny",
        "run": folder.name, "preset": "smoke", "modality": modality, "num_classes": 3,
        "scores": {"top1": top1, "top5": 100.0, "mean_class": top1, "intervals": iv, "n_scored": 3,
                   "n_official": 4, "coverage": 0.75},
        "data": {"manifest": None, "annotations": "abc", "test_videos": 3, "official_test_videos": 4},
        "weights": {"source": "from scratch", "file": None, "sha256": None}, "recipe": {"name": f"r-{modality}"},
        "finished": "2026-01-01T00:00:00",
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_scores(RunFiles(folder).scores, IDS, LABELS, scores)
    return folder


def test_fusion_is_tsns_weighted_sum_as_computed_by_hand(tmp_path):
    runs = tmp_path / "runs"
    rgb = _run(runs / "synthetic" / "tsn" / "smoke-seed0", "rgb", RGB, 33.33)
    flow = _run(runs / "synthetic" / "tsn" / "smoke-flow-seed0", "flow", FLOW, 66.67)
    assert TSN_WEIGHTS == (1.0, 1.5) and parse_weights("1, 1.5") == (1.0, 1.5)
    # 1·RGB + 1.5·FLOW = [[2, 4, 0], [0, 1, 3.5], [4, 0, 3]]: argmax 1, 2, 0 -> 2 of 3 right
    assert np.array_equal(fuse_scores(RGB, FLOW), [[2.0, 4.0, 0.0], [0.0, 1.0, 3.5], [4.0, 0.0, 3.0]])
    result = fuse_runs(rgb, flow)
    m = result.metrics
    assert result.run_dir == runs / "synthetic" / "tsn" / "smoke-seed0-fusion" and result.status == "fused"
    assert m["modality"] == "fusion" and m["scores"]["top1"] == pytest.approx(200 / 3, abs=1e-3)
    assert m["scores"]["n_scored"] == 3 and m["scores"]["n_official"] == 4
    assert m["fusion"]["weights"] == {"rgb": 1.0, "flow": 1.5} and "1:1.5" in m["fusion"]["weights_source"]
    assert m["fusion"]["streams"]["flow"]["run"] == "smoke-flow-seed0"
    assert m["recipe"]["name"].startswith("fusion 1:1.5")
    ids, labels, fused = read_scores(RunFiles(result.run_dir).scores)
    assert ids == IDS and np.array_equal(labels, LABELS) and np.allclose(fused, RGB + 1.5 * FLOW)
    preds = json.loads(RunFiles(result.run_dir).predictions.read_text())
    assert [preds["results"][v][0]["label"] for v in IDS] == [1, 2, 0]
    z = np.exp(np.array([2.0, 4.0, 0.0]) - 4.0)
    assert preds["results"][IDS[0]][0]["score"] == pytest.approx(z[1] / z.sum(), abs=1e-6)  # softmax of the fused row
    assert fuse_runs(rgb, flow).status == "already fused"
    # Other weights: 1·RGB + 0·FLOW is the RGB run again (1 of 3), under a name of its own.
    alone = fuse_runs(rgb, flow, (1.0, 0.0), run_name="rgb-only")
    assert alone.metrics["scores"]["top1"] == pytest.approx(100 / 3, abs=1e-3)
    assert "weights" in alone.metrics["recipe"]["changed"]
    with pytest.raises(YtfgvcError, match="holds a fusion of other runs or weights"):
        fuse_runs(rgb, flow, (1.0, 1.0))
    with pytest.raises(YtfgvcError, match="holds a flow run, not a fusion; it is left as it is"):
        fuse_runs(rgb, flow, run_name="smoke-flow-seed0")  # the name of a stream's own run
    assert read_scores(RunFiles(flow).scores)[2].tolist() == FLOW.tolist()
    with pytest.raises(YtfgvcError, match="an RGB run, then a flow run"):
        fuse_runs(flow, rgb)
    with pytest.raises(YtfgvcError, match="--weights"):
        parse_weights("1")


def test_the_smoke_preset_trains_a_flow_tsn_and_fuses_it_with_its_rgb_run(tmp_path):
    """The default suite's two-stream check: frames and flow stacks, an RGB and a flow run, the fusion, Table 6."""
    make_prepared(tmp_path, classes=3, train_per_class=2, test_per_class=1, frames=(3, 6), flow_stack=5)
    out = tmp_path / "runs"
    common = ["benchmark", "synthetic", "--model", "tsn", "--preset", "smoke", "--root", str(tmp_path)]
    common += ["--out", str(out), "--backbone", "tiny", "--input-size", "24", "--workers", "0", "--batch-size", "6"]
    common += ["--no-progress", "--json"]
    for modality in ("rgb", "flow"):
        res = CliRunner().invoke(main, [*common, "--modality", modality])
        assert res.exit_code == 0, res.output
    flow = json.loads(res.output)["runs"][0]
    assert flow["run_dir"].endswith("tsn/smoke-flow-seed0") and flow["metrics"]["modality"] == "flow"
    assert flow["metrics"]["protocol"]["flow_stack"] == 5 and flow["metrics"]["recipe"]["name"] == "tsn-official-flow"
    rgb_dir, flow_dir = out / "synthetic" / "tsn" / "smoke-seed0", Path(flow["run_dir"])
    res = CliRunner().invoke(main, ["fuse", str(rgb_dir), str(flow_dir), "--json"])
    assert res.exit_code == 0, res.output
    fused = json.loads(res.output)
    assert fused["status"] == "fused" and fused["metrics"]["scores"]["n_scored"] == 3
    _, _, rgb_scores = read_scores(RunFiles(rgb_dir).scores)
    _, _, flow_scores = read_scores(RunFiles(flow_dir).scores)
    _, _, both = read_scores(RunFiles(Path(fused["run_dir"])).scores)
    assert np.allclose(both, rgb_scores + 1.5 * flow_scores, atol=1e-5)
    md = build_table([out]).to_markdown()
    assert "| RGB top-1 (95% CI) | Δ | flow top-1 (95% CI) | fusion top-1 (95% CI) |" in md
    assert "RGB:flow weights 1:1.5" in md


def test_table6_without_streams_is_unchanged_and_a_method_with_flow_only_shows_dashes(tmp_path):
    runs = tmp_path / "runs"
    _run(runs / "synthetic" / "tsn" / "smoke-flow-seed0", "flow", FLOW, 66.67)
    table = build_table([runs])
    assert table.streams and table.rows[0].top1 is None and table.rows[0].flow.top1 == 66.67
    assert "| TSN (tiny) | — | — | — | 66.67 [0.0, 100.0] | — |" in table.to_markdown()
    assert table.to_csv().splitlines()[0].endswith("fusion_weights") and "& Flow & Fusion &" in table.to_latex()
    files = write_table(table, tmp_path / "t6")
    assert Path(files["png"]).read_bytes()[:4] == b"\x89PNG"
