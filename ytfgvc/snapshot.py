"""What later stages read of the download's records (the contract between stages).

* ``ledger.sqlite`` has a table ``videos`` with at least ``id TEXT PRIMARY KEY`` and
  ``status TEXT`` (``ok``, ``unavailable``, ``blocked``, ``filtered_duration``,
  ``filtered_resolution``, ``rate_limited``, ``network_error``, ``corrupt``, ``error``).
* ``manifest.json`` is an object with ``schema`` and ``hash`` (the sha256 naming the
  snapshot of videos obtained).

``download`` writes them (see ``ytfgvc.download``); ``prepare``, ``benchmark`` and the
leaderboard read them only through these functions.
"""

from __future__ import annotations

import json
import sqlite3

from ytfgvc.errors import YtfgvcError
from ytfgvc.fsutil import is_temporary
from ytfgvc.layout import DatasetLayout, is_valid_video_id

STATUSES = (
    "ok",
    "unavailable",
    "blocked",
    "filtered_duration",
    "filtered_resolution",
    "rate_limited",
    "network_error",
    "corrupt",
    "error",
)
PERMANENT = ("ok", "unavailable", "blocked", "filtered_duration", "filtered_resolution", "corrupt")
TRANSIENT = ("rate_limited", "network_error", "error")


def ok_video_ids(layout: DatasetLayout) -> set[str]:
    """Ids whose download finished and verified: ``ok`` in the ledger and present under ``videos/``.

    Without a ledger (videos brought by hand), every finished ``videos/<id>.mp4`` counts.
    """
    on_disk = {
        p.stem
        for p in (layout.videos_dir.glob("*.mp4") if layout.videos_dir.is_dir() else [])
        if not is_temporary(p) and is_valid_video_id(p.stem)
    }
    if not layout.ledger_path.is_file():
        return on_disk
    try:
        with sqlite3.connect(f"file:{layout.ledger_path}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT id FROM videos WHERE status = 'ok'").fetchall()
    except sqlite3.Error as e:
        raise YtfgvcError(f"cannot read {layout.ledger_path}: {e}", "run `ytfgvc download` to repair it") from None
    return {r[0] for r in rows} & on_disk


def manifest_hash(layout: DatasetLayout) -> str | None:
    """The hash naming the downloaded snapshot, or None before any download."""
    p = layout.manifest_path
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text()).get("hash")
    except (OSError, json.JSONDecodeError) as e:
        raise YtfgvcError(f"cannot read {p}: {e}", f"run `ytfgvc download {layout.dataset}` to rewrite it") from None
