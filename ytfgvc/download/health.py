"""``health.json``: what the censuses (``ytfgvc download --recheck``) found, per class and over time.

Built from the ledger alone (its ``checks`` table and ``videos``), against the official lists,
so ``--status`` and the file always agree (schema ``ytfgvc-health-1``)::

    {"schema": "ytfgvc-health-1", "dataset": "birds", "annotations": "<sha256>", "created": ...,
     "censuses": [{"date": "2026-01-01", "checked": 18000, "available": 17100, "unavailable": 800,
                   "blocked": 50, "unknown": 50,
                   "classes": {"<label>": {"listed": 90, "checked": 90, "available": 85}, ...}}, ...],
     "decay": {"since": "2018-06-01", "census": "2026-01-01", "obtained": 16000, "died": 600,
               "classes": [{"label", "name", "obtained", "died", "expected", "residual"}, ...],
               "test": {"name", "statistic", "dof", "p", "reliable", "note"} or null,
               "most_affected": [label, ...], "note": "..."}}

*Died since the first download*: a video obtained (``ok`` or ``recovered``) whose latest
census answer that says something (``available``, ``unavailable``, ``blocked``) is
``unavailable`` or ``blocked``; ``unknown`` answers (rate limits, network errors, bot checks:
they say nothing about the video) are left out. The bias test asks whether those deaths
fall evenly on the classes: a chi-square test of homogeneity on the 2 x K table (died,
still available) x (classes with an obtained video), whose expected counts are what
uniform loss would give, ``obtained_c * died / obtained``. Cochran's rule says when the
counts are too small for the chi-square approximation: every expected count at least 1
and at most 20% of them below 5; below that, ``reliable`` is false and the note says why.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.download.ledger import Check, VideoRecord, utc_now
from ytfgvc.download.plan import listed_items
from ytfgvc.system.fsutil import write_json_atomic

SCHEMA = "ytfgvc-health-1"
ANSWERS = ("available", "unavailable", "blocked")  # census statuses that say something about the video
DEAD = ("unavailable", "blocked")
MOST_AFFECTED = 5
TEST_NAME = "chi-square test of homogeneity: died vs still available, by class"


def census_rows(checks: list[Check], labels: dict[str, int]) -> list[dict[str, Any]]:
    """One summary per census date, oldest first, with availability per class (listed ids only)."""
    listed_per_class = Counter(labels.values())
    by_date: dict[str, list[Check]] = defaultdict(list)
    for c in checks:
        if c.id in labels:
            by_date[c.census].append(c)
    out = []
    for date in sorted(by_date):
        rows = by_date[date]
        counts = Counter(c.status for c in rows)
        per_class: dict[int, Counter] = defaultdict(Counter)
        for c in rows:
            per_class[labels[c.id]]["checked"] += 1
            per_class[labels[c.id]]["available"] += c.status == "available"
        classes = {
            str(label): {"listed": listed_per_class[label], "checked": n["checked"], "available": n["available"]}
            for label, n in sorted(per_class.items())
        }
        statuses = {s: counts[s] for s in ("available", "unavailable", "blocked", "unknown")}
        out.append({"date": date, "checked": len(rows), **statuses, "classes": classes})
    return out


def latest_answers(checks: list[Check]) -> dict[str, Check]:
    """Each id's latest census row that says something about the video."""
    latest: dict[str, Check] = {}
    for c in sorted(checks, key=lambda c: c.census):
        if c.status in ANSWERS:
            latest[c.id] = c
    return latest


def loss_bias(rows: list[tuple[int, str, int, int]]) -> dict[str, Any]:
    """The bias test on ``(label, name, obtained, died)`` per class: were the deaths spread evenly?"""
    rows = [r for r in rows if r[2] > 0]
    n, d = sum(r[2] for r in rows), sum(r[3] for r in rows)
    classes = []
    for label, name, obtained, died in rows:
        expected = obtained * d / n if n else 0.0
        residual = (died - expected) / math.sqrt(expected) if expected > 0 else 0.0
        classes.append({"label": label, "name": name, "obtained": obtained, "died": died,
                        "expected": round(expected, 3), "residual": round(residual, 3)})  # fmt: skip
    classes.sort(key=lambda c: (-c["residual"], c["label"]))
    out: dict[str, Any] = {"obtained": n, "died": d, "classes": classes, "test": None, "most_affected": []}
    if d == 0 or d == n or len(rows) < 2:
        why = "no obtained video died" if d == 0 else "every obtained video died" if d == n else "one class only"
        out["note"] = f"no bias test: {why}"
        return out
    out["test"] = _chi_square([[r[3] for r in rows], [r[2] - r[3] for r in rows]])
    out["most_affected"] = [c["label"] for c in classes if c["died"] > c["expected"]][:MOST_AFFECTED]
    return out


def _chi_square(table: list[list[int]]) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    res = chi2_contingency(table, correction=False)
    expected = [e for row in res.expected_freq for e in row]
    small = sum(e < 5 for e in expected)
    reliable = min(expected) >= 1 and small <= 0.2 * len(expected)
    note = (
        "counts large enough for the chi-square approximation"
        if reliable
        else f"counts too small for the chi-square approximation: {small} of {len(expected)} expected counts "
        f"below 5 (smallest {min(expected):.2f}; Cochran's rule wants none below 1 and at most 20% below 5), "
        "so p is only indicative"
    )
    return {"name": TEST_NAME, "statistic": round(float(res.statistic), 4), "dof": int(res.dof),
            "p": float(res.pvalue), "reliable": bool(reliable), "note": note}  # fmt: skip


def decay(records: dict[str, VideoRecord], checks: list[Check], lists, labels: dict[str, int]) -> dict[str, Any]:
    """Deaths since the first download among the obtained videos, per class, and the bias test."""
    latest = latest_answers([c for c in checks if c.id in labels])
    obtained = [vid for vid, r in records.items() if r.obtained and vid in labels and vid in latest]
    per_class: dict[int, Counter] = defaultdict(Counter)
    for vid in obtained:
        per_class[labels[vid]]["obtained"] += 1
        per_class[labels[vid]]["died"] += latest[vid].status in DEAD
    rows = [(label, lists.labels.get(label, "?"), n["obtained"], n["died"]) for label, n in sorted(per_class.items())]
    firsts = [records[v].first_attempt for v in obtained if records[v].first_attempt]
    return {
        "since": min(firsts)[:10] if firsts else None,
        "census": max((latest[v].census for v in obtained), default=None),
        **loss_bias(rows),
    }


def build_health(ds: Dataset, records: dict[str, VideoRecord], checks: list[Check]) -> dict[str, Any]:
    """The health record of ``ds`` from its ledger's rows."""
    lists = ds.official()
    labels = {it.video_id: it.label for it in listed_items(lists, "all")}
    return {
        "schema": SCHEMA,
        "dataset": ds.name,
        "annotations": ds.annotations_hash,
        "created": utc_now(),
        "censuses": census_rows(checks, labels),
        "decay": decay(records, checks, lists, labels),
    }


def write_health(ds: Dataset, records: dict[str, VideoRecord], checks: list[Check]) -> dict[str, Any]:
    """Build and atomically write ``<root>/<dataset>/health.json``; returns it."""
    health = build_health(ds, records, checks)
    write_json_atomic(ds.layout.health_path, health, indent=1)
    return health


def health_text(health: dict[str, Any], worst: int = 10) -> list[str]:
    """Lines for ``--status``: the censuses, the worst classes over time, the deaths and the bias test."""
    rows = health["censuses"]
    if not rows:
        return []
    lines = ["", "census (asked without downloading):", "  date        checked available unavailable blocked unknown"]
    for r in rows:
        counts = f"{r['available']:>9} {r['unavailable']:>11} {r['blocked']:>7} {r['unknown']:>7}"
        lines.append(f"  {r['date']} {r['checked']:>8} {counts}")
    last = rows[-1]["classes"]
    order = sorted(last, key=lambda k: (last[k]["available"] / max(last[k]["checked"], 1), int(k)))[:worst]
    lines += [
        "",
        "available per class at each census (worst now first):",
        "  label  " + "  ".join(r["date"] for r in rows),
    ]
    for k in order:
        cells = []
        for r in rows:
            c = r["classes"].get(k)
            cells.append(f"{c['available']:>4}/{c['checked']:<5}" if c else f"{'-':>10}")
        lines.append(f"  {k:>5}  " + "  ".join(cells))
    return lines + decay_text(health["decay"])


def decay_text(d: dict[str, Any]) -> list[str]:
    if not d["obtained"]:
        return []
    share = d["died"] / d["obtained"]
    lines = ["", f"died since the first download ({d['since']}): {d['died']} of {d['obtained']} obtained ({share:.0%})"]
    t = d["test"]
    if t is None:
        return lines + [f"  {d['note']}"]
    verdict = "uneven" if t["p"] < 0.05 else "not shown to be uneven"
    lines.append(f"  loss across classes: {verdict} (chi-square {t['statistic']:g}, {t['dof']} dof, p = {t['p']:.3g})")
    if not t["reliable"]:
        lines.append(f"  {t['note']}")
    by_label = {c["label"]: c for c in d["classes"]}
    for label in d["most_affected"]:
        c = by_label[label]
        lines.append(f"  most affected: {label:>4} {c['died']} died, {c['expected']:.1f} expected  {c['name']}")
    return lines
