"""``ytfgvc visualize RUN VIDEO_ID``: where a trained RRA run looks in one video (section 3.3, eq. 7, Fig. 4).

**The heat maps.** For glimpse k, ``L_vis = ½‖a^k‖²`` (how far the attention is from mean
pooling) and the heat of input pixel p is ``I_vis = ‖∂L_vis/∂p‖₁`` — the ℓ1 norm over the
pixel's 3 colour values of ``Σ_i w_i ∂a_i/∂p`` with ``w_i = a_i``. :func:`attention_saliency`
computes it for every glimpse with one forward pass and one backward pass per glimpse.
Fig. 4 (the channels a glimpse suppresses): the 4 smallest entries of x̃^k are the channels
given the largest decrements; ``a_i`` are the entries of those channels that decrease from
X^k to X^{k+1}, ``w_i`` their decrements (held constant). :func:`suppression_saliency`
computes the same ℓ1 heat for it (glimpses 1 … K−1: the K-th glimpse reduces nothing).
:func:`render_grid` smooths each map with a Gaussian filter, colours it (a colour scale
beside the grid: red = high) and overlays it on the input frames: one column per frame,
one row for the input and one per map, like Fig. 1 and 7. Maps are normalised per row over
all its frames, so a frame the glimpse ignores stays cold.

**The run.** A run folder (written by ``ytfgvc benchmark``) holds ``config.yaml`` — a mapping
with at least ``dataset``, ``root`` (the data root), ``model: {name, kwargs}`` (what
:func:`ytfgvc.models.create_model` was given), ``num_classes``, ``num_segments`` and
``input_size`` (the square crop side in pixels) — and ``checkpoint.pt``, a dict whose
``"model"`` entry is the model's ``state_dict()``. The video's frames are read from
``<root>/<dataset>/frames/<id>/img_00001.jpg …`` (or ``frames/<id>.zip``: either store,
:mod:`ytfgvc.store`) at the test-protocol indices
(:func:`ytfgvc.data.sampling.sample_test_indices`), resized so the short side is
``input_size``, centre-cropped to a square and normalised as the model asks. A flow run
(``modality: flow`` in its config) is given the flow stacks of those frames, cut the same
way, and its maps are drawn over the RGB frames. Frames are named by their file number
everywhere (``img_00004.jpg`` is frame 4, in the PNG and in ``--json``).
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, RunFiles, check_video_id
from ytfgvc.system.fsutil import atomic_path

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
    width = max(1.8 * n, 4.5) + 0.6  # room for the colour scale
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
    if rows:  # the colour scale of the maps: each row is scaled to its own maximum over all its frames
        from matplotlib import cm, colors

        fig.subplots_adjust(right=1 - 0.75 / width)
        top = axes[1, 0].get_position().y1
        cax = fig.add_axes((1 - 0.62 / width, 0.08, 0.12 / width, top - 0.08))
        bar = fig.colorbar(cm.ScalarMappable(norm=colors.Normalize(0, 1), cmap="jet"), cax=cax)
        bar.set_label("heat (row max = 1)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
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


# --- the run ------------------------------------------------------------------------------------

RUN_KEYS = ("dataset", "root", "model", "num_classes", "num_segments", "input_size")


def read_run_config(run: Path) -> dict[str, Any]:
    """``RUN/config.yaml`` checked for the keys visualisation needs."""
    path = RunFiles(Path(run)).config
    if not path.is_file():
        raise YtfgvcError(f"{run} is not a run folder (no config.yaml)", "pass a folder written by ytfgvc benchmark")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise YtfgvcError(f"cannot read {path}: {e}") from None
    if not isinstance(cfg, dict):
        raise YtfgvcError(f"{path}: expected a mapping")
    missing = [k for k in RUN_KEYS if k not in cfg]
    model = cfg.get("model")
    if not isinstance(model, dict) or "name" not in model:
        missing.append("model.name")
    if missing:
        raise YtfgvcError(f"{path} lacks {', '.join(missing)}", "was it written by ytfgvc benchmark?")
    return cfg


def load_run_model(run: Path, cfg: dict[str, Any] | None = None) -> torch.nn.Module:
    """The run's model with its trained weights (from ``checkpoint.pt``), in eval mode."""
    from ytfgvc.models import create_model

    cfg = cfg or read_run_config(run)
    # The checkpoint has every weight: do not fetch or read pretrained ones again.
    kwargs = {**(cfg["model"].get("kwargs") or {}), "pretrained": False, "weights": None}
    model = create_model(cfg["model"]["name"], int(cfg["num_classes"]), **kwargs)
    path = RunFiles(Path(run)).checkpoint
    if not path.is_file():
        raise YtfgvcError(f"{run} has no checkpoint.pt", "the run has not finished an epoch yet")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["model"]
        if state and all(k.startswith("module.") for k in state):  # saved from a DistributedDataParallel wrapper
            state = {k[len("module.") :]: v for k, v in state.items()}
        model.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, OSError, EOFError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise YtfgvcError(f"cannot load {path} into {cfg['model']['name']}: {first}") from None
    return model.eval()


def read_frames(
    layout: DatasetLayout, video_id: str, num_segments: int, input_size: int
) -> tuple[np.ndarray, list[int]]:
    """The test-protocol frames of a video: (n, S, S, 3) uint8 RGB and their 0-based indices."""
    import cv2

    from ytfgvc.data.sampling import sample_test_indices

    files = _open(layout, "frames", video_id)
    count = sum(1 for n in files.names() if n.startswith("img_"))
    if count == 0:
        hint = f"run `ytfgvc prepare {layout.dataset}` first"
        raise YtfgvcError(f"no frames for {video_id} in {files.where()}", hint)
    indices = [int(i) for i in sample_test_indices(count, num_segments)]
    frames = []
    for i in indices:
        bgr = _image(files, layout.frame_name(i + 1), cv2.IMREAD_COLOR)
        frames.append(_centre_square(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), input_size))
    return np.stack(frames), indices


def read_stacks(layout: DatasetLayout, video_id: str, indices: list[int], input_size: int, stack: int) -> np.ndarray:
    """The flow stacks of the 0-based frames ``indices``: (n, S, S, 2·stack) uint8, x₁, y₁, … (cut as frames are)."""
    import cv2

    from ytfgvc.data.rawframes import unit_names

    files = _open(layout, "flow", video_id)
    out = []
    for i in indices:
        names = unit_names("flow", i, stack)
        out.append(np.stack([_centre_square(_image(files, n, cv2.IMREAD_GRAYSCALE), input_size) for n in names], -1))
    return np.stack(out)


def _open(layout: DatasetLayout, kind: str, video_id: str):
    from ytfgvc.store import open_video

    files = open_video(layout, kind, video_id)
    if files is None:
        flag = " --flow" if kind == "flow" else ""
        raise YtfgvcError(f"no {kind} for {video_id} under {layout.kind_root(kind)}",
                          f"run `ytfgvc prepare {layout.dataset}{flag}` first")  # fmt: skip
    return files


def _image(files, name: str, flag: int) -> np.ndarray:
    import cv2

    try:
        image = cv2.imdecode(np.frombuffer(files.read(name), np.uint8), flag)
    except (OSError, YtfgvcError) as e:
        raise YtfgvcError(f"cannot read frame {files.where(name)}: {e}", "run `ytfgvc prepare` again") from None
    if image is None:
        raise YtfgvcError(f"cannot decode frame {files.where(name)}", "run `ytfgvc prepare` again")
    return image


def _centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top : top + size, left : left + size]


def normalise(frames: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(n, H, W, C) uint8 (RGB, or flow stacks) → (n, C, H, W) float, ``(x/255 − mean) / std`` (one value or C)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div(255).permute(0, 3, 1, 2)
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


@dataclass
class Visualization:
    """What ``ytfgvc visualize`` made."""

    path: Path
    video_id: str
    frame_numbers: list[int]  # file numbers: 4 is img_00004.jpg, as labelled in the PNG
    predictions: dict[str, int]  # "ensemble", "glimpse 1" … → predicted label id
    label: int | None = None  # the video's true label id, when the official lists are imported
    suppressed_channels: list[list[int]] = field(default_factory=list)
    heat: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "video_id": self.video_id,
            "frame_numbers": self.frame_numbers,
            "label": self.label,
            "predictions": self.predictions,
            "suppressed_channels": self.suppressed_channels,
        }


def visualize_run(
    run: Path,
    video_id: str,
    out: Path | None = None,
    root: Path | None = None,
    num_frames: int | None = None,
    suppressed: bool = True,
) -> Visualization:
    """Draw eq. 7's heat map of every glimpse (and Fig. 4's suppressed channels) for one video.

    Args:
        run: the run folder (``config.yaml``, ``checkpoint.pt``).
        video_id: the video (its frames must be prepared).
        out: the PNG to write (default ``RUN/visualize/<video_id>.png``).
        root: data root, instead of the one in the run's config.
        num_frames: frames to show (default: the run's ``num_segments``).
        suppressed: also draw the top-4 suppressed channels of each glimpse (Fig. 4).
    """
    video_id = check_video_id(video_id)
    run = Path(run)
    cfg = read_run_config(run)
    model = load_run_model(run, cfg)
    layout = DatasetLayout(Path(root or cfg["root"]), cfg["dataset"])
    n = int(num_frames or cfg["num_segments"])
    frames, indices = read_frames(layout, video_id, n, int(cfg["input_size"]))
    if cfg.get("modality", "rgb") == "flow":  # the model sees the stacks; the maps are drawn on the frames
        stacks = read_stacks(layout, video_id, indices, int(cfg["input_size"]), int(cfg.get("flow_stack", 5)))
        x = normalise(stacks, model.input_mean, model.input_std)
    else:
        x = normalise(frames, model.input_mean, model.input_std)

    heat, g = attention_saliency(model, x)
    k = heat.shape[0]
    rows = [(f"I{i + 1}vis", heat[i]) for i in range(k)]
    channels: list[list[int]] = []
    if suppressed and model.head.reductions:
        sup, channels = suppression_saliency(model, x)
        rows += [(f"suppressed {i + 1}", sup[i]) for i in range(sup.shape[0])]
    scores = g.scores[0].detach()
    predictions = {"ensemble": int(model(x[None]).logits.argmax(1))}
    predictions.update({f"glimpse {i + 1}": int(scores[i].argmax()) for i in range(k)})
    names, truth = _labels(layout, video_id)
    shown = [f"true: {names.get(truth, truth)}"] if truth is not None else []
    shown += [f"{key} → {names.get(v, v)}" for key, v in predictions.items()]
    title = f"{video_id}: " + ", ".join(shown)
    out = Path(out) if out else RunFiles(run).visualize_dir / f"{video_id}.png"
    numbers = [i + 1 for i in indices]  # file numbers (img_00004.jpg is frame 4)
    grid = render_grid(frames, rows, out, title=title, column_titles=[f"frame {k}" for k in numbers])
    return Visualization(out, video_id, numbers, predictions, truth, channels, grid.rows)


def _labels(layout: DatasetLayout, video_id: str) -> tuple[dict[int, str], int | None]:
    """The class names and the video's true label (empty and None when the lists are not imported)."""
    from ytfgvc.datasets.official import load_official

    try:
        lists = load_official(layout.root, layout.dataset)
    except (YtfgvcError, OSError):
        return {}, None
    return lists.labels, lists.label_of().get(video_id)
