"""Re-scoring ranked labels against the official test list, with :mod:`ytfgvc.metrics` (the benchmark's scorer).

Scores are computed on the videos a submission covers; coverage (videos scored /
official test videos) is reported beside them, and so are top-1 and top-5 with every
missing video counted as wrong, so a partial entry can never look better by leaving out
hard videos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ytfgvc.datasets.official import OfficialLists
from ytfgvc.metrics import DEFAULT_BOOT, DEFAULT_SEED, Scores, hits, score_ranked


def ranked_matrix(top5: Mapping[str, Sequence[int]], lists: OfficialLists) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The covered test ids (test-list order), their ranked labels (N, 5) and their targets (N,)."""
    ids = [vid for vid, _ in lists.test if vid in top5]
    targets = np.fromiter((y for vid, y in lists.test if vid in top5), dtype=np.int64, count=len(ids))
    ranked = np.array([top5[vid] for vid in ids], dtype=np.int64).reshape(len(ids), -1)
    return ids, ranked, targets


def score_top5(
    top5: Mapping[str, Sequence[int]], lists: OfficialLists, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> Scores:
    """Top-1, top-5, mean class and per-class accuracy with 95% bootstrap intervals and coverage."""
    _, ranked, targets = ranked_matrix(top5, lists)
    return score_ranked(ranked, targets, n_official=len(lists.test), n_boot=n_boot, seed=seed)


def missing_as_wrong(scores: Scores) -> dict[str, float]:
    """Top-1 and top-5 over the whole official test list, every missing video counted as wrong."""
    if not scores.n_official:
        return {"top1": 0.0, "top5": 0.0}
    f = scores.n_scored / scores.n_official
    return {"top1": round(scores.top1 * f, 4), "top5": round(scores.top5 * f, 4)}


def correctness(top5: Mapping[str, Sequence[int]], lists: OfficialLists, k: int = 1) -> dict[str, float]:
    """Per covered video: 1.0 if its label is among the first ``k`` ranked, else 0.0."""
    ids, ranked, targets = ranked_matrix(top5, lists)
    if not ids:
        return {}
    return dict(zip(ids, hits(ranked, targets, k).tolist(), strict=True))


def scores_record(scores: Scores) -> dict[str, Any]:
    """What an entry stores: :class:`Scores` plus the missing-counted-as-wrong figures."""
    return {**scores.to_dict(), "missing_as_wrong": missing_as_wrong(scores)}
