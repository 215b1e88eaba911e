"""A real-world-like test clip for the prepare benchmarks: a textured scene filmed by a moving camera.

The scene is a large image of smooth texture, edges and fine grain, plus sensor noise that
changes every frame (so H.264 has real work to do: about 2 Mbit/s at crf 21, like a
YouTube 720p stream); the camera pans, zooms slowly and shakes a little, so every frame differs and
the optical flow is non-trivial. Deterministic from the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(0, 255, (h // 40, w // 40, 3)).astype(np.float32), (w, h), cv2.INTER_CUBIC)
    for _ in range(400):  # objects with hard edges
        c = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y, r = int(rng.integers(w)), int(rng.integers(h)), int(rng.integers(8, 60))
        if rng.random() < 0.5:
            cv2.circle(base, (x, y), r, c, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(base, (x, y), (x + r, y + r // 2), c, -1)
    base += rng.normal(0, 6, base.shape).astype(np.float32)  # film grain
    return np.clip(base, 0, 255).astype(np.uint8)


def camera_frames(n: int, width: int = 1280, height: int = 720, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` BGR frames of :func:`scene` seen by a panning, zooming, shaking camera."""
    world = scene(height * 2, width * 2, seed)
    rng = np.random.default_rng(seed + 1)
    shake = rng.normal(0, 1.0, (n, 2))
    # Sensor noise that changes every frame (a bank of 7, cycled), as real footage has.
    noise = [rng.normal(0, 3, (height, width, 1)).astype(np.int16) for _ in range(7)]
    for i in range(n):
        u = i / max(1, n - 1)
        zoom = 1.0 + 0.25 * np.sin(np.pi * u)
        cx = width * (0.5 + u) + 40 * np.sin(i / 37) + shake[i, 0]
        cy = height * (0.7 + 0.6 * u) + 25 * np.cos(i / 53) + shake[i, 1]
        m = np.float32([[zoom, 0, width / 2 - zoom * cx], [0, zoom, height / 2 - zoom * cy]])
        img = cv2.warpAffine(world, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        yield np.clip(img.astype(np.int16) + noise[i % len(noise)], 0, 255).astype(np.uint8)


def make_video(path: Path, seconds: float, fps: Fraction = Fraction(30000, 1001), width=1280, height=720) -> Path:
    """Encode the clip with libx264 (veryfast, crf 21: about the bit rate of a YouTube 720p stream); cached by name."""
    import av

    path = Path(path)
    if path.is_file():
        return path
    tmp = path.with_name(".tmp-" + path.name)
    n = int(round(seconds * fps))
    with av.open(str(tmp), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "veryfast", "crf": "21"}
        for img in camera_frames(n, width, height):
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    tmp.rename(path)
    return path
