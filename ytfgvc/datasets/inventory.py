"""What exists under ``--root`` for each dataset: imported, downloaded, prepared counts.

Counts come from the files on disk (finished files only: temporary names are ignored), so
they are right whatever state a killed run left behind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ytfgvc.datasets.cards import DatasetCard, get_card, list_datasets
from ytfgvc.datasets.official import read_checksums
from ytfgvc.layout import DatasetLayout
from ytfgvc.store import stored_ids
from ytfgvc.system.fsutil import is_temporary


@dataclass
class DatasetStatus:
    name: str
    title: str
    classes: int
    paper_train: int | None
    paper_test: int | None
    sample_fps: float
    imported: bool
    listed_train: int
    listed_test: int
    downloaded: int
    prepared: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _count(folder: Path, pattern: str) -> int:
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.glob(pattern) if not any(is_temporary(Path(q)) for q in p.relative_to(folder).parts))


def dataset_status(root: Path, card: DatasetCard) -> DatasetStatus:
    layout = DatasetLayout(root, card.name)
    meta = read_checksums(layout) if layout.checksums_path.is_file() else None
    counts = (meta or {}).get("counts", {})
    return DatasetStatus(
        name=card.name,
        title=card.title,
        classes=card.num_classes,
        paper_train=card.split_sizes.train,
        paper_test=card.split_sizes.test,
        sample_fps=card.sample_fps,
        imported=meta is not None,
        listed_train=counts.get("train", 0),
        listed_test=counts.get("test", 0),
        downloaded=_count(layout.videos_dir, "*.mp4"),
        prepared=len(stored_ids(layout, "frames")),
    )


def all_status(root: Path) -> list[DatasetStatus]:
    return [dataset_status(root, get_card(name)) for name in list_datasets()]
