"""``ytfgvc leaderboard compare A B``: is A better than B, or is the difference noise?

Each side is an entry (a file under ``submissions/``, or its slug) or a predictions file.
Both are scored on the videos they have in common (so different download coverage does
not decide the result), and :func:`ytfgvc.metrics.paired_bootstrap` resamples those
videos to give the difference in top-1 (or top-5) a 95% interval: the difference is
significant at 5% when the interval leaves out zero.

Only the videos where the two disagree (one right, the other wrong) carry information.
The result says how many there are, with an exact two-sided sign test on them; when they
are few, the bootstrap interval is coarse (it can only take a few values) and the sentence
says so instead of printing it bare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.datasets.official import OfficialLists, load_official
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import leaderboard_dir as default_leaderboard_dir
from ytfgvc.leaderboard.entries import ENTRY_SCHEMAS, entry_path, entry_problems, is_slug
from ytfgvc.leaderboard.scoring import correctness
from ytfgvc.metrics import Comparison, paired_bootstrap
from ytfgvc.predictions import MAX_PREDICTIONS_BYTES, TooLarge, read_capped, strict_loads, validate_bytes

METRICS = {"top1": 1, "top5": 5}
COMPARE_BOOT = 10000
FEW_DISAGREEMENTS = 10  # below this many discordant videos, the sentence reports the exact sign test instead


@dataclass
class Side:
    name: str
    source: str
    top5: dict[str, list[int]]


@dataclass
class CompareResult:
    a: str
    b: str
    metric: str
    n_common: int
    accuracy_a: float
    accuracy_b: float
    comparison: Comparison
    only_a: int = 0  # videos A gets right and B wrong
    only_b: int = 0  # videos B gets right and A wrong

    @property
    def sign_test_p(self) -> float:
        """Exact two-sided sign test on the videos where A and B disagree (1.0 when they never do)."""
        from scipy.stats import binomtest

        n = self.only_a + self.only_b
        return 1.0 if n == 0 else float(binomtest(self.only_a, n, 0.5).pvalue)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "metric": self.metric,
            "videos_in_common": self.n_common,
            "accuracy_a": self.accuracy_a,
            "accuracy_b": self.accuracy_b,
            "only_a_right": self.only_a,
            "only_b_right": self.only_b,
            "sign_test_p": round(self.sign_test_p, 6),
            **self.comparison.to_dict(),
        }

    def sentence(self) -> str:
        c = self.comparison
        head = (
            f"{self.a} - {self.b} = {c.diff:+.2f} {self.metric} points ({self.accuracy_a:.2f} vs "
            f"{self.accuracy_b:.2f}) on {self.n_common} common videos"
        )
        differ = self.only_a + self.only_b
        if differ == 0:
            return f"{head}: both are right on exactly the same videos, so there is no difference to test"
        videos = "video" if differ == 1 else "videos"
        split = f"they disagree on {differ} {videos} ({self.a} alone right on {self.only_a}, {self.b} on {self.only_b})"
        if differ < FEW_DISAGREEMENTS:
            verdict = "not significant" if self.sign_test_p >= 0.05 else "significant"
            return (
                f"{head}; {split}: too few for a bootstrap interval to mean much; exact sign test "
                f"p = {self.sign_test_p:.3g}: {verdict} at 5%"
            )
        verdict = "significant" if c.significant else "not significant"
        return (
            f"{head}; {split}; 95% interval [{c.interval[0]:+.2f}, {c.interval[1]:+.2f}], "
            f"p = {c.p_value:.4f} (sign test p = {self.sign_test_p:.3g}): {verdict} at 5%"
        )


def load_side(spec: str, dataset: str, lists: OfficialLists, leaderboard_dir: Path) -> Side:
    """An entry file, an entry slug of ``dataset``, or a predictions file (partial coverage allowed)."""
    path = Path(spec)
    if not path.is_file():
        if not is_slug(spec) or not entry_path(leaderboard_dir, dataset, spec).is_file():
            raise YtfgvcError(f"{spec!r} is neither a file nor an entry of {dataset} under {leaderboard_dir}")
        path = entry_path(leaderboard_dir, dataset, spec)
    try:
        raw = read_capped(path, MAX_PREDICTIONS_BYTES)
    except TooLarge as e:
        raise YtfgvcError(f"{path}: {e}") from None
    try:
        head = strict_loads(raw)
    except (ValueError, RecursionError):
        head = None  # validation below says what is wrong with it
    if not (isinstance(head, dict) and head.get("schema") in ENTRY_SCHEMAS):
        pred = validate_bytes(raw, lists, dataset, allow_partial=True, path=str(path)).raise_if_invalid()
        return Side(path.name, "predictions", pred.top5)
    problems = entry_problems(head)
    if problems:
        raise YtfgvcError(f"{path}: bad entry: {problems[0]}")
    if head["dataset"] != dataset:
        raise YtfgvcError(f"{path} is an entry of {head['dataset']!r}, not {dataset!r}")
    if head["kind"] != "rescored":
        raise YtfgvcError(
            f"{head['method']!r} is a row reported in a paper, not re-scored: it has no per-video predictions",
            "compare entries that were submitted with predictions",
        )
    return Side(head["method"], "entry", head["top5"])


def compare(
    a: str,
    b: str,
    dataset: str,
    root: Path,
    leaderboard_dir: Path | None = None,
    metric: str = "top1",
    n_boot: int = COMPARE_BOOT,
) -> CompareResult:
    """Paired bootstrap of A - B on their common test videos; see the module docstring."""
    if metric not in METRICS:
        raise YtfgvcError(f"unknown metric {metric!r}", f"use one of {', '.join(METRICS)}")
    lists = load_official(root, dataset)
    board = Path(leaderboard_dir) if leaderboard_dir is not None else default_leaderboard_dir(root)
    side_a, side_b = (load_side(s, dataset, lists, board) for s in (a, b))
    right_a = correctness(side_a.top5, lists, METRICS[metric])
    right_b = correctness(side_b.top5, lists, METRICS[metric])
    common = [vid for vid, _ in lists.test if vid in right_a and vid in right_b]
    if not common:
        raise YtfgvcError(f"{side_a.name} and {side_b.name} have no test video in common")
    va = np.array([right_a[v] for v in common])
    vb = np.array([right_b[v] for v in common])
    return CompareResult(
        a=side_a.name,
        b=side_b.name,
        metric=metric,
        n_common=len(common),
        accuracy_a=round(float(va.mean() * 100), 4),
        accuracy_b=round(float(vb.mean() * 100), 4),
        comparison=paired_bootstrap(va, vb, n_boot=n_boot),
        only_a=int(((va > 0) & (vb == 0)).sum()),
        only_b=int(((vb > 0) & (va == 0)).sum()),
    )
