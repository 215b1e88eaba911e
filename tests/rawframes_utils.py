"""Prepared datasets made on the spot: frame folders of small JPEGs, rawframe lists, official lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

from ytfgvc.datasets.official import import_annotations
from ytfgvc.layout import DatasetLayout

from .utils import make_ids, write_release


def write_frames(folder: Path, frames: list[np.ndarray], quality: int = 95) -> None:
    """RGB uint8 (H, W, 3) arrays as ``img_00001.jpg …``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        data = encode_jpeg(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1), quality=quality)
        (folder / DatasetLayout.frame_name(i)).write_bytes(data.numpy().tobytes())


def make_prepared(
    root: Path,
    dataset: str = "synthetic",
    classes: int = 3,
    train_per_class: int = 4,
    test_per_class: int = 2,
    frames: tuple[int, int] = (3, 12),
    size: tuple[int, int] = (40, 48),
    seed: int = 0,
    missing_test: int = 0,
) -> DatasetLayout:
    """A prepared dataset: the class shows as the colour of a square, frame counts vary.

    ``missing_test`` official test videos get no frames and no list line (like failed downloads).
    """
    rng = np.random.default_rng(seed)
    layout = DatasetLayout(root, dataset)
    palette = rng.integers(0, 256, size=(classes, 3))
    ids = make_ids(classes * (train_per_class + test_per_class), prefix="f")
    split = {"train": [], "test": []}
    for c in range(classes):
        for k in range(train_per_class + test_per_class):
            split["train" if k < train_per_class else "test"].append((ids.pop(), c))
    write_release(root / "release", split["train"], split["test"], {str(c): f"class {c}" for c in range(classes)})
    import_annotations(root, dataset, root / "release")
    layout.lists_dir.mkdir(parents=True, exist_ok=True)
    for name, items in split.items():
        lines = []
        kept = items[: len(items) - missing_test] if name == "test" else items
        for vid, c in kept:
            n = int(rng.integers(frames[0], frames[1] + 1))
            h, w = size
            imgs = []
            for _ in range(n):
                img = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
                y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
                img[y : y + 12, x : x + 12] = palette[c]
                imgs.append(img)
            write_frames(layout.frames_dir(vid), imgs)
            lines.append(f"{layout.list_entry_dir(vid)} {n} {c}\n")
        layout.list_path(name).write_text("".join(lines))
    return layout
