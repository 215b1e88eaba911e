"""Leaderboard entries: ``<leaderboard>/submissions/<dataset>/<slug>.json``, schema ``ytfgvc-entry-2``.

An entry is written only by ``ytfgvc leaderboard submit`` (or, for the paper's rows, by
:func:`paper_entries`) and is one of two kinds:

``rescored`` -- every number was computed here from the submitted predictions::

    schema, kind: "rescored", dataset, slug, method, metadata{backbone, pretraining,
    frames_crops, params, code_url, paper_url, notes}, external_data{used, details},
    submitted (UTC date), tool_version, annotations (hash of the test list scored against),
    manifest (the submitter's download snapshot, or null), predictions_sha256,
    scores{top1, top5, mean_class, intervals{top1, top5, mean_class: [lo, hi]}, n_scored,
    n_official, coverage, per_class{label: top-1}, n_boot, missing_as_wrong{top1, top5}},
    top5{youtube_id: [5 labels, best first (fewer only if the dataset has fewer classes)]},
    truth{youtube_id: the official label it was scored against}

The kept ``top5`` lets anyone re-score the entry (``ytfgvc leaderboard rescore``) and
compare it with another on the same videos; ``truth`` (from the imported test list, the same
ids as ``top5``) lets the page score every entry on the videos all entries share (the common
core, :mod:`.core`) without the lists. Nothing the submitter reported is stored. An entry of
the previous schema, ``ytfgvc-entry-1``, has no ``truth``; it is read, left out of the common
core, and brought to ``ytfgvc-entry-2`` by ``rescore --write``.

``paper`` -- a number reported in a publication and **not re-scored** (no predictions
exist): ``reported{top1}`` and ``source`` instead of ``scores`` and ``top5``. Pages show
these rows marked as such and without an interval or coverage.

Slugs are made from the method name (:func:`slugify`), never taken from a path the user
gives; a second method whose name gives the same slug gets ``-2``, ``-3``, ...
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import check_dataset_name, is_valid_video_id
from ytfgvc.leaderboard.text import text_problems
from ytfgvc.predictions import (
    MIN_LABELS,
    SHA256_HEX,
    TooLarge,
    details_problems,
    provenance_problems,
    read_capped,
    strict_loads,
)
from ytfgvc.system.fsutil import is_temporary, write_text_atomic

ENTRY_SCHEMA = "ytfgvc-entry-2"
ENTRY_SCHEMAS = (ENTRY_SCHEMA, "ytfgvc-entry-1")  # the first has no truth: read, and upgraded by rescore --write
KINDS = ("rescored", "paper")
STATUS_TEXT = {"rescored": "re-scored", "paper": "reported in paper, not re-scored"}
MAX_ENTRY_BYTES = 8 << 20
MAX_METHOD_CHARS = 100
MAX_FIELD_CHARS = 200
MAX_NOTES_CHARS = 2000
SLUG_MAX = 60
_SLUG = re.compile(rf"^[a-z0-9](?:[a-z0-9-]{{0,{SLUG_MAX - 2}}}[a-z0-9])?$")


@dataclass
class Metadata:
    """What a submitter says about the method (free text, escaped wherever it is shown).

    Checked in ``__post_init__``; errors name the ``submit`` option.
    """

    backbone: str = ""
    pretraining: str = ""
    frames_crops: str = ""
    params: str = ""
    code_url: str = ""
    paper_url: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        problems = metadata_problems(asdict(self))
        if problems:
            raise ValidationError("entry metadata rejected", problems)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_OPTION = {
    "backbone": "--backbone",
    "pretraining": "--pretraining",
    "frames_crops": "--frames-crops",
    "params": "--params",
    "code_url": "--code-url",
    "paper_url": "--paper-url",
    "notes": "--notes",
}


def metadata_problems(meta: Any) -> list[str]:
    """Every problem of a metadata object (unknown keys, types, lengths, control characters, URLs)."""
    if not isinstance(meta, dict):
        return ["metadata: expected an object"]
    problems = [f"metadata: unknown field {k!r}" for k in meta if k not in _OPTION]
    for key, flag in _OPTION.items():
        value = meta.get(key, "")
        limit = MAX_NOTES_CHARS if key == "notes" else MAX_FIELD_CHARS
        found = text_problems(value, limit, newlines=key == "notes")
        if found:
            problems += [f"{flag}: {p}" for p in found]
        elif key.endswith("_url") and value and not is_web_url(value):
            problems.append(f"{flag}: {value[:60]!r} is not an http:// or https:// URL")
    return problems


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host and no spaces or quotes (so never ``javascript:``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not re.search(r"[\s\"'<>`\\]", url)


def check_method(method: Any) -> str:
    """A method name: 1-100 characters, no control or format characters (anything else is shown escaped)."""
    if not isinstance(method, str) or not method.strip():
        raise YtfgvcError("--method: the method name is empty", "name the method, e.g. --method 'RRA (Inception-V3)'")
    found = text_problems(method, MAX_METHOD_CHARS)
    if found:
        raise YtfgvcError(f"--method: {found[0]}", f"at most {MAX_METHOD_CHARS} visible characters")
    return method.strip()


def slugify(method: str) -> str:
    """A file-name-safe slug: lower-case ``[a-z0-9-]``, at most 60 characters, never empty.

    Accents are folded (``Ünïcode`` -> ``unicode``); a name with no ASCII letter or digit
    gets ``method-`` and 8 hex digits of its hash, so distinct names stay distinct.
    """
    ascii_name = unicodedata.normalize("NFKD", method).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:SLUG_MAX].strip("-")
    if not slug:
        slug = "method-" + hashlib.sha256(method.encode("utf-8")).hexdigest()[:8]
    return slug


def is_slug(slug: Any) -> bool:
    return isinstance(slug, str) and bool(_SLUG.match(slug))


def submissions_dir(leaderboard_dir: Path, dataset: str) -> Path:
    """``<leaderboard>/submissions/<dataset>/`` (the dataset name is checked)."""
    return Path(leaderboard_dir) / "submissions" / check_dataset_name(dataset)


def entry_path(leaderboard_dir: Path, dataset: str, slug: str) -> Path:
    if not is_slug(slug):
        raise YtfgvcError(f"invalid entry name {slug!r}", "entry names are lower-case letters, digits and '-'")
    return submissions_dir(leaderboard_dir, dataset) / f"{slug}.json"


def choose_slug(leaderboard_dir: Path, dataset: str, method: str) -> tuple[str, bool]:
    """The slug for ``method`` and whether an entry of that same method already exists.

    Collision rule: the first of ``slug``, ``slug-2``, ``slug-3``, ... that is free or
    already belongs to this exact method name.
    """
    base = slugify(method)
    for n in range(1, 1000):
        suffix = "" if n == 1 else f"-{n}"
        slug = base[: SLUG_MAX - len(suffix)].strip("-") + suffix
        path = entry_path(leaderboard_dir, dataset, slug)
        if not path.exists():
            return slug, False
        if read_entry(path).get("method") == method:
            return slug, True
    raise YtfgvcError(f"too many entries named like {method!r}", "choose a more distinctive --method")


def read_entry(path: Path) -> dict[str, Any]:
    """Parse one entry file strictly (size cap, repeated keys, non-finite numbers refused)."""
    try:
        data = strict_loads(read_capped(path, MAX_ENTRY_BYTES))
    except TooLarge as e:
        raise YtfgvcError(f"{path}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise YtfgvcError(f"{path}: not a valid entry file: {e}") from None
    if not isinstance(data, dict):
        raise YtfgvcError(f"{path}: not a valid entry file: expected a JSON object")
    return data


def _number(x: Any, lo: float = 0.0, hi: float = 100.0) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi  # NaN fails the range


def _scores_problems(scores: Any, top5: Any) -> list[str]:
    if not isinstance(scores, dict):
        return ["scores: missing"]
    problems = []
    for key in ("top1", "top5", "mean_class"):
        interval = (scores.get("intervals") or {}).get(key)
        if not _number(scores.get(key)):
            problems.append(f"scores.{key}: not a percentage")
        if not (isinstance(interval, list) and len(interval) == 2 and all(_number(v) for v in interval)):
            problems.append(f"scores.intervals.{key}: not a [low, high] pair of percentages")
        elif interval[0] > interval[1]:
            problems.append(f"scores.intervals.{key}: low is above high")
    n, total = scores.get("n_scored"), scores.get("n_official")
    if not (isinstance(n, int) and isinstance(total, int) and 0 < n <= total):
        problems.append("scores: n_scored and n_official must be integers with 0 < n_scored <= n_official")
    elif not _number(scores.get("coverage"), 0, 1) or abs(scores["coverage"] - n / total) > 1e-6:
        problems.append("scores.coverage: is not n_scored / n_official")
    elif not isinstance(top5, dict) or len(top5) != n:
        problems.append(f"top5: must hold the {n} videos scored")
    for key in ("top1", "top5"):
        if not _number((scores.get("missing_as_wrong") or {}).get(key)):
            problems.append(f"scores.missing_as_wrong.{key}: not a percentage")
    return problems


def _top5_problems(top5: Any) -> list[str]:
    if not isinstance(top5, dict):
        return ["top5: missing"]
    bad = [
        vid
        for vid, labels in top5.items()
        if not (
            is_valid_video_id(vid)
            and isinstance(labels, list)
            and 1 <= len(labels) <= MIN_LABELS
            and all(isinstance(y, int) and not isinstance(y, bool) for y in labels)
            and len(set(labels)) == len(labels)
        )
    ]
    return [f"top5: {len(bad)} malformed rows (first: {bad[0][:40]!r})"] if bad else []


def _truth_problems(truth: Any, top5: Any) -> list[str]:
    if not isinstance(truth, dict):
        return ["truth: missing (the official label of each scored video)"]
    if isinstance(top5, dict) and set(truth) != set(top5):
        return ["truth: must hold exactly the videos of top5"]
    bad = [vid for vid, y in truth.items() if not (isinstance(y, int) and not isinstance(y, bool) and y >= 0)]
    return [f"truth: {len(bad)} labels are not label ids (first: {bad[0][:40]!r})"] if bad else []


def entry_problems(entry: Any, dataset: str | None = None, slug: str | None = None) -> list[str]:
    """Every problem of an entry object; ``dataset``/``slug``: what its location says they are."""
    if not isinstance(entry, dict):
        return ["expected a JSON object"]
    problems = []
    if entry.get("schema") not in ENTRY_SCHEMAS:
        problems.append(f"schema: expected {ENTRY_SCHEMA!r}")
    kind = entry.get("kind")
    if kind not in KINDS:
        problems.append(f"kind: expected one of {', '.join(KINDS)}")
    try:
        check_dataset_name(entry.get("dataset"))
    except YtfgvcError:
        problems.append(f"dataset: {str(entry.get('dataset'))[:40]!r} is not a dataset name")
    if dataset is not None and entry.get("dataset") != dataset:
        problems.append(f"dataset: {entry.get('dataset')!r} does not match its folder {dataset!r}")
    if not is_slug(entry.get("slug")) or (slug is not None and entry.get("slug") != slug):
        problems.append(f"slug: {entry.get('slug')!r} is not a slug matching the file name")
    try:
        if check_method(entry.get("method")) != entry.get("method"):
            problems.append("method: has surrounding spaces")
    except YtfgvcError as e:
        problems.append(f"method: {e}")
    problems += metadata_problems(entry.get("metadata"))
    if "provenance" in entry:
        problems += provenance_problems(entry["provenance"])
    if kind == "rescored":
        problems += _scores_problems(entry.get("scores"), entry.get("top5"))
        problems += _top5_problems(entry.get("top5"))
        if entry.get("schema") == ENTRY_SCHEMA or "truth" in entry:
            problems += _truth_problems(entry.get("truth"), entry.get("top5"))
        for key in ("manifest", "annotations", "predictions_sha256"):
            value = entry.get(key)
            if not (isinstance(value, str) and SHA256_HEX.match(value)) and not (key == "manifest" and value is None):
                problems.append(f"{key}: not a sha256 (64 lower-case hex digits)")
        external = entry.get("external_data")
        if not (isinstance(external, dict) and isinstance(external.get("used"), bool)):
            problems.append("external_data: expected {used: bool, details: str}")
        else:
            problems += [f"external_data.details: {p}" for p in details_problems(external.get("details", ""))]
        if "reported" in entry:
            problems.append("reported: a re-scored entry carries no reported numbers")
    elif kind == "paper":
        if not _number((entry.get("reported") or {}).get("top1")):
            problems.append("reported.top1: not a percentage")
        if not isinstance(entry.get("source"), str) or not entry["source"].strip():
            problems.append("source: say where the reported number comes from")
        problems += [f"{k}: a paper row has no {k} (it is not re-scored)" for k in ("scores", "top5") if k in entry]
    return problems


def load_entries(leaderboard_dir: Path) -> list[dict[str, Any]]:
    """Every entry under ``<leaderboard>/submissions/``, checked; one bad entry rejects them all, all listed."""
    root = Path(leaderboard_dir) / "submissions"
    entries, problems = [], []
    for path in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        if is_temporary(path):
            continue
        rel = path.relative_to(root)
        try:
            entry = read_entry(path)
        except YtfgvcError as e:
            problems.append(str(e))
            continue
        found = entry_problems(entry, dataset=path.parent.name, slug=path.stem)
        problems += [f"{rel}: {p}" for p in found]
        if not found:
            entries.append(entry)
    if problems:
        raise ValidationError(f"{root}: bad entries", problems, "fix or remove them; entries are written by submit")
    return entries


def dump_entry(entry: dict[str, Any]) -> str:
    """JSON text of an entry: indented, with one line per video in ``top5`` and ``truth`` (readable diffs)."""
    per_video = [k for k in ("top5", "truth") if k in entry]
    head = {k: v for k, v in entry.items() if k not in per_video}
    text = json.dumps(head, indent=2, ensure_ascii=False, allow_nan=False)[: -len("\n}")]
    for key in per_video:
        rows = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(entry[key].items()))
        text += f',\n  "{key}": {{\n' + rows + "\n  }"
    return text + "\n}\n"


def write_entry(leaderboard_dir: Path, entry: dict[str, Any]) -> Path:
    """Check ``entry`` and write it atomically to its place; returns the path."""
    problems = entry_problems(entry)
    if problems:
        raise ValidationError(f"entry {entry.get('slug')!r} rejected", problems)
    path = entry_path(leaderboard_dir, entry["dataset"], entry["slug"])
    write_text_atomic(path, dump_entry(entry))
    return path


def utc_today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")


# The paper's Table 6 rows; their top-1 numbers are in the dataset cards (paper_table6).
PAPER_SOURCE = "Zhu et al., Fine-grained Video Categorization with Redundancy Reduction Attention, ECCV 2018, Table 6"
PAPER_TABLE6: list[dict[str, Any]] = [
    {
        "method": "BN-Inception",
        "key": "bninception",
        "metadata": {
            "backbone": "BN-Inception",
            "pretraining": "not stated",
            "frames_crops": "1 (middle frame)",
            "notes": "one random frame in training",
        },
        "provenance": {"weights": "not stated in the paper", "recipe": "not stated in the paper"},
    },
    {
        "method": "I3D (ResNet-50)",
        "key": "i3d",
        "metadata": {"backbone": "ResNet-50 inflated to 3D", "frames_crops": "32 consecutive (middle)"},
        "provenance": {"weights": "ImageNet ResNet-50, inflated (paper)", "recipe": "not stated in the paper"},
    },
    {
        "method": "TSN",
        "key": "tsn",
        "metadata": {"backbone": "Inception-V3", "frames_crops": "25 x 10", "notes": "official PyTorch TSN"},
        "provenance": {
            "weights": "ImageNet Inception-V3 of TSN's authors (paper)",
            "recipe": "TSN's official PyTorch code; settings not stated",
        },
    },
    {
        "method": "RRA",
        "key": "rra",
        "metadata": {"backbone": "Inception-V3", "frames_crops": "25 x 10", "notes": "4 glimpses"},
        "provenance": {"weights": "ImageNet Inception-V3 of TSN's authors (paper)", "recipe": "paper, section 5.1"},
    },
]


def paper_entries() -> list[dict[str, Any]]:
    """The Table 6 rows as ``paper`` entries (reported in the paper, not re-scored)."""
    from ytfgvc.datasets import get_card

    entries = []
    for row in PAPER_TABLE6:
        for dataset in ("birds", "cars"):
            card = get_card(dataset)
            top1 = card.paper_table6[row["key"]]
            meta = Metadata(**{"pretraining": "ImageNet", "paper_url": card.project_page, **row["metadata"]}).to_dict()
            entries.append(
                {
                    "schema": ENTRY_SCHEMA,
                    "kind": "paper",
                    "dataset": dataset,
                    "slug": "paper-" + slugify(row["method"]),
                    "method": row["method"],
                    "metadata": meta,
                    "reported": {"top1": top1},
                    "source": PAPER_SOURCE,
                    "provenance": row["provenance"],
                }
            )
    return entries
