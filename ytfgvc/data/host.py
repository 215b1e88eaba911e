"""This process's share of the host: the cores it may use and the processes it shares them with."""

from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_processes() -> int:
    """The training processes of this host: torchrun's ``LOCAL_WORLD_SIZE``, else one per visible GPU (at least 1)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or 0)
    if not local and torch.cuda.is_available():
        local = torch.cuda.device_count()
    return max(1, local)
