"""From a :class:`~ytfgvc.data.rawframes.RawFrameDataset` to normalized tensors on the device.

* :class:`EpochSampler` yields ``(epoch, index)`` keys for one rank: a permutation seeded
  by ``(seed, epoch)`` (training) or the list order (testing), split ``rank::world``. In
  training the permutation is cut to whole global batches (TSN's ``drop_last``), so every
  optimizer step sees exactly ``batch_size`` videos whatever the number of ranks; in
  testing it is padded by wrapping around, and the padding is dropped when per-video
  scores are gathered (:func:`ytfgvc.engine.evaluate`).
* :func:`make_loader` gives workers that decode frames for a GPU a slot ring
  (:mod:`ytfgvc.data.ring`): pinned shared buffers they decode whole batches into, which
  reach the GPU by DMA with no copy on the host.
* :func:`collate` stacks items; :class:`DeviceBatch` moves a batch to the device, crops,
  normalizes and lays the tensor out as the model wants it (``channels_last`` on GPU).
  The loader workers always decode the JPEGs (libjpeg-turbo), so a GPU run sees the pixels
  a CPU run sees.
* :func:`device_batches` runs :class:`DeviceBatch` one or two batches ahead on a side
  CUDA stream in a thread, so the transfer and the crops overlap the training step.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ytfgvc.data.host import local_processes, usable_cores
from ytfgvc.data.rawframes import RawFrameDataset, batch_buffer, clip_views, crop_batch, frames_batch
from ytfgvc.data.ring import TaggedBatches, make_ring
from ytfgvc.system.lifeline import Token, bind_to_main, main_token

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EpochSampler(Sampler):
    """``(epoch, index)`` keys of one rank (see the module docstring)."""

    def __init__(
        self, n: int, world: int = 1, rank: int = 0, shuffle: bool = False, seed: int = 0, global_batch: int = 0
    ):
        if n < 1:
            raise ValueError("nothing to sample from: the list is empty")
        if global_batch and global_batch % world:
            raise ValueError(f"batch {global_batch} does not split over {world} processes")
        self.n, self.world, self.rank = n, world, rank
        self.shuffle, self.seed, self.global_batch = shuffle, seed, global_batch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _total(self) -> int:
        if self.global_batch:
            return self.n // self.global_batch * self.global_batch
        return math.ceil(self.n / self.world) * self.world

    def __len__(self) -> int:
        return self._total() // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        )
        order = np.resize(order, self._total())  # cuts to whole batches, or pads by wrapping around
        for i in order[self.rank :: self.world]:
            yield self.epoch, int(i)


def worker_stage(device: torch.device) -> str:
    """How far loader workers take a sample (see :class:`RawFrameDataset`).

    Workers decode the JPEGs; on a CPU run they crop them too. On a GPU the crops are left
    to it: resizing crops is most of a worker's time, and one batched resize on the GPU
    costs little.
    """
    return "frames" if torch.device(device).type == "cuda" else "pixels"


def collate(items: Sequence[dict] | dict) -> dict:
    """Batch items of :class:`RawFrameDataset` (cropped pixels, or decoded frames).

    A dict is a batch the dataset fetched and collated itself
    (:meth:`RawFrameDataset.__getitems__`) and is returned as it is.
    """
    if isinstance(items, dict):
        return items
    batch = {
        "index": torch.tensor([it["index"] for it in items]),
        "label": torch.tensor([it["label"] for it in items]),
    }
    if "pixels" in items[0]:
        batch["pixels"] = _stack_shared([it["pixels"] for it in items])
    else:
        batch["frames"], batch["shapes"] = frames_batch([it["frames"] for it in items])
        batch["draws"] = [it["draw"] for it in items]
    return batch


def _stack_shared(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, written straight into shared memory in a loader worker (no copy when it is sent)."""
    first = tensors[0]
    out = batch_buffer(len(tensors) * first.numel(), first.dtype).view(len(tensors), *first.shape)
    return torch.stack(list(tensors), out=out)


class DeviceBatch:
    """Turn a collated batch into the model's input on ``device``.

    Returns ``(x, label, index)``: ``x`` is ``(B·V, T, C, S, S)`` for ``input_kind="frames"``
    or ``(B·V, C, T, S, S)`` for ``"clip"``, float32, normalized with ``mean``/``std``
    (0–1 units; one value per channel, or one for all), the ``V`` views of a video
    consecutive. ``C`` is 3 for RGB, ``2·L`` for flow stacks. With ``channels_last`` the
    memory is ``(B·V, T, S, S, C)``, so the model's ``(B·T, C, S, S)`` view is channels-last
    (and a clip is ``channels_last_3d``).
    """

    def __init__(
        self,
        dataset: RawFrameDataset,
        device: torch.device,
        input_kind: str = "frames",
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        channels_last: bool = False,
    ):
        self.dataset, self.crop = dataset, dataset.crop
        self.device, self.input_kind = torch.device(device), input_kind
        self.channels = getattr(dataset, "channels", 3)
        self.flow = getattr(dataset, "modality", "rgb") == "flow"
        mean = _per_channel(mean, self.channels)
        std = _per_channel(std, self.channels)
        self.scale = (1 / (255 * std)).float().view(1, 1, 1, 1, self.channels).to(self.device)
        self.shift = (-mean / std).float().view(1, 1, 1, 1, self.channels).to(self.device)
        self.channels_last = channels_last

    def pixels(self, batch: dict) -> torch.Tensor:
        """uint8 ``(B, V, T, C, S, S)`` on the device."""
        if "pixels" in batch:
            return batch["pixels"].to(self.device, non_blocking=True)
        if "slot" in batch:  # decoded into the loader's ring
            flat = self.dataset.ring.to_device(batch["slot"], batch["nbytes"], self.device)
            clips = channels_first(flat, batch["shapes"], self.channels)
        else:
            frames = batch["frames"].to(self.device, non_blocking=True)
            clips = channels_first(frames, batch["shapes"], self.channels)
        return crop_batch(clips, self.crop, batch["draws"], flow=self.flow)

    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u8 = self.pixels(batch)
        b, v, t, c, s, _ = u8.shape
        nthwc = u8.view(b * v, t, c, s, s).permute(0, 1, 3, 4, 2)
        # One pass over the pixels: (u / 255 - mean) / std as u * scale + shift, written straight into
        # the memory layout the model takes.
        if self.channels_last:
            x = torch.empty((b * v, t, s, s, c), device=self.device)
            torch.addcmul(self.shift, nthwc, self.scale, out=x)
            x = x.permute(0, 4, 1, 2, 3) if self.input_kind == "clip" else x.permute(0, 1, 4, 2, 3)
        elif self.input_kind == "clip":
            x = torch.empty((b * v, c, t, s, s), device=self.device)
            torch.addcmul(self.shift, nthwc, self.scale, out=x.permute(0, 2, 3, 4, 1))
        else:
            x = torch.empty((b * v, t, c, s, s), device=self.device)
            torch.addcmul(self.shift, nthwc, self.scale, out=x.permute(0, 1, 3, 4, 2))
        label = batch["label"].to(self.device, non_blocking=True)
        return x, label, batch["index"]


def channels_first(flat: torch.Tensor, shapes: torch.Tensor, channels: int = 3) -> list[torch.Tensor]:
    """The clips of a ``"frames"`` batch (see :func:`frames_batch`) as contiguous ``(T, C, H, W)``."""
    if (shapes == shapes[0]).all():  # the usual batch: one transposing copy
        t, h, w = shapes[0].tolist()
        return list(flat.view(len(shapes), t, h, w, channels).permute(0, 1, 4, 2, 3).contiguous().unbind(0))
    return [clip.permute(0, 3, 1, 2).contiguous() for clip in clip_views(flat, shapes, channels)]


def _per_channel(values: Sequence[float], channels: int) -> torch.Tensor:
    """``values`` (one per channel, or one for all) as ``C`` float64 values."""
    t = torch.tensor(list(values), dtype=torch.float64)
    if t.numel() == 1:
        t = t.expand(channels)
    if t.numel() != channels:
        raise ValueError(f"{t.numel()} normalisation values for {channels} channels")
    return t


PREFETCH = 4  # batches in flight per loader worker
RING_PREFETCH = 2  # the same with a slot ring: each is a slot, held for the loader's life


def make_loader(
    dataset: RawFrameDataset,
    sampler: EpochSampler,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    seed: int = 0,
    ring: bool | None = None,
    prefetch: int | None = None,
) -> DataLoader:
    """A DataLoader over ``(epoch, index)`` keys; its own generator keeps the global RNG untouched.

    Workers end within a second of this process, however it ends (:mod:`ytfgvc.system.lifeline`).
    ``ring`` (default: ``pin_memory``) gives workers that decode frames a
    :class:`~ytfgvc.data.ring.SlotRing` to decode into (``dataset.ring``), sized for
    ``batch_size`` clips of the dataset's largest probed frame and kept under a quarter of
    the host's memory per GPU. ``prefetch``: batches in flight per worker (default
    :data:`RING_PREFETCH` with a ring, else :data:`PREFETCH`).
    """
    dataset.ring = None
    if (pin_memory if ring is None else ring) and dataset.stage == "frames" and workers > 0:
        batch_bytes = batch_size * dataset.plan.length * dataset.frame_bytes()  # frame_bytes counts the channels
        dataset.ring = make_ring(workers, prefetch or RING_PREFETCH, batch_bytes, ring_limit_bytes())
    common = dict(
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory and dataset.ring is None,  # ring slots are pinned already
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        # No parent-death signal: the workers may be forked by a thread (device_batches) that ends first.
        worker_init_fn=functools.partial(_bind_worker, main_token()) if workers > 0 else None,
    )
    if dataset.ring is not None:
        in_flight = dataset.ring.slots_per_worker - 1  # one slot more covers the batch being copied
        tagged = TaggedBatches(sampler, batch_size)
        return DataLoader(dataset, batch_sampler=tagged, prefetch_factor=in_flight, **common)
    factor = (prefetch or PREFETCH) if workers > 0 else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, prefetch_factor=factor, **common)


def _bind_worker(main: Token, worker_id: int) -> None:
    bind_to_main(main)


MAX_AUTO_WORKERS = 14


def auto_workers() -> int:
    """Loader workers for ``workers: auto``: this process's share of the host's cores, less what it needs itself.

    The share is the cores this process may use over the processes of its host (torchrun's
    ``LOCAL_WORLD_SIZE``, else one per visible GPU). The training process keeps two of them
    (one of one to seven) for its own threads: the one that launches the model's kernels and
    the one that moves batches to the GPU. At most 14 workers: on a 16-core host, I3D's test
    path needs about 20,000 decoded frames a second, 0.5-0.6 ms of a core each
    (``benchmarks/train_throughput.py``).
    """
    share = usable_cores() // local_processes()
    return max(1, min(MAX_AUTO_WORKERS, share - (2 if share >= 8 else 1)))


def ring_limit_bytes() -> int:
    """A quarter of the host's memory, shared by its training processes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4 // local_processes()


_END = object()


@dataclass
class PipelineStats:
    """Where the time of :func:`device_batches` went (seconds, summed over the batches it yielded).

    ``loader_wait_s``: waiting for the loader workers' next batch; ``device_s``: moving it to
    the device and cropping it (on CUDA, in the prefetch thread, DMA included); ``queue_full_s``:
    the prefetch thread waiting because the consumer (the model) had not taken the batches
    ahead (the data path was ahead); ``consumer_wait_s``: the consumer waiting for a batch (the
    data path was behind). ``worker_wall_s``, ``worker_cpu_s`` and ``decoded``: what the
    workers spent on the batches (wall and CPU seconds, frames decoded), as the batches say.
    """

    batches: int = 0
    loader_wait_s: float = 0.0
    device_s: float = 0.0
    queue_full_s: float = 0.0
    consumer_wait_s: float = 0.0
    worker_wall_s: float = 0.0
    worker_cpu_s: float = 0.0
    decoded: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, f.default)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def _worker(self, batch: dict) -> None:
        wall, cpu = batch.get("load_s", (0.0, 0.0))
        self.worker_wall_s += wall
        self.worker_cpu_s += cpu
        self.decoded += batch.get("decoded", 0)


def device_batches(
    batches: Iterable[dict], to_device: DeviceBatch, prefetch: int = 2, stats: PipelineStats | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``to_device(b)`` for each batch; on CUDA prepared ``prefetch`` batches ahead on a side stream.

    ``stats`` (optional) adds up where the time went (:class:`PipelineStats`).
    """
    device, stats = to_device.device, stats if stats is not None else PipelineStats()
    clock = time.perf_counter
    if device.type != "cuda":
        for out, t0 in _moved(batches, to_device, stats):
            stats.consumer_wait_s += clock() - t0
            stats.batches += 1
            yield out
        return
    ready: queue.Queue = queue.Queue(maxsize=prefetch)
    # High priority: the next batch's short crop kernels go ahead of queued training kernels.
    stream, stop = torch.cuda.Stream(device, priority=-1), threading.Event()

    def produce() -> None:
        try:
            # set_device needs an index: "cuda" alone means the caller's current device
            torch.cuda.set_device(device if device.index is not None else torch.cuda.current_device())
            with torch.cuda.stream(stream):
                for out, _ in _moved(batches, to_device, stats):
                    event = torch.cuda.Event()
                    event.record(stream)
                    t2 = clock()
                    ready.put((out, event))
                    stats.queue_full_s += clock() - t2
                    if stop.is_set():
                        break
            ready.put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            ready.put(e)

    worker = threading.Thread(target=produce, name="ytfgvc-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            t0 = clock()
            item = ready.get()
            stats.consumer_wait_s += clock() - t0
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            (x, label, index), event = item
            current = torch.cuda.current_stream(device)
            current.wait_event(event)
            x.record_stream(current)  # the allocator must not reuse them while this stream reads
            label.record_stream(current)
            stats.batches += 1
            yield x, label, index
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        worker.join()


def _moved(batches: Iterable[dict], to_device: DeviceBatch, stats: PipelineStats) -> Iterator[tuple[tuple, float]]:
    """``to_device(b)`` of each batch with the time its wait began; waits and moves added up in ``stats``."""
    clock, source = time.perf_counter, iter(batches)
    while True:
        t0 = clock()
        b = next(source, _END)
        t1 = clock()
        stats.loader_wait_s += t1 - t0
        if b is _END:
            return
        out = to_device(b)
        stats.device_s += clock() - t1
        stats._worker(b)
        yield out, t0
