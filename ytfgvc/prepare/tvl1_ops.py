"""Image operations of TV-L1 as OpenCV performs them, on batched (N, C, H, W) tensors.

Each matches its OpenCV counterpart (tested against it): ``cv2.resize`` (INTER_LINEAR),
``cv2.remap`` (INTER_CUBIC, zero border), ``cv2.medianBlur``, and the central-difference
gradient of OpenCV's TV-L1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_LEVEL_SIDE = 16  # OpenCV stops the pyramid at the first level narrower or shorter than this


def _resize_axis(x: torch.Tensor, size: int, scale: float, dim: int) -> torch.Tensor:
    """Linear resampling of one axis the way cv::resize(INTER_LINEAR) does it (pixel centres, clamped)."""
    n = x.shape[dim]
    src = ((torch.arange(size, device=x.device, dtype=torch.float64) + 0.5) * scale - 0.5).clamp(0, n - 1)
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=n - 1)
    shape = [1] * x.dim()
    shape[dim] = size
    w = (src - i0).to(x.dtype).view(shape)
    a, b = x.index_select(dim, i0), x.index_select(dim, i1)
    return a + (b - a) * w


def resize_linear(x: torch.Tensor, size: tuple[int, int], scale: tuple[float, float] | None = None) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) as ``cv2.resize(..., INTER_LINEAR)``.

    Args:
        x: the images.
        size: output (height, width).
        scale: source pixels per output pixel along (y, x); by default the ratio of the sizes,
            as OpenCV uses when given ``dsize`` (given ``fx, fy`` it uses ``1 / fx``).
    """
    h, w = x.shape[-2:]
    sy, sx = scale if scale is not None else (h / size[0], w / size[1])
    return _resize_axis(_resize_axis(x, size[0], sy, -2), size[1], sx, -1)


def _level_size(h: int, w: int, step: float) -> tuple[int, int]:
    # cv::resize with fx = fy = step rounds the product half-to-even, as Python's round does.
    return round(h * step), round(w * step)


def image_pyramid(x: torch.Tensor, nscales: int, step: float) -> list[torch.Tensor]:
    """Levels 0 (the input) to at most ``nscales - 1``, each ``step`` times the previous one."""
    levels = [x]
    for _ in range(1, nscales):
        h, w = _level_size(*levels[-1].shape[-2:], step)
        if h < MIN_LEVEL_SIDE or w < MIN_LEVEL_SIDE:
            break
        levels.append(resize_linear(levels[-1], (h, w), (1 / step, 1 / step)))
    return levels


def centered_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """d/dx and d/dy of (N, C, H, W): central differences, half a one-sided difference on the border."""

    def along(t: torch.Tensor) -> torch.Tensor:  # d/d(last axis)
        return 0.5 * torch.cat([t[..., 1:2] - t[..., :1], t[..., 2:] - t[..., :-2], t[..., -1:] - t[..., -2:-1]], -1)

    return along(x), along(x.transpose(-1, -2)).transpose(-1, -2)


def warp_bicubic(src: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``src`` (N, C, H, W) sampled at (x + u, y + v): bicubic (a = -0.75), zero outside, as cv::remap."""
    n, _, h, w = src.shape
    ys = torch.arange(h, device=src.device, dtype=src.dtype).view(1, h, 1)
    xs = torch.arange(w, device=src.device, dtype=src.dtype).view(1, 1, w)
    grid = torch.stack(((xs + flow[:, 0]) * (2 / (w - 1)) - 1, (ys + flow[:, 1]) * (2 / (h - 1)) - 1), -1)
    return F.grid_sample(src, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def median_filter(x: torch.Tensor, size: int, max_elements: int = 1 << 27) -> torch.Tensor:
    """Median over ``size`` x ``size`` windows of (N, C, H, W), replicated border (as cv::medianBlur).

    The window values are gathered with ``unfold``; pairs are processed in chunks so that the
    gathered copy stays under ``max_elements`` values.
    """
    r = size // 2
    n, c, h, w = x.shape
    chunk = max(1, max_elements // (c * h * w * size * size))
    out = []
    for part in x.split(chunk):
        padded = F.pad(part, (r, r, r, r), mode="replicate")
        windows = padded.unfold(2, size, 1).unfold(3, size, 1).reshape(*part.shape, size * size)
        if windows.device.type == "cpu":
            out.append(windows.median(dim=-1).values)
        else:  # CUDA's median(dim) selects with one thread block per window; a small sort is far faster
            out.append(windows.sort(dim=-1).values[..., size * size // 2])
    return torch.cat(out) if len(out) > 1 else out[0]


def _sorting_network(n: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort: compare-exchange pairs (i < j) that sort ``n`` (a power of 2) values."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def median_network(count: int) -> list[tuple[int, int, bool, bool]]:
    """Compare-exchanges that leave the median of ``count`` (odd) values at index ``count // 2``.

    Batcher's network for the next power of two, without the exchanges with missing values
    (taken as +inf, they never move) and without those the median does not depend on.
    Each item is (i, j, keep_min, keep_max): position i gets min(v[i], v[j]) if keep_min, j the max if keep_max.
    """
    size = 1 << (count - 1).bit_length()
    needed, network = {count // 2}, []
    for i, j in reversed([(i, j) for i, j in _sorting_network(size) if j < count]):
        keep_min, keep_max = i in needed, j in needed
        if keep_min or keep_max:
            network.append((i, j, keep_min, keep_max))
            needed |= {i, j}
    return network[::-1]


def median_filter_network(x: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`median_filter` as a sort-free min/max network on shifted views.

    Slow in eager mode (one kernel per min or max); meant for ``torch.compile``, which fuses it into one kernel.
    """
    r = size // 2
    h, w = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), mode="replicate")
    values = [padded[..., dy : dy + h, dx : dx + w] for dy in range(size) for dx in range(size)]
    for i, j, keep_min, keep_max in median_network(size * size):
        a, b = values[i], values[j]
        if keep_min:
            values[i] = torch.minimum(a, b)
        if keep_max:
            values[j] = torch.maximum(a, b)
    return values[size * size // 2]
