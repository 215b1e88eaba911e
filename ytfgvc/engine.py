"""One engine for every model: train one epoch, evaluate, checkpoint and resume, DDP.

* Distributed: started by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the
  environment), NCCL on GPUs and gloo on CPUs. Each rank reads its share of the data
  (:class:`ytfgvc.data.loader.EpochSampler`); training statistics are summed over ranks
  and per-video test scores gathered, so every rank ends with the same numbers; only
  rank 0 writes.
* A global batch is ``micro_batch × accum_steps × world`` clips: gradients of
  ``accum_steps`` micro-batches are accumulated (DDP's ``no_sync`` on all but the last)
  before one optimizer step, which equals one step on the whole batch for models
  without batch statistics.
* Checkpoints hold the model, the optimizer, the epoch, the log and the RNG states of
  torch (CPU and CUDA), numpy and Python for every rank, so a resumed run continues
  exactly where the uninterrupted one would be (data randomness is keyed by
  ``(seed, epoch, index)`` and needs no state).
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ytfgvc.errors import YtfgvcError
from ytfgvc.system.fsutil import atomic_path

CHECKPOINT_SCHEMA = "ytfgvc-checkpoint-1"


@dataclass
class DistEnv:
    """Where this process stands: its rank among ``world`` and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def resolve_device(name: str = "auto", local_rank: int = 0, world: int = 1) -> torch.device:
    """``auto`` is the local rank's GPU when there is one, else the CPU; ``cuda:N`` is GPU N (one process)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise YtfgvcError(f"unknown device {name!r}", "use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise YtfgvcError(f"--device {name}: no CUDA GPU is visible", "use --device cpu or check `ytfgvc doctor`")
    count = torch.cuda.device_count()
    if not index:
        return torch.device("cuda", local_rank % count)
    if world > 1:
        raise YtfgvcError(f"--device {name} names one GPU, but torchrun started {world} processes",
                          "use --device cuda: each process takes the GPU of its local rank")  # fmt: skip
    if int(index) >= count:
        raise YtfgvcError(f"--device {name}: only {count} GPU(s) are visible (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", int(index))


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group that ``torchrun`` describes in the environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank, world)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            dist.init_process_group("nccl", device_id=dev)
        else:
            dist.init_process_group("gloo")
        owns = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistEnv(rank, world, local_rank, dev, owns)


def shutdown_distributed(env: DistEnv) -> None:
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier(device_ids=[env.device.index]) if env.device.type == "cuda" else dist.barrier()


def all_reduce_sum(values: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum a float64 vector over ranks."""
    values = values.to(env.device, torch.float64)
    if env.distributed:
        dist.all_reduce(values)
    return values.cpu()


def all_gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``dtype`` is set, else nothing."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class EpochStats:
    loss: float
    accuracy: float
    clips: int
    seconds: float
    peak_memory_gb: float

    @property
    def clips_per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else 0.0


def train_one_epoch(
    model: nn.Module,
    forward: Callable[[torch.Tensor], Any],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    env: DistEnv,
    accum_steps: int = 1,
    amp_dtype: torch.dtype | None = None,
    clip_grad_norm: float = 0.0,
    on_step: Callable[[int], None] | None = None,
) -> EpochStats:
    """One pass over ``batches`` (``(x, label, index)`` on the device), stepping every ``accum_steps``.

    ``forward`` is the model as called (DDP and/or compiled); ``model`` the module itself
    (its ``compute_loss``). ``on_step(clips)`` reports progress after each micro-batch.
    Nothing here waits for the GPU until the epoch ends (statistics stay on the device).
    """
    if env.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(env.device)
    sums = torch.zeros(3, dtype=torch.float64, device=env.device)  # loss × n, correct, n
    optimizer.zero_grad(set_to_none=True)
    t0, step = time.perf_counter(), 0
    for step, (x, label, _) in enumerate(batches, 1):
        last = step % accum_steps == 0
        no_sync = getattr(forward, "no_sync", None) if not last else None
        with no_sync() if no_sync else contextlib.nullcontext():
            with autocast(env.device, amp_dtype):
                out = forward(x)
                loss = model.compute_loss(out, label)
            (loss / accum_steps).backward()
        if last:
            if clip_grad_norm > 0:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        n = len(label)
        with torch.no_grad():
            correct = (out.logits.argmax(1) == label).sum()
            sums += torch.stack([loss.detach().double() * n, correct.double(), sums.new_tensor(n)])
        if on_step is not None:
            on_step(n)
    if step % accum_steps:
        raise RuntimeError(f"{step} micro-batches do not make whole steps of {accum_steps}")
    seconds = time.perf_counter() - t0
    loss_sum, correct, n = all_reduce_sum(sums, env).tolist()
    peak = torch.cuda.max_memory_allocated(env.device) / 2**30 if env.device.type == "cuda" else 0.0
    return EpochStats(loss_sum / max(n, 1), 100 * correct / max(n, 1), int(n), seconds, round(peak, 3))


@torch.inference_mode()
def evaluate(
    forward: Callable[[torch.Tensor], Any],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    num_views: int,
    env: DistEnv,
    amp_dtype: torch.dtype | None = None,
    on_step: Callable[[int], None] | None = None,
    fuse: Callable[[Any, int], torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-video scores from the ``num_views`` views of each video, gathered from every rank.

    ``fuse(output, num_views)`` makes one row per video (the model's ``fuse_views``);
    default: the mean of the logits.

    Returns ``(index, logits)`` sorted by dataset index, each video once (the padding that
    evened out the ranks is dropped).
    """
    indices, rows = [], []
    for x, _, index in batches:
        with autocast(env.device, amp_dtype):
            out = forward(x)
        if fuse is not None:
            rows.append(fuse(out, num_views).float())
        else:
            rows.append(out.logits.float().view(len(index), num_views, -1).mean(1))
        indices.append(index.to(env.device))
        if on_step is not None:
            on_step(len(index))
    index, logits = torch.cat(indices), torch.cat(rows)
    if env.distributed:  # every rank holds the same number of (padded) videos
        gathered_i = [torch.empty_like(index) for _ in range(env.world)]
        gathered_l = [torch.empty_like(logits) for _ in range(env.world)]
        dist.all_gather(gathered_i, index)
        dist.all_gather(gathered_l, logits)
        index, logits = torch.cat(gathered_i), torch.cat(gathered_l)
    index, logits = index.cpu().numpy(), logits.cpu().numpy()
    unique, first = np.unique(index, return_index=True)
    return unique, logits[first]


def rng_state(env: DistEnv) -> dict[str, Any]:
    """This process's RNG states (torch CPU and CUDA, numpy, Python), in tensors and plain lists."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "gauss": [has_gauss, gauss],
        },
        "python": random.getstate(),
    }
    if env.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(env.device)
    return state


def set_rng_state(state: dict[str, Any], env: DistEnv) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], *n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and env.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], env.device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (a killed write leaves the previous checkpoint intact).

    Through a Python file, so that a full disk surfaces as the OSError (ENOSPC) behind torch's
    RuntimeError rather than as a bare iostream failure.
    """
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as f:
        torch.save({"schema": CHECKPOINT_SCHEMA, **state}, f)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors and plain types only)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn or foreign file: say which, do not crash with pickle details
        raise YtfgvcError(f"cannot read checkpoint {path}: {e}", "delete it to start the run over") from None
    if not isinstance(state, dict) or state.get("schema") != CHECKPOINT_SCHEMA:
        raise YtfgvcError(f"{path} is not a ytfgvc checkpoint ({CHECKPOINT_SCHEMA})")
    return state


def find_micro_batch(per_rank: int, try_batch: Callable[[int], None], env: DistEnv) -> tuple[int, list[str]]:
    """The largest divisor of ``per_rank`` (halving) for which ``try_batch`` fits in GPU memory, on every rank."""
    notes, m = [], per_rank
    while True:
        try:
            try_batch(m)
            break
        except torch.cuda.OutOfMemoryError:
            notes.append(f"out of GPU memory with {m} clips per step")
        # Out of the except block, the failed attempt's tensors are gone and their memory can be released.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        m = next((d for d in range(m // 2, 0, -1) if per_rank % d == 0), 0)
        if m == 0:
            raise YtfgvcError("one clip does not fit in GPU memory", "use a smaller --input-size")
    if env.distributed:
        m_all = torch.tensor([m], device=env.device)
        dist.all_reduce(m_all, op=dist.ReduceOp.MIN)
        m = int(m_all)
    return m, notes
