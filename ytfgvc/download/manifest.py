"""``manifest.json``: exactly which videos this root holds, and the hash that names that snapshot.

Format (schema ``ytfgvc-manifest-2``)::

    {"schema": "ytfgvc-manifest-2",
     "dataset": "birds",
     "hash": "<sha256>",               # names the snapshot (see below)
     "annotations": "<sha256>",        # ytfgvc.datasets.official.annotations_hash of the lists used
     "created": "2026-01-01T00:00:00Z",
     "tools": {"ytfgvc": ..., "yt_dlp": ..., "av": ..., "ffmpeg": ..., "python": ...},
     "counts": {"ok": 17000, "recovered": 12, "unavailable": 900, ..., "missing": 0},
     "videos": {"<id>": {"status": "ok", "sha256": ..., "bytes": ..., "split": "train", "label": 17,
                         "fingerprint": {"title": ..., "uploader": ..., "duration": 61.0, "phash": "1:..."}},
                "<id>": {"status": "recovered", ..., "origin": {"from": ..., "sha256": ..., "fingerprint": ...,
                                                                "distance": 3, "of": 320, "threshold": 64}},
                "<id>": {"status": "unavailable", "split": "test", "label": 3}, ...}}

``fingerprint`` (what identifies the video beyond its id, :mod:`ytfgvc.download.fingerprint`)
is listed for every video the ledger has one of, obtained or not any more, so another lab can
check a copy against it (``download --verify-fingerprints --fingerprints manifest.json``);
``origin`` for a recovered video says where its file came from (:mod:`ytfgvc.download.recover`).
The previous format, ``ytfgvc-manifest-1``, had neither.

``hash`` is the sha256 of the text ``ytfgvc-manifest-1\\n<dataset>\\n<annotations>\\n`` (the
first format's name, kept so the same videos keep the same hash) followed by one line
``<id> <sha256>\\n`` per video obtained (``ok`` or ``recovered`` in the ledger and present
under ``videos/``), sorted by id. Two roots holding the same bytes for the same lists have the
same hash, whatever the tools, the dates or the failures; anything that changes what a model
is trained or tested on changes it, a recovered video included. An obtained video whose file
is gone is listed as ``missing`` and left out of the hash.
"""

from __future__ import annotations

import json
import platform
from collections import Counter
from typing import Any

from ytfgvc import __version__
from ytfgvc.download.ledger import VideoRecord, utc_now
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import MANIFEST_SCHEMA as SCHEMA
from ytfgvc.snapshot import snapshot_hash
from ytfgvc.system.fsutil import write_json_atomic

__all__ = ["SCHEMA", "build_manifest", "snapshot_hash", "tool_versions", "write_manifest"]


def tool_versions() -> dict[str, str]:
    """Versions of everything that shapes the bytes obtained."""
    import av

    try:  # a folder source needs no yt-dlp, and a machine may not have it
        import yt_dlp

        ytdlp_version = yt_dlp.version.__version__
    except ImportError:
        ytdlp_version = "not installed"
    libav = getattr(av, "library_versions", {}).get("libavformat")
    return {
        "ytfgvc": __version__,
        "yt_dlp": ytdlp_version,
        "av": av.__version__,
        "libavformat": ".".join(map(str, libav)) if libav else "unknown",
        "python": platform.python_version(),
    }


def build_manifest(layout: DatasetLayout, records: dict[str, VideoRecord], annotations: str) -> dict[str, Any]:
    """The manifest of ``records``, checked against the files under ``videos/``."""
    videos: dict[str, dict[str, Any]] = {}
    obtained: dict[str, str] = {}
    for vid in sorted(records):
        r = records[vid]
        entry: dict[str, Any] = {"status": r.status}
        if r.obtained:
            if r.sha256 and layout.video_path(vid).is_file():
                obtained[vid] = r.sha256
                entry.update(sha256=r.sha256, bytes=r.bytes)
            else:
                entry["status"] = "missing"
        entry.update(split=r.split, label=r.label)
        if r.phash:
            entry["fingerprint"] = {"title": r.title, "uploader": r.uploader, "duration": r.duration, "phash": r.phash}
        if r.status == "recovered" and r.origin:
            entry["origin"] = _origin(r.origin)
        videos[vid] = entry
    return {
        "schema": SCHEMA,
        "dataset": layout.dataset,
        "hash": snapshot_hash(layout.dataset, annotations, obtained),
        "annotations": annotations,
        "created": utc_now(),
        "tools": tool_versions(),
        "counts": dict(Counter(e["status"] for e in videos.values())),
        "videos": videos,
    }


def _origin(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def write_manifest(layout: DatasetLayout, records: dict[str, VideoRecord], annotations: str) -> dict[str, Any]:
    """Build and atomically write ``manifest.json``; returns it."""
    manifest = build_manifest(layout, records, annotations)
    write_json_atomic(layout.manifest_path, manifest, indent=1)
    return manifest
