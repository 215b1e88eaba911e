"""The common core: every re-scored entry of a dataset scored again on the videos all of them cover.

Entries are made from different labs' copies, so each covers other videos; their top-1 are
on different test sets. The common core is the set of test ids every re-scored entry of the
dataset ranked (and on whose official label they all agree: entries scored against another
release of the lists may disagree), and each entry's top-1 on it is computed here from its
kept ``top5`` and ``truth``, exactly: the share of those videos whose first label is the
true one. ``leaderboard compare`` does the same for two entries, with a paired test.

Paper rows have no predictions and no common-core score; entries of the previous schema
(no ``truth``) are left out, and named, until ``rescore --write`` upgrades them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CommonCore:
    """The ids all usable entries share, and each entry's top-1 (%) on them."""

    count: int
    top1: dict[str, float] = field(default_factory=dict)  # slug -> %
    left_out: list[str] = field(default_factory=list)  # re-scored entries without truth (ytfgvc-entry-1)

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "top1": self.top1, "left_out": self.left_out}


def common_core(entries: list[dict[str, Any]]) -> CommonCore | None:
    """The common core of one dataset's entries; None when no re-scored entry can be scored on it."""
    scored = [e for e in entries if e["kind"] == "rescored"]
    usable = [e for e in scored if isinstance(e.get("truth"), dict)]
    if not usable:
        return None
    ids = set(usable[0]["top5"]).intersection(*(e["top5"] for e in usable[1:]))
    ids = {vid for vid in ids if len({e["truth"][vid] for e in usable}) == 1}
    core = CommonCore(len(ids), left_out=sorted(e["slug"] for e in scored if e not in usable))
    for e in usable:
        right = sum(e["top5"][vid][0] == e["truth"][vid] for vid in ids)
        core.top1[e["slug"]] = round(100.0 * right / len(ids), 4) if ids else 0.0
    return core
