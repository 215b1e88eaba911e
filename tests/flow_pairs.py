"""Image pairs with known optical flow, for testing and benchmarking flow backends.

The second image is a smooth random texture; the first is that texture sampled at
``x + flow(x)`` (bicubic), so ``flow`` is exactly the displacement a backend should return
(``first[y, x] ~ second[y + v, x + u]``, OpenCV's convention) and no pixel is occluded.
Sensor noise and a brightness change can be added on top.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOW_KINDS = ("translation", "smooth", "piecewise")


def smooth_texture(h: int, w: int, rng: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """A float32 (h, w) texture of band-limited noise with detail at several scales, about 0-255."""
    img = np.zeros((h, w), np.float32)
    for k in range(octaves):
        cell = 2 ** (k + 1)  # pixels per random sample: 2, 4, 8, 16
        coarse = rng.standard_normal((h // cell + 4, w // cell + 4)).astype(np.float32)
        up = cv2.resize(coarse, (coarse.shape[1] * cell, coarse.shape[0] * cell), interpolation=cv2.INTER_CUBIC)
        img += up[2 * cell : 2 * cell + h, 2 * cell : 2 * cell + w] * (0.6 + 0.4 * k)
    img = (img - img.mean()) / (img.std() + 1e-6)
    return np.clip(128 + 45 * img, 0, 255)


def flow_field(kind: str, h: int, w: int, rng: np.random.Generator, magnitude: float = 3.0) -> np.ndarray:
    """A (h, w, 2) float32 flow of one of :data:`FLOW_KINDS`, at most about ``magnitude`` px."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "translation":
        return np.broadcast_to(rng.uniform(-magnitude, magnitude, 2).astype(np.float32), (h, w, 2)).copy()
    if kind == "smooth":
        flow = np.empty((h, w, 2), np.float32)
        for c in range(2):
            fx, fy, phase = rng.uniform(0.5, 1.5), rng.uniform(0.5, 1.5), rng.uniform(0, 2 * np.pi)
            wave = np.sin(2 * np.pi * (fx * xs / w + fy * ys / h) + phase)
            flow[..., c] = rng.uniform(-0.4, 0.4) * magnitude + 0.6 * magnitude * wave
        return flow
    if kind == "piecewise":
        flow = np.broadcast_to(rng.uniform(-0.5, 0.5, 2) * magnitude, (h, w, 2)).astype(np.float32)
        for _ in range(2):  # two objects, each moving on its own
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            y1, x1 = y0 + rng.integers(h // 4, h // 2), x0 + rng.integers(w // 4, w // 2)
            flow[y0:y1, x0:x1] = rng.uniform(-1, 1, 2) * magnitude
        return flow
    raise ValueError(f"unknown flow kind {kind!r}; choose from {', '.join(FLOW_KINDS)}")


def make_pair(
    h: int,
    w: int,
    kind: str = "smooth",
    seed: int = 0,
    noise: float = 2.0,
    brightness: float = 4.0,
    magnitude: float = 3.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (first, second, flow) triple: two uint8 (h, w) images and their true (h, w, 2) flow.

    Args:
        h: image height.
        w: image width.
        kind: the flow field, one of :data:`FLOW_KINDS`.
        seed: random seed (texture, flow, noise).
        noise: standard deviation of the Gaussian noise added to each image (gray levels).
        brightness: gray levels added to the second image (a brightness change).
        magnitude: the flow's size in pixels.
    """
    rng = np.random.default_rng(seed)
    margin = int(np.ceil(3 * magnitude)) + 4
    texture = smooth_texture(h + 2 * margin, w + 2 * margin, rng)
    flow = flow_field(kind, h, w, rng, magnitude)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    first = cv2.remap(
        texture, xs + margin + flow[..., 0], ys + margin + flow[..., 1], cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REFLECT,
    )  # fmt: skip
    second = texture[margin : margin + h, margin : margin + w] + brightness
    first = first + rng.normal(0, noise, first.shape)
    second = second + rng.normal(0, noise, second.shape)
    as_u8 = lambda img: np.clip(np.rint(img), 0, 255).astype(np.uint8)  # noqa: E731
    return as_u8(first), as_u8(second), flow


def end_point_error(flow: np.ndarray, reference: np.ndarray) -> float:
    """Mean end-point error (Euclidean distance of the (x, y) vectors, in pixels) over all pixels and pairs."""
    return float(np.sqrt(((np.asarray(flow, np.float64) - reference) ** 2).sum(-1)).mean())
