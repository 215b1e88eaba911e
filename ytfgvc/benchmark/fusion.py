"""``ytfgvc fuse RUN_RGB RUN_FLOW``: the two streams of a method, fused as TSN fuses them, as a run of its own.

The rule is TSN's (yjxiong/temporal-segment-networks at 2c5e5e7, ``tools/eval_scores.py``):
each stream's video score is its raw class scores (the ``fc-action`` outputs) averaged over
the test crops and frames, with no softmax (``default_aggregation_func(x,
normalization=False)``), and the fused score is their weighted sum,
``w_rgb · s_rgb + w_flow · s_flow``. Here a stream's video scores are its run's
``scores.npz`` (the same averaged logits for TSN and BN-Inception; RRA's fused ensemble
score, see ``protocol.scores`` in its ``metrics.json``).

Default weights: RGB 1, flow 1.5, TSN's: its README says "The fusion result with weights of
`1:1.5` can be achieved with ``python tools/eval_scores.py RGB_SCORE_FILE FLOW_SCORE_FILE
--score_weights 1 1.5``" (MMAction2's ``tools/analysis_tools/report_accuracy.py`` defaults to
``--coefficients 1 1`` instead). The fused run is scored like any run (:mod:`ytfgvc.metrics`)
on the test videos both streams scored, and writes ``predictions.json`` (the softmax of the
fused scores), ``scores.npz`` and, last, ``metrics.json`` with ``modality: "fusion"`` and what
was fused with which weights (``fusion``).
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.benchmark import records
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles, run_dir

TSN_WEIGHTS = (1.0, 1.5)  # (RGB, flow)
WEIGHTS_SOURCE = (
    "temporal-segment-networks README.md (2c5e5e7): 'The fusion result with weights of `1:1.5` can be achieved "
    "with python tools/eval_scores.py RGB_SCORE_FILE FLOW_SCORE_FILE --score_weights 1 1.5'"
)
RULE = "w_rgb * s_rgb + w_flow * s_flow of the video scores (logits averaged over views, no softmax): TSN's"


@dataclass
class Stream:
    """A finished run to fuse: its folder, ``metrics.json`` and score rows."""

    folder: Path
    metrics: dict[str, Any]
    video_ids: list[str]
    labels: np.ndarray
    scores: np.ndarray

    @property
    def modality(self) -> str:
        return self.metrics.get("modality", "rgb")

    def record(self) -> dict[str, Any]:
        """What the fused run says about this stream."""
        m = self.metrics
        return {
            "run_dir": str(self.folder),
            "run": m.get("run"),
            "model": m.get("model"),
            "backbone": m.get("backbone"),
            "top1": m["scores"]["top1"],
            "recipe": (m.get("recipe") or {}).get("name"),
            "weights": m.get("weights"),
            "scores_sha256": _sha256(RunFiles(self.folder).scores),
        }


def read_stream(folder: Path) -> Stream:
    """A finished run's ``metrics.json`` and ``scores.npz``; an error names what is missing."""
    files = RunFiles(Path(folder))
    if not files.finished:
        raise YtfgvcError(f"{folder} is not a finished run (no metrics.json)", "pass run folders of ytfgvc benchmark")
    metrics = json.loads(files.metrics.read_text())
    if metrics.get("schema") != records.METRICS_SCHEMA:
        raise YtfgvcError(f"{files.metrics} is not a ytfgvc run record ({records.METRICS_SCHEMA})")
    ids, labels, scores = records.read_scores(files.scores)
    return Stream(Path(folder), metrics, ids, labels, scores)


def parse_weights(text: str) -> tuple[float, float]:
    """``"1,1.5"`` -> ``(1.0, 1.5)``: RGB's, then flow's; both finite and not negative, not both 0."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 2 or not all(np.isfinite(values)) or min(values) < 0 or max(values) == 0:
        raise YtfgvcError(f"--weights {text!r}: expected RGB,FLOW, two non-negative numbers", "e.g. --weights 1,1.5")
    return values  # type: ignore[return-value]


def fuse_scores(rgb: np.ndarray, flow: np.ndarray, weights: tuple[float, float] = TSN_WEIGHTS) -> np.ndarray:
    """TSN's fusion: ``weights[0] · rgb + weights[1] · flow`` (score rows of the same videos, same classes)."""
    if rgb.shape != flow.shape:
        raise YtfgvcError(f"the streams' scores differ in shape: {rgb.shape} vs {flow.shape}")
    return weights[0] * rgb + weights[1] * flow


@dataclass
class FusionResult:
    run_dir: Path
    status: str  # "fused" or "already fused"
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "status": self.status, "metrics": self.metrics}

    def summary(self) -> str:
        f, s = self.metrics["fusion"], self.metrics["scores"]
        w = f"{f['weights']['rgb']:g}:{f['weights']['flow']:g}"
        return (
            f"{self.run_dir}: {self.status}; {self.metrics['method']} on {self.metrics['dataset']}, RGB "
            f"{f['streams']['rgb']['top1']:.2f}% + flow {f['streams']['flow']['top1']:.2f}% ({w}) -> "
            f"top-1 {s['top1']:.2f}% [{s['intervals']['top1'][0]:.1f}, {s['intervals']['top1'][1]:.1f}], "
            f"{s['n_scored']}/{s['n_official']} test videos"
        )


def fuse_runs(
    rgb_dir: Path,
    flow_dir: Path,
    weights: tuple[float, float] = TSN_WEIGHTS,
    run_name: str | None = None,
    out: Path | None = None,
) -> FusionResult:
    """Fuse two finished runs of one method (RGB, then flow) into ``<out>/<dataset>/<method>/<run_name>/``.

    ``out`` defaults to the runs folder holding ``rgb_dir``; ``run_name`` to
    ``<rgb run>-fusion``. A folder already fused from the same runs and weights is returned
    as it is; one fused from others is refused (pass another ``run_name``).
    """
    rgb, flow = read_stream(rgb_dir), read_stream(flow_dir)
    _check_pair(rgb, flow)
    m = rgb.metrics
    out = Path(out) if out is not None else Path(rgb_dir).resolve().parents[2]
    folder = run_dir(out, m["dataset"], m["method"], run_name or f"{m['run']}-fusion")
    streams = {"rgb": rgb.record(), "flow": flow.record()}
    done = _already(folder, streams, weights)
    if done is not None:
        return FusionResult(folder, "already fused", done)
    ids, targets, fused = _aligned(rgb, flow, weights)
    metrics = _write(folder, rgb, flow, ids, targets, fused, weights, streams)
    return FusionResult(folder, "fused", metrics)


def _check_pair(rgb: Stream, flow: Stream) -> None:
    a, b = rgb.metrics, flow.metrics
    if (rgb.modality, flow.modality) != ("rgb", "flow"):
        raise YtfgvcError(
            f"fuse takes an RGB run, then a flow run; got {rgb.modality} ({rgb.folder}) and {flow.modality} "
            f"({flow.folder})",
            "ytfgvc fuse RUN_RGB RUN_FLOW",
        )
    for key in ("dataset", "method", "num_classes"):
        if a.get(key) != b.get(key):
            hint = "fuse the two streams of one method on one dataset"
            raise YtfgvcError(f"the runs differ in {key}: {a.get(key)!r} and {b.get(key)!r}", hint)
    if a["data"].get("annotations") != b["data"].get("annotations"):
        raise YtfgvcError("the runs were scored against different official lists (annotations hashes differ)")


def _aligned(rgb: Stream, flow: Stream, weights: tuple[float, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The test videos both streams scored (in RGB's order), their labels and their fused scores."""
    where = {v: i for i, v in enumerate(flow.video_ids)}
    mine = [i for i, v in enumerate(rgb.video_ids) if v in where]
    if not mine:
        raise YtfgvcError("the runs scored no test video in common")
    ids = [rgb.video_ids[i] for i in mine]
    theirs = [where[v] for v in ids]
    if not np.array_equal(rgb.labels[mine], flow.labels[theirs]):
        raise YtfgvcError("the runs give some test videos different labels", "fuse runs of the same lists")
    return ids, rgb.labels[mine], fuse_scores(rgb.scores[mine], flow.scores[theirs], weights)


def _already(folder: Path, streams: dict[str, Any], weights: tuple[float, float]) -> dict[str, Any] | None:
    files = RunFiles(folder)
    if not files.finished:
        return None
    metrics = json.loads(files.metrics.read_text())
    f = metrics.get("fusion")
    if f is None:
        what = f"a {metrics.get('modality', 'rgb')} run, not a fusion"
        raise YtfgvcError(f"{folder} holds {what}; it is left as it is", "pass --run-name NAME for the fused run")
    same = f.get("weights") == {"rgb": weights[0], "flow": weights[1]} and all(
        (f.get("streams") or {}).get(k, {}).get("scores_sha256") == v["scores_sha256"] for k, v in streams.items()
    )
    if not same:
        raise YtfgvcError(f"{folder} holds a fusion of other runs or weights", "pass --run-name NAME for a new one")
    return metrics


def _write(folder, rgb, flow, ids, targets, fused, weights, streams) -> dict[str, Any]:
    """predictions.json, scores.npz, then metrics.json (last: the fused run is finished)."""
    from ytfgvc.metrics import score_matrix
    from ytfgvc.predictions import run_predictions, write_predictions
    from ytfgvc.system.fsutil import write_json_atomic

    m = rgb.metrics
    z = fused - fused.max(1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    scores = score_matrix(probs, targets, n_official=m["data"].get("official_test_videos"))
    recipe = _recipe(weights, rgb, flow)
    provenance = records.provenance(m.get("weights") or {"source": "from scratch"}, recipe)
    files = RunFiles(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = run_predictions(m["dataset"], m["data"].get("manifest"), ids, probs, provenance)
    write_predictions(files.predictions, doc)
    records.write_scores(files.scores, ids, targets, fused)
    metrics = _metrics(folder, rgb, flow, ids, scores, weights, streams, recipe)
    write_json_atomic(files.metrics, metrics)
    return metrics


def _recipe(weights: tuple[float, float], rgb: Stream, flow: Stream) -> dict[str, Any]:
    names = [(s.metrics.get("recipe") or {}).get("name", "?") for s in (rgb, flow)]
    return {
        "name": f"fusion {weights[0]:g}:{weights[1]:g} of {names[0]} + {names[1]}",
        "title": "TSN's two-stream fusion",
        "values": {"weights": list(weights)},
        "sources": {"weights": WEIGHTS_SOURCE if weights == TSN_WEIGHTS else "given with --weights"},
        "changed": {} if weights == TSN_WEIGHTS else {"weights": {"recipe": list(TSN_WEIGHTS), "run": list(weights)}},
    }


def _metrics(folder, rgb, flow, ids, scores, weights, streams, recipe) -> dict[str, Any]:
    m = rgb.metrics
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return {
        "schema": records.METRICS_SCHEMA,
        "dataset": m["dataset"],
        "method": m["method"],
        "model": m.get("model"),
        "backbone": m.get("backbone"),
        "run": folder.name,
        "preset": m.get("preset"),
        "modality": "fusion",
        "scores": scores.to_dict(),
        "num_classes": m["num_classes"],
        "chance": m.get("chance") or records.chance(m["num_classes"]),
        "data": {**m["data"], "test_videos": len(ids)},
        "protocol": {**m.get("protocol", {}), "scores": RULE},
        "fusion": {
            "weights": {"rgb": weights[0], "flow": weights[1]},
            "weights_source": recipe["sources"]["weights"],
            "rule": RULE,
            "streams": streams,
            "videos": {"rgb": len(rgb.video_ids), "flow": len(flow.video_ids), "fused": len(ids)},
        },
        "pretrained_source": m.get("pretrained_source"),
        "weights": m.get("weights"),
        "recipe": recipe,
        "versions": records.tool_versions(),
        "git": records.git_info(),
        "started": now,
        "finished": now,
    }


def _sha256(path: Path) -> str:
    from ytfgvc.system.fsutil import sha256_file

    return sha256_file(path)
