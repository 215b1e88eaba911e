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


def scene_frames(seed: int, w: int = 640, h: int = 360, n: int = 30) -> list[np.ndarray]:
    """``n`` BGR frames of a smooth moving scene (waves and a moving disk): a stand-in for natural video.

    Different seeds give different videos; the same seed gives the same pictures at any size.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    waves = [(rng.uniform(0.5, 4, 2), rng.uniform(0, 6.3), rng.uniform(0.3, 1.5, 3)) for _ in range(4)]
    disk, step, radius = rng.uniform(0.2, 0.8, 2), rng.uniform(-0.02, 0.02, 2), rng.uniform(0.05, 0.15)
    frames = []
    for t in range(n):
        img = np.zeros((h, w, 3))
        for (fx, fy), phase, colour in waves:
            img += np.sin(2 * np.pi * (fx * xx + fy * yy) + phase + 0.05 * t)[..., None] * colour
        cx, cy = (disk + step * t) * np.array([w, h]) / max(w, h)
        img += (((xx - cx) ** 2 + (yy - cy) ** 2) < radius**2)[..., None] * 2.0
        frames.append(((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8))
    return frames


def remux(src: Path, dst: Path) -> Path:
    """Copy the video stream of ``src`` into another container (``dst``'s extension), without re-encoding."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.size == 0:  # the flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return dst
