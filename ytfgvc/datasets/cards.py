"""Dataset cards: ``annotations/<name>.yaml``, one per dataset. Adding a dataset is adding a card.

A card (schema ``ytfgvc-card-1``) holds::

    name, title, num_classes
    split_sizes: {train: int|null, test: int|null}     # the paper's Table 2
    videos_per_class: {min: int|null, max: int|null}
    sample_fps: float                                   # frames kept per second by `prepare`
    filters: {max_duration_s: float, min_resolution: int}   # min_resolution applies to the smaller side
    official_files: {train, test, labels}               # file names of the official release
    paper_table6: {method: top-1 %}                     # the paper's Table 6, as printed (optional)
    project_page: URL|null                              # where the official files are published
    project_page_moved: URL|null                        # where that page moved, if it did
    default_source: youtube|mirror, paper: str|null, arxiv: str|null

Cards are looked up in ``$YTFGVC_CARDS`` (folders separated by ``:``), then in the
``annotations/`` folder of the source tree, then in ``<prefix>/share/ytfgvc/annotations``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ytfgvc.config import ConfigBase, did_you_mean
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import check_dataset_name, resource_dirs

CARD_SCHEMA = "ytfgvc-card-1"
SOURCES = ("youtube", "mirror")


@dataclass
class SplitSizes(ConfigBase):
    train: int | None = None
    test: int | None = None


@dataclass
class ClassRange(ConfigBase):
    min: int | None = None
    max: int | None = None


@dataclass
class Filters(ConfigBase):
    max_duration_s: float = 300.0
    min_resolution: int = 360


@dataclass
class OfficialFiles(ConfigBase):
    train: str = "train_list.json"
    test: str = "test_list.json"
    labels: str = "label2name.json"

    def by_role(self) -> dict[str, str]:
        return {"train": self.train, "test": self.test, "labels": self.labels}


@dataclass
class DatasetCard(ConfigBase):
    """The facts of one dataset; see the module docstring for the fields."""

    name: str
    num_classes: int
    sample_fps: float
    schema: str = CARD_SCHEMA
    title: str = ""
    split_sizes: SplitSizes = field(default_factory=SplitSizes)
    videos_per_class: ClassRange = field(default_factory=ClassRange)
    filters: Filters = field(default_factory=Filters)
    official_files: OfficialFiles = field(default_factory=OfficialFiles)
    paper_table6: dict[str, float] = field(default_factory=dict)
    project_page: str | None = None
    project_page_moved: str | None = None
    default_source: str = "youtube"
    paper: str | None = None
    arxiv: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.schema != CARD_SCHEMA:
            problems.append(f"schema: {self.schema!r} is not {CARD_SCHEMA!r}")
        try:
            check_dataset_name(self.name)
        except YtfgvcError as e:
            problems.append(f"name: {e}")
        if not isinstance(self.num_classes, int) or self.num_classes < 1:
            problems.append(f"num_classes: must be a positive integer, got {self.num_classes!r}")
        if not isinstance(self.sample_fps, (int, float)) or not 0 < self.sample_fps <= 120:
            problems.append(f"sample_fps: must be in (0, 120], got {self.sample_fps!r}")
        if not self.filters.max_duration_s or self.filters.max_duration_s <= 0:
            problems.append("filters.max_duration_s: must be positive")
        if not isinstance(self.filters.min_resolution, int) or self.filters.min_resolution < 1:
            problems.append("filters.min_resolution: must be a positive integer")
        if self.default_source not in SOURCES:
            problems.append(f"default_source: {self.default_source!r} is not one of {', '.join(SOURCES)}")
        for split in ("train", "test"):
            n = getattr(self.split_sizes, split)
            if n is not None and (not isinstance(n, int) or n < 0):
                problems.append(f"split_sizes.{split}: must be a non-negative integer or null")
        for method, top1 in (self.paper_table6 or {}).items():
            if isinstance(top1, bool) or not isinstance(top1, (int, float)) or not 0 <= top1 <= 100:
                problems.append(f"paper_table6.{method}: must be a percentage, got {top1!r}")
        if problems:
            raise ValidationError(f"dataset card {self.name!r}", problems)

    @property
    def sources_url(self) -> str:
        """Where to get the official files, in words a user can follow."""
        if not self.project_page:
            return "(generated locally by `ytfgvc synth`)"
        moved = f" (the authors later moved it to {self.project_page_moved})" if self.project_page_moved else ""
        return f"the paper's project page {self.project_page}{moved}"


def card_dirs() -> list[Path]:
    """Folders searched for cards, in order."""
    dirs = [Path(p) for p in os.environ.get("YTFGVC_CARDS", "").split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()] + resource_dirs("annotations")


def _card_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in card_dirs():
        for p in sorted(d.glob("*.yaml")):
            found.setdefault(p.stem, p)
    return found


def load_card_file(path: Path) -> DatasetCard:
    """Parse and validate one card file; errors name the file and the field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise YtfgvcError(f"cannot read dataset card {path}: {e}") from None
    if not isinstance(data, dict):
        raise YtfgvcError(f"dataset card {path}: expected a mapping at the top level")
    for key in ("name", "num_classes", "sample_fps"):
        if key not in data:
            raise YtfgvcError(f"dataset card {path}: missing required field {key!r}")
    card = DatasetCard.from_dict(data, where=f"dataset card {path}")
    if card.name != Path(path).stem:
        raise YtfgvcError(f"dataset card {path}: name {card.name!r} differs from the file name")
    return card


@cache
def _load_cached(path: str, mtime: float) -> DatasetCard:
    return load_card_file(Path(path))


def list_datasets() -> list[str]:
    return sorted(_card_files())


def get_card(name: str) -> DatasetCard:
    """The card of dataset ``name``; an unknown name gets a "did you mean"."""
    files = _card_files()
    if name not in files:
        known = ", ".join(sorted(files)) or "none found"
        raise YtfgvcError(
            f"unknown dataset {name!r}{did_you_mean(name, files)}",
            f"known datasets: {known}; add a card to annotations/ or $YTFGVC_CARDS",
        )
    p = files[name]
    return dataclasses.replace(_load_cached(str(p), p.stat().st_mtime))
