"""``ytfgvc snapshot intersect MANIFEST...``: the videos every given snapshot holds (the common core).

Labs' copies differ (videos die every month), so two results compare on equal ground only on
the videos both had. Each input is a ``manifest.json`` (``ytfgvc-manifest-1`` or ``-2``) of the
same dataset and the same imported lists; a video counts as present when its status there is
obtained (``ok`` or ``recovered``; ``missing`` means the ledger said ok but the file was gone).
The result (schema ``ytfgvc-core-1``)::

    {"schema": "ytfgvc-core-1", "dataset": "birds", "annotations": "<sha256>", "created": ...,
     "snapshots": [{"manifest": "<path>", "hash": "<sha256>", "obtained": 17000}, ...],
     "count": 15000, "splits": {"train": 12000, "test": 3000}, "ids": ["<id>", ...]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ytfgvc.download.ledger import utc_now
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import is_valid_video_id
from ytfgvc.snapshot import OBTAINED
from ytfgvc.system.fsutil import write_json_atomic

SCHEMA = "ytfgvc-core-1"
MANIFEST_SCHEMAS = ("ytfgvc-manifest-1", "ytfgvc-manifest-2")
MAX_MANIFEST_BYTES = 256 << 20


@dataclass
class Snapshot:
    manifest: str
    dataset: str
    annotations: str
    hash: str
    present: dict[str, str | None]  # id -> split

    def summary(self) -> dict[str, Any]:
        return {"manifest": self.manifest, "hash": self.hash, "obtained": len(self.present)}


@dataclass
class Core:
    schema: str
    dataset: str
    annotations: str
    created: str
    snapshots: list[dict[str, Any]]
    count: int
    splits: dict[str, int]
    ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_snapshot(path: Path) -> Snapshot:
    """The obtained ids of one manifest, every malformed entry reported at once."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise YtfgvcError(f"{path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise YtfgvcError(f"cannot read {path}: {e}", "pass manifest.json files written by `ytfgvc download`") from None
    if not isinstance(doc, dict) or doc.get("schema") not in MANIFEST_SCHEMAS:
        raise YtfgvcError(f"{path} is not a manifest ({' or '.join(MANIFEST_SCHEMAS)})")
    videos, problems, present = doc.get("videos"), [], {}
    for key in ("dataset", "annotations", "hash"):
        if not isinstance(doc.get(key), str):
            problems.append(f"{key}: missing")
    for vid, entry in (videos if isinstance(videos, dict) else {}).items():
        if not (is_valid_video_id(vid) and isinstance(entry, dict)):
            problems.append(f"videos[{str(vid)[:20]!r}]: not a video id and its entry")
        elif entry.get("status") in OBTAINED:
            present[vid] = entry.get("split") if isinstance(entry.get("split"), str) else None
    if not isinstance(videos, dict):
        problems.append("videos: missing")
    if problems:
        raise ValidationError(f"{path}: not a valid manifest", problems[:20])
    return Snapshot(str(path), doc["dataset"], doc["annotations"], doc["hash"], present)


def intersect(manifests: list[Path]) -> Core:
    """The ids present in every manifest (all of one dataset and one release of its lists), sorted."""
    if not manifests:
        raise YtfgvcError("no manifest given", "e.g. ytfgvc snapshot intersect lab-a/birds/manifest.json lab-b/...")
    snaps = [read_snapshot(m) for m in manifests]
    first = snaps[0]
    for s in snaps[1:]:
        if s.dataset != first.dataset:
            raise YtfgvcError(f"{s.manifest} is a snapshot of {s.dataset!r}, {first.manifest} of {first.dataset!r}")
        if s.annotations != first.annotations:
            raise YtfgvcError(
                f"{s.manifest} and {first.manifest} were made from different lists (annotations hash "
                f"{s.annotations[:12]} vs {first.annotations[:12]})",
                "intersect snapshots of the same release of the official lists",
            )
    ids = sorted(set(first.present).intersection(*(s.present for s in snaps[1:])))
    splits: dict[str, int] = {}
    for vid in ids:
        split = first.present[vid] or "unknown"
        splits[split] = splits.get(split, 0) + 1
    return Core(SCHEMA, first.dataset, first.annotations, utc_now(), [s.summary() for s in snaps], len(ids),
                dict(sorted(splits.items())), ids)  # fmt: skip


def write_core(core: Core, out: Path) -> Path:
    """Write the common core as JSON, atomically."""
    write_json_atomic(Path(out), core.to_dict(), indent=1)
    return Path(out)
