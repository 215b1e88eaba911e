"""The demo's leaderboard step, and the class-prior baseline it scores when no benchmark ran.

Class-prior baseline: every video gets the same ranking, labels ordered by how often they
occur in the train split (ties to the lower label id), each scored by that frequency. It
looks at no video; it is the floor any method must beat, and it is labelled as what it is.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.datasets import Dataset, OfficialLists
from ytfgvc.layout import leaderboard_dir
from ytfgvc.leaderboard.entries import Metadata
from ytfgvc.leaderboard.render import render
from ytfgvc.leaderboard.submit import SubmitResult, submit
from ytfgvc.predictions import build_predictions
from ytfgvc.snapshot import manifest_hash
from ytfgvc.system.fsutil import write_text_atomic

CLASS_PRIOR = "Class prior (train label frequencies)"


def class_prior_predictions(lists: OfficialLists, dataset: str, manifest: str | None) -> dict[str, Any]:
    """A predictions object ranking labels by train-split frequency, the same for every test video."""
    labels = sorted(lists.labels)
    counts = Counter(y for _, y in lists.train)
    prior = np.array([counts.get(y, 0) for y in labels], dtype=np.float64) / max(1, len(lists.train))
    ids = [vid for vid, _ in lists.test]
    return build_predictions(dataset, manifest, ids, np.tile(prior, (len(ids), 1)), labels=labels)


def demo_submit(root: Path, dataset: str, benchmark: Mapping[str, Any] | None) -> str:
    """Submit the benchmark's predictions (or the class prior) to ``<root>/leaderboard`` and render it.

    ``benchmark``: what the demo's benchmark stage left in ``ctx.results["benchmark"]``, a
    mapping with ``"predictions": {model_name: path}``; absent or empty means no benchmark ran.
    """
    board = leaderboard_dir(root)
    notes = f"ytfgvc demo on the {dataset} dataset"
    runs = dict((benchmark or {}).get("predictions") or {})
    results: list[SubmitResult] = []
    if runs:
        for model, path in sorted(runs.items()):
            results.append(
                submit(
                    Path(path),
                    dataset,
                    f"{model} (demo smoke run)",
                    root,
                    metadata=Metadata(notes=f"{notes}: benchmark --preset smoke"),
                    leaderboard_dir=board,
                    allow_partial=True,  # videos the download filtered out have no prediction
                    replace=True,
                )
            )
    else:
        ds = Dataset.open(root, dataset)
        pred = class_prior_predictions(ds.official(), dataset, manifest_hash(ds.layout))
        path = board / "predictions" / f"{dataset}-class-prior.json"
        write_text_atomic(path, json.dumps(pred))
        results.append(
            submit(
                path,
                dataset,
                CLASS_PRIOR,
                root,
                metadata=Metadata(notes=f"{notes}: no benchmark predictions, so this baseline looks at no video"),
                leaderboard_dir=board,
                replace=True,
            )
        )
    page = render(board)
    scored = "; ".join(
        f"{r.entry['method']}: top-1 {r.entry['scores']['top1']:.2f} "
        f"[{r.entry['scores']['intervals']['top1'][0]:.2f}, {r.entry['scores']['intervals']['top1'][1]:.2f}], "
        f"coverage {r.entry['scores']['n_scored']}/{r.entry['scores']['n_official']}"
        for r in results
    )
    return f"{scored}; page {page.index}"
