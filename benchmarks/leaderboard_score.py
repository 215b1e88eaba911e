"""How long a 10 000-video predictions file takes to validate and re-score, as ratios to baselines in this run.

Baselines: ``json.loads`` of the same bytes (the floor for anything that reads the file),
and the textbook bootstrap that resamples video indices (what ``ytfgvc.metrics`` did
before it resampled cell counts). Run::

    python benchmarks/leaderboard_score.py [--videos 10000] [--classes 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ytfgvc.datasets.official import OfficialLists
from ytfgvc.leaderboard.scoring import ranked_matrix, score_top5
from ytfgvc.metrics import hits, paired_bootstrap
from ytfgvc.predictions import build_predictions, validate_file


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def index_bootstrap(ranked: np.ndarray, targets: np.ndarray, n_boot: int = 1000, seed: int = 0) -> None:
    """Top-1, top-5 and mean class intervals by resampling video indices (the baseline)."""
    c1, c5 = hits(ranked, targets, 1), hits(ranked, targets, 5)
    idx = np.random.default_rng(seed).integers(0, len(targets), size=(n_boot, len(targets)))
    np.percentile(c1[idx].mean(axis=1), [2.5, 97.5])
    np.percentile(c5[idx].mean(axis=1), [2.5, 97.5])
    classes, inverse = np.unique(targets, return_inverse=True)
    c = len(classes)
    flat = (inverse[idx] + c * np.arange(n_boot)[:, None]).ravel()
    counts = np.bincount(flat, minlength=c * n_boot).reshape(-1, c)
    right = np.bincount(flat, weights=c1[idx].ravel(), minlength=c * n_boot).reshape(-1, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        np.percentile(np.nanmean(np.where(counts > 0, right / np.maximum(counts, 1), np.nan), axis=1), [2.5, 97.5])


def index_paired(a: np.ndarray, b: np.ndarray, n_boot: int = 10000, seed: int = 0) -> None:
    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    np.percentile((a - b)[idx].mean(axis=1), [2.5, 97.5])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=10_000)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    ids = [f"v{i:010d}" for i in range(args.videos)]
    targets = rng.integers(0, args.classes, args.videos)
    lists = OfficialLists(
        train=[], test=list(zip(ids, targets.tolist(), strict=True)), labels=dict.fromkeys(range(args.classes), "c")
    )
    scores = rng.random((args.videos, args.classes))
    scores[np.arange(args.videos), targets] += rng.random(args.videos) * 1.5
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.json"
        path.write_text(json.dumps(build_predictions("synthetic", "ab" * 32, ids, scores)))
        raw = path.read_bytes()
        report = validate_file(path, lists, "synthetic")
        assert report.ok, report.problems[:3]
        top5 = report.predictions.top5
        _, ranked, tgt = ranked_matrix(top5, lists)

        t_json = best_of(args.repeat, lambda: json.loads(raw))
        t_validate = best_of(args.repeat, lambda: validate_file(path, lists, "synthetic"))
        t_score = best_of(args.repeat, lambda: score_top5(top5, lists))
        t_index = best_of(args.repeat, lambda: index_bootstrap(ranked, tgt))
        a = hits(ranked, tgt, 1)
        b = np.roll(a, 1)
        t_paired = best_of(args.repeat, lambda: paired_bootstrap(a, b))
        t_paired_index = best_of(args.repeat, lambda: index_paired(a, b))

    total = t_validate + t_score
    print(
        f"{args.videos} videos x 5 labels, {args.classes} classes, file {len(raw) / 1e6:.1f} MB, best of {args.repeat}"
    )
    print(f"  json.loads (baseline)        {t_json * 1e3:8.1f} ms")
    print(f"  validate (strict)            {t_validate * 1e3:8.1f} ms   {t_validate / t_json:5.2f}x json.loads")
    print(f"  score (1000 bootstrap)       {t_score * 1e3:8.1f} ms")
    print(f"  validate + score             {total * 1e3:8.1f} ms   {total / t_json:5.2f}x json.loads")
    print(
        f"  index bootstrap (baseline)   {t_index * 1e3:8.1f} ms   cell resampling is {t_index / t_score:5.1f}x faster"
    )
    print(
        f"  paired, 10000 resamples      {t_paired * 1e3:8.1f} ms   {t_paired_index / t_paired:5.1f}x faster than index"
    )


if __name__ == "__main__":
    main()
