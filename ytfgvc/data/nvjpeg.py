"""Batched JPEG decoding on the GPU with nvjpeg, one foreign call per batch (``decode: gpu``).

By default the loader workers decode instead, into pinned slots
(:func:`ytfgvc.data.loader.decode_on_device`): that fed every method faster on an H200.

Why not ``torchvision.io.decode_jpeg(device="cuda")``? It decodes with nvjpeg's hardware
JPEG engines (A100, Hopper…), and their batched call waits for the whole device inside:
beside I3D training on an H200, a 512-frame call took 0.4 s instead of 13 ms, whatever the
stream, the allocators or the input memory, so the data path could not run ahead of the
model (I3D's test path ran at 0.57 of the model-only throughput).

Two of nvjpeg's other backends are used instead. ``gpu_hybrid`` decodes the Huffman code in
CUDA kernels too, and its call waits only for its own work: beside the same training it
decoded 14,900 frames/s. It costs GPU time instead (about 20 µs per 340x256 frame on an
H200). ``hybrid`` decodes the Huffman code on the CPU, in the calling thread, and costs the
GPU almost nothing; :class:`ThreadedDecoder` runs it on a few threads. Unless told otherwise
(:func:`jpeg_backend`) training batches are decoded with ``hybrid`` and test batches with
``gpu_hybrid``. A batch is
one ctypes call per decoder, which releases the GIL: the workers read each file's size from
its header (:func:`ytfgvc.data.jpeg.jpeg_header`), the frames arrive as one buffer, the
pointer tables are built with numpy, and nvjpeg writes planar RGB (torchvision's layout)
into one device tensor. The two hybrid backends' values differ from the engines' by IDCT
rounding (0.04 levels on average, at most 3, measured) and from each other in a few pixels.

``YTFGVC_JPEG_BACKEND`` picks one backend for every batch: ``gpu_hybrid``, ``hybrid``,
``hardware`` (the engines through this same call: torchvision's exact values) or
``torchvision``; ``YTFGVC_JPEG_THREADS`` the threads of ``hybrid``. :func:`batched_decoder`
returns ``None`` where a backend cannot be used (no libnvjpeg, a GPU without the engines);
callers then decode with torchvision.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ytfgvc.data.host import local_processes, usable_cores
from ytfgvc.errors import YtfgvcError

log = logging.getLogger(__name__)

BACKENDS = {"hybrid": 1, "gpu_hybrid": 2, "hardware": 3}  # nvjpegBackend_t
OUTPUT_RGB = 3  # planar R, G, B (torchvision's CHW)
STATUS_NAMES = {
    1: "not initialized", 2: "invalid parameter", 3: "bad JPEG", 4: "JPEG not supported", 5: "allocator failure",
    6: "execution failed", 7: "architecture mismatch", 8: "internal error", 9: "implementation not supported",
    10: "incomplete bitstream",
}  # fmt: skip
IMAGE_WORDS = 8  # nvjpegImage_t: unsigned char *channel[4]; size_t pitch[4]


class NvjpegError(RuntimeError):
    def __init__(self, call: str, status: int):
        super().__init__(f"nvjpeg {call} failed: {STATUS_NAMES.get(status, 'status')} ({status})")
        self.status = status


def find_library() -> str | None:
    """libnvjpeg: the copy already loaded (torchvision's), the one torchvision ships, pip's, the system's."""
    try:
        with open("/proc/self/maps") as f:
            loaded = [line.split()[-1] for line in f if "libnvjpeg" in line]
        if loaded:
            return loaded[0]
    except OSError:
        pass
    candidates = []
    try:
        import torchvision

        bundled = Path(torchvision.__file__).parent.parent / "torchvision.libs"
        candidates += sorted(glob.glob(str(bundled / "libnvjpeg*")))
    except ImportError:
        pass
    for entry in sys.path:
        candidates += sorted(glob.glob(os.path.join(entry, "nvidia", "*", "lib", "libnvjpeg.so*")))
    return candidates[0] if candidates else ctypes.util.find_library("nvjpeg")


def image_bytes(heights: np.ndarray, widths: np.ndarray) -> int:
    """Bytes of planar RGB images of these sizes."""
    return int(3 * (heights.astype(np.int64) * widths.astype(np.int64)).sum())


def image_table(out_ptr: int, heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """nvjpegImage_t entries for planar RGB images laid end to end from ``out_ptr``.

    Image ``i`` is ``(3, h_i, w_i)`` at byte ``3 * sum(h_j * w_j for j < i)``: channel ``c``
    starts ``c * h_i * w_i`` further, with a pitch of ``w_i``.
    """
    plane = heights.astype(np.uint64) * widths.astype(np.uint64)
    starts = np.zeros(len(plane), np.uint64)
    np.cumsum(3 * plane[:-1], out=starts[1:])
    table = np.zeros((len(plane), IMAGE_WORDS), np.uint64)
    for c in range(3):
        table[:, c] = np.uint64(out_ptr) + starts + np.uint64(c) * plane
        table[:, 4 + c] = widths
    return table


@dataclass
class Job:
    """One batch's pointer tables and its output (see :func:`image_table`); ``data`` kept alive."""

    data: torch.Tensor
    out: torch.Tensor
    sources: np.ndarray
    sizes: np.ndarray
    table: np.ndarray

    def __len__(self) -> int:
        return len(self.sizes)


def make_job(data: torch.Tensor, lengths: torch.Tensor, heights: np.ndarray, widths: np.ndarray, device) -> Job:
    """The JPEGs laid end to end in ``data`` (CPU uint8) and a new uint8 output on ``device``."""
    if data.device.type != "cpu" or data.dtype != torch.uint8 or not data.is_contiguous():
        raise ValueError("data must be a contiguous uint8 CPU tensor")
    sizes = lengths.numpy().astype(np.uint64)
    sources = np.zeros(len(sizes), np.uint64)
    np.cumsum(sizes[:-1], out=sources[1:])
    sources += np.uint64(data.data_ptr())
    out = torch.empty(image_bytes(heights, widths), dtype=torch.uint8, device=device)
    return Job(data, out, sources, sizes, image_table(out.data_ptr(), heights, widths))


class BatchedDecoder:
    """One nvjpeg handle and batched-decode state on one GPU; its calls are serialized by a lock.

    ``backend`` is ``"hybrid"`` (Huffman decoding on the CPU, in the calling thread; the
    IDCT on the GPU), ``"gpu_hybrid"`` (Huffman decoding in CUDA kernels too, for calls of
    more than 50 images) or ``"hardware"`` (the JPEG engines, whose call also waits for the
    whole device: 0.4 s per 512 frames beside I3D training). The batched call writes its
    output out of stream order (``tests/test_gpu.py`` catches it writing memory that queued
    work still reads; see also torchcodec#1634), so :meth:`decode` synchronizes the stream
    before the call; on the engines after it too (``tests/test_gpu.py`` checks that work
    queued after a GPU-hybrid call reads its output).
    """

    def __init__(self, library: str, device: torch.device, backend: str = "gpu_hybrid"):
        self.device, self.backend = device, backend
        self._lib = lib = ctypes.CDLL(library)  # CDLL: every call releases the GIL
        for name in ("nvjpegCreateEx", "nvjpegJpegStateCreate", "nvjpegDecodeBatchedInitialize", "nvjpegDecodeBatched"):
            getattr(lib, name).restype = ctypes.c_int
        lib.nvjpegCreateEx.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]
        lib.nvjpegJpegStateCreate.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.nvjpegDecodeBatchedInitialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [ctypes.c_int] * 3
        lib.nvjpegDecodeBatched.argtypes = [ctypes.c_void_p] * 6
        self._handle, self._state = ctypes.c_void_p(), ctypes.c_void_p()
        with torch.cuda.device(device):  # nvjpeg binds its handle to the current device
            status = lib.nvjpegCreateEx(BACKENDS[backend], None, None, 0, ctypes.byref(self._handle))
            self._check("nvjpegCreateEx", status)
            self._check("nvjpegJpegStateCreate", lib.nvjpegJpegStateCreate(self._handle, ctypes.byref(self._state)))
        self._batch = 0  # the batch size the state is initialized for
        self._lock = threading.Lock()

    @staticmethod
    def _check(call: str, status: int) -> None:
        if status:
            raise NvjpegError(call, status)

    def decode(self, data: torch.Tensor, lengths: torch.Tensor, heights: np.ndarray, widths: np.ndarray):
        """Decode the JPEGs laid end to end in ``data`` (CPU uint8) into one uint8 device tensor.

        Returns the flat tensor (image ``i`` as in :func:`image_table`), ready in order on
        the current CUDA stream. ``data`` must stay alive until the call returns.
        """
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            job = make_job(data, lengths, heights, widths, self.device)
            # nvjpeg's batched call does not keep stream order: it may write `out` (a block that
            # queued work on this stream may still read) before that work ran. Fence it.
            stream.synchronize()
            self.decode_range(job, 0, len(job), stream)
            if self.backend == "hardware":  # the engines' work is not on `stream` either
                stream.synchronize()
        return job.out

    def decode_range(self, job: Job, start: int, stop: int, stream: torch.cuda.Stream) -> None:
        """Images ``start:stop`` of ``job``, in one call on ``stream`` (no fences: see :meth:`decode`)."""
        n = stop - start
        with self._lock, torch.cuda.device(self.device):
            if n != self._batch:
                self._batch = 0
                self._check(
                    "nvjpegDecodeBatchedInitialize",
                    self._lib.nvjpegDecodeBatchedInitialize(self._handle, self._state, n, 1, OUTPUT_RGB),
                )
                self._batch = n
            sources, sizes = job.sources[start:stop], job.sizes[start:stop]
            table = np.ascontiguousarray(job.table[start:stop])
            status = self._lib.nvjpegDecodeBatched(
                self._handle, self._state, sources.ctypes.data, sizes.ctypes.data, table.ctypes.data, stream.cuda_stream
            )
            if status:
                self._batch = 0  # nvjpeg asks for a fresh initialization after a failed batch
                raise NvjpegError("nvjpegDecodeBatched", status)


class ThreadedDecoder:
    """nvjpeg's hybrid backend on CPU threads: the Huffman code decoded on the host's cores.

    A batch is split into equal shares of at least ``min_share`` images, one for each of up
    to ``threads`` decoders, each decoded in one call that releases the GIL. The Huffman
    decoding runs on a CPU core (0.45 ms of a core per 340x256 frame on an H200 host: 2,250
    frames/s a thread, 22,500 with 12); the GPU does only the IDCT and colour conversion
    (beside I3D's test forward, 12 busy threads cost it 2%). Shares of 64 keep a batch's
    decoding near 30 ms whatever its size, with as few threads as that takes: 12 threads on
    BN-Inception's 256-frame training batches cost it a quarter of its speed (0.72 of the
    ceiling, 4 threads 0.93), as the threads' returns contend for the GIL with the thread
    that launches the model's kernels. The output is one device tensor, as
    :meth:`BatchedDecoder.decode` returns it and fenced the same way; each thread waits for
    its own share before the batch is handed on.
    """

    backend = "hybrid"

    def __init__(self, library: str, device: torch.device, threads: int, min_share: int = 64):
        self.device, self.min_share = device, min_share
        self._decoders = [BatchedDecoder(library, device, "hybrid") for _ in range(threads)]
        self._streams = [torch.cuda.Stream(device) for _ in range(threads)]
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="ytfgvc-nvjpeg")
        self._lock = threading.Lock()  # one batch at a time

    def decode(self, data: torch.Tensor, lengths: torch.Tensor, heights: np.ndarray, widths: np.ndarray):
        """As :meth:`BatchedDecoder.decode`."""
        with self._lock, torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            job = make_job(data, lengths, heights, widths, self.device)
            stream.synchronize()  # the fence of BatchedDecoder.decode
            parts = max(1, min(len(self._decoders), len(job) // self.min_share))
            bounds = np.linspace(0, len(job), parts + 1).astype(int).tolist()
            shares = [(i, a, b) for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if b > a]
            tasks = [self._executor.submit(self._share, job, *share) for share in shares]
            wait(tasks)  # every share finished, a failed one too, before the output can be freed
            for task in tasks:
                task.result()  # raises a thread's error
        return job.out

    def _share(self, job: Job, i: int, start: int, stop: int) -> None:
        self._decoders[i].decode_range(job, start, stop, self._streams[i])
        self._streams[i].synchronize()


_decoders: dict[tuple[int, str], BatchedDecoder | ThreadedDecoder | None] = {}
_decoders_lock = threading.Lock()


JPEG_BACKENDS = ("gpu_hybrid", "hybrid", "hardware", "torchvision")


def jpeg_backend(train: bool = False) -> str:
    """``YTFGVC_JPEG_BACKEND`` if set; else ``hybrid`` for training batches, ``gpu_hybrid`` for test batches.

    Training batches are small beside their model's time (BN-Inception: 256 frames in 54 ms
    on an H200), and the host's cores decode them without taking GPU time: BN-Inception
    training 0.93 of its ceiling against 0.91, RRA and TSN 0.97 against 0.94–0.95. Test
    batches need more frames per second (BN-Inception 13,900, I3D 21,500) than these threads
    decode beside the model, so the GPU decodes them: 0.83 and 0.77 of the ceilings, against
    0.44 and 0.49 with 12 CPU threads (``benchmarks/train_throughput.py``; the README has the
    figures).
    """
    backend = os.environ.get("YTFGVC_JPEG_BACKEND") or ("hybrid" if train else "gpu_hybrid")
    if backend not in JPEG_BACKENDS:
        raise YtfgvcError(
            f"YTFGVC_JPEG_BACKEND={backend!r} is not a JPEG decoding backend",
            f"set it to one of {', '.join(JPEG_BACKENDS)}, or unset it",
        )
    return backend


def jpeg_threads() -> int:
    """CPU threads of the ``hybrid`` decoder: ``YTFGVC_JPEG_THREADS``, or the cores per process less 4, 1 to 12."""
    value = os.environ.get("YTFGVC_JPEG_THREADS")
    if value is not None:
        if not value.isdigit() or not 1 <= int(value) <= 256:
            raise YtfgvcError(f"YTFGVC_JPEG_THREADS={value!r} is not a thread count", "set it to 1..256, or unset it")
        return int(value)
    return max(1, min(12, usable_cores() // local_processes() - 4))


def batched_decoder(device: torch.device, backend: str | None = None) -> BatchedDecoder | ThreadedDecoder | None:
    """The process's ``backend`` decoder for ``device`` (default :func:`jpeg_backend`), made on first use.

    ``None`` where it cannot be used.
    """
    device, backend = torch.device(device), backend or jpeg_backend()
    if device.type != "cuda" or backend == "torchvision":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    with _decoders_lock:
        if (index, backend) not in _decoders:
            _decoders[index, backend] = _make(torch.device("cuda", index), backend)
        return _decoders[index, backend]


def _make(device: torch.device, backend: str) -> BatchedDecoder | ThreadedDecoder | None:
    library = find_library()
    if library is None:
        log.info("no libnvjpeg found: JPEGs are decoded by torchvision")
        return None
    try:
        if backend == "hybrid":
            return ThreadedDecoder(library, device, jpeg_threads())
        return BatchedDecoder(library, device, backend)
    except (OSError, AttributeError, NvjpegError) as e:  # no engines (status 7) on this GPU, or an old library
        log.info("nvjpeg %s decoding unavailable on %s (%s): JPEGs are decoded by torchvision", backend, device, e)
        return None
