"""The ``synthetic`` dataset: a small, offline, genuinely fine-grained video task.

Why it looks the way it does: RRA's claim is that in fine-grained video the evidence is
rare in space *and* time. So every class shows the same "bird" (one brown body, head and
beak); classes differ only in a crest patch on the head (well under 3% of the frame): its
colour (:data:`PALETTE`, 10 colours) and, beyond 10 classes, its pattern. Class ``k`` has
colour ``k mod 10`` and pattern ``solid``, ``ring`` or ``bar`` for ``k // 10`` = 0, 1, 2
(:func:`class_detail`), so with 10 classes or fewer every crest is a solid disc and the
classes differ in colour alone. The bird is on screen during one stretch of each video,
25-35% of its frames by default (drawn uniformly per video; the paper's figure for
YouTube-Birds is about 30%), or exactly ``visible_fraction`` of them when that is set (the
redundancy knob of the dose-response study); elsewhere there is only a textured, slightly
defocused background, filmed by a panning, swaying hand-held camera, with distractor blobs
painted in the very colours of the crests, so neither a colour histogram nor a random frame
answers the question.

``visible_fraction`` changes only the bird's stretch: the stretch of that length is centred
where the default stretch is centred (clipped to the video), and every other random draw
(the video list, the split, the background, the bird's path, the camera) is the one the
default makes, so the videos of two fractions differ only in which frames show the bird.
Left at ``None`` the output is byte for byte the default's (``synth.json`` included).

Videos vary in length (3-30 s), frame rate (10 to 29.97 fps, including NTSC rates) and
size (mostly >= 360p, some portrait). A few are deliberately longer than the card's
``max_duration_s`` or smaller than its ``min_resolution`` so that ``download`` has
something to filter. Everything follows from ``--seed``: the same seed gives the same
lists and the same decoded frames. The defaults (160 videos) come to about 5 MB: flat
content, a smooth camera and x264 settings chosen by measurement (see ``X264_OPTIONS``).

Output, under ``<root>/synthetic/``:

* ``mirror/<id>.mp4``: H.264 (libx264, yuv420p) files, the stand-in for YouTube;
* ``truth/<id>.json``: per frame, whether the bird is visible and where its crest is
  (``[visible, cx, cy, r]`` in source pixels), and the visible stretch
  (``visible_frames``: first, end), for attention studies and tests;
* ``official/``: the three official-format files, then imported like
  ``ytfgvc annotations import``;
* ``synth.json``: the generator's version (``schema``) and the config that made it; a
  different version or config refuses unless ``force``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ytfgvc.config import ConfigBase
from ytfgvc.datasets import get_card
from ytfgvc.datasets.official import ImportResult, import_annotations
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.system.fsutil import atomic_path, write_json_atomic

DATASET = "synthetic"
SCHEMA = "ytfgvc-synth-2"  # the generator's version: bump it whenever the output changes

BODY_BGR = (40, 85, 150)  # brown: used by the bird only, never by background or distractors
BEAK_BGR = (30, 30, 30)
# Crest colours (BGR): saturated hues, also painted on distractors.
PALETTE = [
    (40, 40, 230),
    (30, 200, 250),
    (40, 220, 60),
    (230, 200, 30),
    (230, 60, 40),
    (220, 50, 220),
    (250, 250, 250),
    (160, 100, 255),
    (120, 255, 200),
    (255, 160, 120),
]
PATTERNS = ("solid", "ring", "bar")
FPS_CHOICES = [Fraction(10), Fraction(12), Fraction(15), Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001)]
FPS_WEIGHTS = [3, 3, 2, 1, 1, 1]
SIZE_CHOICES = [(640, 360), (480, 360), (360, 640), (854, 480)]  # (width, height)
SIZE_WEIGHTS = [4, 3, 1, 1]
SMALL_SIZES = [(426, 240), (320, 240)]
VISIBLE_FRACTION = (0.25, 0.35)
CREST_RADIUS = 0.075  # of the short side
# x264, chosen by measuring size, time and crest colour on the decoded defaults (see benchmarks/README.md):
# "veryfast" keeps the defaults under a minute on 2 cores (slower presets were bigger with mbtree
# off); "animation" suits flat, drawn content; qcomp=1 keeps the quantiser nearly constant, where
# the default 0.6 kept re-spending bits on frames that barely change. mbtree off: with it, x264's
# output varied from one run to the next on the same frames.
X264_OPTIONS = {
    "preset": "veryfast",
    "tune": "animation",
    "crf": "34",
    "threads": "1",
    "x264-params": "mbtree=0:qcomp=1",
}
SWAY_PX = 2.0  # hand-held camera: the frame drifts smoothly between random offsets N(0, SWAY_PX) ...
SWAY_PERIOD_S = 0.5  # ... this far apart in time
DEFOCUS_SIGMA = 1.0  # the background is a little out of focus (Gaussian blur, px); the bird is sharp
TOO_LONG_FPS = Fraction(8)


@dataclass
class SynthConfig(ConfigBase):
    """Parameters of ``ytfgvc synth``."""

    classes: int = 10
    videos_per_class: int = 16
    seed: int = 0
    test_fraction: float = 0.31  # Table 2: 5684 / (12666 + 5684)
    too_long_fraction: float = 0.03
    too_small_fraction: float = 0.03
    min_duration_s: float = 3.0
    max_duration_s: float = 30.0
    # The share of each video's frames that show the bird; None: drawn per video in VISIBLE_FRACTION.
    visible_fraction: float | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= len(PALETTE) * len(PATTERNS):
            raise YtfgvcError(f"--classes must be in 2..{len(PALETTE) * len(PATTERNS)}, got {self.classes}")
        if self.videos_per_class < 2:
            raise YtfgvcError(f"--videos-per-class must be at least 2, got {self.videos_per_class}")
        if not 0 < self.test_fraction < 1:
            raise YtfgvcError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0 < self.min_duration_s <= self.max_duration_s:
            raise YtfgvcError("min_duration_s must be positive and at most max_duration_s")
        if self.visible_fraction is not None and not 0 < self.visible_fraction <= 1:
            raise YtfgvcError(f"--visible-fraction must be in (0, 1], got {self.visible_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """The config as recorded in ``synth.json``; ``visible_fraction`` only when set (so the
        default's record, and a dataset made before the knob existed, stay the same)."""
        d = super().to_dict()
        if d.get("visible_fraction") is None:
            d.pop("visible_fraction", None)
        return d


@dataclass
class VideoSpec:
    """Everything needed to render one synthetic video (derived from the seed alone)."""

    video_id: str
    label: int
    index: int
    width: int
    height: int
    fps: Fraction
    num_frames: int
    kind: str  # "normal" | "too_long" | "too_small"

    @property
    def duration_s(self) -> float:
        return float(self.num_frames / self.fps)


@dataclass
class SynthResult:
    root: str
    videos: int
    generated: int
    skipped: int
    too_long: list[str]
    too_small: list[str]
    bytes: int
    seconds: float
    imported: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def class_detail(label: int) -> tuple[tuple[int, int, int], str]:
    """The crest colour (BGR) and pattern that define class ``label``."""
    return PALETTE[label % len(PALETTE)], PATTERNS[(label // len(PALETTE)) % len(PATTERNS)]


def class_name(label: int) -> str:
    colour, pattern = class_detail(label)
    return f"synthetic bird {label:03d} (crest {pattern}, bgr {colour[0]}-{colour[1]}-{colour[2]})"


def _video_id(seed: int, index: int) -> str:
    digest = hashlib.sha256(f"ytfgvc-synth:{seed}:{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def plan_videos(cfg: SynthConfig, max_duration_s: float) -> list[VideoSpec]:
    """The list of videos, fully determined by the config."""
    rng = np.random.default_rng([cfg.seed, 7])
    n = cfg.classes * cfg.videos_per_class
    special = rng.permutation(n)
    n_long = max(1, round(cfg.too_long_fraction * n)) if cfg.too_long_fraction > 0 else 0
    n_small = max(1, round(cfg.too_small_fraction * n)) if cfg.too_small_fraction > 0 else 0
    kinds = {int(i): "too_long" for i in special[:n_long]}
    kinds.update({int(i): "too_small" for i in special[n_long : n_long + n_small]})
    specs = []
    for i in range(n):
        r = np.random.default_rng([cfg.seed, 11, i])
        kind = kinds.get(i, "normal")
        fps = FPS_CHOICES[r.choice(len(FPS_CHOICES), p=np.array(FPS_WEIGHTS) / sum(FPS_WEIGHTS))]
        w, h = SIZE_CHOICES[r.choice(len(SIZE_CHOICES), p=np.array(SIZE_WEIGHTS) / sum(SIZE_WEIGHTS))]
        lo, hi = np.log(cfg.min_duration_s), np.log(cfg.max_duration_s)
        duration = float(np.exp(r.uniform(lo, hi)))
        if kind == "too_long":
            fps, duration = TOO_LONG_FPS, max_duration_s * float(r.uniform(1.1, 1.3))
        elif kind == "too_small":
            w, h = SMALL_SIZES[r.integers(len(SMALL_SIZES))]
        specs.append(
            VideoSpec(
                video_id=_video_id(cfg.seed, i),
                label=i // cfg.videos_per_class,
                index=i,
                width=w,
                height=h,
                fps=fps,
                num_frames=max(8, int(round(duration * fps))),
                kind=kind,
            )
        )
    return specs


def split_videos(specs: list[VideoSpec], cfg: SynthConfig) -> dict[str, list[tuple[str, int]]]:
    """Per class, a seeded shuffle; the first ``test_fraction`` go to test."""
    out: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    for label in range(cfg.classes):
        members = [s for s in specs if s.label == label]
        order = np.random.default_rng([cfg.seed, 13, label]).permutation(len(members))
        n_test = max(1, round(cfg.test_fraction * len(members)))
        for rank, j in enumerate(order):
            out["test" if rank < n_test else "train"].append((members[j].video_id, label))
    rng = np.random.default_rng([cfg.seed, 17])
    for split in out:  # interleave classes, as real lists are
        out[split] = [out[split][k] for k in rng.permutation(len(out[split]))]
    return out


# --------------------------------------------------------------------------- rendering


def _background(r: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth blue-green-grey texture (never brown)."""
    import cv2

    small = r.uniform(0, 1, size=(6, 10, 1)).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    sky = np.array([200, 160, 110], np.float32)  # BGR: bluish
    leaf = np.array([70, 130, 60], np.float32)  # BGR: green
    img = sky * field + leaf * (1 - field)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_crest(img: np.ndarray, c: tuple[int, int], rad: int, colour, pattern: str) -> None:
    import cv2

    if pattern == "solid":
        cv2.circle(img, c, rad, colour, -1, cv2.LINE_AA)
    elif pattern == "ring":
        cv2.circle(img, c, rad, colour, max(2, rad // 3), cv2.LINE_AA)
    else:  # two bars
        t = max(2, rad // 3)
        cv2.rectangle(img, (c[0] - rad, c[1] - rad), (c[0] + rad, c[1] - rad + t), colour, -1)
        cv2.rectangle(img, (c[0] - rad, c[1] + rad - t), (c[0] + rad, c[1] + rad), colour, -1)


def _draw_bird(img: np.ndarray, x: float, y: float, s: float, facing: int, colour, pattern: str) -> list[int]:
    """Body, head, beak, eye and crest; returns ``[1, crest_x, crest_y, crest_r]``."""
    import cv2

    body = (int(x), int(y))
    cv2.ellipse(img, body, (int(0.22 * s), int(0.12 * s)), 0, 0, 360, BODY_BGR, -1, cv2.LINE_AA)
    head = (int(x + facing * 0.22 * s), int(y - 0.10 * s))
    head_r = int(0.09 * s)
    cv2.circle(img, head, head_r, BODY_BGR, -1, cv2.LINE_AA)
    tip = (int(head[0] + facing * 0.17 * s), head[1] + int(0.02 * s))
    pts = np.array(
        [
            [head[0] + facing * head_r // 2, head[1] - head_r // 3],
            tip,
            [head[0] + facing * head_r // 2, head[1] + head_r // 3],
        ],
        np.int32,
    )
    cv2.fillConvexPoly(img, pts, BEAK_BGR, cv2.LINE_AA)
    crest = (head[0] - facing * int(0.02 * s), head[1] - int(0.08 * s))
    rad = max(3, int(CREST_RADIUS * s))
    _draw_crest(img, crest, rad, colour, pattern)
    cv2.circle(img, (head[0] + facing * head_r // 3, head[1]), max(1, head_r // 5), (0, 0, 0), -1)
    return [1, crest[0], crest[1], rad]


def _distractors(r: np.random.Generator, n: int, world_w: int, world_h: int, s: int) -> list[tuple]:
    greys = [(90, 90, 90), (150, 150, 150), (60, 60, 60)]
    colours = PALETTE + greys
    out = []
    for _ in range(n):
        out.append(
            (
                int(r.integers(world_w)),
                int(r.integers(world_h)),
                int(r.uniform(0.04, 0.12) * s),
                colours[int(r.integers(len(colours)))],
                bool(r.random() < 0.5),
            )
        )
    return out


def render_video(spec: VideoSpec, seed: int, out_path: Path, visible_fraction: float | None = None) -> dict[str, Any]:
    """Render and encode one video; returns its truth record."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # threaded OpenCV kernels split rows differently from run to run: keep it seeded
    try:
        return _render_video(spec, seed, out_path, visible_fraction)
    finally:
        cv2.setNumThreads(threads)


def _camera_sway(r: np.random.Generator, n: int, fps: Fraction) -> np.ndarray:
    """Per-frame camera offsets ``(n, 2)`` in px: a smooth drift between random key offsets.

    A smooth drift rather than independent per-frame jitter, which cost a third of the bytes.
    Only +, -, * and / (no sin or exp), so the offsets are the same on every CPU.
    """
    step = max(1, round(float(fps) * SWAY_PERIOD_S))
    keys = r.normal(0, SWAY_PX, size=(n // step + 2, 2))
    k = np.arange(n) // step
    u = (np.arange(n) % step) / step
    u = u * u * (3 - 2 * u)  # smoothstep: no jolt at the key offsets
    return keys[k] + (keys[k + 1] - keys[k]) * u[:, None]


def visible_span(n: int, default: tuple[int, int], fraction: float | None) -> tuple[int, int]:
    """The frames ``[start, end)`` that show the bird: ``default``, or ``fraction`` of the ``n``
    frames (at least 2) centred on the default stretch's centre and shifted inside the video."""
    if fraction is None:
        return default
    length = min(n, max(2, int(round(fraction * n))))
    centre = (default[0] + default[1]) / 2
    start = int(np.floor(centre - length / 2))
    start = min(max(0, start), n - length)
    return start, start + length


def _frames(
    spec: VideoSpec, seed: int, visible_fraction: float | None = None
) -> tuple[tuple[int, int], Iterator[tuple[np.ndarray, list[int]]]]:
    """The video's frames before encoding: ``(visible span, iterator of (BGR frame, truth row))``."""
    import cv2

    r = np.random.default_rng([seed, 23, spec.index])
    w, h, n = spec.width, spec.height, spec.num_frames
    s = min(w, h)
    pan = np.array([r.uniform(-0.6, 0.6), r.uniform(-0.15, 0.15)]) * s  # camera travel over the video
    margin_x, margin_y = int(abs(pan[0])) + 8, int(abs(pan[1])) + 8
    world = _background(r, h + 2 * margin_y, w + 2 * margin_x)
    blobs = _distractors(r, int(r.integers(4, 9)), world.shape[1], world.shape[0], s)
    for bx, by, br, col, square in blobs:  # distractors are part of the scene: they pan with it
        if square:
            cv2.rectangle(world, (bx - br, by - br), (bx + br, by + br), col, -1)
        else:
            cv2.circle(world, (bx, by), br, col, -1, cv2.LINE_AA)
    world = cv2.GaussianBlur(world, (0, 0), DEFOCUS_SIGMA)
    frac = r.uniform(*VISIBLE_FRACTION)
    vis_len = max(2, int(round(frac * n)))
    vis_start = int(r.integers(0, n - vis_len + 1))
    # The knob replaces the stretch after the default's draws, so every later draw is unchanged.
    vis_start, vis_end = visible_span(n, (vis_start, vis_start + vis_len), visible_fraction)
    vis_len = vis_end - vis_start
    colour, pattern = class_detail(spec.label)
    scale = s * r.uniform(0.9, 1.15)
    facing = 1 if r.random() < 0.5 else -1
    p0 = np.array([r.uniform(0.3, 0.7) * w, r.uniform(0.35, 0.65) * h])
    p1 = p0 + np.array([r.uniform(-0.15, 0.15) * w, r.uniform(-0.1, 0.1) * h])
    shake = _camera_sway(r, n, spec.fps)

    def frames() -> Iterator[tuple[np.ndarray, list[int]]]:
        for t in range(n):
            u = t / max(1, n - 1)
            ox = int(margin_x + pan[0] * (u - 0.5) + shake[t, 0])
            oy = int(margin_y + pan[1] * (u - 0.5) + shake[t, 1])
            img = world[oy : oy + h, ox : ox + w].copy()
            if vis_start <= t < vis_start + vis_len:
                v = (t - vis_start) / max(1, vis_len - 1)
                x, y = p0 + (p1 - p0) * v
                yield img, _draw_bird(img, x, y, scale, facing, colour, pattern)
            else:
                yield img, [0, 0, 0, 0]

    return (vis_start, vis_start + vis_len), frames()


def _render_video(spec: VideoSpec, seed: int, out_path: Path, visible_fraction: float | None) -> dict[str, Any]:
    import av
    import cv2

    visible, frames = _frames(spec, seed, visible_fraction)
    frames_truth = []
    with av.open(str(out_path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = dict(X264_OPTIONS)
        stream.codec_context.thread_count = 1
        for img, row in frames:
            frames_truth.append(row)
            # Convert with OpenCV rather than swscale: swscale's result depends on the buffer's
            # memory alignment, which would make "same seed, same frames" false.
            yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return {
        "schema": SCHEMA,
        "id": spec.video_id,
        "label": spec.label,
        "width": spec.width,
        "height": spec.height,
        "fps": str(spec.fps),
        "num_frames": spec.num_frames,
        "kind": spec.kind,
        "visible_frames": list(visible),
        "frames": frames_truth,
        "frame_fields": ["visible", "crest_x", "crest_y", "crest_r"],
    }


def _render_one(args: tuple[VideoSpec, int, str, float | None]) -> int:
    spec, seed, root, visible_fraction = args
    layout = DatasetLayout(Path(root), DATASET)
    with atomic_path(layout.mirror_video(spec.video_id)) as tmp:
        truth = render_video(spec, seed, tmp, visible_fraction)
        write_json_atomic(layout.truth_path(spec.video_id), truth, indent=None)
    return layout.mirror_video(spec.video_id).stat().st_size


def _check_previous(layout: DatasetLayout, cfg: SynthConfig, force: bool) -> None:
    """Return if ``layout`` may be resumed with ``cfg``; else refuse, or with ``force`` delete it."""
    record = layout.base / "synth.json"
    if record.is_file():
        made = json.loads(record.read_text())
        old, generator = made.get("config"), made.get("schema")
        if old == cfg.to_dict() and generator == SCHEMA:
            return
        newer = "" if generator == SCHEMA else f"; this version's generator is {SCHEMA}"
        problem = f"{layout.base} was generated with a different config (generator {generator}, {old}{newer})"
    elif layout.mirror_dir.is_dir() and any(layout.mirror_dir.glob("*.mp4")):
        problem = f"{layout.mirror_dir} holds videos but no record of the generator and config that made them"
    else:
        return
    if not force:
        raise YtfgvcError(
            problem, "pass --force to delete the synthetic dataset and everything made from it, then regenerate"
        )
    shutil.rmtree(layout.base)


def generate(
    root: Path, cfg: SynthConfig | None = None, jobs: int = 0, force: bool = False, progress: bool = False
) -> SynthResult:
    """Generate the synthetic dataset under ``root`` and import its lists; resumable and idempotent."""
    import os

    cfg = cfg or SynthConfig()
    t0 = time.perf_counter()
    card = get_card(DATASET)
    layout = DatasetLayout(root, DATASET)
    _check_previous(layout, cfg, force)
    layout.base.mkdir(parents=True, exist_ok=True)
    # Recorded first: a killed run is resumed only by the same generator and config.
    write_json_atomic(layout.base / "synth.json", {"schema": SCHEMA, "config": cfg.to_dict()})
    specs = plan_videos(cfg, card.filters.max_duration_s)
    layout.mirror_dir.mkdir(parents=True, exist_ok=True)
    layout.truth_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        s for s in specs if not layout.mirror_video(s.video_id).is_file() or not layout.truth_path(s.video_id).is_file()
    ]
    jobs = jobs or min(len(todo), os.cpu_count() or 1) or 1
    work = [(s, cfg.seed, str(root), cfg.visible_fraction) for s in todo]
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(work), desc="synth", unit="video")
    else:
        bar = None
    if jobs <= 1:
        for w in work:
            _render_one(w)
            bar and bar.update()
    else:
        # forkserver: a forked child inherits OpenCV's thread pool in an unusable state.
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("forkserver")) as pool:
            for _ in pool.map(_render_one, work, chunksize=1):
                bar and bar.update()
    bar and bar.close()

    splits = split_videos(specs, cfg)
    official = layout.base / "official"
    names = card.official_files
    official.mkdir(parents=True, exist_ok=True)
    write_json_atomic(official / names.train, [list(p) for p in splits["train"]], indent=None)
    write_json_atomic(official / names.test, [list(p) for p in splits["test"]], indent=None)
    write_json_atomic(official / names.labels, {str(k): class_name(k) for k in range(cfg.classes)})
    imported: ImportResult = import_annotations(root, DATASET, official, force=True)
    total = sum(layout.mirror_video(s.video_id).stat().st_size for s in specs)
    return SynthResult(
        root=str(layout.base),
        videos=len(specs),
        generated=len(todo),
        skipped=len(specs) - len(todo),
        too_long=[s.video_id for s in specs if s.kind == "too_long"],
        too_small=[s.video_id for s in specs if s.kind == "too_small"],
        bytes=total,
        seconds=round(time.perf_counter() - t0, 2),
        imported=imported.to_dict(),
    )
