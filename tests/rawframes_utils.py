"""Prepared datasets made on the spot: frame folders of small JPEGs, flow stacks, rawframe lists, official lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torchvision.io import encode_jpeg

from ytfgvc.datasets.official import import_annotations
from ytfgvc.layout import DatasetLayout

from .utils import make_ids, write_release


def write_frames(folder: Path, frames: list[np.ndarray], quality: int = 95) -> None:
    """RGB uint8 (H, W, 3) arrays as ``img_00001.jpg …``, and a ``meta.json`` as prepare writes one (abridged)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        data = encode_jpeg(torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1), quality=quality)
        (folder / DatasetLayout.frame_name(i)).write_bytes(data.numpy().tobytes())
    h, w = frames[0].shape[:2]
    meta = {"schema": "ytfgvc-frames-1", "num_frames": len(frames), "width": w, "height": h,
            "filename_tmpl": "img_{:05d}.jpg", "start_index": 1}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def write_flow(folder: Path, num_frames: int, stack: int, size: tuple[int, int], rng: np.random.Generator) -> None:
    """Flow stacks as prepare numbers them: field j of frame k is ``flow_{x,y}_{(k-1)*stack+j:05d}.jpg``.

    Every field is random grey noise (each file differs), so a test can tell any two apart.
    """
    folder.mkdir(parents=True, exist_ok=True)
    h, w = size
    for n in range(1, num_frames * stack + 1):
        for name in DatasetLayout.flow_names(n):
            grey = torch.from_numpy(rng.integers(0, 256, size=(1, h, w), dtype=np.uint8))
            (folder / name).write_bytes(encode_jpeg(grey, quality=95).numpy().tobytes())
    meta = {"schema": "ytfgvc-flow-1", "format": "jpg", "stack": stack, "num_stacks": num_frames,
            "num_files": num_frames * stack, "filename_tmpl": "flow_{}_{:05d}.jpg",
            "width": w, "height": h}  # fmt: skip
    (folder / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def pack(layout: DatasetLayout) -> None:
    """Turn every prepared folder of ``layout`` into its archive (the packed store), as ``--repack`` does."""
    from ytfgvc.layout import KINDS
    from ytfgvc.store.repack import repack_folder

    for kind in KINDS:
        root = layout.kind_root(kind)
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            repack_folder(folder, layout.video_archive(kind, folder.name))


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
    flow_stack: int = 0,
    store: str = "folder",
) -> DatasetLayout:
    """A prepared dataset: the class shows as the colour of a square, frame counts vary.

    ``missing_test`` official test videos get no frames and no list line (like failed downloads).
    ``flow_stack`` > 0 adds flow stacks of that many fields; ``store="packed"`` packs it all.
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
            if flow_stack:
                write_flow(layout.flow_dir(vid), n, flow_stack, size, rng)
            lines.append(f"{layout.list_entry_dir(vid)} {n} {c}\n")
        layout.list_path(name).write_text("".join(lines))
    if store == "packed":
        pack(layout)
    return layout
