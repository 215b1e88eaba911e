"""Helpers for the leaderboard tests: official lists and predictions made on the spot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ytfgvc.datasets.official import OfficialLists, import_annotations

from .utils import make_ids, write_release

VERSION = "ytfgvc-predictions-1"
MANIFEST = "ab" * 32


def make_lists(n_test: int = 12, n_classes: int = 8, n_train: int = 16) -> OfficialLists:
    """Official lists in memory: test id ``i`` has label ``i % n_classes``."""
    test = [(vid, i % n_classes) for i, vid in enumerate(make_ids(n_test, "t"))]
    train = [(vid, i % n_classes) for i, vid in enumerate(make_ids(n_train, "r"))]
    return OfficialLists(train=train, test=test, labels={c: f"class {c}" for c in range(n_classes)})


def import_lists(root: Path, lists: OfficialLists, dataset: str = "synthetic") -> Path:
    """Import ``lists`` under ``root`` as the official release of ``dataset``; returns ``root``."""
    src = write_release(
        root.parent / f"{root.name}-release",
        [list(p) for p in lists.train],
        [list(p) for p in lists.test],
        {str(k): v for k, v in lists.labels.items()},
    )
    import_annotations(root, dataset, src)
    return root


def ranked(truth: int, n_classes: int, rank_of_truth: int | None, k: int = 5) -> list[dict[str, Any]]:
    """``k`` labels best first with decreasing scores; the true label at ``rank_of_truth`` (0-based) or absent."""
    others = [c for c in range(n_classes) if c != truth]
    labels = others[:k]
    if rank_of_truth is not None:
        labels = others[: k - 1]
        labels.insert(rank_of_truth, truth)
    return [{"label": y, "score": round(1.0 - 0.1 * i, 3)} for i, y in enumerate(labels)]


def predictions(
    lists: OfficialLists,
    ranks: dict[str, int | None] | None = None,
    dataset: str = "synthetic",
    ids: list[str] | None = None,
) -> dict[str, Any]:
    """A valid predictions object: by default every video right at top-1; ``ranks`` sets where the truth is."""
    ranks = ranks or {}
    n_classes = len(lists.labels)
    chosen = set(ids) if ids is not None else None
    results = {vid: ranked(y, n_classes, ranks.get(vid, 0)) for vid, y in lists.test if chosen is None or vid in chosen}
    return {
        "version": VERSION,
        "dataset": dataset,
        "manifest": MANIFEST,
        "results": results,
        "external_data": {"used": False, "details": ""},
    }


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path
