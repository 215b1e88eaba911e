"""Tiny videos for the prepare tests, made with PyAV in the test (lossless where content is checked)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ytfgvc.prepare.config import VideoSettings
from ytfgvc.prepare.video import VideoJob, VideoResult, prepare_video

LOSSLESS = {"qp": "0", "preset": "ultrafast"}


def level(i: int) -> int:
    """The grey level of native frame ``i`` in :func:`index_frames` (neighbours differ by 23)."""
    return 16 + (i * 23) % 224


def index_frames(n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    """``n`` uniform BGR frames whose grey level tells their native index."""
    return [np.full((h, w, 3), level(i), np.uint8) for i in range(n)]


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random grey texture with strong gradients (good for optical flow)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(h // 6 + 2, w // 6 + 2)).astype(np.float32)
    big = cv2.resize(small, (w + 12, h + 12), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[6 : 6 + h, 6 : 6 + w], 0, 255).astype(np.uint8)


def panning_frames(n: int, h: int, w: int, dx: int, seed: int = 0) -> list[np.ndarray]:
    """BGR frames of a texture whose content moves ``dx`` pixels to the right per frame."""
    world = texture(h, w + abs(dx) * n + 8, seed)
    out = []
    for i in range(n):
        x0 = (abs(dx) * n + 4) - dx * i if dx > 0 else 4 - dx * i
        out.append(np.repeat(world[:, x0 : x0 + w, None], 3, axis=2))
    return out


def encode(
    path: Path,
    frames: list[np.ndarray],
    fps: float | Fraction = 10,
    *,
    times_ms: list[int] | None = None,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    container_options: dict | None = None,
) -> Path:
    """Encode BGR ``frames``; ``times_ms`` gives each frame's pts (variable frame rate)."""
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        s.options = dict(LOSSLESS if options is None and codec == "libx264" else options or {})
        if times_ms is not None:
            s.codec_context.time_base = Fraction(1, 1000)
            s.time_base = Fraction(1, 1000)
        if rotation is not None or hflip:
            s.set_display_rotation(rotation or 0, hflip=hflip)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def run_video(tmp: Path, src: Path, **settings) -> tuple[VideoResult, Path, Path]:
    """Prepare one video into ``tmp/frames`` (and ``tmp/flow`` when ``flow=True``)."""
    base = {
        "sample_fps": 4.0,
        "short_side": 256,
        "jpeg_quality": 95,
        "flow_backend": "opencv",
        "flow_format": "jpg",
        "flow_stack": 5,
        "flow_params": {},
    }
    flow = settings.pop("flow", False)
    base.update(settings)
    frames, flow_dir = tmp / "frames" / src.stem, tmp / "flow" / src.stem
    job = VideoJob(src.stem, str(src), str(frames), str(flow_dir), VideoSettings(**base), write_flow=flow)
    return prepare_video(job), frames, flow_dir


def read_jpeg(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return img


def die_on_some(job: VideoJob) -> VideoResult:
    """A worker function that kills its process for ids starting with ``die`` (a crashing decoder)."""
    import os

    if job.video_id.startswith("die"):
        os._exit(3)
    return prepare_video(job)


def faststart_copy(src: Path, dest: Path) -> Path:
    """``ffmpeg -i src -c copy -movflags faststart dest`` with PyAV (no ffmpeg CLI needed): the index comes first."""
    import av

    with av.open(str(src)) as inp, av.open(str(dest), "w", format="mp4", options={"movflags": "faststart"}) as out:
        stream = inp.streams.video[0]
        add = getattr(out, "add_stream_from_template", None)  # PyAV >= 13; before, add_stream(template=)
        copy = add(stream) if add else out.add_stream(template=stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:  # the flush packet
                packet.stream = copy
                out.mux(packet)
    return dest
