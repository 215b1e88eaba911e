"""Which frames the protocol looks at. The one place that knows the frame indices.

Indices are 0-based positions into a video's ``num_frames`` frames (file
``img_{i+1:05d}.jpg``).

* training, TSN and RRA: :func:`sample_train_indices` (4 segments, a random frame in each);
* training, BN-Inception: the same with one segment (a random frame of the video);
* training and testing, I3D: :func:`sample_clip_indices` (32 consecutive frames, random
  start in training, the middle in testing);
* testing, TSN and RRA: :func:`sample_test_indices` (the middle frame of 25 segments);
  BN-Inception: the same with one segment (the middle frame).

The augmentation and test crops live in :mod:`ytfgvc.data.transforms`.
"""

from __future__ import annotations

import numpy as np


def sample_test_indices(num_frames: int, num_segments: int = 25) -> np.ndarray:
    """The middle frame of each of ``num_segments`` equal segments (TSN test protocol).

    With fewer frames than segments, segments share frames: index ``floor((k + 0.5) *
    num_frames / num_segments)`` for ``k = 0 … num_segments - 1`` (always ``num_segments``
    indices, non-decreasing, each in ``[0, num_frames)``).
    """
    _check(num_frames, num_segments)
    k = np.arange(num_segments, dtype=np.float64)
    return np.minimum(np.floor((k + 0.5) * num_frames / num_segments).astype(np.int64), num_frames - 1)


def sample_train_indices(num_frames: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """TSN training sampler: one frame drawn uniformly from each of ``num_segments`` equal segments.

    Segment ``k`` holds frames ``[floor(k n / S), floor((k + 1) n / S))`` (``n`` frames,
    ``S`` segments): with ``n >= S`` the segments are disjoint, non-empty and cover every
    frame. A segment left empty by a video shorter than ``S`` frames holds only its first
    frame ``floor(k n / S)``, so short videos repeat frames in order. ``S = 1`` is
    BN-Inception's single random frame.
    """
    _check(num_frames, num_segments)
    k = np.arange(num_segments + 1, dtype=np.int64)
    bounds = (k * num_frames) // num_segments
    start = bounds[:-1]
    end = np.maximum(bounds[1:], start + 1)
    return rng.integers(start, end).astype(np.int64)


def sample_clip_indices(num_frames: int, clip_len: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """I3D sampler: ``clip_len`` consecutive frames, at a random start (``rng``) or in the middle (no ``rng``).

    The start is uniform in ``[0, n - L]`` for training and ``(n - L) // 2`` for testing.
    A video shorter than the clip (``n < L``) starts at frame 0 and loops:
    index ``i mod n`` (MMAction2's ``out_of_bound_opt='loop'``), so the clip always has ``L`` frames.
    """
    _check(num_frames, clip_len)
    if num_frames < clip_len:
        return np.arange(clip_len, dtype=np.int64) % num_frames
    span = num_frames - clip_len
    start = int(rng.integers(0, span + 1)) if rng is not None else span // 2
    return np.arange(start, start + clip_len, dtype=np.int64)


def _check(num_frames: int, count: int) -> None:
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if count < 1:
        raise ValueError(f"the number of frames to sample must be positive, got {count}")
