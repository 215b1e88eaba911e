"""Optical flow: ONE backend registry, the OpenCV TV-L1 backend, and ONE on-disk encoding.

Backends
--------
A backend is registered by name and built with its own parameters::

    @register_flow_backend("mine")
    class MyFlow(FlowBackend):
        def compute(self, prev, next): ...

    backend = get_flow_backend("opencv", warps=3)
    flow = backend.compute(prev, next)   # (N, H, W) uint8 grey  ->  (N, H, W, 2) float32

Every backend implements the same batched call: ``prev`` and ``next`` are ``(N, H, W)``
``uint8`` greyscale stacks of the same shape; the result is ``(N, H, W, 2)`` ``float32``,
channel 0 the horizontal and channel 1 the vertical displacement in pixels, such that
``prev[y, x]`` moved to ``next[y + v, x + u]``. ``backend.params`` is the resolved
parameter set (recorded in each video's flow ``meta.json``); ``backend.batch_size`` is
how many pairs the caller should hand over at once (1 suits OpenCV, a GPU wants more).

Built-in backends: ``opencv`` (``cv2.optflow.DualTVL1OpticalFlow`` from
opencv-contrib, OpenCV's parameter names and defaults) and ``torch`` (module
``ytfgvc.prepare.tvl1_torch``, imported on first use when present).

On disk
-------
``jpg`` (the default): each field is two single-channel JPEGs, ``flow_x_*.jpg`` and
``flow_y_*.jpg``. A displacement ``f`` in pixels is clamped to ``[-20, 20]`` and mapped
linearly, with 128 meaning "no motion"::

    q = clip(rint(128 + f * 128 / 20), 0, 255)         # encode; uint8, rint rounds half to even
    f = (q - 128) * 20 / 128                           # decode; 0.15625 px per step

so -20 px -> 0, 0 -> 128, +19.84 px -> 255 (+20 also saturates at 255). Before JPEG
compression the round trip is exact to half a step (0.078 px) inside the bound; JPEG
(quality :data:`FLOW_JPEG_QUALITY`) adds its own error on top.

``npy`` (lossless option): ``flow_x_*.npy`` / ``flow_y_*.npy``, ``(H, W)`` ``float16``
in pixels, not clamped (float16 keeps ~3 significant digits: < 0.008 px below 16 px).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.config import did_you_mean
from ytfgvc.errors import YtfgvcError
from ytfgvc.registry import Registry

FLOW_BOUND = 20.0
FLOW_STILL = 128
FLOW_FORMATS = ("jpg", "npy")
FLOW_JPEG_QUALITY = 95
_SCALE = FLOW_STILL / FLOW_BOUND  # 6.4 codes per pixel

BACKENDS = Registry("flow backend", builtin=["ytfgvc.prepare.tvl1_torch"], hint="available here")
# Modules that register backends when imported; missing ones are skipped.


class FlowBackend:
    """Base of flow backends: subclasses set ``name`` and implement :meth:`compute`."""

    name = ""
    batch_size = 1

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """The resolved parameters (defaults filled in), as recorded in ``meta.json``."""
        return dict(self._params)

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:  # noqa: A002 (the documented name)
        """Flow from each ``prev[i]`` to ``next[i]``.

        Args:
            prev: ``(N, H, W)`` uint8 greyscale frames.
            next: the frames that follow, same shape.

        Returns:
            ``(N, H, W, 2)`` float32 displacements in pixels (x, then y).
        """
        raise NotImplementedError


_WORKER_INDEX: int | None = None


def set_worker_index(index: int | None) -> None:
    """Called by each worker process of ``prepare`` (0, 1, …): GPU backends spread over GPUs by it."""
    global _WORKER_INDEX
    _WORKER_INDEX = index


def current_worker_index() -> int | None:
    return _WORKER_INDEX


def register_flow_backend(name: str) -> Callable:
    """Decorator: register a backend factory (usually a :class:`FlowBackend` subclass) under ``name``."""
    return BACKENDS.register(name)


def list_flow_backends() -> list[str]:
    return BACKENDS.names()


def get_flow_backend(name: str, **params: Any) -> FlowBackend:
    """Build backend ``name`` with ``params``; an unknown name gets a "did you mean"."""
    return BACKENDS.get(name)(**params)


def check_params(backend: str, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated with ``params``; unknown names and wrong types raise, naming ``--flow-param``."""
    out = dict(defaults)
    for key, value in params.items():
        if key not in defaults:
            raise YtfgvcError(
                f"--flow-param: {backend} has no parameter {key!r}{did_you_mean(key, defaults)}",
                f"its parameters: {', '.join(defaults)}",
            )
        kind = type(defaults[key])
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind:
            raise YtfgvcError(f"--flow-param: {key} must be {kind.__name__}, got {value!r}")
        out[key] = value
    return out


# OpenCV's own names and defaults (cv::optflow::DualTVL1OpticalFlow::create; the
# misspelt "innnerIterations" is OpenCV's). A test checks them against a fresh instance.
OPENCV_TVL1_DEFAULTS: dict[str, Any] = {
    "tau": 0.25,
    "lambda_": 0.15,
    "theta": 0.3,
    "nscales": 5,
    "warps": 5,
    "epsilon": 0.01,
    "innnerIterations": 30,
    "outerIterations": 10,
    "scaleStep": 0.8,
    "gamma": 0.0,
    "medianFiltering": 5,
    "useInitialFlow": False,
}


@register_flow_backend("opencv")
class OpenCVTVL1(FlowBackend):
    """TV-L1 (Zach et al. 2007) as implemented by ``cv2.optflow.DualTVL1OpticalFlow``.

    Runs on the CPU with OpenCV's thread pool (``cv2.setNumThreads``). With
    ``useInitialFlow=True`` each pair of a batch starts from the previous pair's result
    (the first from zero).
    """

    name = "opencv"
    batch_size = 1

    def __init__(self, **params: Any) -> None:
        import cv2

        if not hasattr(cv2, "optflow"):
            raise YtfgvcError(
                "OpenCV TV-L1 needs the contrib modules (cv2.optflow)",
                "pip install opencv-contrib-python-headless (and uninstall opencv-python)",
            )
        super().__init__(**check_params(self.name, params, OPENCV_TVL1_DEFAULTS))
        self._tvl1 = cv2.optflow.DualTVL1OpticalFlow_create(**self._params)

    def compute(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:  # noqa: A002
        check_pair_batch(prev, next)
        out = np.empty((*prev.shape, 2), np.float32)
        init = None
        for i in range(len(prev)):
            if self._params["useInitialFlow"]:
                init = np.zeros_like(out[i]) if init is None else init.copy()
            init = self._tvl1.calc(prev[i], next[i], init)
            out[i] = init
        return out


def check_pair_batch(prev: np.ndarray, next: np.ndarray) -> None:  # noqa: A002
    """Raise unless ``prev`` and ``next`` are equal-shaped ``(N, H, W)`` uint8 stacks."""
    for what, a in (("prev", prev), ("next", next)):
        if not isinstance(a, np.ndarray) or a.ndim != 3 or a.dtype != np.uint8:
            raise ValueError(f"{what}: expected an (N, H, W) uint8 array, got {getattr(a, 'shape', a)!r}")
    if prev.shape != next.shape:
        raise ValueError(f"prev and next differ in shape: {prev.shape} vs {next.shape}")


# --------------------------------------------------------------------------- on-disk encoding


def encode_flow(field: np.ndarray) -> np.ndarray:
    """Pixels -> uint8 codes: clamp to +-20 px, ``q = round(128 + f * 6.4)``, clip to 0..255."""
    q = np.rint(FLOW_STILL + np.clip(field, -FLOW_BOUND, FLOW_BOUND) * _SCALE)
    return np.clip(q, 0, 255).astype(np.uint8)


def decode_flow(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> pixels: ``f = (q - 128) * 20 / 128`` (float32)."""
    return (codes.astype(np.float32) - FLOW_STILL) / np.float32(_SCALE)


def encode_flow_files(flow: np.ndarray, fmt: str) -> tuple[bytes, bytes]:
    """The bytes of ``flow_x`` and ``flow_y`` for one ``(H, W, 2)`` field in format ``fmt``."""
    if fmt == "jpg":
        import cv2

        out = []
        for c in (0, 1):
            ok, buf = cv2.imencode(".jpg", encode_flow(flow[..., c]), [cv2.IMWRITE_JPEG_QUALITY, FLOW_JPEG_QUALITY])
            if not ok:
                raise RuntimeError("cv2.imencode failed on a flow field")
            out.append(buf.tobytes())
        return out[0], out[1]
    if fmt == "npy":
        import io

        out = []
        for c in (0, 1):
            b = io.BytesIO()
            np.save(b, np.ascontiguousarray(flow[..., c], dtype=np.float16))
            out.append(b.getvalue())
        return out[0], out[1]
    raise ValueError(f"unknown flow format {fmt!r}; use one of {', '.join(FLOW_FORMATS)}")


def read_flow(x_path: Path, y_path: Path) -> np.ndarray:
    """Read one field written by ytfgvc (``.jpg`` or ``.npy``) back to ``(H, W, 2)`` float32 pixels."""
    x_path, y_path = Path(x_path), Path(y_path)
    if x_path.suffix == ".npy":
        return np.stack([np.load(x_path), np.load(y_path)], axis=-1).astype(np.float32)
    import cv2

    planes = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (x_path, y_path)]
    for p, a in zip((x_path, y_path), planes, strict=True):
        if a is None:
            raise YtfgvcError(f"cannot read flow image {p}")
    return np.stack([decode_flow(a) for a in planes], axis=-1)
