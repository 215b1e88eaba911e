"""Shared-memory slots that loader workers decode batches into, pinned for the GPU.

Without a ring, every batch a worker decodes goes into a new shared-memory segment. The
worker pays for creating and first touching it, the main process for mapping it and copying
it into pinned memory before the transfer: for one I3D test batch (32 clips of 32 frames,
267 MB) that is 100-150 ms in the worker and about 60 ms in the main process on a 2-core
machine, at the 20 batches a second the model takes.

A :class:`SlotRing` is made once, before the workers start. Each worker owns
``slots_per_worker`` slots and writes its batches into them in turn; the main process
registers the slots as pinned memory (``cudaHostRegister``) once the workers exist, so a
batch goes from the worker's decoder to the GPU by DMA, with no copy on the host.

A slot is claimed by a worker and released by the main process once the batch is on the
device (:meth:`SlotRing.to_device`). A worker never waits for a slot: when its next one is
still held, or the batch does not fit, the batch goes into a new segment as without a ring
(:meth:`SlotRing.claim` returns ``None``; :attr:`SlotRing.misses` counts these). Claims carry
the loader pass that made them (:class:`TaggedKeys`), so the slots of batches a pass left
behind (an iterator dropped mid-epoch) are free for the next pass.
"""

from __future__ import annotations

import ctypes
import logging
import math
import weakref
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import torch
from torch.utils.data import Sampler, get_worker_info

log = logging.getLogger(__name__)


class TaggedKeys(NamedTuple):
    """A batch's sample keys and the loader pass (from 1) that asked for them."""

    tag: int
    keys: list


class TaggedBatches(Sampler):
    """A batch sampler: ``sampler``'s keys in batches of ``batch_size``, tagged with the pass (1, 2, …)."""

    def __init__(self, sampler: Sampler, batch_size: int):
        self.sampler, self.batch_size, self.passes = sampler, batch_size, 0

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self) -> Iterator[TaggedKeys]:
        self.passes += 1
        keys: list = []
        for key in self.sampler:
            keys.append(key)
            if len(keys) == self.batch_size:
                yield TaggedKeys(self.passes, keys)
                keys = []
        if keys:
            yield TaggedKeys(self.passes, keys)


def _shared(numel: int, dtype: torch.dtype = torch.uint8) -> torch.Tensor:
    """A new tensor in shared memory; a normal one even under inference mode (workers write it)."""
    with torch.inference_mode(False):
        storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
        return torch.empty(0, dtype=dtype).set_(storage).view(numel)


class SlotRing:
    """``workers × slots_per_worker`` shared buffers of ``slot_bytes`` each (see the module docstring)."""

    def __init__(self, workers: int, slots_per_worker: int, slot_bytes: int):
        if workers < 1 or slots_per_worker < 1 or slot_bytes < 1:
            raise ValueError("a slot ring needs at least one worker, one slot and one byte")
        self.workers, self.slots_per_worker, self.slot_bytes = workers, slots_per_worker, slot_bytes
        self.buffers = [_shared(slot_bytes) for _ in range(workers * slots_per_worker)]
        # Per slot: 0 when free, else the tag of the pass whose batch it holds. Last: misses.
        self._state = _shared(len(self.buffers) + 1, torch.int64)
        with torch.inference_mode(False):
            self._state.zero_()
        self._claims = 0  # this worker's claims so far (each worker process has its own copy)
        self._pinned = self._pin_tried = False

    @property
    def nbytes(self) -> int:
        return len(self.buffers) * self.slot_bytes

    @property
    def misses(self) -> int:
        """Batches that went into a new segment because their slot was held or too small."""
        return int(self._state[-1])

    def claim(self, nbytes: int, tag: int) -> tuple[int, torch.Tensor] | None:
        """In a loader worker: its next slot and a ``nbytes`` view of it, or ``None`` (see the module docstring)."""
        info = get_worker_info()
        if info is None or info.id >= self.workers:
            return None
        slot = info.id * self.slots_per_worker + self._claims % self.slots_per_worker
        self._claims += 1
        if nbytes > self.slot_bytes or int(self._state[slot]) == tag:
            self._state[-1] += 1  # one writer per slot's worker; a lost count only blurs a statistic
            return None
        self._state[slot] = tag
        return slot, self.buffers[slot][:nbytes]

    def to_device(self, slot: int, nbytes: int, device: torch.device) -> torch.Tensor:
        """In the main process: the batch in ``slot`` as a new tensor on ``device``; the slot is free again."""
        device = torch.device(device)
        source = self.buffers[slot][:nbytes]
        if device.type == "cuda":
            self.pin()
            out = source.to(device, non_blocking=self._pinned)
            done = torch.cuda.Event(blocking=True)  # the thread sleeps while it waits, leaving its core to the workers
            done.record(torch.cuda.current_stream(device))
            done.synchronize()  # the DMA has read the slot; a worker may write it again
        else:
            out = source.clone()
        self._state[slot] = 0
        return out

    def pin(self) -> None:
        """Register the slots as pinned memory (once; after the workers started: see :func:`make_ring`)."""
        if self._pin_tried:
            return
        self._pin_tried = True
        cudart, done = torch.cuda.cudart(), []
        for buffer in self.buffers:
            status = int(cudart.cudaHostRegister(buffer.data_ptr(), self.slot_bytes, 0))
            if status != 0:
                _clear_cuda_error()  # else torch's next kernel-launch check would raise it
                log.warning("cannot pin the loader's slots (cudaError %d): batches are copied unpinned", status)
                _unpin([b.data_ptr() for b in done])
                return
            done.append(buffer)
        self._pinned = True
        # Unregister before the shared memory goes (the callback holds the buffers until then).
        weakref.finalize(self, _unpin_buffers, self.buffers)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pinned"] = state["_pin_tried"] = False  # a worker never touches CUDA
        return state


def _clear_cuda_error() -> None:
    """Reset the CUDA runtime's last error (``cudaGetLastError``) in the runtime library torch loaded."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libcudart" in line}
        for path in paths:
            ctypes.CDLL(path).cudaGetLastError()
    except (OSError, AttributeError):
        pass


def _unpin(pointers: Sequence[int]) -> None:
    cudart = torch.cuda.cudart()
    for p in pointers:
        cudart.cudaHostUnregister(p)


def _unpin_buffers(buffers: list[torch.Tensor]) -> None:
    _unpin([b.data_ptr() for b in buffers])


def make_ring(workers: int, prefetch: int, batch_bytes: int, limit_bytes: int) -> SlotRing | None:
    """A ring for ``workers`` workers with ``prefetch`` batches in flight each, or ``None`` past ``limit_bytes``.

    A worker holds at most ``prefetch`` batches the main process has not yet taken (the
    DataLoader's ``prefetch_factor``); one more slot covers the batch being copied.
    """
    slots = prefetch + 1
    if workers < 1 or batch_bytes < 1:
        return None
    if workers * slots * batch_bytes > limit_bytes:
        log.info(
            "no slot ring: %d slots of %.0f MB exceed %.1f GB; batches go through new segments",
            workers * slots,
            batch_bytes / 1e6,
            limit_bytes / 1e9,
        )
        return None
    return SlotRing(workers, slots, batch_bytes)
