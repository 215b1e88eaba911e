"""How a run uses its hardware: precision, memory layout, loader workers, micro-batch, DDP, torch.compile.

``compile: auto`` (the ``paper`` preset's) compiles a method's training or test forward with
the mode in :data:`COMPILE_AUTO`, on a GPU only; everything else runs eagerly. The table holds
only what was measured faster on a GPU (``benchmarks/train_throughput.py --compile ...``,
figures in ``benchmarks/README.md``), by this rule: a mode is adopted for a method's path
when its model-only throughput (the ceiling) is at least 5% above eager's on an H100, its
logits stay within bf16 noise of eager's on the same batch (no further from them than eager
bf16 is from eager fp32), and, in training, the batch-norm statistics too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ytfgvc.benchmark.config import BenchmarkConfig
from ytfgvc.data.loader import auto_workers
from ytfgvc.engine import DistEnv, find_micro_batch
from ytfgvc.errors import YtfgvcError

# method -> {"train": mode, "test": mode}: what `compile: auto` uses on a GPU (see the module docstring).
# Nothing is in it until measured on an H100: `auto` is eager everywhere.
COMPILE_AUTO: dict[str, dict[str, str]] = {}
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


@dataclass
class Setup:
    """What a run resolved about its hardware."""

    amp: torch.dtype | None
    channels_last: bool
    micro_batch: int
    accum_steps: int
    notes: list[str]
    workers: int  # loader processes (the config's, or loader.auto_workers for "auto")
    compile: dict[str, str | None]  # torch.compile mode of the "train" and "test" forwards (None: eager)


def compile_modes(cfg: BenchmarkConfig, device: torch.device) -> dict[str, str | None]:
    """The torch.compile mode of the training and the test forward (``None``: eager), from ``cfg.compile``."""
    if cfg.compile == "off":
        return {"train": None, "test": None}
    if cfg.compile != "auto":
        return {"train": cfg.compile, "test": cfg.compile}
    measured = COMPILE_AUTO.get(cfg.method, {}) if torch.device(device).type == "cuda" else {}
    return {split: measured.get(split) for split in ("train", "test")}


def compiled(fn: Callable, mode: str | None) -> Callable:
    """``fn`` compiled with ``mode`` (``None``: ``fn`` itself). With CUDA graphs, each call starts a new step."""
    if mode is None:
        return fn
    out = torch.compile(fn) if mode == "default" else torch.compile(fn, mode=mode)
    return _StepMarked(out) if mode in CUDA_GRAPH_MODES else out


class _StepMarked:
    """A callable compiled with CUDA graphs: each call is a new step (a step's outputs live until the next)."""

    def __init__(self, fn: Callable):
        self._fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        torch.compiler.cudagraph_mark_step_begin()
        return self._fn(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # DDP's no_sync, through the compiled module
        return getattr(self._fn, name)


def resolve_setup(cfg: BenchmarkConfig, env: DistEnv, model: nn.Module, kind: str, n_train: int) -> Setup:
    """Precision, memory layout, loader workers, and the micro-batch (probed on GPU)."""
    cuda = env.device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels
    # Channels-last: on GPU; on CPU for 2D models only (oneDNN's 2D backward is several times
    # faster in it, its 3D one slower).
    channels_last = cfg.channels_last and (cuda or kind == "frames")
    amp = torch.bfloat16 if cfg.amp == "bf16" or (cfg.amp == "auto" and cuda) else None
    if cfg.batch_size % env.world:
        raise YtfgvcError(f"--batch-size {cfg.batch_size} does not split over {env.world} processes")
    if n_train < cfg.batch_size:
        raise YtfgvcError(f"the train list has {n_train} videos, fewer than one batch", "lower --batch-size")
    per_rank, notes = cfg.batch_size // env.world, []
    if cfg.micro_batch:
        if per_rank % cfg.micro_batch:
            raise YtfgvcError(f"--micro-batch {cfg.micro_batch} does not divide the {per_rank} clips per process")
        micro = cfg.micro_batch
    elif cuda:
        micro, notes = find_micro_batch(per_rank, _probe(cfg, env, model, amp), env)
    else:
        micro = per_rank
    workers = auto_workers() if cfg.workers == "auto" else cfg.workers
    return Setup(amp, channels_last, micro, per_rank // micro, notes, workers, compile_modes(cfg, env.device))


def _probe(cfg: BenchmarkConfig, env: DistEnv, model: nn.Module, amp: torch.dtype | None) -> Callable[[int], None]:
    """A forward and backward pass on random clips, leaving weights, buffers and RNGs as they were."""

    def try_batch(m: int) -> None:
        t, s = cfg.num_segments, cfg.input_size
        shape = (m, 3, t, s, s) if cfg.sampling == "clip" else (m, t, 3, s, s)
        saved = {k: b.detach().clone() for k, b in model.named_buffers()}
        with torch.random.fork_rng(devices=[env.device]):
            model.train()
            model.freeze_pretrained(False)
            try:
                with torch.autocast(env.device.type, dtype=amp, enabled=amp is not None):
                    out = model(torch.randn(shape, device=env.device))
                    loss = model.compute_loss(out, torch.zeros(m, dtype=torch.long, device=env.device))
                loss.backward()
            finally:
                model.zero_grad(set_to_none=True)
                with torch.no_grad():
                    for k, b in model.named_buffers():
                        b.copy_(saved[k])

    return try_batch


def wrap_model(model: nn.Module, env: DistEnv, cfg: BenchmarkConfig, mode: str | None = None) -> Callable:
    """The callable that trains: DDP over ranks, compiled with ``mode``; rebuilt when the frozen set changes."""
    forward: Any = model
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        forward = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters
        )
    return compiled(forward, mode)
