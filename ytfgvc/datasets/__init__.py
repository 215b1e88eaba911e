"""Datasets: their cards, their official lists, and what exists of them under a data root.

* :mod:`.cards` — the dataset cards (``annotations/<name>.yaml``): Table 2, Table 6, rates, filters;
* :mod:`.official` — the official release (three JSON files), its strict import and its checksums;
* :mod:`.dataset` — :class:`Dataset`, one dataset under one root, built once per command;
* :mod:`.inventory` — imported, downloaded and prepared counts (``ytfgvc datasets``).
"""

from ytfgvc.datasets.cards import (
    CARD_SCHEMA,
    DatasetCard,
    card_dirs,
    get_card,
    list_datasets,
    load_card_file,
)
from ytfgvc.datasets.dataset import Dataset
from ytfgvc.datasets.official import OfficialLists, import_annotations, load_official

__all__ = [
    "CARD_SCHEMA",
    "Dataset",
    "DatasetCard",
    "OfficialLists",
    "card_dirs",
    "get_card",
    "import_annotations",
    "list_datasets",
    "load_card_file",
    "load_official",
]
