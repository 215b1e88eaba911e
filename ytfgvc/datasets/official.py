"""The official release (three JSON files) and its import under ``<root>/<dataset>/annotations/``.

File formats (as published by the dataset's maintainers):

* ``train_list.json`` / ``test_list.json``: a JSON array of ``[youtube_id, label_id]`` pairs;
  ``youtube_id`` is 11 characters of ``[A-Za-z0-9_-]``, ``label_id`` an integer.
* ``label2name.json``: a JSON object mapping ``str(label_id)`` to the class name.

Label ids are the maintainers' and are used as they are, never re-derived. The import
checks everything at once and reports every problem with its location; it installs
nothing unless all files are valid. Differences from the card's Table 2 numbers are
warnings (releases change), shown as an exact diff.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc import __version__
from ytfgvc.datasets.cards import DatasetCard
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import SPLITS, DatasetLayout, is_valid_video_id
from ytfgvc.system.fsutil import atomic_path, sha256_bytes, write_json_atomic

CHECKSUMS_SCHEMA = "ytfgvc-annotations-1"
MAX_OFFICIAL_FILE_BYTES = 64 << 20
MAX_LABEL_ID = 2**31 - 1  # label ids become int32/int64 tensors and numpy indices: bigger ones are a broken file


@dataclass
class OfficialLists:
    """The parsed official release."""

    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    labels: dict[int, str]

    def split(self, name: str) -> list[tuple[str, int]]:
        if name not in SPLITS:
            raise YtfgvcError(f"unknown split {name!r}", f"use one of {', '.join(SPLITS)}")
        return self.train if name == "train" else self.test

    def all_items(self) -> list[tuple[str, int, str]]:
        """``(id, label, split)`` for every listed video, train first."""
        return [(v, y, s) for s in SPLITS for v, y in self.split(s)]

    def label_of(self) -> dict[str, int]:
        return {v: y for v, y, _ in self.all_items()}


@dataclass
class ImportResult:
    dataset: str
    status: str  # "imported" | "unchanged" | "replaced"
    counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _reject_duplicate_keys(where: str, problems: list[str]):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                problems.append(f"{where}: key {k!r} is repeated")
            seen[k] = v
        return seen

    return hook


def _parse_json(raw: bytes, where: str, problems: list[str]) -> Any:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys(where, problems))
    except UnicodeDecodeError as e:
        problems.append(f"{where}: not UTF-8 text (byte {e.start})")
    except json.JSONDecodeError as e:
        problems.append(f"{where}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")
    except RecursionError:
        problems.append(f"{where}: JSON nested too deeply (the official files are flat lists and one object)")
    except ValueError as e:  # e.g. an integer of more digits than Python converts
        problems.append(f"{where}: invalid JSON: {e}")
    return None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _parse_labels(data: Any, where: str, problems: list[str]) -> dict[int, str] | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(f"{where}: expected a JSON object mapping label id to class name, got {type(data).__name__}")
        return None
    labels: dict[int, str] = {}
    for key, name in data.items():
        try:
            label = int(key)
            if str(label) != key:
                raise ValueError
        except ValueError:
            problems.append(f"{where}: key {key[:40]!r} is not a label id (an integer written as a string)")
            continue
        if not 0 <= label <= MAX_LABEL_ID:
            problems.append(f"{where}: label id {key[:40]} is out of range (0 to {MAX_LABEL_ID})")
            continue
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}[{key!r}]: class name must be a non-empty string, got {name!r}")
            continue
        labels[label] = name
    return labels


def _parse_split(
    data: Any, where: str, labels: dict[int, str] | None, problems: list[str]
) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """The valid pairs, and the position of every well-formed id (for the cross-split check)."""
    if data is None:
        return [], {}
    if not isinstance(data, list):
        problems.append(f"{where}: expected a JSON array of [youtube_id, label_id] pairs, got {type(data).__name__}")
        return [], {}
    items: list[tuple[str, int]] = []
    first_seen: dict[str, int] = {}
    for i, entry in enumerate(data):
        loc = f"{where}[{i}]"
        if not (isinstance(entry, list) and len(entry) == 2):
            problems.append(f"{loc}: expected a [youtube_id, label_id] pair, got {json.dumps(entry)[:60]}")
            continue
        vid, label = entry
        ok = True
        if not is_valid_video_id(vid):
            problems.append(f"{loc}: invalid video id {vid!r} (must be 11 characters of A-Z a-z 0-9 _ -)")
            ok = False
        if not _is_int(label):
            problems.append(f"{loc}: label id {label!r} is not an integer")
            ok = False
        elif labels is not None and label not in labels:
            problems.append(f"{loc}: label id {label} is not in label2name.json")
            ok = False
        if is_valid_video_id(vid):
            if vid in first_seen:
                problems.append(f"{loc}: video id {vid!r} is repeated (first at [{first_seen[vid]}])")
                ok = False
            else:
                first_seen[vid] = i
        if ok:
            items.append((vid, label))
    return items, first_seen


def parse_official(files: dict[str, bytes], card: DatasetCard) -> tuple[OfficialLists, list[str]]:
    """Parse the three files (role → bytes); raise :class:`ValidationError` listing every problem.

    Returns the lists and the warnings (differences from the card's numbers).
    """
    names = card.official_files.by_role()
    problems: list[str] = []
    parsed = {role: _parse_json(files[role], names[role], problems) for role in ("labels", "train", "test")}
    labels = _parse_labels(parsed["labels"], names["labels"], problems)
    train, train_pos = _parse_split(parsed["train"], names["train"], labels, problems)
    test, test_pos = _parse_split(parsed["test"], names["test"], labels, problems)
    for vid, i in test_pos.items():
        if vid in train_pos:
            problems.append(
                f"{names['test']}[{i}]: video id {vid!r} is also in {names['train']} (at [{train_pos[vid]}])"
            )
    problems += _coverage_problems(parsed, labels, train, names)
    if problems:
        raise ValidationError(
            f"{card.name}: official lists rejected, nothing installed",
            problems,
            "fix the files (or get a fresh copy from the project page) and import again",
        )
    lists = OfficialLists(train=train, test=test, labels=labels or {})
    return lists, compare_with_card(lists, card)


def _coverage_problems(
    parsed: dict[str, Any], labels: dict[int, str] | None, train: list[tuple[str, int]], names: dict[str, str]
) -> list[str]:
    """An empty split, or a class that no training video shows: nothing could be trained or scored."""
    problems = [
        f"{names[role]}: empty (a release lists at least one video in each split)"
        for role in ("train", "test")
        if isinstance(parsed[role], list) and not parsed[role]
    ]
    if labels and train:
        trained = {y for _, y in train}
        untrained = sorted(label for label in labels if label not in trained)
        if untrained:
            shown = ", ".join(str(x) for x in untrained[:10]) + (" …" if len(untrained) > 10 else "")
            problems.append(
                f"{names['train']}: {len(untrained)} classes of {names['labels']} have no training video "
                f"(label ids {shown})"
            )
    return problems


def compare_with_card(lists: OfficialLists, card: DatasetCard) -> list[str]:
    """Exact differences between a release and the card's Table 2 numbers (warnings)."""
    warnings = []
    if len(lists.labels) != card.num_classes:
        warnings.append(f"classes: {len(lists.labels)} in label2name.json, card says {card.num_classes}")
    for split in SPLITS:
        expected = getattr(card.split_sizes, split)
        got = len(lists.split(split))
        if expected is not None and got != expected:
            warnings.append(f"{split}: {got} videos, card says {expected} ({got - expected:+d})")
    per_class = Counter(y for _, y, _ in lists.all_items())
    counts = [per_class.get(label, 0) for label in lists.labels]
    lo, hi = card.videos_per_class.min, card.videos_per_class.max
    if counts and lo is not None and min(counts) < lo:
        low = sorted(label for label in lists.labels if per_class.get(label, 0) < lo)
        warnings.append(f"videos per class: min {min(counts)} < card's {lo} (labels {low[:10]})")
    if counts and hi is not None and max(counts) > hi:
        high = sorted(label for label in lists.labels if per_class.get(label, 0) > hi)
        warnings.append(f"videos per class: max {max(counts)} > card's {hi} (labels {high[:10]})")
    return warnings


def _read_release(src: Path, card: DatasetCard) -> dict[str, bytes]:
    src = Path(src)
    if not src.is_dir():
        raise YtfgvcError(
            f"{src} is not a folder", f"pass the folder that holds {', '.join(card.official_files.by_role().values())}"
        )
    files, missing = {}, []
    for role, name in card.official_files.by_role().items():
        p = src / name
        if not p.is_file():
            missing.append(name)
            continue
        if p.stat().st_size > MAX_OFFICIAL_FILE_BYTES:
            raise YtfgvcError(f"{p}: {p.stat().st_size} bytes is over the {MAX_OFFICIAL_FILE_BYTES} byte cap")
        files[role] = p.read_bytes()
    if missing:
        raise YtfgvcError(f"{src}: missing {', '.join(missing)}", f"download them from {card.sources_url}")
    return files


def import_annotations(root: Path, dataset: str, src: Path, force: bool = False) -> ImportResult:
    """Validate the official files in ``src`` and install them with checksums.

    Importing the same files again is a no-op; different files over an existing import
    are refused unless ``force``.
    """
    from ytfgvc.datasets.dataset import Dataset

    ds = Dataset.open(root, dataset)
    card, layout = ds.card, ds.layout
    files = _read_release(src, card)
    lists, warnings = parse_official(files, card)
    names = card.official_files.by_role()
    checksums = {names[role]: sha256_bytes(data) for role, data in files.items()}
    counts = {"classes": len(lists.labels), "train": len(lists.train), "test": len(lists.test)}
    status = "imported"
    old = read_checksums(layout)
    if old is not None:
        if old.get("files") == checksums:
            return ImportResult(dataset, "unchanged", counts, warnings, checksums)
        if not force:
            raise YtfgvcError(
                f"{dataset}: different official files are already imported at {layout.annotations_dir}",
                "pass --force to replace them (downloads and frames made from the old lists stay on disk)",
            )
        status = "replaced"
    with atomic_path(layout.annotations_dir) as tmp:
        tmp.mkdir()
        for role, data in files.items():
            (tmp / names[role]).write_bytes(data)
        write_json_atomic(
            tmp / "checksums.json",
            {
                "schema": CHECKSUMS_SCHEMA,
                "dataset": dataset,
                "files": checksums,
                "counts": counts,
                "imported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "ytfgvc": __version__,
            },
        )
    return ImportResult(dataset, status, counts, warnings, checksums)


def read_checksums(layout: DatasetLayout) -> dict[str, Any] | None:
    p = layout.checksums_path
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise YtfgvcError(
            f"{p} is unreadable ({e})", f"re-import with `ytfgvc annotations import {layout.dataset} DIR --force`"
        ) from None


def read_official(card: DatasetCard, layout: DatasetLayout) -> OfficialLists:
    """The imported lists of a dataset, checked against their recorded checksums (see :class:`Dataset`)."""
    dataset = card.name
    meta = read_checksums(layout)
    if meta is None:
        if dataset == "synthetic":
            hint = "run `ytfgvc synth` (it makes and imports the lists)"
        else:
            files = ", ".join(card.official_files.by_role().values())
            hint = f"get {files} from {card.sources_url}, then run `ytfgvc annotations import {dataset} DIR`"
        raise YtfgvcError(f"{dataset}: no official lists under {layout.annotations_dir}", hint)
    files = {}
    for role, name in card.official_files.by_role().items():
        data = layout.official_file(name).read_bytes()
        if sha256_bytes(data) != meta["files"].get(name):
            raise YtfgvcError(
                f"{layout.official_file(name)} does not match its recorded checksum",
                f"re-import with `ytfgvc annotations import {dataset} DIR --force`",
            )
        files[role] = data
    lists, _ = parse_official(files, card)
    return lists


def annotations_hash_of(layout: DatasetLayout) -> str:
    """One hash naming the imported release (sha256 over the files' checksums)."""
    meta = read_checksums(layout) or {}
    return sha256_bytes(json.dumps(meta.get("files", {}), sort_keys=True).encode())


def load_official(root: Path, dataset: str) -> OfficialLists:
    """The imported lists of ``dataset`` under ``root`` (``Dataset.open(root, dataset).official()``)."""
    from ytfgvc.datasets.dataset import Dataset

    return Dataset.open(root, dataset).official()
