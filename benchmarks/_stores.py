"""The generated frame set of ``train_throughput.py`` in the other store, and with flow stacks.

``train_throughput.py --store packed`` packs each video's frames (and flow) folder into its
archive, as ``ytfgvc prepare --repack`` does; ``--modality flow`` first writes ``L`` flow
fields per frame (``flow_x_*.jpg``/``flow_y_*.jpg``, grey JPEGs of smooth fields, about the
size of TV-L1's), numbered as ``ytfgvc prepare --flow`` numbers them. ``store.py`` makes its
frames and fields with the same :func:`jpeg_pool`.
"""

from __future__ import annotations

import json

import numpy as np

from ytfgvc.layout import DatasetLayout
from ytfgvc.store import META_NAME
from ytfgvc.store.repack import repack_folder


def jpeg_pool(n: int, w: int, h: int, grey: bool, seed: int) -> list[bytes]:
    """Distinct smooth-plus-noise JPEGs (quality 95, as prepare writes them): about 31 kB a 340x256
    frame and 8 kB a flow field, the sizes of filmed frames and of smooth TV-L1 fields."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):
        fx, fy, phase = rng.uniform(0.01, 0.05, 3)
        base = 128 + (20 if grey else 60) * np.sin(fx * xx + fy * yy + phase + 0.1 * i)
        img = base[..., None] if grey else base[..., None] * rng.uniform(0.5, 1, 3)
        img = np.clip(img + rng.normal(0, 0.5 if grey else 5, img.shape), 0, 255).astype(np.uint8)
        out.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
    return out


def prepare_store(layout: DatasetLayout, store: str, modality: str, flow_stack: int, size: str) -> None:
    """Each video of ``layout`` gets its meta (flow stacks for ``modality='flow'``), packed if ``store='packed'``."""
    w, h = (int(v) for v in size.split("x"))
    pool = jpeg_pool(64, w, h, grey=True, seed=1) if modality == "flow" else []
    for v, folder in enumerate(sorted(p for p in layout.frames_root.iterdir() if p.is_dir())):
        frames = sum(1 for p in folder.iterdir() if p.name.startswith("img_"))
        if not (folder / META_NAME).is_file():
            (folder / META_NAME).write_text(json.dumps({"schema": "ytfgvc-frames-1", "num_frames": frames}))
        flow = layout.flow_dir(folder.name)
        if pool and not (flow / META_NAME).is_file():
            flow.mkdir(parents=True, exist_ok=True)
            for n in range(1, frames * flow_stack + 1):
                for k, name in enumerate(DatasetLayout.flow_names(n)):
                    (flow / name).write_bytes(pool[(v * 7 + 2 * n + k) % len(pool)])
            meta = {"schema": "ytfgvc-flow-1", "stack": flow_stack, "num_stacks": frames, "format": "jpg"}
            (flow / META_NAME).write_text(json.dumps(meta))
        if store == "packed":
            repack_folder(folder, layout.frames_archive(folder.name))
            if flow.is_dir():
                repack_folder(flow, layout.flow_archive(folder.name))
