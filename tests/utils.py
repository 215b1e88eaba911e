"""Helpers for tests: official-format lists and tiny videos made on the spot."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_ids(n: int, prefix: str = "v") -> list[str]:
    """``n`` valid, distinct 11-character ids."""
    return [f"{prefix}{i:0{11 - len(prefix)}d}" for i in range(n)]


def write_release(folder: Path, train: object, test: object, labels: object) -> Path:
    """Write the three official files (any JSON value, to make bad ones too)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in (("train_list.json", train), ("test_list.json", test), ("label2name.json", labels)):
        (folder / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return folder


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: float | Fraction = 10,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
) -> Path:
    """Encode BGR ``frames`` to ``path`` with PyAV."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if options:
            s.options = options
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def decode_bgr(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
