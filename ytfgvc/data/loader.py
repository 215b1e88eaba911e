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
* :func:`collate` stacks items; :class:`DeviceBatch` moves a batch to the device, decodes
  JPEGs there when the workers did not (nvjpeg: :mod:`ytfgvc.data.nvjpeg`), crops,
  normalizes and lays the tensor out as the model wants it (``channels_last`` on GPU).
* :func:`device_batches` runs :class:`DeviceBatch` one or two batches ahead on a side
  CUDA stream in a thread, so decoding and cropping overlap the training step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torchvision.io import ImageReadMode, decode_jpeg

from ytfgvc.data.host import local_processes, usable_cores
from ytfgvc.data.nvjpeg import NvjpegError, batched_decoder, jpeg_backend
from ytfgvc.data.rawframes import RawFrameDataset, batch_buffer, clip_views, crop_batch, frames_batch
from ytfgvc.data.ring import TaggedBatches, make_ring
from ytfgvc.system.lifeline import Token, bind_to_main, main_token

log = logging.getLogger(__name__)

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


def decode_on_device(device: torch.device, decode: str) -> bool:
    """Whether a loader's JPEGs are decoded on the GPU (nvjpeg) rather than in the loader workers.

    ``decode`` is ``"auto"``, ``"cpu"`` or ``"gpu"``. ``"auto"`` is the loader workers
    (libjpeg-turbo) everywhere: on a GPU they decode into pinned slots and the GPU crops,
    which fed every method's training and test path at 0.94-0.97 of the model-only ceiling
    on an H200, where nvjpeg (``"gpu"``: :func:`ytfgvc.data.nvjpeg.jpeg_backend`) left
    BN-Inception's and I3D's test paths at 0.83 and 0.77 (``benchmarks/train_throughput.py``).
    It also gives a GPU run the pixels a CPU run sees.
    """
    if torch.device(device).type != "cuda" or decode != "gpu":
        return False
    return gpu_decode_available(device)


def worker_stage(device: torch.device, decode_on_device: bool) -> str:
    """How far loader workers take a sample (see :class:`RawFrameDataset`).

    JPEGs go to the GPU undecoded when it decodes them; otherwise workers decode them, and
    crop them too on a CPU run. On a GPU the crops are left to it: resizing crops is most
    of a worker's time, and one batched resize on the GPU costs little.
    """
    if decode_on_device:
        return "jpeg"
    return "frames" if torch.device(device).type == "cuda" else "pixels"


def collate(items: Sequence[dict] | dict) -> dict:
    """Batch items of :class:`RawFrameDataset` (cropped pixels, decoded frames, or JPEG bytes).

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
    elif "frames" in items[0]:
        batch["frames"], batch["shapes"] = frames_batch([it["frames"] for it in items])
        batch["draws"] = [it["draw"] for it in items]
    else:
        batch["jpeg"] = torch.cat([it["jpeg"] for it in items])
        batch["lengths"] = torch.cat([it["lengths"] for it in items])
        batch["headers"] = torch.cat([it["headers"] for it in items])
        batch["counts"] = [len(it["lengths"]) for it in items]
        batch["draws"] = [it["draw"] for it in items]
    return batch


def _stack_shared(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``, written straight into shared memory in a loader worker (no copy when it is sent)."""
    first = tensors[0]
    out = batch_buffer(len(tensors) * first.numel(), first.dtype).view(len(tensors), *first.shape)
    return torch.stack(list(tensors), out=out)


class DeviceBatch:
    """Turn a collated batch into the model's input on ``device``.

    Returns ``(x, label, index)``: ``x`` is ``(B·V, T, 3, S, S)`` for ``input_kind="frames"``
    or ``(B·V, 3, T, S, S)`` for ``"clip"``, float32, normalized with ``mean``/``std``
    (0–1 units), the ``V`` views of a video consecutive. With ``channels_last`` the memory
    is ``(B·V, T, S, S, 3)``, so the model's ``(B·T, 3, S, S)`` view is channels-last (and a
    clip is ``channels_last_3d``).
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
        self.mean = torch.tensor(mean, device=self.device).view(1, 1, 1, 1, 3)
        self.std = torch.tensor(std, device=self.device).view(1, 1, 1, 1, 3)
        self.channels_last = channels_last
        self.jpeg_backend = jpeg_backend(dataset.plan.train)

    def pixels(self, batch: dict) -> torch.Tensor:
        """uint8 ``(B, V, T, 3, S, S)`` on the device."""
        if "pixels" in batch:
            return batch["pixels"].to(self.device, non_blocking=True)
        if "slot" in batch:  # decoded into the loader's ring
            flat = self.dataset.ring.to_device(batch["slot"], batch["nbytes"], self.device)
            clips = channels_first(flat, batch["shapes"])
        elif "frames" in batch:
            clips = channels_first(batch["frames"].to(self.device, non_blocking=True), batch["shapes"])
        else:
            clips = decode_clips(batch, self.device, self.jpeg_backend)
        return crop_batch(clips, self.crop, batch["draws"])

    def __call__(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u8 = self.pixels(batch)
        b, v, t, c, s, _ = u8.shape
        nthwc = u8.view(b * v, t, c, s, s).permute(0, 1, 3, 4, 2)
        if self.channels_last:
            nthwc = nthwc.contiguous()
        x = nthwc.float().div_(255).sub_(self.mean).div_(self.std)
        x = x.permute(0, 4, 1, 2, 3) if self.input_kind == "clip" else x.permute(0, 1, 4, 2, 3)
        if not self.channels_last:
            x = x.contiguous()
        label = batch["label"].to(self.device, non_blocking=True)
        return x, label, batch["index"]


def channels_first(flat: torch.Tensor, shapes: torch.Tensor) -> list[torch.Tensor]:
    """The clips of a ``"frames"`` batch (see :func:`frames_batch`) as contiguous ``(T, 3, H, W)``."""
    if (shapes == shapes[0]).all():  # the usual batch: one transposing copy
        t, h, w = shapes[0].tolist()
        return list(flat.view(len(shapes), t, h, w, 3).permute(0, 1, 4, 2, 3).contiguous().unbind(0))
    return [clip.permute(0, 3, 1, 2).contiguous() for clip in clip_views(flat, shapes)]


def decode_clips(batch: dict, device: torch.device, backend: str | None = None) -> list[torch.Tensor]:
    """The clips of a ``"jpeg"`` batch decoded on ``device``: ``uint8 (T, 3, H, W)`` each.

    nvjpeg's ``backend`` (default :func:`ytfgvc.data.nvjpeg.jpeg_backend`) takes the batch
    in calls that release the GIL when every file is a baseline JPEG; otherwise, or if that
    fails, or with the ``torchvision`` backend, torchvision decodes it.
    """
    headers = batch["headers"].numpy()
    decoder = batched_decoder(device, backend) if headers[:, 2].all() else None
    if decoder is not None:
        try:
            flat = decoder.decode(batch["jpeg"], batch["lengths"], headers[:, 0], headers[:, 1])
            return _split_clips(flat, headers[:, :2], batch["counts"])
        except NvjpegError as e:
            log.warning("nvjpeg batched decoding failed (%s); decoding this batch with torchvision", e)
    blobs = list(torch.split(batch["jpeg"], batch["lengths"].tolist()))
    return _group(decode_jpeg(blobs, mode=ImageReadMode.RGB, device=device), batch["counts"])


def _split_clips(flat: torch.Tensor, sizes: np.ndarray, counts: list[int]) -> list[torch.Tensor]:
    """Views of the clips in images laid end to end (see :func:`ytfgvc.data.nvjpeg.image_table`)."""
    if (sizes == sizes[0]).all() and len(set(counts)) == 1:  # the usual batch: one view, unbound
        h, w = (int(v) for v in sizes[0])
        return list(flat.view(len(counts), counts[0], 3, h, w).unbind(0))
    images = list(torch.split(flat, (3 * sizes[:, 0].astype(np.int64) * sizes[:, 1]).tolist()))
    return _group([im.view(3, int(h), int(w)) for im, (h, w) in zip(images, sizes, strict=True)], counts)


def _group(images: list[torch.Tensor], counts: list[int]) -> list[torch.Tensor]:
    """Consecutive images stacked into clips of ``counts`` frames."""
    starts = np.cumsum([0, *counts])
    return [torch.stack(images[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)]


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
) -> DataLoader:
    """A DataLoader over ``(epoch, index)`` keys; its own generator keeps the global RNG untouched.

    Workers end within a second of this process, however it ends (:mod:`ytfgvc.system.lifeline`).
    ``ring`` (default: ``pin_memory``) gives workers that decode frames a
    :class:`~ytfgvc.data.ring.SlotRing` to decode into (``dataset.ring``), sized for
    ``batch_size`` clips of the dataset's largest probed frame and kept under a quarter of
    the host's memory per GPU.
    """
    dataset.ring = None
    if (pin_memory if ring is None else ring) and dataset.stage == "frames" and workers > 0:
        batch_bytes = batch_size * dataset.plan.length * dataset.frame_bytes()
        dataset.ring = make_ring(workers, RING_PREFETCH, batch_bytes, ring_limit_bytes())
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
        return DataLoader(
            dataset, batch_sampler=TaggedBatches(sampler, batch_size), prefetch_factor=RING_PREFETCH, **common
        )
    prefetch = PREFETCH if workers > 0 else None
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, prefetch_factor=prefetch, **common)


def _bind_worker(main: Token, worker_id: int) -> None:
    bind_to_main(main)


MAX_AUTO_WORKERS = 12


def auto_workers() -> int:
    """Loader workers for ``workers: auto``: this process's share of the host's cores, 1 to 12.

    The share is the cores this process may use over the processes of its host (torchrun's
    ``LOCAL_WORLD_SIZE``, else one per visible GPU). On a 16-core H200 host, 12 workers fed
    every method at 0.94 or more of its ceiling; I3D's test path needs 21,500 frames/s, which
    they decode with a little to spare (``benchmarks/train_throughput.py``).
    """
    return max(1, min(MAX_AUTO_WORKERS, usable_cores() // local_processes()))


def ring_limit_bytes() -> int:
    """A quarter of the host's memory, shared by its training processes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4 // local_processes()


def gpu_decode_available(device: torch.device) -> bool:
    """Whether torchvision can decode JPEGs on ``device`` (nvjpeg)."""
    from torchvision.io import encode_jpeg

    if torch.device(device).type != "cuda":
        return False
    try:
        decode_jpeg([encode_jpeg(torch.zeros(3, 16, 16, dtype=torch.uint8))], device=device)
        return True
    except (RuntimeError, TypeError):
        return False


_END = object()


def device_batches(
    batches: Iterable[dict], to_device: DeviceBatch, prefetch: int = 2
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``to_device(b)`` for each batch; on CUDA prepared ``prefetch`` batches ahead on a side stream."""
    device = to_device.device
    if device.type != "cuda":
        for b in batches:
            yield to_device(b)
        return
    ready: queue.Queue = queue.Queue(maxsize=prefetch)
    # High priority: the next batch's short decode and crop kernels go ahead of queued training
    # kernels. (Not what held the hardware decoder back: see ytfgvc.data.nvjpeg.)
    stream, stop = torch.cuda.Stream(device, priority=-1), threading.Event()

    def produce() -> None:
        try:
            # set_device needs an index: "cuda" alone means the caller's current device
            torch.cuda.set_device(device if device.index is not None else torch.cuda.current_device())
            with torch.cuda.stream(stream):
                for b in batches:
                    if stop.is_set():
                        break
                    out = to_device(b)
                    event = torch.cuda.Event()
                    event.record(stream)
                    ready.put((out, event))
            ready.put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            ready.put(e)

    worker = threading.Thread(target=produce, name="ytfgvc-prefetch", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            (x, label, index), event = item
            current = torch.cuda.current_stream(device)
            current.wait_event(event)
            x.record_stream(current)  # the allocator must not reuse them while this stream reads
            label.record_stream(current)
            yield x, label, index
    finally:
        stop.set()
        while worker.is_alive():
            with contextlib.suppress(queue.Empty):
                ready.get(timeout=0.1)
        worker.join()
