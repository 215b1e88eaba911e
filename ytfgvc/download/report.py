"""``ytfgvc download DATASET --status``: what the ledger says, against the official lists.

Counts by status per split (ids never tried are ``pending``), availability per class
(missing videos unbalance classes: the worst classes come first), the most common
reasons of failure, and what the censuses found (``--recheck``, :mod:`ytfgvc.download.health`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.download.health import build_health, health_text
from ytfgvc.download.ledger import Ledger
from ytfgvc.download.plan import listed_items
from ytfgvc.layout import SPLITS
from ytfgvc.snapshot import OBTAINED, STATUSES, manifest_hash

COLUMNS = (*STATUSES, "pending")


@dataclass
class ClassAvailability:
    label: int
    name: str
    listed: int
    ok: int

    @property
    def fraction(self) -> float:
        return self.ok / self.listed if self.listed else 0.0


@dataclass
class StatusReport:
    dataset: str
    ledger: str
    manifest: str | None
    splits: dict[str, dict[str, int]]  # split -> status -> count (+ "listed")
    classes: list[ClassAvailability]  # worst first
    reasons: list[dict[str, Any]]  # [{"status", "reason", "count", "example"}], most common first
    missing_files: int  # ok in the ledger, file gone
    health: dict[str, Any] | None = None  # what the censuses found (ytfgvc.download.health), None before any

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, src in zip(d["classes"], self.classes, strict=True):
            c["fraction"] = round(src.fraction, 4)
        return d

    def text(self, worst: int = 10, top: int = 10) -> str:
        used = [s for s in COLUMNS if any(self.splits[sp].get(s) for sp in self.splits)]
        head = f"{'split':<6} {'listed':>7} " + " ".join(f"{s:>{max(len(s), 5)}}" for s in used)
        lines = [f"{self.dataset}: ledger {self.ledger}", f"manifest {self.manifest or '(none yet)'}", "", head]
        for sp, row in self.splits.items():
            cells = " ".join(f"{row.get(s, 0):>{max(len(s), 5)}}" for s in used)
            lines.append(f"{sp:<6} {row['listed']:>7} {cells}")
        if self.classes:
            fr = sorted(c.fraction for c in self.classes)
            lines += [
                "",
                f"availability per class: min {fr[0]:.0%}, median {fr[len(fr) // 2]:.0%}, max {fr[-1]:.0%}"
                f" (worst {min(worst, len(self.classes))}):",
            ]
            for c in self.classes[:worst]:
                lines.append(f"  {c.label:>4}  {c.ok:>4}/{c.listed:<4} {c.fraction:>5.0%}  {c.name}")
        if self.reasons:
            lines += ["", "top reasons:"]
            for r in self.reasons[:top]:
                lines.append(f"  {r['count']:>6}  {r['status']:<19} {r['reason']}")
        if self.missing_files:
            lines += ["", f"{self.missing_files} ok videos have no file under videos/: the next run fetches them again"]
        if self.health:
            lines += health_text(self.health, worst)
        return "\n".join(lines)


def status_report(root: Path, dataset: str) -> StatusReport:
    """Read the ledger of ``dataset`` under ``root`` against its official lists."""
    ds = Dataset.open(root, dataset)
    layout, lists = ds.layout, ds.official()
    records, checks = {}, []
    if layout.ledger_path.is_file():
        with Ledger(layout.ledger_path, dataset, readonly=True) as ledger:
            records, checks = ledger.records(), ledger.checks()
    splits: dict[str, dict[str, int]] = {}
    per_class: dict[int, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    examples: dict[tuple[str, str], str] = {}
    missing = 0
    for sp in SPLITS:
        c: Counter = Counter()
        for it in listed_items(lists, sp):
            r = records.get(it.video_id)
            status = r.status if r else "pending"
            if status in OBTAINED and not layout.video_path(it.video_id).is_file():
                missing += 1
            c[status] += 1
            per_class[it.label]["listed"] += 1
            per_class[it.label]["ok"] += status in OBTAINED
            if r and status not in OBTAINED:
                key = (status, r.reason or "")
                reasons[key] += 1
                examples.setdefault(key, r.message or "")
        splits[sp] = {"listed": sum(c.values()), **{s: c[s] for s in COLUMNS if c[s]}}
    classes = [
        ClassAvailability(label, lists.labels.get(label, "?"), n["listed"], n["ok"]) for label, n in per_class.items()
    ]
    classes.sort(key=lambda c: (c.fraction, c.label))
    return StatusReport(
        dataset=dataset,
        ledger=str(layout.ledger_path) if records else f"{layout.ledger_path} (not yet written)",
        manifest=manifest_hash(layout),
        splits=splits,
        classes=classes,
        reasons=[
            {"status": s, "reason": r, "count": n, "example": examples[(s, r)][:300]}
            for (s, r), n in reasons.most_common()
        ],
        missing_files=missing,
        health=build_health(ds, records, checks) if checks else None,
    )
