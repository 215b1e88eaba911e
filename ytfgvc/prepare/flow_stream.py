"""Streaming frame pairs of any length through a flow backend in batches, with bounded memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np


def consecutive_pairs(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame[i], frame[i + 1]) for a stream of frames, holding one frame."""
    prev = None
    for frame in frames:
        if prev is not None:
            yield prev, frame
        prev = frame


def iter_flow_batches(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    compute: Callable[[np.ndarray, np.ndarray], np.ndarray],
    batch_size: int,
) -> Iterator[np.ndarray]:
    """Flows for a stream of frame pairs of any length, ``batch_size`` pairs per ``compute`` call.

    At most ``batch_size`` pairs are held at a time, so host memory stays bounded whatever the
    video length. Use :func:`consecutive_pairs` to turn a frame stream into pairs.

    Args:
        pairs: (prev, next) uint8 (H, W) frames, all of one size.
        compute: a backend's ``compute`` (e.g. ``TorchTVL1(...).compute``).
        batch_size: pairs per call.

    Yields:
        (n, H, W, 2) float32 flows, n = ``batch_size`` except for the last batch; in order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    for a, b in pairs:
        if firsts and (a.shape != firsts[0].shape or b.shape != firsts[0].shape):
            raise ValueError(f"frame size changed within the stream: {firsts[0].shape} then {a.shape}/{b.shape}")
        firsts.append(a)
        seconds.append(b)
        if len(firsts) == batch_size:
            yield compute(np.stack(firsts), np.stack(seconds))
            firsts.clear()
            seconds.clear()
    if firsts:
        yield compute(np.stack(firsts), np.stack(seconds))
