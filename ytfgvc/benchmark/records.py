"""The files of a run folder ``runs/<dataset>/<method>/<run>/``, all written atomically.

* ``config.yaml``: the resolved :class:`~ytfgvc.benchmark.config.BenchmarkConfig`.
* ``log.jsonl``: one JSON object per finished epoch: ``epoch`` (1-based), ``loss``,
  ``accuracy`` (training top-1, %), ``lr``, ``frozen`` (pretrained layers frozen),
  ``clips``, ``seconds``, ``clips_per_s``, ``gpu_memory_gb`` (peak allocated, 0 on CPU).
* ``checkpoint.pt``: ``{"schema", "model" (state_dict), "optimizer", "epoch", "history",
  "rng", "config", "elapsed_s", ...}`` (see :mod:`ytfgvc.engine`).
* ``predictions.json``: the leaderboard format (:mod:`ytfgvc.predictions`).
* ``scores.npz``: schema ``ytfgvc-scores-1``, every scored test video's full score row
  (:func:`write_scores`): what ``ytfgvc fuse`` combines (the predictions keep 10 labels).
* ``metrics.json``: schema ``ytfgvc-run-1``: ``scores`` (:meth:`ytfgvc.metrics.Scores.to_dict`),
  the data (``manifest``, ``annotations``), the protocol, the training batch plan,
  ``pretrained_source``, ``weights`` (``source``, ``file``, ``sha256``), ``recipe`` (name,
  values, the source of each, and the keys the run ``changed``), ``versions``, ``git``,
  ``device``, ``wall_time_s``, ``gpu_hours``.
* ``curves.png``: training loss and top-1 per epoch, the test top-1 and top-5, chance, and the lr.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc import __version__
from ytfgvc.system.fsutil import atomic_path, write_text_atomic

METRICS_SCHEMA = "ytfgvc-run-1"
SCORES_SCHEMA = "ytfgvc-scores-1"


def write_scores(path: Path, video_ids: list[str], labels: np.ndarray, scores: np.ndarray) -> None:
    """``scores.npz``: ``schema``, ``video_ids`` (N,), their ``labels`` (N,) and ``scores`` (N, C) float32.

    A row is what the run's prediction for the video comes from (``predictions.json`` holds the
    softmax of its 10 best entries): for TSN, BN-Inception and I3D the logits averaged over the
    test views, for RRA its fused ensemble score (``protocol.scores`` of ``metrics.json``).
    """
    import io

    buffer = io.BytesIO()
    arrays = {"video_ids": np.array(video_ids), "labels": np.asarray(labels, np.int64)}
    np.savez(buffer, schema=np.array(SCORES_SCHEMA), **arrays, scores=scores.astype(np.float32))
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_scores(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(video_ids, labels, scores)`` from :func:`write_scores`'s file; an error names what is wrong and the fix."""
    from ytfgvc.errors import YtfgvcError

    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["schema"]) != SCORES_SCHEMA:
                raise ValueError(f"schema {str(z['schema'])!r}, not {SCORES_SCHEMA}")
            ids, labels, scores = [str(v) for v in z["video_ids"]], z["labels"], z["scores"].astype(np.float64)
    except FileNotFoundError:
        raise YtfgvcError(
            f"{path} does not exist: the run is not finished, or predates scores.npz",
            "move the run's metrics.json aside and run its benchmark command again with --resume: "
            "the trained model is tested again and scores.npz written",
        ) from None
    except (OSError, KeyError, ValueError) as e:
        raise YtfgvcError(f"cannot read {path}: {e}") from None
    if scores.ndim != 2 or not len(ids) == len(labels) == len(scores):
        raise YtfgvcError(f"{path}: {len(ids)} ids and {len(labels)} labels for scores of shape {scores.shape}")
    return ids, labels, scores


def tool_versions() -> dict[str, str | None]:
    import torch

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "ytfgvc": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),
        "numpy": np.__version__,
        "timm": version("timm"),
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None,
    }


def git_info(start: Path | None = None) -> dict[str, Any]:
    """The commit of the ytfgvc source tree and whether it had local changes (None outside git)."""
    folder = Path(start or Path(__file__).resolve().parent)

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def device_info(device: Any, world: int) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"type": device.type, "processes": world, "host": platform.node()}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["memory_gb"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    else:
        info["name"] = platform.processor() or platform.machine()
        info["threads"] = torch.get_num_threads()
    return info


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in history))


def plot_curves(
    path: Path,
    history: list[dict[str, Any]],
    title: str = "",
    test: dict[str, float] | None = None,
    chance_top1: float | None = None,
) -> None:
    """Training loss, training top-1 (with the test top-1 and top-5 of the finished run, and chance), and the lr."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.2))
    a.plot(epochs, [r["loss"] for r in history], marker="o", ms=3)
    a.set(xlabel="epoch", ylabel="training loss")
    b.plot(epochs, [r["accuracy"] for r in history], marker="o", ms=3, color="tab:green", label="training top-1")
    if test and epochs:
        b.plot([epochs[-1]], [test["top1"]], "D", color="tab:blue", label=f"test top-1 {test['top1']:.1f}")
        b.plot([epochs[-1]], [test["top5"]], "s", color="tab:purple", label=f"test top-5 {test['top5']:.1f}")
    if chance_top1 is not None:
        b.axhline(chance_top1, color="tab:red", ls="--", lw=1, label=f"chance {chance_top1:.1f}")
    b.set(xlabel="epoch", ylabel="accuracy (%)")
    b.legend(fontsize=7)
    c.step(epochs, [r["lr"] for r in history], where="mid", color="tab:orange", marker="o", ms=3)
    c.set(xlabel="epoch", ylabel="learning rate", yscale="log")
    frozen = [r["epoch"] for r in history if r.get("frozen")]
    if frozen:
        c.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="0.9", label="pretrained layers frozen")
        c.legend(fontsize=7)
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def chance(num_classes: int) -> dict[str, float]:
    """Top-1 and top-5 accuracy (%) of guessing uniformly among ``num_classes`` classes."""
    return {"top1": round(100 / num_classes, 2), "top5": round(min(100.0, 500 / num_classes), 2)}


def meaning(metrics: dict[str, Any]) -> str:
    """One or two sentences on what a run's scores mean (chance level; smoke and from-scratch runs)."""
    c = metrics.get("chance") or {}
    parts = []
    if metrics.get("preset") == "smoke":
        parts.append(
            f"Smoke runs check that the pipeline works end to end; with {metrics.get('num_classes', '?')} classes "
            f"chance is {c.get('top1', 0):.1f}% top-1, and scores near it are expected, not a result. For a "
            "real RRA-vs-TSN comparison on the synthetic data: `ytfgvc study rra-vs-tsn --profile cpu` "
            "(docs/study.md); for the paper's protocol on YouTube-Birds and Cars: docs/benchmark.md."
        )
    elif (metrics.get("weights") or {}).get("source") == "from scratch":
        parts.append(
            f"{metrics.get('method')} was trained from scratch (no pretrained weights): not comparable with the "
            f"paper's numbers; chance is {c.get('top1', 0):.1f}% top-1."
        )
    return " ".join(parts)


def recipe_record(recipe: Any, config: dict[str, Any]) -> dict[str, Any]:
    """The run's recipe for ``metrics.json``: name, title, sources, and every key the run ``changed``."""
    return {**recipe.to_dict(), "changed": recipe.deviations(config)}


def weights_label(weights: dict[str, Any]) -> str:
    """One line on the starting weights: ``<file> (sha256 <first 12>)``, a hub tag, or ``from scratch``."""
    if weights.get("file"):
        sha = weights.get("sha256")
        return f"{weights['file']} (sha256 {sha[:12]})" if sha else str(weights["file"])
    return str(weights.get("source") or "from scratch")


def recipe_label(recipe: dict[str, Any]) -> str:
    """One line on the recipe: its name, and the keys a run changed (``tsn-official; changed: epochs, lr``)."""
    changed = recipe.get("changed") or {}
    return recipe["name"] + (f"; changed: {', '.join(sorted(changed))}" if changed else "")


def provenance(weights: dict[str, Any], recipe: dict[str, Any]) -> dict[str, str]:
    """What a predictions file (and a leaderboard entry) says about how the model was made."""
    return {"weights": weights_label(weights), "recipe": recipe_label(recipe)}
