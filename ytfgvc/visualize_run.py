"""``ytfgvc visualize RUN VIDEO_ID``: the attention heat maps of a trained RRA run on one video.

A run folder (written by ``ytfgvc benchmark``) holds:

* ``config.yaml`` — a mapping with at least ``dataset``, ``root`` (the data root),
  ``model: {name, kwargs}`` (what :func:`ytfgvc.models.create_model` was given),
  ``num_classes``, ``num_segments`` and ``input_size`` (the square crop side in pixels);
* ``checkpoint.pt`` — a dict whose ``"model"`` entry is the model's ``state_dict()``.

The video's frames are read from ``<root>/<dataset>/frames/<id>/img_00001.jpg …`` at the
test-protocol indices (:func:`ytfgvc.data.sampling.sample_test_indices`), resized so the
short side is ``input_size``, centre-cropped to a square and normalised as the model asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, check_video_id

RUN_KEYS = ("dataset", "root", "model", "num_classes", "num_segments", "input_size")


def read_run_config(run: Path) -> dict[str, Any]:
    """``RUN/config.yaml`` checked for the keys visualisation needs."""
    path = Path(run) / "config.yaml"
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
    path = Path(run) / "checkpoint.pt"
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

    folder = layout.frames_dir(video_id)
    count = len(list(folder.glob("img_*.jpg"))) if folder.is_dir() else 0
    if count == 0:
        raise YtfgvcError(f"no frames for {video_id} in {folder}", f"run `ytfgvc prepare {layout.dataset}` first")
    indices = [int(i) for i in sample_test_indices(count, num_segments)]
    frames = []
    for i in indices:
        path = folder / layout.frame_name(i + 1)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise YtfgvcError(f"cannot read frame {path}", f"run `ytfgvc prepare {layout.dataset}` again")
        frames.append(_centre_square(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), input_size))
    return np.stack(frames), indices


def _centre_square(rgb: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    resized = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top : top + size, left : left + size]


def normalise(frames: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(n, H, W, 3) uint8 RGB → (n, 3, H, W) float, ``(x/255 − mean) / std``."""
    x = torch.from_numpy(frames).float().div(255).permute(0, 3, 1, 2)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@dataclass
class Visualization:
    """What ``ytfgvc visualize`` made."""

    path: Path
    video_id: str
    frame_indices: list[int]
    predictions: dict[str, int]  # "ensemble", "glimpse 1" … → predicted label id
    suppressed_channels: list[list[int]] = field(default_factory=list)
    heat: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "video_id": self.video_id,
            "frame_indices": self.frame_indices,
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
    from ytfgvc.models.visualize import attention_saliency, render_grid, suppression_saliency

    video_id = check_video_id(video_id)
    run = Path(run)
    cfg = read_run_config(run)
    model = load_run_model(run, cfg)
    layout = DatasetLayout(Path(root or cfg["root"]), cfg["dataset"])
    n = int(num_frames or cfg["num_segments"])
    frames, indices = read_frames(layout, video_id, n, int(cfg["input_size"]))
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
    names = _label_names(layout)
    title = f"{video_id}: " + ", ".join(f"{key} → {names.get(v, v)}" for key, v in predictions.items())
    out = Path(out) if out else run / "visualize" / f"{video_id}.png"
    grid = render_grid(frames, rows, out, title=title, column_titles=[f"frame {i + 1}" for i in indices])
    return Visualization(out, video_id, indices, predictions, channels, grid.rows)


def _label_names(layout: DatasetLayout) -> dict[int, str]:
    from ytfgvc.annotations import load_official

    try:
        return load_official(layout.root, layout.dataset).labels
    except (YtfgvcError, OSError):
        return {}
