"""What the GPU decoder needs to know of a JPEG before decoding it, read from its header.

:func:`jpeg_header` walks the markers up to the first scan (a few dozen bytes of work in a
loader worker) and returns the frame size and whether the file is one that nvjpeg's
batched GPU paths take (its JPEG engines, or Huffman decoding in CUDA kernels): baseline
DCT (SOF0), 8 bits, 1 or 3 components, one interleaved scan, and a chroma subsampling the
engines support (4:4:4, 4:2:2, 4:2:0, 4:4:0). Everything else (progressive, 4:1:1, CMYK…)
is still decoded, by torchvision.
"""

from __future__ import annotations

from typing import NamedTuple

# Markers that stand alone (no length field): TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
# Start-of-frame markers: every 0xC0-0xCF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOS = 0xDA
# Luma sampling factors (h, v) over chroma (1, 1) that nvjpeg's JPEG engines take.
_BATCH_SUBSAMPLING = {(1, 1), (2, 1), (2, 2), (1, 2)}


class JpegHeader(NamedTuple):
    height: int
    width: int
    components: int
    batchable: bool  # nvjpeg's batched GPU paths take it


def jpeg_header(data: bytes | bytearray | memoryview) -> JpegHeader:
    """Size and batched-GPU decodability of a JPEG; ``ValueError`` says what is wrong with a bad one."""
    buf = memoryview(data)
    n = len(buf)
    if n < 4 or buf[0] != 0xFF or buf[1] != 0xD8:
        raise ValueError("not a JPEG file (no start-of-image marker)")
    pos, frame = 2, None
    while pos < n:
        if buf[pos] != 0xFF:
            raise ValueError(f"corrupt JPEG: expected a marker at byte {pos}")
        while pos < n and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = buf[pos]
        pos += 1
        if marker in _STANDALONE:
            if marker == 0xD9:
                break
            continue
        if pos + 2 > n:
            break
        length = (buf[pos] << 8) | buf[pos + 1]
        if length < 2 or pos + length > n:
            raise ValueError(f"corrupt or truncated JPEG: segment 0x{marker:02X} at byte {pos - 2} runs past the end")
        segment = buf[pos + 2 : pos + length]
        if marker in _SOF:
            frame = _frame(marker, segment)
        elif marker == _SOS:
            if frame is None:
                raise ValueError("corrupt JPEG: a scan before the frame header")
            height, width, components, batchable = frame
            interleaved = len(segment) >= 1 and segment[0] == components
            return JpegHeader(height, width, components, batchable and interleaved)
        pos += length
    raise ValueError("truncated JPEG: no frame header and scan" if frame is None else "truncated JPEG: no scan")


def _frame(marker: int, seg: memoryview) -> tuple[int, int, int, bool]:
    if len(seg) < 6:
        raise ValueError("corrupt JPEG: short frame header")
    precision, height, width, components = seg[0], (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
    if height == 0 or width == 0 or components == 0 or len(seg) < 6 + 3 * components:
        raise ValueError(f"corrupt JPEG: frame header {width}x{height} with {components} components")
    factors = [(seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(components)]
    batchable = marker == 0xC0 and precision == 8 and components in (1, 3)
    if components == 3:
        batchable = batchable and factors[1] == factors[2] == (1, 1) and factors[0] in _BATCH_SUBSAMPLING
    return height, width, components, batchable
