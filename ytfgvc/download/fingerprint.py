"""A video's fingerprint: what identifies it beyond its id, so a copy from elsewhere can be checked.

The ledger keeps, for every video obtained, its ``title`` and ``uploader`` (what the source
said) and, computed here from the file, its ``duration`` and a perceptual hash (``phash``).
``download --verify-fingerprints`` accepts a file from another lab or another upload only
when its duration and perceptual hash match the recorded ones (:func:`matches`).

**The perceptual hash (version 1).** At each of :data:`FRACTIONS` of the duration, the first
frame shown at or after that time is decoded with PyAV and scaled by libswscale to 32 x 32
grey levels (area averaging, the frame's whole picture, its aspect ratio ignored); its 2-D
DCT-II (orthonormal) is taken, and of the 8 x 8 lowest frequencies after the first row and
column (mean brightness and pure horizontal or vertical ramps) each of the 64 coefficients
gives one bit: above their median or not (the DCT hash of pHash, Zauner 2010). Five frames
give 320 bits, written ``1:`` followed by five groups of 16 hex digits. Two videos match when
the Hamming distance between their hashes is at most :data:`MAX_DISTANCE` (of 320) and their
durations differ by at most :data:`DURATION_TOLERANCE_S` s or :data:`DURATION_TOLERANCE` of
the recorded one.

It is robust to what changes the bytes but not the pictures: re-encoding at another bitrate
or with another codec, another container (remuxing), another resolution or frame rate, mild
changes of brightness, contrast or colour, and small shifts in time (a frame a fraction of a
second away shows nearly the same picture). It is not robust to what changes the pictures or
their timing: cropping, letterboxing or pillarboxing added or removed, mirroring, rotation,
overlays (logos, subtitles burnt in), an intro or outro added or cut (every timestamp moves),
or a different speed. A mismatch refuses a file; it never proves two videos differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

VERSION = "1"
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
SIZE = 32  # the grey picture, SIZE x SIZE
BLOCK = 8  # the low frequencies kept, BLOCK x BLOCK
BITS = BLOCK * BLOCK * len(FRACTIONS)
MAX_DISTANCE = 64  # 20% of the bits; see tests/test_download_fingerprint.py for the distances measured
DURATION_TOLERANCE_S = 2.0
DURATION_TOLERANCE = 0.05
SEEK_GAP_S = 10.0  # decode forward rather than seek when the next time is at most this far ahead


class FingerprintError(Exception):
    """The frames the hash needs do not decode."""


@dataclass(frozen=True)
class Fingerprint:
    """A recorded fingerprint, and where it was read (``ledger`` or a manifest's path)."""

    phash: str
    duration: float | None = None
    title: str | None = None
    uploader: str | None = None
    where: str = "ledger"


@cache
def _dct_matrix(n: int = SIZE) -> np.ndarray:
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    m = np.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


def frame_bits(grey: np.ndarray) -> int:
    """The 64-bit DCT hash of one SIZE x SIZE grey picture."""
    d = _dct_matrix()
    coeffs = d @ grey.astype(np.float64) @ d.T
    low = coeffs[1 : BLOCK + 1, 1 : BLOCK + 1].ravel()
    bits = low > np.median(low)
    return int("".join("1" if b else "0" for b in bits), 2)


def _grey_frames(path: Path, duration_s: float) -> list[np.ndarray]:
    """The SIZE x SIZE grey pictures at FRACTIONS of ``duration_s``, decoded in one forward pass.

    The decoder seeks (to the keyframe before the next time) only when that time is more than
    :data:`SEEK_GAP_S` ahead: decoding a few seconds forward costs less than decoding again
    from an earlier keyframe. Either way, the frame taken is the first shown at or after it.
    """
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        frames, last = None, None
        for fraction in FRACTIONS:
            t = start + fraction * duration_s
            if frames is None or last is None or not last.time <= t <= last.time + SEEK_GAP_S:
                container.seek(int(t / stream.time_base), stream=stream, backward=True)
                frames, last = container.decode(stream), None
            picked = last if last is not None and last.time >= t - 1e-6 else None
            for frame in frames if picked is None else ():
                if frame.time is None:
                    continue
                last = frame
                if frame.time >= t - 1e-6:
                    picked = frame
                    break
            if picked is None:
                picked = last  # the stream ended before t: its last frame
            if picked is None:
                raise FingerprintError(f"no frame decodes near {t:.2f} s")
            grey = picked.reformat(width=SIZE, height=SIZE, format="gray", interpolation="AREA")
            out.append(grey.to_ndarray())
    return out


def perceptual_hash(path: Path, duration_s: float) -> str:
    """The version-1 perceptual hash of the video at ``path`` (see the module docstring)."""
    try:
        frames = _grey_frames(Path(path), duration_s)
    except FingerprintError:
        raise
    except Exception as e:  # PyAV's errors: the file does not decode where the hash looks
        raise FingerprintError(f"{type(e).__name__}: {e}") from None
    return f"{VERSION}:" + ",".join(f"{frame_bits(g):016x}" for g in frames)


def is_phash(text: object) -> bool:
    """A version-1 hash: ``1:`` then 5 comma-separated groups of 16 hex digits."""
    if not isinstance(text, str) or not text.startswith(f"{VERSION}:"):
        return False
    parts = text[2:].split(",")
    return len(parts) == len(FRACTIONS) and all(len(p) == 16 and _is_hex(p) for p in parts)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def distance(a: str, b: str) -> int:
    """Hamming distance between two version-1 hashes (0 to BITS)."""
    if not (is_phash(a) and is_phash(b)):
        raise ValueError("not two version-1 perceptual hashes")
    return sum(bin(int(x, 16) ^ int(y, 16)).count("1") for x, y in zip(a[2:].split(","), b[2:].split(","), strict=True))


def matches(phash: str, duration_s: float, ref: Fingerprint) -> tuple[bool, str]:
    """Whether a file (its hash and duration) is the video ``ref`` describes, and why, in words."""
    d = distance(phash, ref.phash)
    if ref.duration is not None:
        tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE * ref.duration)
        if abs(duration_s - ref.duration) > tolerance:
            return False, f"lasts {duration_s:.1f} s, the fingerprint {ref.duration:.1f} s (distance {d}/{BITS})"
    if d > MAX_DISTANCE:
        return False, f"perceptual hash distance {d}/{BITS} > {MAX_DISTANCE}"
    return True, f"perceptual hash distance {d}/{BITS} <= {MAX_DISTANCE}"
