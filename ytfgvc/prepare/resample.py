"""Which native frames to keep, at what size, and which way up: pure functions, no decoding.

The sampling rule (the one place it is written down): with ``fps`` the card's
``sample_fps`` and ``t`` the presentation time of a decoded frame minus that of the first
decoded frame (exact rationals from the container's pts), kept frame ``k`` (0-based) is
the **latest decoded frame whose time is at or before** ``t_k = k / fps``, for every
``k`` with ``t_k`` at or before the last frame's time. So a video whose frames span
``D`` seconds gives ``floor(D * fps) + 1`` frames, whatever its native rate (constant,
23.976, 29.97, 60 or variable); when the native rate is below ``fps`` (or a VFR gap is
longer than ``1 / fps``) the same native frame serves several targets and is repeated.
A frame whose time goes backwards is dropped (counted in ``meta.json``).
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

import numpy as np


class FrameSelector:
    """Streaming form of the sampling rule: feed frames in presentation order.

    ``push(index, t)`` returns the ``(k, native_index)`` pairs decided by the arrival of a
    frame at time ``t`` (they are all served by the frame before it); ``finish()``
    returns those served by the last frame.
    """

    def __init__(self, fps: float | Fraction) -> None:
        self.step = 1 / Fraction(fps).limit_denominator(1_000_000)
        self.k = 0
        self.prev: tuple[int, Fraction] | None = None
        self.dropped = 0

    def push(self, index: int, t: Fraction) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        if self.prev is not None:
            if t < self.prev[1]:
                self.dropped += 1
                return out
            while self.k * self.step < t:  # target k lies before this frame: the previous one is the latest
                out.append((self.k, self.prev[0]))
                self.k += 1
        self.prev = (index, t)
        return out

    def finish(self) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        if self.prev is not None:
            while self.k * self.step <= self.prev[1]:
                out.append((self.k, self.prev[0]))
                self.k += 1
        return out


def select_frames(times: Iterable[Fraction], fps: float | Fraction) -> list[int]:
    """Native indices kept for frames at ``times`` (seconds, presentation order); see the module rule."""
    sel = FrameSelector(fps)
    kept = [i for n, t in enumerate(times) for _, i in sel.push(n, Fraction(t))]
    return kept + [i for _, i in sel.finish()]


def target_size(width: int, height: int, short_side: int, sar: Fraction | None = None) -> tuple[int, int]:
    """``(width, height)`` with the short side at ``short_side``, aspect kept, never upscaled.

    Non-square pixels (``sar`` != 1) are made square first, as a player would show them.
    The long side is rounded to the nearest pixel.
    """
    if sar and sar > 0 and sar != 1:
        width = max(1, round(width * sar))
    short, long_ = min(width, height), max(width, height)
    if short > short_side:
        long_, short = max(1, round(long_ * short_side / short)), short_side
    return (long_, short) if width >= height else (short, long_)


def display_matrix_orientation(matrix: Iterable[int]) -> tuple[int, bool]:
    """How to show a frame whose stream carries display matrix ``matrix`` (9 int32, ffmpeg layout).

    Returns ``(rotation_ccw, mirror)``: turn the decoded image counter-clockwise by
    ``rotation_ccw`` degrees (0, 90, 180 or 270), then, if ``mirror``, flip it left-right.
    This reproduces what ffmpeg's CLI does (``fftools/ffmpeg_filter.c``: transpose
    clock / cclock / cclock_flip / clock_flip, hflip, vflip). Angles that are not a
    multiple of 90 degrees (within 1) are not applied.
    """
    m = [int(v) for v in matrix]
    s0, s1 = np.hypot(m[0], m[3]), np.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return 0, False
    ccw = -np.degrees(np.arctan2(m[1] / s1, m[0] / s0))  # av_display_rotation_get()
    theta = -round(float(ccw))  # ffmpeg's get_rotation(): clockwise, in [0, 360)
    theta -= 360 * np.floor(theta / 360 + 0.9 / 360)
    # ffmpeg's filter for each case, written as (ccw turn, then mirror):
    # clock = (270, F), cclock = (90, F), cclock_flip = transpose = (270, T),
    # clock_flip = anti-transpose = (90, T), hflip = (0, T), vflip = (180, T), both = (180, F).
    if abs(theta - 90) < 1:
        return 270, m[3] > 0
    if abs(theta - 270) < 1:
        return 90, m[3] < 0
    if abs(theta - 180) < 1:
        h, v = m[0] < 0, m[4] < 0
        return (180, not h) if v else (0, h)
    if abs(theta) < 1 and m[4] < 0:
        return 180, True
    return 0, False


def rotate_tag_orientation(degrees_cw: int) -> tuple[int, bool]:
    """The same for the old ``rotate`` stream tag (clockwise degrees, from ffmpeg <= 5 muxers)."""
    return (-int(degrees_cw)) % 360 if int(degrees_cw) % 90 == 0 else 0, False


def orient(img: np.ndarray, rotation_ccw: int, flip: bool) -> np.ndarray:
    """Apply :func:`display_matrix_orientation`'s result to an ``(H, W[, C])`` image."""
    out = np.rot90(img, rotation_ccw // 90) if rotation_ccw % 360 else img
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)
