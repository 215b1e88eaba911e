"""What later stages read of the download's records (the contract between stages).

* ``ledger.sqlite`` has a table ``videos`` with at least ``id TEXT PRIMARY KEY``,
  ``status TEXT`` (``ok``, ``recovered``, ``unavailable``, ``blocked``, ``filtered_duration``,
  ``filtered_resolution``, ``rate_limited``, ``network_error``, ``corrupt``, ``error``)
  and ``sha256 TEXT`` (of ``videos/<id>.mp4``, for the obtained statuses ``ok`` and
  ``recovered``: a video present, fetched from the source, or recovered from another copy
  whose fingerprint matched).
* ``manifest.json`` is an object with ``schema`` and ``hash`` (the sha256 naming the
  snapshot of videos obtained: :func:`snapshot_hash`).

``download`` writes them (see ``ytfgvc.download``); ``prepare``, ``benchmark`` and the
leaderboard read them only through these functions. The snapshot they read is derived
from the ledger and the files when they read it (:func:`snapshot`), never taken from
``manifest.json`` where there is a ledger: a download killed before it rewrote the
manifest cannot make a later stage name an older snapshot than what is on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from dataclasses import dataclass

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, is_valid_video_id
from ytfgvc.system.fsutil import is_temporary

STATUSES = (
    "ok",
    "recovered",
    "unavailable",
    "blocked",
    "filtered_duration",
    "filtered_resolution",
    "rate_limited",
    "network_error",
    "corrupt",
    "error",
)
PERMANENT = ("ok", "recovered", "unavailable", "blocked", "filtered_duration", "filtered_resolution", "corrupt")
TRANSIENT = ("rate_limited", "network_error", "error")
# The statuses of a video that is present under videos/: fetched (ok), or recovered from another copy.
OBTAINED = ("ok", "recovered")


MANIFEST_SCHEMA = "ytfgvc-manifest-2"
# The first line of what the snapshot hash covers: the first manifest format's name, kept when the
# format gained fields (fingerprints, origins), so the same videos keep the same hash.
HASH_SCHEME = "ytfgvc-manifest-1"


def snapshot_hash(dataset: str, annotations: str, obtained: dict[str, str]) -> str:
    """The hash naming a snapshot; ``obtained`` maps id to the sha256 of its file.

    sha256 of ``ytfgvc-manifest-1\\n<dataset>\\n<annotations>\\n`` (:data:`HASH_SCHEME`)
    followed by one line ``<id> <sha256>\\n`` per video obtained (``ok`` or ``recovered``),
    sorted by id: a recovered video enters it like any other.
    """
    h = hashlib.sha256(f"{HASH_SCHEME}\n{dataset}\n{annotations}\n".encode())
    for vid in sorted(obtained):
        h.update(f"{vid} {obtained[vid]}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """The videos a root holds now: ``ids`` obtained, and ``hash`` naming them (None: no download record)."""

    ids: frozenset[str]
    hash: str | None


def _files_on_disk(layout: DatasetLayout) -> set[str]:
    return {
        p.stem
        for p in (layout.videos_dir.glob("*.mp4") if layout.videos_dir.is_dir() else [])
        if not is_temporary(p) and is_valid_video_id(p.stem)
    }


def _ok_rows(layout: DatasetLayout) -> dict[str, str | None]:
    """id -> sha256 of every obtained (``ok`` or ``recovered``) row, read in one transaction."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{layout.ledger_path}?mode=ro", uri=True, timeout=30)) as db:
            rows = db.execute("SELECT id, sha256 FROM videos WHERE status IN ('ok', 'recovered')").fetchall()
    except sqlite3.OperationalError as e:
        if "locked" in str(e):
            raise YtfgvcError(
                f"{layout.ledger_path} is locked by another process",
                "close what holds it (an sqlite3 shell, a backup?), then run the same command again",
            ) from None
        raise YtfgvcError(f"cannot read {layout.ledger_path}: {e}", "run `ytfgvc download` to repair it") from None
    except sqlite3.Error as e:
        raise YtfgvcError(f"cannot read {layout.ledger_path}: {e}", "run `ytfgvc download` to repair it") from None
    return dict(rows)


def snapshot(layout: DatasetLayout) -> Snapshot:
    """What is obtained now: ``ok`` or ``recovered`` in the ledger, with a sha256, and present under ``videos/``.

    The hash is the one ``download`` writes into ``manifest.json`` for the same ledger and
    files. Without a ledger (videos brought by hand) every finished ``videos/<id>.mp4``
    counts, and the hash is that of a ``manifest.json`` if one is there (else None).
    """
    on_disk = _files_on_disk(layout)
    if not layout.ledger_path.is_file():
        return Snapshot(frozenset(on_disk), _manifest_file_hash(layout))
    from ytfgvc.datasets.official import annotations_hash_of

    obtained = {vid: sha for vid, sha in _ok_rows(layout).items() if sha and vid in on_disk}
    digest = snapshot_hash(layout.dataset, annotations_hash_of(layout), obtained)
    return Snapshot(frozenset(obtained), digest)


def ok_video_ids(layout: DatasetLayout) -> set[str]:
    """Ids whose download finished and verified: obtained in the ledger and present under ``videos/``.

    Without a ledger (videos brought by hand), every finished ``videos/<id>.mp4`` counts.
    """
    return set(snapshot(layout).ids)


def manifest_hash(layout: DatasetLayout) -> str | None:
    """The hash naming the downloaded snapshot as it is on disk now, or None before any download."""
    return snapshot(layout).hash


def _manifest_file_hash(layout: DatasetLayout) -> str | None:
    p = layout.manifest_path
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
        return doc.get("hash") if isinstance(doc, dict) else None
    except (OSError, ValueError, RecursionError) as e:
        raise YtfgvcError(f"cannot read {p}: {e}", f"run `ytfgvc download {layout.dataset}` to rewrite it") from None
