"""One video, decoded once: its kept frames as JPEG and, optionally, its flow stacks.

``frames/<id>/`` holds ``img_00001.jpg …`` (1-based; MMAction2 ``filename_tmpl=
'img_{:05d}.jpg'``, ``start_index=1``) and ``meta.json`` (schema ``ytfgvc-frames-1``):

* ``source``: file, container, codec, native ``width``/``height``, ``fps`` (average, as
  a fraction and a float), ``native_frames`` decoded, ``duration_s``, ``start_time_s``,
  display orientation applied (``rotation_ccw``, ``mirror``), ``dropped_out_of_order``;
* ``sample_fps``, ``rule`` (see :mod:`ytfgvc.prepare.resample`), ``num_frames``,
  ``width``/``height`` (as written, display orientation), ``short_side``, ``jpeg_quality``;
* ``timestamps`` (seconds from the first decoded frame) and ``native_index`` (0-based
  decode order) of every kept frame, in file order;
* ``decoder``: PyAV, libav* and OpenCV versions, resizing method, ytfgvc version.

``flow/<id>/`` holds the flow files described in :mod:`ytfgvc.prepare.flowstack` and
``meta.json`` (schema ``ytfgvc-flow-1``): backend and parameters, format and encoding,
stack length, numbering, and per stack the native pairs each file holds.

Frames are converted (swscale, area averaging, straight to the output size) only when kept
or needed for flow; the rest are decoded and dropped. Display matrices are applied as
ffmpeg's CLI applies them, after resizing.
"""

from __future__ import annotations

import datetime as _dt
import time
import traceback
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc import __version__
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare.config import VideoSettings
from ytfgvc.prepare.resample import (
    FrameSelector,
    display_matrix_orientation,
    orient,
    rotate_tag_orientation,
    target_size,
)
from ytfgvc.store import Destination, Sink, open_sink
from ytfgvc.system.fserrors import is_disk_full
from ytfgvc.system.lifeline import ensure_main_alive

FRAMES_SCHEMA = "ytfgvc-frames-1"
FLOW_SCHEMA = "ytfgvc-flow-1"
RULE = "kept frame k (1-based) is the latest decoded frame at or before (k - 1) / sample_fps s after the first one"
# A file whose frames stop this much short of its declared duration is reported as truncated.
TRUNCATION_TOLERANCE_S = 1.0
TRUNCATION_TOLERANCE_FRACTION = 0.05


class VideoError(Exception):
    """A problem with one video (reported in the summary; the batch goes on)."""


@dataclass
class VideoJob:
    """What to make for one video (plain data: it crosses process boundaries).

    ``frames_dir``/``flow_dir`` are the video's folders, ``frames_archive``/``flow_archive``
    its archives (:class:`ytfgvc.layout.DatasetLayout` names both); ``store`` says which is
    written, and the other copy, if any, is removed (:mod:`ytfgvc.store.sink`).
    """

    video_id: str
    src: str
    frames_dir: str
    flow_dir: str
    settings: VideoSettings  # PrepareConfig.video_settings()
    write_frames: bool = True
    write_flow: bool = False
    expect_native: list[int] | None = None  # kept native indices already on disk (frames or flow)
    store: str = "folder"
    frames_archive: str | None = None
    flow_archive: str | None = None

    def destination(self, kind: str) -> Destination:
        """Where this video's ``frames`` or ``flow`` go."""
        if kind == "frames":
            folder, archive = self.frames_dir, self.frames_archive
        else:
            folder, archive = self.flow_dir, self.flow_archive
        return Destination(self.store, Path(folder), Path(archive) if archive else None)


@dataclass
class VideoResult:
    video_id: str
    error: str | None = None
    frames: int = 0
    native_frames: int = 0
    flow_pairs: int = 0
    wrote_frames: bool = False
    wrote_flow: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decoder_versions() -> dict[str, str]:
    import av
    import cv2

    libs = {k: ".".join(map(str, v)) for k, v in av.library_versions.items() if k in ("libavcodec", "libavformat")}
    return {"library": "PyAV", "pyav": av.__version__, **libs, "opencv": cv2.__version__, "ytfgvc": __version__}


def prepare_video(job: VideoJob) -> VideoResult:
    """Decode ``job.src`` once and write what ``job`` asks for; never raises for a bad video."""
    import av

    t0 = time.perf_counter()
    result = VideoResult(job.video_id)
    try:
        _run(job, result)
    except VideoError as e:
        result.error = str(e)
    except av.error.FFmpegError as e:
        if is_disk_full(e):
            raise
        result.error = f"corrupt: {e}"
    except Exception as e:  # a bug, or an input nobody foresaw: report it, keep the batch going
        if is_disk_full(e):  # not this video's fault: the batch stops (ytfgvc.prepare.batch)
            raise
        where = traceback.extract_tb(e.__traceback__)[-1]
        result.error = f"internal error {type(e).__name__}: {e} ({Path(where.filename).name}:{where.lineno})"
    result.seconds = time.perf_counter() - t0
    return result


def _video_stream(container):
    import av

    cover = av.stream.Disposition.attached_pic
    streams = [s for s in container.streams.video if not s.disposition & cover]
    if not streams:
        raise VideoError("no video stream")
    return streams[0]


def _side_data(frame):
    """``(type, data)`` pairs: PyAV < 19 iterates SideData objects, PyAV 19 maps types to them."""
    sdata = frame.side_data
    for item in sdata:
        yield (item.type, item) if hasattr(item, "type") else (item, sdata[item])


def _orientation(frame, stream) -> tuple[int, bool]:
    for kind, sd in _side_data(frame):
        if "DISPLAYMATRIX" in str(kind).upper():
            return display_matrix_orientation(np.frombuffer(bytes(sd), dtype=np.int32)[:9])
    tag = stream.metadata.get("rotate")
    if tag and tag.lstrip("-").isdigit():
        return rotate_tag_orientation(int(tag))
    return 0, False


def _open_container(av, src: str):
    """``av.open`` that tolerates undecodable metadata strings (PyAV < 19 needs asking; 19 dropped the option)."""
    try:
        return av.open(src, metadata_errors="ignore")
    except TypeError:
        return av.open(src)


def _run(job: VideoJob, result: VideoResult) -> None:
    import av

    cfg = job.settings
    with ExitStack() as stack:
        container = stack.enter_context(_open_container(av, job.src))
        stream = _video_stream(container)
        stream.thread_type = "AUTO"
        frames_sink = stack.enter_context(open_sink(job.destination("frames"))) if job.write_frames else None
        flow_sink = stack.enter_context(open_sink(job.destination("flow"))) if job.write_flow else None
        dec = _Decode(job, stream, frames_sink, flow_sink)
        for frame in container.decode(stream):
            dec.push(frame)
        dec.finish(container)
        result.frames, result.native_frames = len(dec.kept), dec.n
        if dec.flow is not None:
            result.flow_pairs = dec.flow.pairs_computed
        if job.expect_native is not None and dec.native_index() != job.expect_native:
            raise VideoError(
                "decodes to other frames than those already on disk (different PyAV/FFmpeg?); "
                "rerun with --force to redo this video"
            )
        if dec.selector.dropped:
            result.warnings.append(f"{dec.selector.dropped} frames with out-of-order timestamps dropped")
        meta = dec.frames_meta(container, cfg)
        if frames_sink is not None:
            frames_sink.finish(meta)
            result.wrote_frames = True
        if flow_sink is not None:
            flow_sink.finish(dec.flow_meta(meta, cfg))
            result.wrote_flow = True
        ensure_main_alive()  # a worker whose main process died writes nothing more (see ytfgvc.system.lifeline)
        # Leaving the ExitStack renames the flow (folder or archive), then the frames, into place.


class _Decode:
    """State of one decode: selection, conversion, JPEG writing and the flow writer."""

    def __init__(self, job: VideoJob, stream, frames: Sink | None, flow: Sink | None) -> None:
        self.job, self.stream, self.cfg = job, stream, job.settings
        self.frames_sink, self.flow_sink = frames, flow
        self.selector = FrameSelector(Fraction(str(self.cfg.sample_fps)))
        self.n = 0  # native frames accepted so far
        self.first_t: Fraction | None = None
        self.last_t = Fraction(0)
        self.prev = None  # (native index, av frame, time from the first frame)
        self.kept: list[tuple[int, Fraction]] = []  # (native index, time) per kept frame
        self.size: tuple[int, int] | None = None  # (w, h) before orientation
        self.orientation = (0, False)
        self.flow = None
        self._last_jpeg: tuple[int, bytes] | None = None

    # -- per frame
    def push(self, frame) -> None:
        if frame.pts is None:
            t = self.last_t + (1 / Fraction(self.stream.average_rate or 25))
        else:
            t = Fraction(frame.pts) * self.stream.time_base
        if self.first_t is None:
            self._start(frame, t)
        rel = t - self.first_t
        decided = self.selector.push(self.n, rel)
        if self.selector.prev is None or self.selector.prev[0] != self.n:
            return  # dropped: its time went backwards
        for k, native in decided:
            self._keep(k, native)
        self.prev = (self.n, frame, rel)
        if self.flow is not None and self.flow.wants(self.n):
            self.flow.add_grey(self.n, rel, self._grey(frame))
        self.n += 1
        self.last_t = t

    def _start(self, frame, t: Fraction) -> None:
        self.first_t = t
        cfg = self.cfg
        self.size = target_size(frame.width, frame.height, cfg.short_side, self.stream.sample_aspect_ratio)
        self.orientation = _orientation(frame, self.stream)
        if self.flow_sink is not None:
            from ytfgvc.prepare.flow import get_flow_backend
            from ytfgvc.prepare.flowstack import FlowStackWriter

            w, h = self.size
            shape = (w, h) if self.orientation[0] in (90, 270) else (h, w)
            backend = get_flow_backend(cfg.flow_backend, **cfg.flow_params)
            self.flow = FlowStackWriter(self.flow_sink, backend, cfg.flow_stack, cfg.flow_format, shape)

    def _bgr(self, frame) -> np.ndarray:
        w, h = self.size
        img = frame.reformat(width=w, height=h, format="bgr24", interpolation="AREA").to_ndarray()
        return orient(img, *self.orientation)

    def _grey(self, frame) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self._bgr(frame), cv2.COLOR_BGR2GRAY)

    def _keep(self, k: int, native: int) -> None:
        idx, frame, t = self.prev
        assert idx == native, "the selector decides only for the previous frame"
        self.kept.append((native, t))
        if self.frames_sink is not None:
            self._write_jpeg(k + 1, native, frame)
        if self.flow is not None:
            self.flow.add_stack(k + 1, native)
            if self.flow.wants(native):
                self.flow.add_grey(native, t, self._grey(frame))

    def _write_jpeg(self, number: int, native: int, frame) -> None:
        import cv2

        if self._last_jpeg is None or self._last_jpeg[0] != native:
            ok, buf = cv2.imencode(".jpg", self._bgr(frame), [cv2.IMWRITE_JPEG_QUALITY, self.cfg.jpeg_quality])
            if not ok:
                raise RuntimeError("cv2.imencode failed")
            self._last_jpeg = (native, buf.tobytes())
        self.frames_sink.add(DatasetLayout.frame_name(number), self._last_jpeg[1])

    def finish(self, container) -> None:
        if self.first_t is None:
            raise VideoError("no frames decoded")
        for k, native in self.selector.finish():
            self._keep(k, native)
        self._check_complete(container)
        if self.flow is not None:
            self.flow.finish()

    def _check_complete(self, container) -> None:
        """Raise if the frames stop well short of the duration the container declares."""
        tb = self.stream.time_base
        if self.stream.duration:
            declared = float(self.stream.duration * tb)
            start = float(self.stream.start_time * tb) if self.stream.start_time is not None else float(self.first_t)
        elif container.duration:
            declared, start = container.duration / 1e6, (container.start_time or 0) / 1e6
        else:
            return
        rate = self.stream.average_rate or self.stream.guessed_rate
        decoded = float(self.last_t) + (1 / float(rate) if rate else 0.0) - start
        if declared - decoded > max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared):
            raise VideoError(f"truncated: frames stop at {decoded:.2f} s of {declared:.2f} s declared")

    # -- records
    def native_index(self) -> list[int]:
        return [i for i, _ in self.kept]

    def frames_meta(self, container, cfg: dict[str, Any]) -> dict[str, Any]:
        s = self.stream
        w, h = self.size
        rot, mirror = self.orientation
        if rot in (90, 270):
            w, h = h, w
        rate = s.average_rate or s.guessed_rate
        return {
            "schema": FRAMES_SCHEMA,
            "id": self.job.video_id,
            "source": {
                "file": Path(self.job.src).name,
                "bytes": Path(self.job.src).stat().st_size,
                "container": container.format.name,
                "codec": s.codec_context.name,
                "width": s.codec_context.width,
                "height": s.codec_context.height,
                "sample_aspect_ratio": str(s.sample_aspect_ratio or 1),
                "rotation_ccw": rot,
                "mirror": mirror,
                "fps": str(rate) if rate else None,
                "fps_float": round(float(rate), 6) if rate else None,
                "native_frames": self.n,
                "duration_s": round(float(self.last_t - self.first_t), 6),
                "start_time_s": round(float(self.first_t), 6),
                "dropped_out_of_order": self.selector.dropped,
            },
            "sample_fps": cfg.sample_fps,
            "rule": RULE,
            "num_frames": len(self.kept),
            "width": w,
            "height": h,
            "short_side": cfg.short_side,
            "jpeg_quality": cfg.jpeg_quality,
            "filename_tmpl": "img_{:05d}.jpg",
            "start_index": 1,
            "timestamps": [round(float(t), 6) for _, t in self.kept],
            "native_index": self.native_index(),
            "decoder": {
                **decoder_versions(),
                "threads": "auto (frame and slice)",
                "resize": "swscale area, then display matrix",
            },
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def flow_meta(self, frames_meta: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
        from ytfgvc.prepare.flow import FLOW_BOUND, FLOW_JPEG_QUALITY

        L = cfg.flow_stack
        return {
            "schema": FLOW_SCHEMA,
            "id": self.job.video_id,
            "backend": self.flow.backend.name,
            "params": self.flow.backend.params,
            "format": cfg.flow_format,
            "bound": FLOW_BOUND,
            "encoding": (
                "jpg: q = clip(rint(128 + f * 128 / 20), 0, 255), f = (q - 128) * 20 / 128; npy: float16 pixels"
            ),
            "jpeg_quality": FLOW_JPEG_QUALITY if cfg.flow_format == "jpg" else None,
            "stack": L,
            "numbering": f"field j (1..{L}) of kept frame k (1-based) is file n = (k - 1) * {L} + j",
            "filename_tmpl": "flow_{}_{:05d}." + cfg.flow_format,
            "num_stacks": len(self.kept),
            "num_files": len(self.kept) * L,
            "width": frames_meta["width"],
            "height": frames_meta["height"],
            "sample_fps": cfg.sample_fps,
            "native_frames": self.n,
            "stacks": self.flow.meta(),
            "decoder": frames_meta["decoder"],
            "created": frames_meta["created"],
        }
