"""``ytfgvc leaderboard submit`` and ``rescore``: validate, re-score, write the entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc import __version__
from ytfgvc.datasets import Dataset, OfficialLists
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import leaderboard_dir as default_leaderboard_dir
from ytfgvc.leaderboard.entries import (
    ENTRY_SCHEMA,
    Metadata,
    check_method,
    choose_slug,
    entry_path,
    load_entries,
    utc_today,
    write_entry,
)
from ytfgvc.leaderboard.scoring import score_top5, scores_record
from ytfgvc.predictions import MAX_PREDICTIONS_BYTES, validate_file


@dataclass
class SubmitResult:
    path: Path
    entry: dict[str, Any]
    replaced: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "path": str(self.path),
            "dataset": e["dataset"],
            "slug": e["slug"],
            "method": e["method"],
            "replaced": self.replaced,
            "manifest": e["manifest"],
            "scores": e["scores"],
            "warnings": self.warnings,
        }


def submit(
    predictions: Path,
    dataset: str,
    method: str,
    root: Path,
    *,
    metadata: Metadata | None = None,
    leaderboard_dir: Path | None = None,
    allow_partial: bool = False,
    replace: bool = False,
    max_bytes: int = MAX_PREDICTIONS_BYTES,
    provenance: dict[str, str] | None = None,
) -> SubmitResult:
    """Validate ``predictions`` against the test list imported under ``root``, re-score it, write the entry.

    Args:
        predictions: a predictions file (format: :mod:`ytfgvc.predictions`).
        dataset: the dataset it is for; its official lists must be imported under ``root``.
        method: the method's display name; the entry's file name is derived from it.
        metadata: what the submitter says about the method (shown, escaped; never scored).
        leaderboard_dir: holds ``submissions/<dataset>/<slug>.json`` (default ``<root>/leaderboard``).
        allow_partial: accept files that leave official test videos out (scores are then on
            the covered videos, with coverage and missing-as-wrong figures beside them).
        replace: replace an existing entry of the same method name.
        provenance: ``{"weights", "recipe"}`` to show; each key given here wins over the file's
            ``provenance`` (``ytfgvc benchmark`` writes one).
    """
    method = check_method(method)
    metadata = metadata or Metadata()
    ds = Dataset.open(root, dataset)
    lists = ds.official()
    report = validate_file(predictions, lists, dataset, allow_partial=allow_partial, max_bytes=max_bytes)
    pred = report.raise_if_invalid()
    leaderboard_dir = Path(leaderboard_dir) if leaderboard_dir is not None else default_leaderboard_dir(root)
    slug, exists = choose_slug(leaderboard_dir, dataset, method)
    if exists and not replace:
        raise YtfgvcError(
            f"{entry_path(leaderboard_dir, dataset, slug)} already holds {method!r}",
            "pass --replace to replace it, or choose another --method",
        )
    entry = {
        "schema": ENTRY_SCHEMA,
        "kind": "rescored",
        "dataset": dataset,
        "slug": slug,
        "method": method,
        "metadata": metadata.to_dict(),
        "external_data": pred.external_data,
        "submitted": utc_today(),
        "tool_version": __version__,
        "annotations": ds.annotations_hash,
        "manifest": pred.manifest,
        "predictions_sha256": pred.sha256,
        "scores": scores_record(score_top5(pred.top5, lists)),
        "top5": pred.top5,
        "truth": truth_of(pred.top5, lists),
    }
    origin = {**(pred.provenance or {}), **{k: v for k, v in (provenance or {}).items() if v}}
    if origin:
        entry["provenance"] = origin
    path = write_entry(leaderboard_dir, entry)
    return SubmitResult(path, entry, replaced=exists, warnings=[str(w) for w in report.warnings])


def truth_of(top5: dict[str, Any], lists: OfficialLists) -> dict[str, int]:
    """The official label of each scored video: what the entry keeps for the common core."""
    return {vid: y for vid, y in lists.test if vid in top5}


@dataclass
class RescoreResult:
    checked: int
    changed: list[str]
    skipped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def rescore(root: Path, dataset: str, leaderboard_dir: Path | None = None, *, write: bool = False) -> RescoreResult:
    """Re-score every ``rescored`` entry of ``dataset`` from its kept top-5 against the imported test list.

    Reports entries whose stored scores differ (a changed test list, or a scorer change
    recorded in the CHANGELOG), and entries of the previous schema (no ``truth``); ``write``
    rewrites them as ``ytfgvc-entry-2``. Paper rows have nothing to re-score.
    """
    ds = Dataset.open(root, dataset)
    lists: OfficialLists = ds.official()
    current = ds.annotations_hash
    result = RescoreResult(0, [], [])
    leaderboard_dir = Path(leaderboard_dir) if leaderboard_dir is not None else default_leaderboard_dir(root)
    for entry in load_entries(leaderboard_dir):
        if entry["dataset"] != dataset:
            continue
        if entry["kind"] != "rescored":
            result.skipped.append(entry["slug"])
            continue
        official = {vid for vid, _ in lists.test}
        top5 = {vid: labels for vid, labels in entry["top5"].items() if vid in official}
        if not top5:  # none of its videos is in this test list: nothing to score it on
            result.skipped.append(entry["slug"])
            continue
        result.checked += 1
        fresh = scores_record(score_top5(top5, lists, n_boot=entry["scores"].get("n_boot", 1000)))
        truth = truth_of(top5, lists)
        if fresh != entry["scores"] or entry.get("annotations") != current or entry.get("truth") != truth:
            result.changed.append(entry["slug"])
            if write:
                again = {**entry, "schema": ENTRY_SCHEMA, "scores": fresh, "annotations": current}
                write_entry(leaderboard_dir, {**again, "top5": top5, "truth": truth})
    return result
