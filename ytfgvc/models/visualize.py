"""Where RRA looks: the input-pixel heat maps of section 3.3 (eq. 7) and Fig. 4.

For glimpse k, ``L_vis = ½‖a^k‖²`` (how far the attention is from mean pooling) and the
heat of input pixel p is ``I_vis = ‖∂L_vis/∂p‖₁`` — the ℓ1 norm over the pixel's 3 colour
values of ``Σ_i w_i ∂a_i/∂p`` with ``w_i = a_i``. :func:`attention_saliency` computes it for
every glimpse with one forward pass and one backward pass per glimpse.

Fig. 4 (the channels a glimpse suppresses): the 4 smallest entries of x̃^k are the
channels given the largest decrements; ``a_i`` are the entries of those channels that
decrease from X^k to X^{k+1}, ``w_i`` their decrements (held constant).
:func:`suppression_saliency` computes the same ℓ1 heat for it (glimpses 1 … K−1: the K-th
glimpse reduces nothing).

:func:`render_grid` smooths each map with a Gaussian filter, colours it (red = high) and
overlays it on the input frames: one column per frame, one row for the input and one per
map, like Fig. 1 and 7. Maps are normalised per row over all its frames, so a frame the
glimpse ignores stays cold.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ytfgvc.errors import YtfgvcError
from ytfgvc.fsutil import atomic_path

TOP_SUPPRESSED = 4


def _check_attention(model) -> None:
    if not hasattr(model, "glimpse_forward"):
        raise YtfgvcError(
            f"{type(model).__name__} has no attention to visualise", "visualise an rra or rra_parallel run"
        )
    if model.head.variant.attention == "average":
        raise YtfgvcError("this RRA variant averages instead of attending", "there is no attention to visualise")


def _saliency_pass(model, frames: torch.Tensor, losses) -> tuple[list[np.ndarray], object]:
    """One forward pass; for each loss built from its glimpses, ‖∂loss/∂p‖₁ per pixel, (n, H, W)."""
    was_training = model.training
    model.eval()
    try:
        x = frames[None].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            g = model.glimpse_forward(x, keep_maps=True)
            terms = losses(g)
            heats = []
            for i, loss in enumerate(terms):
                (grad,) = torch.autograd.grad(loss, x, retain_graph=i < len(terms) - 1)
                heats.append(grad[0].abs().sum(dim=1).float().cpu().numpy())
    finally:
        model.train(was_training)
    return heats, g


def attention_saliency(model, frames: torch.Tensor) -> tuple[np.ndarray, object]:
    """Eq. 7 for every glimpse: ``frames`` (n, 3, H, W), normalised → heat (K, n, H, W), glimpses.

    The second value is the model's :class:`~ytfgvc.models.rra.Glimpses` for the clip.
    """
    _check_attention(model)
    heats, g = _saliency_pass(
        model, frames, lambda g: [0.5 * g.attention[:, k].pow(2).sum() for k in range(g.attention.shape[1])]
    )
    return np.stack(heats), g


def suppression_saliency(model, frames: torch.Tensor, top: int = TOP_SUPPRESSED) -> tuple[np.ndarray, list[list[int]]]:
    """Fig. 4: heat (K−1, n, H, W) of the ``top`` most suppressed channels of each glimpse, and those channels."""
    _check_attention(model)
    if not model.head.reductions:
        raise YtfgvcError("this model reduces no channels (parallel glimpses or K=1)", "there is nothing suppressed")
    channels: list[list[int]] = []

    def losses(g):
        out = []
        for k in range(g.reductions.shape[1]):
            chans = torch.argsort(g.reductions[0, k])[:top]
            channels.append(chans.tolist())
            before, after = g.maps[k][0, chans], g.maps[k + 1][0, chans]
            decrement = (before - after).detach()
            out.append((decrement.clamp(min=0) * after).sum())  # only the entries that decreased
        return out

    heats, _ = _saliency_pass(model, frames, losses)
    return np.stack(heats), channels


def smooth_and_normalise(heat: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each (H, W) map of ``heat`` (n, H, W), then scale the whole row to [0, 1]."""
    from scipy.ndimage import gaussian_filter

    out = np.stack([gaussian_filter(h.astype(np.float64), sigma) for h in heat])
    peak = out.max()
    return out / peak if peak > 0 else out


def overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """``frame`` (H, W, 3) uint8 RGB with ``heat`` (H, W) in [0, 1] colour-mapped on top."""
    from matplotlib import colormaps

    colour = colormaps[cmap](heat)[..., :3] * 255.0
    return ((1 - alpha) * frame + alpha * colour).clip(0, 255).astype(np.uint8)


@dataclass
class Grid:
    """What :func:`render_grid` drew: the row names and their normalised heat maps (n, H, W)."""

    path: Path
    rows: dict[str, np.ndarray]


def render_grid(
    frames: np.ndarray,
    rows: list[tuple[str, np.ndarray]],
    out: Path,
    sigma: float | None = None,
    title: str = "",
    column_titles: list[str] | None = None,
) -> Grid:
    """Write a PNG: row 0 the input ``frames`` (n, H, W, 3) uint8, then one row per (name, heat (n, H, W)).

    ``sigma`` (pixels) defaults to 2% of the frame's larger side.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n, h, w = frames.shape[:3]
    sigma = 0.02 * max(h, w) if sigma is None else sigma
    normalised = {name: smooth_and_normalise(heat, sigma) for name, heat in rows}
    width = max(1.8 * n, 4.5)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(width, 1.8 * (1 + len(rows))), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(frames[j])
        if column_titles:
            axes[0, j].set_title(column_titles[j], fontsize=8)
        for i, (name, _) in enumerate(rows, start=1):
            axes[i, j].imshow(overlay(frames[j], normalised[name][j]))
    for i, name in enumerate(["input", *[r[0] for r in rows]]):
        axes[i, 0].set_ylabel(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(textwrap.fill(title, int(width * 13)), fontsize=9)
    fig.tight_layout()
    out = Path(out)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    with atomic_path(out) as tmp:
        tmp.write_bytes(palette_png(buffer.getvalue()))
    return Grid(path=out, rows=normalised)


def palette_png(png: bytes) -> bytes:
    """The same figure as a 256-colour PNG: about half the bytes, no visible change for heat maps on frames."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()
