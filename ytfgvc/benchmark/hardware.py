"""How a run uses its hardware: precision, memory layout, loader workers, micro-batch, DDP."""

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


@dataclass
class Setup:
    """What a run resolved about its hardware."""

    amp: torch.dtype | None
    channels_last: bool
    micro_batch: int
    accum_steps: int
    notes: list[str]
    workers: int  # loader processes (the config's, or loader.auto_workers for "auto")


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
    return Setup(amp, channels_last, micro, per_rank // micro, notes, workers)


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


def wrap_model(model: nn.Module, env: DistEnv, cfg: BenchmarkConfig) -> Callable:
    """The callable that trains: DDP over ranks, compiled when asked; rebuilt when the frozen set changes."""
    forward: Any = model
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        forward = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters
        )
    if cfg.compile:
        forward = torch.compile(forward)
    return forward
