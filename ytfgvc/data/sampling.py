"""Which frames the protocol looks at. The one place that knows the frame indices.

Indices are 0-based positions into a video's ``num_frames`` frames (file
``img_{i+1:05d}.jpg``).
"""

from __future__ import annotations

import numpy as np


def sample_test_indices(num_frames: int, num_segments: int = 25) -> np.ndarray:
    """The middle frame of each of ``num_segments`` equal segments (TSN test protocol).

    With fewer frames than segments, segments share frames: index ``floor((k + 0.5) *
    num_frames / num_segments)`` for ``k = 0 … num_segments - 1`` (always ``num_segments``
    indices, non-decreasing, each in ``[0, num_frames)``).
    """
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if num_segments < 1:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    k = np.arange(num_segments, dtype=np.float64)
    return np.minimum(np.floor((k + 0.5) * num_frames / num_segments).astype(np.int64), num_frames - 1)
