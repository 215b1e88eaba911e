"""``download --verify-fingerprints``: take a missing video from another copy only if it is the same video.

The fingerprints to check against come from this root's ledger (videos once obtained here,
whose fingerprint outlives the file and the video's death) and from ``--fingerprints
MANIFEST`` files: other labs' ``manifest.json`` (``ytfgvc-manifest-2`` lists each obtained
video's fingerprint). A file that arrives (``--source DIR``: ``DIR/<id>.*``; or a URL
template) is copied, probed, hashed (sha256) and fingerprinted like any download; its
name says which fingerprint to compare with and nothing more. It is kept, as ``recovered``,
only when :func:`ytfgvc.download.fingerprint.matches` says so; the ledger's ``origin`` (and
the manifest) then say where it came from, what its sha256 was, which fingerprint it matched
and how closely. Otherwise the video stays missing, recorded as ``unavailable`` with the
reason (``fingerprint mismatch``, ``no fingerprint to check against``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ytfgvc.download.classify import Failure
from ytfgvc.download.fingerprint import BITS, MAX_DISTANCE, Fingerprint, distance, is_phash, matches
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import is_valid_video_id

if TYPE_CHECKING:
    from ytfgvc.download.ledger import VideoRecord
    from ytfgvc.download.worker import Outcome

MAX_MANIFEST_BYTES = 256 << 20
MANIFEST_SCHEMAS = ("ytfgvc-manifest-2",)  # the first manifest format carried no fingerprints


def judge(out: Outcome, duration_s: float, ref: Fingerprint | None, received: dict[str, str]) -> Failure | None:
    """Mark ``out`` recovered (with its origin) if its file matches ``ref``; else the Failure that refuses it."""
    if ref is None:
        return Failure("unavailable", "no fingerprint to check against", "no fingerprint of this id in the ledger "
                       "or the --fingerprints manifests: a file from elsewhere cannot be checked")  # fmt: skip
    assert out.phash is not None
    ok, why = matches(out.phash, duration_s, ref)
    if not ok:
        return Failure("unavailable", "fingerprint mismatch", f"{received.get('from', 'the file')}: {why}")
    out.status, out.reason, out.message = "recovered", "fingerprint matched", why
    out.info = {**out.info, "title": ref.title, "uploader": ref.uploader}
    origin = {**received, "fingerprint": ref.where, "distance": distance(out.phash, ref.phash), "of": BITS}
    out.origin = json.dumps({**origin, "threshold": MAX_DISTANCE}, sort_keys=True)
    return None


def from_ledger(records: dict[str, VideoRecord]) -> dict[str, Fingerprint]:
    """The fingerprints this root's ledger keeps (of videos obtained here, now or before)."""
    return {
        vid: Fingerprint(r.phash, r.duration, r.title, r.uploader, "ledger")
        for vid, r in records.items()
        if is_phash(r.phash)
    }


def from_manifest(path: Path, dataset: str) -> dict[str, Fingerprint]:
    """The fingerprints another lab's ``manifest.json`` lists; every problem is reported at once."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise YtfgvcError(f"--fingerprints {path}: larger than {MAX_MANIFEST_BYTES >> 20} MiB")
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise YtfgvcError(f"--fingerprints {path}: cannot read it: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in MANIFEST_SCHEMAS:
        raise YtfgvcError(
            f"--fingerprints {path}: not a manifest with fingerprints (schema {MANIFEST_SCHEMAS[0]})",
            "pass a manifest.json written by this version of `ytfgvc download`",
        )
    if doc.get("dataset") != dataset:
        raise YtfgvcError(f"--fingerprints {path} is the manifest of {doc.get('dataset')!r}, not {dataset!r}")
    out, problems = {}, []
    for vid, entry in (doc.get("videos") or {}).items():
        fp = entry.get("fingerprint") if isinstance(entry, dict) else None
        if fp is None:
            continue
        ref = _fingerprint(fp, str(path))
        if not is_valid_video_id(vid) or ref is None:
            problems.append(f"videos[{str(vid)[:20]!r}]: not a valid id and fingerprint")
            continue
        out[vid] = ref
    if problems:
        raise ValidationError(f"--fingerprints {path}: bad entries", problems[:20])
    return out


def _fingerprint(fp: Any, where: str) -> Fingerprint | None:
    if not (isinstance(fp, dict) and is_phash(fp.get("phash"))):
        return None
    duration = fp.get("duration")
    if duration is not None and not (isinstance(duration, (int, float)) and duration >= 0):
        return None
    text = {k: fp.get(k) if isinstance(fp.get(k), str) else None for k in ("title", "uploader")}
    return Fingerprint(fp["phash"], duration, text["title"], text["uploader"], where)


def references(records: dict[str, VideoRecord], manifests: list[Path], dataset: str) -> dict[str, Fingerprint]:
    """Every fingerprint to check against: the manifests' (in order), then this ledger's, which win."""
    refs: dict[str, Fingerprint] = {}
    for m in manifests:
        refs.update(from_manifest(m, dataset))
    refs.update(from_ledger(records))
    return refs
