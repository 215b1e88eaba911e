"""A study's results as committed files: every run's scores and top-5 predictions, in one small JSON.

A study's results folder (``baselines/synthetic/results-<profile>/`` and the like, named by
the study file's ``results`` key) holds

* ``runs.json`` (:data:`RESULTS_VERSION`): per finished run its variant, model, seed,
  scores, wall time and device, and the top-5 labels of every test video (the order of
  ``videos``), written one run per line::

      {"version": "ytfgvc-study-results-1", "study": "rra-vs-tsn", "profile": "gpu",
       "videos": ["<id>", ...],
       "runs": [
      {"name": "rra-seed0", "variant": "rra", "model": "rra", "seed": 0, "top1": 51.3, ...,
       "top5": [[3, 1, 0, 9, 2], ...]},
      ...]}

* ``study.json``: the test labels, the data of every variant, the sessions that ran the
  study (command, device, seconds) (:mod:`ytfgvc.study.run`);
* ``attention.json``: where the glimpses look, per analysed run (:mod:`ytfgvc.study.attention`).

Every number of a study's report is computed from these three files (or, on the machine
that ran the study, from the run folders they are made from), so the report can be
rebuilt on any CPU with ``ytfgvc study NAME --profile P --results-only``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles
from ytfgvc.system.fsutil import write_text_atomic

RESULTS_VERSION = "ytfgvc-study-results-1"
TOP_K = 5

if TYPE_CHECKING:
    from ytfgvc.study.run import Study


@dataclass
class RunRecord:
    """One finished run of a study."""

    name: str
    variant: str
    model: str
    seed: int
    top1: float
    top5_acc: float
    mean_class: float
    wall_time_s: float
    device: str
    top5: dict[str, list[int]] = field(default_factory=dict)  # video -> top-5 labels, best first
    folder: Path | None = None  # the run folder, when read from one

    def predicted(self, video: str) -> int | None:
        labels = self.top5.get(video)
        return labels[0] if labels else None


def read_run_folder(folder: Path, name: str, variant: str, model: str, seed: int) -> RunRecord:
    """A finished run folder (``metrics.json``, ``predictions.json``) as a :class:`RunRecord`."""
    files = RunFiles(folder)
    m = json.loads(files.metrics.read_text())
    preds = json.loads(files.predictions.read_text())["results"]
    d = m.get("device", {})
    return RunRecord(
        name=name,
        variant=variant,
        model=model,
        seed=seed,
        top1=float(m["scores"]["top1"]),
        top5_acc=float(m["scores"].get("top5", float("nan"))),
        mean_class=float(m["scores"]["mean_class"]),
        wall_time_s=float(m.get("wall_time_s", 0.0)),
        device=f"{d.get('name', '?')} ({d.get('type', '?')})",
        top5={vid: [int(r["label"]) for r in rows[:TOP_K]] for vid, rows in preds.items()},
        folder=folder,
    )


def write_runs_json(path: Path, study: str, profile: str, videos: list[str], runs: list[RunRecord]) -> Path:
    """Write ``runs.json``: one run per line, its top-5 labels in the order of ``videos``."""
    head = {"version": RESULTS_VERSION, "study": study, "profile": profile, "videos": videos}
    lines = []
    for r in sorted(runs, key=lambda r: (r.seed, r.name)):
        rec = {
            "name": r.name,
            "variant": r.variant,
            "model": r.model,
            "seed": r.seed,
            "top1": r.top1,
            "top5_acc": r.top5_acc,
            "mean_class": r.mean_class,
            "wall_time_s": r.wall_time_s,
            "device": r.device,
            "top5": [r.top5.get(v, []) for v in videos],
        }
        lines.append(json.dumps(rec, separators=(",", ":")))
    text = json.dumps(head)[:-1] + ', "runs": [\n' + ",\n".join(lines) + "\n]}\n"
    write_text_atomic(path, text)
    return path


def read_runs_json(path: Path) -> tuple[dict[str, Any], list[RunRecord]]:
    """``(header, runs)`` of a ``runs.json``; refuses another version."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise YtfgvcError(f"cannot read {path}: {e}", "pass a runs.json written by ytfgvc study (--export)") from None
    if doc.get("version") != RESULTS_VERSION:
        raise YtfgvcError(
            f"{path}: version {doc.get('version')!r}, expected {RESULTS_VERSION}",
            "write it again with this version's ytfgvc study --results-only --export DIR (from the run folders)",
        )
    videos = doc["videos"]
    runs = [
        RunRecord(
            name=r["name"],
            variant=r["variant"],
            model=r["model"],
            seed=int(r["seed"]),
            top1=float(r["top1"]),
            top5_acc=float(r["top5_acc"]),
            mean_class=float(r["mean_class"]),
            wall_time_s=float(r["wall_time_s"]),
            device=r["device"],
            top5={v: list(labels) for v, labels in zip(videos, r["top5"], strict=True) if labels},
        )
        for r in doc["runs"]
    ]
    return {k: v for k, v in doc.items() if k != "runs"}, runs


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
    from ytfgvc.study.record import RECORD, RUNS, read_attention, read_record

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
        attention = read_attention(runs_root)
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
    attention = read_attention(rdir)
    try:
        shown = rdir.resolve().relative_to(study.path.parent.resolve())
    except ValueError:
        shown = rdir
    return StudyData(runs, dict(record.get("test_labels") or {}), record, attention, f"`{shown}/{RUNS}`")
