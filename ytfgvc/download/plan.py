"""Which videos a run asks for: the listed ids, split, shard and limit, minus what is settled.

Sharding is by a hash of the id (``sha256(id) mod N``), not by position: the same id is
in the same shard whatever ``--split`` or ``--limit`` each machine used, and a list
that grows keeps every id where it was.
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from dataclasses import dataclass, field

from ytfgvc.datasets.official import OfficialLists
from ytfgvc.download.ledger import VideoRecord
from ytfgvc.download.worker import Task
from ytfgvc.errors import ValidationError
from ytfgvc.layout import SPLITS, DatasetLayout, is_valid_video_id
from ytfgvc.system.fsutil import TMP_PREFIX, is_temporary


@dataclass(frozen=True)
class Item:
    """A listed video: id, split and label."""

    video_id: str
    split: str | None = None
    label: int | None = None


def shard_of(video_id: str, n: int) -> int:
    """The shard (0..n-1) that ``video_id`` belongs to."""
    return int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big") % n


def listed_items(lists: OfficialLists, split: str) -> list[Item]:
    """The official lists' ids for ``split`` (train, test or all), train first, in list order."""
    splits = SPLITS if split == "all" else (split,)
    return [Item(vid, s, label) for s in splits for vid, label in lists.split(s)]


def select(items: list[Item], shard: tuple[int, int] | None = None, limit: int | None = None) -> list[Item]:
    """Validate every id (all problems at once, before any request), then shard and limit."""
    bad = [f"[{i}] {it.video_id!r}" for i, it in enumerate(items) if not is_valid_video_id(it.video_id)]
    if bad:
        raise ValidationError(
            f"{len(bad)} invalid video id(s); nothing was requested",
            bad[:20] + ([f"... and {len(bad) - 20} more"] if len(bad) > 20 else []),
            "ids are 11 characters of A-Z a-z 0-9 _ -",
        )
    dupes = [vid for vid, n in Counter(it.video_id for it in items).items() if n > 1]
    if dupes:
        raise ValidationError("repeated video ids; nothing was requested", [repr(v) for v in dupes[:20]])
    if shard is not None:
        i, n = shard
        items = [it for it in items if shard_of(it.video_id, n) == i]
    if limit is not None:
        items = items[:limit]
    return items


@dataclass
class Plan:
    """Tasks to run, and how many selected videos need nothing (by reason)."""

    tasks: list[Task] = field(default_factory=list)
    done: int = 0  # obtained (ok or recovered), file present
    settled: Counter = field(default_factory=Counter)  # permanent failures not asked again, by status
    missing_files: int = 0  # ok in the ledger but the file is gone: fetched again
    adopt: int = 0  # a file is there without an ok record: verified, not downloaded


def plan(items: list[Item], records: dict[str, VideoRecord], layout: DatasetLayout, retry_failed: bool) -> Plan:
    """Decide, for each selected video, whether this run has anything to do."""
    p = Plan()
    for it in items:
        r = records.get(it.video_id)
        on_disk = layout.video_path(it.video_id).is_file()
        if r is not None and r.obtained:
            if on_disk:
                p.done += 1
                continue
            p.missing_files += 1
        elif r is not None and r.permanent and not retry_failed:
            p.settled[r.status] += 1
            continue
        adopt = on_disk and not (r is not None and r.obtained)
        p.adopt += int(adopt)
        p.tasks.append(Task(it.video_id, it.split, it.label, adopt=adopt))
    return p


def sweep_leftovers(layout: DatasetLayout, video_ids: set[str]) -> int:
    """Remove temporary files of a killed run that belong to ``video_ids`` (other shards' are left alone).

    A video's own temporary folder (``videos/.tmp-<id>``) is kept: yt-dlp resumes its
    partial download.
    """
    folder = layout.videos_dir
    if not folder.is_dir():
        return 0
    n = 0
    keep = {layout.download_tmp_dir(v).name for v in video_ids}
    for p in folder.iterdir():
        vid = p.name[len(TMP_PREFIX) : len(TMP_PREFIX) + 11]
        if is_temporary(p) and vid in video_ids and p.name not in keep:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            n += 1
    return n
