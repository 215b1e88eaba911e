"""One dataset under one data root: its card, where its files are, and its imported lists.

    >>> from ytfgvc.datasets import Dataset
    >>> ds = Dataset.open("ytfgvc-data", "birds")
    >>> ds.card.num_classes, ds.layout.videos_dir        # (200, PosixPath('ytfgvc-data/birds/videos'))
    >>> ds.official().test[:2]                           # the imported test list, checked against its checksums

Each command builds one :class:`Dataset` and passes it down, so the card is read once and
nobody rebuilds a path or looks the dataset up again by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ytfgvc.datasets.cards import DatasetCard, get_card
from ytfgvc.datasets.official import OfficialLists, annotations_hash_of, read_official
from ytfgvc.layout import DatasetLayout


@dataclass(frozen=True)
class Dataset:
    """A dataset's card and layout; its official lists are read (and checked) on first use."""

    card: DatasetCard
    layout: DatasetLayout

    @classmethod
    def open(cls, root: Path | str, name: str) -> Dataset:
        """The dataset ``name`` (a card; "did you mean" if unknown) under the data root ``root``."""
        card = get_card(name)
        return cls(card, DatasetLayout(Path(root), card.name))

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def imported(self) -> bool:
        """Whether the official lists were imported under the root."""
        return self.layout.checksums_path.is_file()

    def official(self) -> OfficialLists:
        """The imported lists, checked against their recorded checksums (read once)."""
        return self._official

    @cached_property
    def _official(self) -> OfficialLists:
        return read_official(self.card, self.layout)

    @cached_property
    def annotations_hash(self) -> str:
        """One hash naming the imported release (sha256 over the files' checksums)."""
        return annotations_hash_of(self.layout)
