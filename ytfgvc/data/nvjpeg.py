"""Batched JPEG decoding on the GPU with nvjpeg, one foreign call per batch.

Why not ``torchvision.io.decode_jpeg(device="cuda")``? It decodes with nvjpeg's hardware
JPEG engines (A100, Hopper…), and their batched call waits for the whole device inside:
beside I3D training on an H200, a 512-frame call took 0.4 s instead of 13 ms, whatever the
stream, the allocators or the input memory, so the data path could not run ahead of the
model (I3D's test path ran at 0.57 of the model-only throughput).

The default backend here, ``gpu_hybrid``, decodes the Huffman code in CUDA kernels too,
and its call waits only for its own work: beside the same training it decoded 14,900
frames/s. It costs GPU time instead (about 20 µs per 340x256 frame on an
H200), which is why I3D's training clips are decoded by the loader workers
(:func:`ytfgvc.data.loader.decode_on_device`). A batch is one ctypes call, which releases
the GIL: the workers read each file's size from its header
(:func:`ytfgvc.data.jpeg.jpeg_header`), the frames arrive as one buffer, the pointer
tables are built with numpy, and nvjpeg writes planar RGB (torchvision's layout) into one
device tensor. Its values differ from the engines' by IDCT rounding (0.04 levels on
average, at most 3, measured).

``YTFGVC_JPEG_BACKEND`` picks ``gpu_hybrid`` (default), ``hardware`` (the engines through
this same call: torchvision's exact values) or ``torchvision``. :func:`batched_decoder`
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
from pathlib import Path

import numpy as np
import torch

from ytfgvc.errors import YtfgvcError

log = logging.getLogger(__name__)

BACKENDS = {"gpu_hybrid": 2, "hardware": 3}  # nvjpegBackend_t
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


class BatchedDecoder:
    """One nvjpeg handle and batched-decode state on one GPU; :meth:`decode` is serialized by a lock.

    ``backend`` is ``"gpu_hybrid"`` (Huffman decoding in CUDA kernels too) or ``"hardware"``
    (the JPEG engines, whose call also waits for the whole device: 0.4 s per 512 frames
    beside I3D training). On both, the batched call writes its output out of stream order
    (``tests/test_gpu.py`` catches it writing memory that queued work still reads; see also
    torchcodec#1634), so the stream is synchronized before the call; on the engines after it
    too (``tests/test_gpu.py`` checks that work queued after a GPU-hybrid call reads its output).
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
        if data.device.type != "cpu" or data.dtype != torch.uint8 or not data.is_contiguous():
            raise ValueError("data must be a contiguous uint8 CPU tensor")
        n = len(lengths)
        sizes = lengths.numpy().astype(np.uint64)
        sources = np.zeros(n, np.uint64)
        np.cumsum(sizes[:-1], out=sources[1:])
        sources += np.uint64(data.data_ptr())
        with self._lock, torch.cuda.device(self.device):
            out = torch.empty(image_bytes(heights, widths), dtype=torch.uint8, device=self.device)
            table = image_table(out.data_ptr(), heights, widths)
            stream = torch.cuda.current_stream(self.device)
            if n != self._batch:
                self._batch = 0
                self._check(
                    "nvjpegDecodeBatchedInitialize",
                    self._lib.nvjpegDecodeBatchedInitialize(self._handle, self._state, n, 1, OUTPUT_RGB),
                )
                self._batch = n
            # nvjpeg's batched call does not keep stream order: it may write `out` (a block that
            # queued work on this stream may still read) before that work ran. Fence it.
            stream.synchronize()
            status = self._lib.nvjpegDecodeBatched(
                self._handle, self._state, sources.ctypes.data, sizes.ctypes.data, table.ctypes.data, stream.cuda_stream
            )
            if status:
                self._batch = 0  # nvjpeg asks for a fresh initialization after a failed batch
                raise NvjpegError("nvjpegDecodeBatched", status)
            if self.backend == "hardware":  # the engines' work is not on `stream` either
                stream.synchronize()
        return out


_decoders: dict[tuple[int, str], BatchedDecoder | None] = {}
_decoders_lock = threading.Lock()


JPEG_BACKENDS = ("gpu_hybrid", "hardware", "torchvision")


def jpeg_backend() -> str:
    """The backend chosen with ``YTFGVC_JPEG_BACKEND`` (default ``gpu_hybrid``; see the module docstring)."""
    backend = os.environ.get("YTFGVC_JPEG_BACKEND", "gpu_hybrid")
    if backend not in JPEG_BACKENDS:
        raise YtfgvcError(
            f"YTFGVC_JPEG_BACKEND={backend!r} is not a JPEG decoding backend",
            f"set it to one of {', '.join(JPEG_BACKENDS)}, or unset it",
        )
    return backend


def batched_decoder(device: torch.device) -> BatchedDecoder | None:
    """The process's decoder for ``device``, made on first use; ``None`` where it cannot be used."""
    device, backend = torch.device(device), jpeg_backend()
    if device.type != "cuda" or backend == "torchvision":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    with _decoders_lock:
        if (index, backend) not in _decoders:
            _decoders[index, backend] = _make(torch.device("cuda", index), backend)
        return _decoders[index, backend]


def _make(device: torch.device, backend: str) -> BatchedDecoder | None:
    library = find_library()
    if library is None:
        log.info("no libnvjpeg found: JPEGs are decoded by torchvision")
        return None
    try:
        return BatchedDecoder(library, device, backend)
    except (OSError, AttributeError, NvjpegError) as e:  # no engines (status 7) on this GPU, or an old library
        log.info("nvjpeg %s decoding unavailable on %s (%s): JPEGs are decoded by torchvision", backend, device, e)
        return None
