"""Predictions files (``ytfgvc-predictions-1``): the format, its builder and writer, and its strict reader.

The one module that knows the format: ``ytfgvc benchmark`` writes a run's file with
:func:`run_predictions` and :func:`write_predictions`, ``ytfgvc leaderboard`` reads every
file with :func:`validate_file`, and anyone can make one from a score matrix with
:func:`build_predictions`.

A predictions file (written by ``benchmark``, accepted by ``leaderboard``) is UTF-8 JSON::

    {"version": "ytfgvc-predictions-1",
     "dataset": "birds",
     "manifest": "<sha256 of the download snapshot, 64 hex digits, or null if unknown>",
     "results": {"<youtube_id>": [{"label": 17, "score": 0.83}, ... at least 5, best first]},
     "external_data": {"used": false, "details": ""}}

Rules (every broken one is reported, each naming the field or the video id):

* the file is at most ``max_bytes`` (checked before it is read), UTF-8, one JSON object;
* ``version`` is ``ytfgvc-predictions-1``; ``dataset`` is the dataset it is submitted for;
* ``results`` maps each official test id to a list of at least 5 ``{"label", "score"}``
  objects (one per class for a dataset of fewer than 5 classes); an id appears once (a
  repeated JSON key counts); ids outside the test list are refused; ids of the test list
  that are absent are refused unless partial coverage is allowed (``--allow-partial``:
  they are then listed as a warning, and coverage and missing-as-wrong figures show them);
* a label is an integer id of ``label2name.json`` and appears once per video; no key is
  repeated in any object;
* a score is a finite real number (``NaN``, ``Infinity``, strings, booleans and ``null``
  are refused), and scores do not increase along the list.

Ranking: the list's order is the ranking (best first); only the first 5 labels are
scored. Because scores must not increase along the list, the order and the scores never
disagree; equal scores are allowed and keep the listed order (that is the tie rule: the
file decides, so the ranking scored is exactly the one the submitter wrote).
``external_data.used`` is a boolean; when true, ``details`` must say what was used.
``provenance`` is optional: ``{"weights": "<starting weights: file and sha256, a hub tag, or
from scratch>", "recipe": "<the training recipe>"}``, each a line of text of at most 200
characters (``ytfgvc benchmark`` writes it; the leaderboard shows it beside the scores).
Other top-level keys are ignored (and not kept).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.datasets.official import OfficialLists
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.system.fsutil import sha256_bytes

PREDICTIONS_VERSION = "ytfgvc-predictions-1"
MAX_PREDICTIONS_BYTES = 64 << 20  # 5684 videos x 200 labels with long floats is ~45 MB
MIN_LABELS = 5
MAX_DETAILS_CHARS = 2000
LISTED_IDS = 20  # ids shown in a problem's text; to_dict() always has them all
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Problem:
    """One defect of a predictions file: where (a field or ``results['<id>']``), what, and the ids concerned."""

    where: str
    message: str
    ids: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.ids:
            shown = ", ".join(_show(i) for i in self.ids[:LISTED_IDS])
            more = f" … and {len(self.ids) - LISTED_IDS} more (--json lists all)" if len(self.ids) > LISTED_IDS else ""
            text += f": {shown}{more}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"where": self.where, "message": self.message, "ids": list(self.ids)}


@dataclass
class Predictions:
    """A valid predictions file: the top-5 labels of each video it covers, best first."""

    dataset: str
    manifest: str | None
    external_data: dict[str, Any]
    top5: dict[str, list[int]]
    sha256: str
    n_official: int
    provenance: dict[str, str] | None = None

    @property
    def coverage(self) -> float:
        return len(self.top5) / self.n_official if self.n_official else 0.0


@dataclass
class Report:
    """The outcome of :func:`validate_file`: every problem, the warnings, and the predictions if valid."""

    path: str
    dataset: str
    problems: list[Problem]
    warnings: list[Problem]
    n_results: int
    n_official: int
    missing: list[str]
    predictions: Predictions | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dataset": self.dataset,
            "valid": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [w.to_dict() for w in self.warnings],
            "videos": self.n_results,
            "official_test_videos": self.n_official,
            "missing": self.missing,
            "coverage": round(len(self.predictions.top5) / self.n_official, 6) if self.predictions else None,
            "manifest": self.predictions.manifest if self.predictions else None,
            "sha256": self.predictions.sha256 if self.predictions else None,
        }

    def raise_if_invalid(self) -> Predictions:
        """The predictions, or a :class:`ValidationError` listing every problem."""
        if self.predictions is None:
            raise ValidationError(f"{self.path}: predictions rejected", [str(p) for p in self.problems])
        return self.predictions


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _NonFinite:
    """What ``NaN``, ``Infinity`` and ``-Infinity`` parse to, so they are reported where they are."""

    __slots__ = ("literal",)

    def __init__(self, literal: str):
        self.literal = literal


class _RepeatedKeys(dict):
    """An object in which some key appeared more than once (the last value is kept)."""

    repeated: list[str]


def _object_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    flagged = _RepeatedKeys(obj)
    flagged.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]
    return flagged


def strict_loads(raw: bytes) -> Any:
    """Parse UTF-8 JSON, raising ValueError on the first repeated key or NaN/Infinity anywhere."""
    data = json.loads(raw.decode("utf-8"), object_pairs_hook=_object_hook, parse_constant=_NonFinite)
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, _RepeatedKeys):
            raise ValueError(f"key {value.repeated[0]!r} is repeated")
        if isinstance(value, _NonFinite):
            raise ValueError(f"{value.literal} is not a finite number")
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return data


def read_capped(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file no larger than ``max_bytes``, checked before reading it all."""
    path = Path(path)
    if not path.exists():
        raise YtfgvcError(f"{path}: no such file")
    if not path.is_file():
        raise YtfgvcError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLarge(size, max_bytes)
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)  # the file may have grown since stat()
    if len(data) > max_bytes:
        raise TooLarge(len(data), max_bytes)
    return data


class TooLarge(Exception):
    """A file over its size cap (found before it was read)."""

    def __init__(self, size: int, limit: int):
        super().__init__(f"{size} bytes is over the {limit} byte limit")


def _number_problem(value: Any) -> str | None:
    """Why ``value`` is not a finite real number, or None if it is one."""
    if isinstance(value, _NonFinite):
        return f"{value.literal} is not a finite number"
    if isinstance(value, bool):
        return f"{json.dumps(value)} is a boolean, not a number"
    if isinstance(value, (int, float)):
        try:
            return None if math.isfinite(float(value)) else "is too large to be a finite number"
        except OverflowError:  # an integer beyond the float range
            return "is too large to be a finite number"
    if value is None:
        return "null is not a number"
    kind = "a string" if isinstance(value, str) else f"a JSON {type(value).__name__}"
    return f"{_show(value)} is {kind}, not a number"


def required_labels(n_classes: int) -> int:
    """Labels each video must rank: 5, or every class when a dataset has fewer."""
    return max(1, min(MIN_LABELS, n_classes))


def _bulk_top5(videos: list[Any], labels: dict[int, str], need: int) -> list[list[int]] | None:
    """The first 5 labels of every video if none breaks a rule, else None (then each is checked in detail).

    The fast path for valid files: the rules of :func:`_check_video`, checked for all
    videos at once with exact types (``bool`` is not ``int``; a ``_RepeatedKeys`` object
    is not a ``dict``; a ``_NonFinite`` is not a number) and numpy over the flattened lists.
    """
    if not videos:
        return []
    if set(map(type, videos)) - {list}:
        return None
    items = [it for v in videos for it in v]
    if set(map(type, items)) - {dict}:
        return None
    try:
        ys = [it["label"] for it in items]
        ss = [it["score"] for it in items]
    except KeyError:
        return None
    if set(map(type, ys)) - {int} or set(map(type, ss)) - {int, float}:
        return None
    lengths = np.fromiter(map(len, videos), dtype=np.int64, count=len(videos))
    if lengths.min() < need:
        return None
    try:
        y, score = np.array(ys, dtype=np.int64), np.array(ss, dtype=np.float64)
    except OverflowError:
        return None
    known = np.fromiter(labels, dtype=np.int64, count=len(labels))
    if not (np.isfinite(score).all() and np.isin(y, known).all()):
        return None
    video = np.repeat(np.arange(len(videos)), lengths)
    same = video[1:] == video[:-1]
    if (same & (score[1:] > score[:-1])).any():
        return None
    order = np.lexsort((y, video))
    if ((video[order][1:] == video[order][:-1]) & (y[order][1:] == y[order][:-1])).any():
        return None
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).tolist()
    return [ys[i : i + min(n, MIN_LABELS)] for i, n in zip(starts, lengths.tolist(), strict=True)]


def _check_video(vid: str, items: Any, labels: dict[int, str], problems: list[Problem]) -> list[int] | None:
    """The first 5 labels of one video, or None after appending its problems."""
    need = required_labels(len(labels))
    where = f"results[{_show(vid, 60)}]"
    if not isinstance(items, list):
        problems.append(Problem(where, 'expected a list of {"label": int, "score": number} objects, best first'))
        return None
    before = len(problems)
    if len(items) < need:
        problems.append(Problem(where, f"has {len(items)} labels, fewer than the {need} required"))
    seen: dict[int, int] = {}
    ranked: list[int] = []
    previous: float | None = None
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(at, 'expected a {"label": int, "score": number} object'))
            continue
        if isinstance(item, _RepeatedKeys):
            problems.append(Problem(at, f"key {item.repeated[0]!r} is repeated"))
        label, score = item.get("label"), item.get("score")
        if "label" not in item:
            problems.append(Problem(at, "label is missing"))
        elif not isinstance(label, int) or isinstance(label, bool):
            problems.append(Problem(f"{at}.label", f"{_show(label)} is not an integer label id"))
        elif label not in labels:
            problems.append(Problem(f"{at}.label", f"unknown label {label} (not in label2name.json)"))
        elif label in seen:
            problems.append(Problem(f"{at}.label", f"label {label} is repeated (first at [{seen[label]}])"))
        else:
            seen[label] = i
            ranked.append(label)
        why = "score is missing" if "score" not in item else _number_problem(score)
        if why:
            problems.append(Problem(f"{at}.score", why))
            previous = None
            continue
        if previous is not None and score > previous:
            problems.append(
                Problem(
                    f"{at}.score",
                    f"{score} is higher than the score before it ({previous}); list labels best first",
                )
            )
        previous = score
    if len(problems) > before:
        return None
    return ranked[:MIN_LABELS]


def _check_header(data: dict[str, Any], dataset: str, problems: list[Problem]) -> tuple[str | None, dict[str, Any]]:
    if isinstance(data, _RepeatedKeys):
        for key in dict.fromkeys(data.repeated):
            problems.append(Problem(_show(key), "key is repeated at the top level"))
    version = data.get("version")
    if "version" not in data:
        problems.append(Problem("version", f"missing (expected {PREDICTIONS_VERSION!r})"))
    elif version != PREDICTIONS_VERSION:
        problems.append(
            Problem("version", f"unsupported version {_show(version)} (this tool reads {PREDICTIONS_VERSION!r})")
        )
    if "dataset" not in data:
        problems.append(Problem("dataset", f"missing (expected {dataset!r})"))
    elif data["dataset"] != dataset:
        problems.append(Problem("dataset", f"the file is for {_show(data['dataset'])}, not {dataset!r}"))
    manifest = data.get("manifest")
    if "manifest" not in data:
        problems.append(Problem("manifest", "missing (the sha256 of the download's manifest.json, or null)"))
    elif manifest is not None and not (isinstance(manifest, str) and SHA256_HEX.match(manifest)):
        problems.append(Problem("manifest", f"{_show(manifest)} is not a sha256 (64 lower-case hex digits) or null"))
    external = data.get("external_data")
    if not isinstance(external, dict):
        problems.append(
            Problem("external_data", 'missing or not an object (write {"used": false, "details": ""} if none was used)')
        )
        external = {}
    else:
        used, details = external.get("used"), external.get("details", "")
        if not isinstance(used, bool):
            problems.append(Problem("external_data.used", f"{_show(used)} is not true or false"))
        if not isinstance(details, str) or len(details) > MAX_DETAILS_CHARS:
            problems.append(Problem("external_data.details", f"must be a string of at most {MAX_DETAILS_CHARS} chars"))
        elif invisible := details_problems(details):
            problems.append(Problem("external_data.details", invisible[0]))
        elif used is True and not details.strip():
            problems.append(Problem("external_data.details", "external data was used: say which"))
        external = {"used": used, "details": details}
    return (manifest if isinstance(manifest, str) else None), external


def details_problems(details: str) -> list[str]:
    """What is wrong with ``external_data.details`` as text shown on the leaderboard (newlines allowed)."""
    from ytfgvc.leaderboard.text import text_problems

    return text_problems(details, MAX_DETAILS_CHARS, newlines=True)


PROVENANCE_KEYS = ("weights", "recipe")
MAX_PROVENANCE_CHARS = 200


def provenance_problems(value: Any, where: str = "provenance") -> list[str]:
    """Every problem of a ``provenance`` object (optional keys ``weights`` and ``recipe``, short plain text)."""
    from ytfgvc.leaderboard.text import text_problems

    if not isinstance(value, dict):
        return [f"{where}: expected an object with 'weights' and 'recipe'"]
    problems = [f"{where}: unknown field {_show(k)}" for k in value if k not in PROVENANCE_KEYS]
    for key in PROVENANCE_KEYS:
        if key in value:
            problems += [f"{where}.{key}: {p}" for p in text_problems(value[key], MAX_PROVENANCE_CHARS)]
    return problems


def _check_provenance(data: dict[str, Any], problems: list[Problem]) -> dict[str, str] | None:
    if "provenance" not in data:
        return None
    found = provenance_problems(data["provenance"])
    problems += [Problem(*p.split(": ", 1)) for p in found]
    return None if found else {k: data["provenance"][k] for k in PROVENANCE_KEYS if k in data["provenance"]}


def validate_bytes(
    raw: bytes, lists: OfficialLists, dataset: str, *, allow_partial: bool = False, path: str = "<predictions>"
) -> Report:
    """Validate the bytes of a predictions file against the official test list; see the module docstring."""
    test_ids = [vid for vid, _ in lists.test]
    report = Report(path, dataset, [], [], 0, len(test_ids), [])
    problems = report.problems
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_object_hook, parse_constant=_NonFinite)
    except UnicodeDecodeError as e:
        problems.append(Problem("file", f"not UTF-8 text (byte {e.start})"))
        return report
    except json.JSONDecodeError as e:
        problems.append(Problem("file", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"))
        return report
    except RecursionError:
        problems.append(Problem("file", "JSON nested too deeply"))
        return report
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        problems.append(Problem("file", f"invalid JSON: {e}"))
        return report
    if not isinstance(data, dict):
        problems.append(Problem("file", f"expected a JSON object, got a JSON {_json_kind(data)}"))
        return report
    manifest, external = _check_header(data, dataset, problems)
    origin = _check_provenance(data, problems)
    results = data.get("results")
    if not isinstance(results, dict):
        problems.append(Problem("results", "missing or not an object mapping video id to ranked labels"))
        return report
    report.n_results = len(results)
    if isinstance(results, _RepeatedKeys):
        problems.append(
            Problem("results", "ids repeated (each video must appear once)", list(dict.fromkeys(results.repeated)))
        )
    official = set(test_ids)
    unknown = [vid for vid in results if vid not in official]
    if unknown:
        problems.append(Problem("results", f"{len(unknown)} ids are not in the official test list", unknown))
    report.missing = [vid for vid in test_ids if vid not in results]
    if report.missing:
        n = len(report.missing)
        if allow_partial:
            report.warnings.append(Problem("results", f"{n} official test ids have no prediction", report.missing))
        else:
            problems.append(
                Problem(
                    "results",
                    f"{n} official test ids are missing (pass --allow-partial to score the videos you have; "
                    "coverage is then shown beside every score)",
                    report.missing,
                )
            )
    covered = [vid for vid in test_ids if vid in results]
    bulk = _bulk_top5([results[vid] for vid in covered], lists.labels, required_labels(len(lists.labels)))
    if bulk is not None:
        top5 = dict(zip(covered, bulk, strict=True))
    else:
        top5 = {}
        for vid in covered:
            ranked = _check_video(vid, results[vid], lists.labels, problems)
            if ranked is not None:
                top5[vid] = ranked
    for vid in unknown:  # their lists are checked too, so one pass shows every defect
        _check_video(vid, results[vid], lists.labels, problems)
    if not problems:
        if not top5:
            problems.append(Problem("results", "no predictions for any official test video"))
            return report
        report.predictions = Predictions(dataset, manifest, external, top5, sha256_bytes(raw), len(test_ids), origin)
    return report


def _json_kind(value: Any) -> str:
    names = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def validate_file(
    path: Path,
    lists: OfficialLists,
    dataset: str,
    *,
    allow_partial: bool = False,
    max_bytes: int = MAX_PREDICTIONS_BYTES,
) -> Report:
    """Validate a predictions file; the size cap is checked before the file is read."""
    try:
        raw = read_capped(Path(path), max_bytes)
    except TooLarge as e:
        report = Report(str(path), dataset, [], [], 0, len(lists.test), [])
        report.problems.append(Problem("file", f"too large: {e}"))
        return report
    return validate_bytes(raw, lists, dataset, allow_partial=allow_partial, path=str(path))


def build_predictions(
    dataset: str,
    manifest: str | None,
    video_ids: Sequence[str],
    scores: np.ndarray,
    labels: Iterable[int] | None = None,
    k: int = MIN_LABELS,
    external_data: dict[str, Any] | None = None,
    provenance: dict[str, str] | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    """A predictions object (see the module docstring) from a score matrix.

    Args:
        dataset: the dataset name written in the file.
        manifest: the download snapshot's hash (``records.manifest_hash``), or None.
        video_ids: one id per row of ``scores``.
        scores: (N, C) class scores; column ``j`` is label ``labels[j]`` (default: ``j``).
        labels: the label id of each column.
        k: labels kept per video, best first (ties to the lower column, as ``metrics.rank_scores``).
        external_data: ``{"used": bool, "details": str}``; default: none used.
        provenance: ``{"weights", "recipe"}`` (optional, shown on the leaderboard).
        decimals: round the scores (after ranking, so the order and the tie rule hold).
    """
    from ytfgvc.metrics import rank_scores

    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (a NaN or infinity would make the file invalid)")
    if scores.ndim != 2 or scores.shape[0] != len(video_ids):
        raise ValueError(f"need an (N, C) score matrix with one row per id; got {scores.shape}")
    columns = np.arange(scores.shape[1]) if labels is None else np.asarray(list(labels))
    order = rank_scores(scores, k)
    rows = np.take_along_axis(scores, order, axis=1)
    if decimals is not None:
        rows = rows.round(decimals)
    results = {
        vid: [{"label": int(columns[j]), "score": float(s)} for j, s in zip(o, r, strict=True)]
        for vid, o, r in zip(video_ids, order, rows, strict=True)
    }
    doc = {
        "version": PREDICTIONS_VERSION,
        "dataset": dataset,
        "manifest": manifest,
        "results": results,
        "external_data": external_data or {"used": False, "details": ""},
    }
    if provenance is not None:
        doc["provenance"] = dict(provenance)
    return doc


RUN_TOP_K = 10  # labels a benchmark run keeps per video (the leaderboard scores the first 5)


def run_predictions(
    dataset: str,
    manifest: str | None,
    video_ids: Sequence[str],
    probabilities: np.ndarray,
    provenance: dict[str, str],
) -> dict[str, Any]:
    """A benchmark run's file: the 10 best labels of each video with their probability (6 decimals).

    Ties go to the lower label id. The starting weights count as external data unless the
    model was trained from scratch.
    """
    used = provenance["weights"] != "from scratch"
    external = {"used": used, "details": f"initialised from {provenance['weights']}" if used else ""}
    return build_predictions(
        dataset, manifest, video_ids, probabilities, k=RUN_TOP_K, external_data=external,
        provenance=provenance, decimals=6,
    )  # fmt: skip


def write_predictions(path: Path, doc: dict[str, Any]) -> None:
    """Write a predictions object atomically (compact JSON)."""
    from ytfgvc.system.fsutil import write_json_atomic

    write_json_atomic(path, doc, indent=None)
