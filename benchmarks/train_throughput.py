"""Training and test throughput in steady state: the full pipeline from JPEG frames on disk vs the model alone.

For each method (its ``paper`` preset: backbone, input size, frames; bf16 and channels-last
on GPU) and each path (``train``: optimizer steps, clips/s; ``test``: the test protocol,
25 segments x 10 crops for TSN/RRA, the middle frame or clip for BN-Inception/I3D,
videos/s), in one process:

* **ceiling**: the model alone on a batch already on the device, eager and with each
  ``--compile`` mode. A compiled forward's first calls (the compilation) are untimed and
  reported as ``compile_s``; it is checked against eager on the same batch
  (:func:`check_compiled`: logits, and in training the batch-norm statistics, within bf16
  noise);
* **data path alone**: the loader feeding the device with no model running (workers reading
  and decoding the JPEGs into pinned slots, transfer, crops, normalization). The batches the
  workers decoded before the timing are taken first, untimed, so the rate is the workers'
  own, not a buffer's;
* **pipeline**: the model (``--pipeline-compile``: eager, a mode, or the fastest ceiling's)
  fed by the data path, on the same loader right after, so again no batch decoded before
  the timing is counted.

Steady state: the data path and the pipeline are timed over ``--steps`` batches (150), in
windows of ``--window`` (10) whose rates are all reported. Where the data path alone is at
least 1.5 times the ceiling, the pipeline is bound by the GPU and stops as soon as
``--min-steps`` (30) are timed and its last three windows agree within 2%. On a GPU the
windows are timed with CUDA events: nothing waits for the GPU inside the timed steps.

The figures: ``ratio`` = pipeline / ceiling (target >= 0.95), ``data_headroom`` = data path
alone / ceiling, and where the time went (``stats``: the loader's and the consumer's waits,
the workers' wall and CPU seconds per batch; ``ring``: slot misses).

Frames: ``--videos`` folders of ``--frames-per-video`` JPEGs, all different
(``--frame-size``, 340x256 like prepared frames), made here by a process pool. ``--cold``
drops each file from the page cache just before a worker reads it (``POSIX_FADV_DONTNEED``),
so every read goes to the disk, as for a dataset larger than memory.

    python benchmarks/train_throughput.py --out results.json                  # a GPU, all four methods
    python benchmarks/train_throughput.py --methods i3d --splits test --workers 12 --label before
    python benchmarks/train_throughput.py --methods i3d --cold                # every read from the disk
    python benchmarks/train_throughput.py --methods i3d --compile off,default,max-autotune-no-cudagraphs
    torchrun --nproc_per_node 2 benchmarks/train_throughput.py --ddp --methods tsn --out ddp.json
    python benchmarks/train_throughput.py --device cpu --tiny                 # a CPU, toy sizes
    python benchmarks/train_throughput.py --methods i3d --no-ring             # workers' batches in new segments
    python benchmarks/train_throughput.py --store packed --out packed.json    # the frames in archives (ytfgvc.store)
    python benchmarks/train_throughput.py --modality flow --methods tsn       # the flow stream (generated stacks)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ytfgvc.benchmark.config import COMPILE_MODES, load_config  # noqa: E402
from ytfgvc.benchmark.hardware import compiled  # noqa: E402
from ytfgvc.data.loader import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    RING_PREFETCH,
    DeviceBatch,
    EpochSampler,
    PipelineStats,
    auto_workers,
    device_batches,
    make_loader,
    worker_stage,
)
from ytfgvc.data.rawframes import READ_AHEAD, FramePlan, RawFrameDataset, read_list  # noqa: E402
from ytfgvc.data.transforms import MultiScaleCrop, OverSample  # noqa: E402
from ytfgvc.engine import all_gather_objects, autocast, barrier, init_distributed, shutdown_distributed  # noqa: E402
from ytfgvc.layout import DatasetLayout  # noqa: E402
from ytfgvc.models import create_model  # noqa: E402

# Clips per training step per GPU (the paper's batch of 256 is reached by accumulation;
# throughput is per step). Videos per test forward come from the preset's test_batch.
GPU_BATCH = {"rra": 64, "tsn": 64, "bninception": 256, "i3d": 16}
NUM_CLASSES = 200
GPU_BOUND = 1.5  # data path alone / ceiling above which the pipeline may stop early once stable
STABLE = 0.02  # the last three windows within this of their mean


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--methods", default="rra,tsn,bninception,i3d", help="comma-separated methods or model names")
    p.add_argument("--splits", default="train,test", help="paths to measure: train, test or both")
    p.add_argument("--steps", type=int, default=150, help="timed batches of the data path and the pipeline")
    p.add_argument("--min-steps", type=int, default=30, help="timed pipeline steps at least, where GPU-bound")
    p.add_argument("--window", type=int, default=10, help="steps per timing window")
    p.add_argument("--ceiling-steps", type=int, default=30, help="timed steps of each ceiling")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (after a compilation)")
    p.add_argument("--batch", type=int, default=0, help="clips per step per GPU (default: per method)")
    p.add_argument("--test-batch", type=int, default=0, help="videos per test forward (default: per method)")
    p.add_argument("--backbone", default=None, help="override the paper's backbone (e.g. resnet18)")
    p.add_argument("--input-size", type=int, default=0, help="override the input size")
    p.add_argument("--pretrained", action="store_true", help="load pretrained weights (no effect on speed)")
    p.add_argument("--workers", type=int, default=0, help="loader workers (default: as workers: auto)")
    p.add_argument("--ring-prefetch", type=int, default=RING_PREFETCH, help="batches in flight per worker")
    p.add_argument("--read-ahead", type=int, default=READ_AHEAD, help="files a worker reads ahead (0: none)")
    p.add_argument("--cold", action="store_true", help="drop each file from the page cache before reading it")
    p.add_argument(
        "--worker-stage", default=None, choices=["pixels", "frames"], help="workers decoding: crop there or on the GPU"
    )
    p.add_argument("--no-ring", action="store_true", help="workers decoding: new segments, not slots")
    p.add_argument("--no-data-only", action="store_true", help="skip timing the data path alone (no model)")
    p.add_argument("--data-only", action="store_true", help="time the data path alone, not the pipeline")
    p.add_argument("--ceilings-only", action="store_true", help="time the ceilings only (no loader)")
    p.add_argument(
        "--variants",
        default="",
        help="loader set-ups to time in turn, after one ceiling: LABEL:key=value,...;LABEL:... "
        f"(keys: {', '.join(VARIANT_KEYS)})",
    )
    p.add_argument("--no-cudnn-benchmark", action="store_true", help="leave cudnn.benchmark off")
    p.add_argument("--profile", type=Path, default=None, help="write torch.profiler tables of pipeline steps here")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    p.add_argument("--compile", default="off", help=f"ceilings to measure: off and/or {', '.join(COMPILE_MODES)}")
    p.add_argument(
        "--pipeline-compile", default="best", help="the pipeline's forward: off, a mode, or best (fastest ceiling)"
    )
    p.add_argument("--no-check", action="store_true", help="skip checking compiled outputs against eager")
    p.add_argument("--frames-root", type=Path, default=None, help="where to generate frames (default: a temp dir)")
    p.add_argument("--videos", type=int, default=256, help="videos to generate")
    p.add_argument("--frames-per-video", type=int, default=60)
    p.add_argument("--frame-size", default="340x256", help="WxH of the generated JPEGs")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--encoder", default="torchvision", choices=["torchvision", "cv2"], help="cv2: as prepare")
    p.add_argument("--ddp", action="store_true", help="under torchrun: DDP scaling vs one GPU")
    p.add_argument("--import", dest="imports", action="append", default=[], help="module registering more models")
    p.add_argument("--tiny", action="store_true", help="toy sizes for a CPU check (resnet18 at 64 px, few videos)")
    p.add_argument("--label", default="", help="a name for this run in the results (e.g. before, after)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON (after each method)")
    p.add_argument("--no-test", action="store_true", help="same as --splits train")
    p.add_argument("--store", default="folder", choices=["folder", "packed"], help="the generated frames' store")
    p.add_argument("--modality", default="rgb", choices=["rgb", "flow"], help="flow: the methods' flow stream")
    p.add_argument("--flow-stack", type=int, default=5, help="flow fields per stack (--modality flow)")
    a = p.parse_args(argv)
    a.splits = ["train"] if a.no_test else [s for s in a.splits.split(",") if s]
    if not set(a.splits) <= {"train", "test"} or not a.splits:
        p.error("--splits: train, test or train,test")
    a.compile_modes = [m for m in a.compile.split(",") if m]
    a.variant_label = ""
    a.variants = parse_variants(a.variants) or [("", {})]
    if not set(a.compile_modes) <= {"off", *COMPILE_MODES}:
        p.error(f"--compile: off and/or {', '.join(COMPILE_MODES)}")
    if a.pipeline_compile not in ("best", "off", *COMPILE_MODES):
        p.error(f"--pipeline-compile: best, off or one of {', '.join(COMPILE_MODES)}")
    if a.tiny:
        a.backbone = a.backbone or "resnet18"
        a.input_size = a.input_size or 64
        a.batch, a.test_batch = a.batch or 2, a.test_batch or 1
        a.steps, a.min_steps, a.window = min(a.steps, 4), min(a.min_steps, 2), min(a.window, 2)
        a.ceiling_steps, a.warmup = min(a.ceiling_steps, 3), min(a.warmup, 1)
        a.videos, a.frames_per_video, a.frame_size = min(a.videos, 8), min(a.frames_per_video, 12), "96x72"
    return a


# --- frames -------------------------------------------------------------------------------


def make_frames(
    root: Path,
    videos: int,
    frames: int,
    size: str,
    quality: int = 90,
    encoder: str = "torchvision",
    seed: int = 0,
    jobs: int = 0,
) -> DatasetLayout:
    """``videos`` folders of ``frames`` JPEGs, every one different, and the lists (labels at random).

    Each video is a smooth pattern of its own drifting sideways under strong noise (about 33
    KB a 340x256 frame at quality 90), sized like prepared frames; made by ``jobs`` processes
    (default: the CPUs). ``encoder`` cv2 writes JPEGs as ``ytfgvc prepare`` does.
    """
    layout = DatasetLayout(root, "throughput")
    done = layout.lists_dir / f"done-{videos}-{frames}-{size}-q{quality}-{encoder}-{seed}"
    if done.is_file():
        return layout
    jobs = jobs or min(os.cpu_count() or 1, 16)
    tasks = [(str(layout.frames_dir(f"tp{v:09d}")), v, frames, size, quality, encoder, seed) for v in range(videos)]
    if jobs > 1 and videos > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            pool.starmap(_make_video, tasks, chunksize=max(1, videos // (4 * jobs)))
    else:
        for t in tasks:
            _make_video(*t)
    labels = np.random.default_rng(seed).integers(NUM_CLASSES, size=videos)
    lines = [f"{layout.list_entry_dir(f'tp{v:09d}')} {frames} {labels[v]}\n" for v in range(videos)]
    layout.lists_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        layout.list_path(split).write_text("".join(lines))
    done.write_text("")
    return layout


def _make_video(folder: str, v: int, frames: int, size: str, quality: int, encoder: str, seed: int) -> None:
    torch.set_num_threads(1)
    w, h = (int(x) for x in size.split("x"))
    rng = np.random.default_rng([seed, v])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fx, fy, phase = rng.uniform(0.01, 0.05, 3)
    base = (127 + 60 * np.sin(fx * xx + fy * yy + phase)[..., None] * rng.uniform(0.5, 1, 3)).astype(np.float32)
    noise = rng.normal(0, 12, (2, h, w, 3)).astype(np.float32)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        shifted = np.roll(noise[i % 2], (int(rng.integers(h)), int(rng.integers(w))), axis=(0, 1))
        img = np.clip(np.roll(base, 2 * i, axis=1) + shifted, 0, 255).astype(np.uint8)
        (out / DatasetLayout.frame_name(i + 1)).write_bytes(_encode(img, quality, encoder))


def _encode(rgb: np.ndarray, quality: int, encoder: str) -> bytes:
    if encoder == "cv2":
        import cv2

        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return buf.tobytes()
    from torchvision.io import encode_jpeg

    return encode_jpeg(torch.from_numpy(rgb).permute(2, 0, 1).contiguous(), quality=quality).numpy().tobytes()


# --- timing -------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Windows:
    """Timing marks every ``window`` steps: CUDA events on a GPU (no wait inside the timed steps), else the clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list = []
        self.counts: list[int] = []

    def mark(self, steps_done: int) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self.marks.append(e)
        else:
            self.marks.append(time.perf_counter())
        self.counts.append(steps_done)

    def seconds(self, i: int, j: int) -> float:
        a, b = self.marks[i], self.marks[j]
        return a.elapsed_time(b) / 1000 if self.cuda else b - a

    def ready(self) -> int:
        """Marks whose time is known (all on a CPU; on a GPU those the device has reached)."""
        if not self.cuda:
            return len(self.marks)
        n = 0
        while n < len(self.marks) and self.marks[n].query():
            n += 1
        return n

    def rates(self, items: int, upto: int | None = None) -> list[float]:
        n = len(self.marks) if upto is None else upto
        return [(self.counts[i + 1] - self.counts[i]) * items / self.seconds(i, i + 1) for i in range(n - 1)]


def stable(rates: list[float]) -> bool:
    if len(rates) < 3:
        return False
    last = rates[-3:]
    mean = sum(last) / 3
    return max(abs(r - mean) for r in last) <= STABLE * mean


def timed(
    step: Callable[[], None],
    items: int,
    device: torch.device,
    steps: int,
    window: int,
    warmup: int = 0,
    min_steps: int | None = None,
) -> dict:
    """Rate of ``step`` (``items`` per step) over ``steps`` steps after ``warmup``, in windows of ``window``.

    With ``min_steps``, stops once that many are timed and the last three windows agree.
    """
    for _ in range(warmup):
        step()
    sync(device)
    marks, done, wall = Windows(device), 0, time.perf_counter()
    marks.mark(0)
    while done < steps:
        for _ in range(min(window, steps - done)):
            step()
        done += min(window, steps - done)
        marks.mark(done)
        if min_steps is not None and done >= min_steps and stable(marks.rates(items, marks.ready())):
            break
    sync(device)
    wall = time.perf_counter() - wall
    seconds = marks.seconds(0, len(marks.marks) - 1)
    rates = marks.rates(items)
    return {
        "rate": done * items / seconds,
        "steady": sum(rates[-3:]) / len(rates[-3:]),
        "steps": done,
        "seconds": seconds,
        "wall_s": wall,
        "windows": rates,
        "stable": stable(rates),
    }


# --- the model and its data -------------------------------------------------------------


class Method:
    """One method's model, optimizer and data, as the benchmark engine sets them up."""

    def __init__(self, name: str, args: argparse.Namespace, layout: DatasetLayout, device: torch.device):
        over: dict = {}
        if args.backbone:
            over.setdefault("model", {}).setdefault("kwargs", {})["backbone"] = args.backbone
        if args.input_size:
            over["input_size"] = args.input_size
        over.setdefault("model", {}).setdefault("kwargs", {})["pretrained"] = args.pretrained
        self.name = name
        if args.modality == "flow":
            over.update(modality="flow", flow_stack=args.flow_stack)
        self.cfg = cfg = load_config(name, "paper", overrides=over)
        self.model = create_model(cfg.model.name, NUM_CLASSES, **cfg.model_kwargs()).to(device)
        self.kind = getattr(self.model, "input_kind", "frames")
        if self.kind == "clip" and cfg.sampling != "clip":  # a registered clip model outside the four methods
            self.cfg = cfg = cfg.replace(sampling="clip", num_segments=32, test_segments=32, test_crops=1)
        cuda = device.type == "cuda"
        self.amp = torch.bfloat16 if args.amp == "bf16" or (args.amp == "auto" and cuda) else None
        self.channels_last = cuda or self.kind == "frames"  # as the benchmark engine decides
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last_3d if self.kind == "clip" else torch.channels_last)
        self.model.freeze_pretrained(False)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.batch = args.batch or (GPU_BATCH.get(name, 32) if cuda else 2)
        self.test_batch = args.test_batch or (cfg.test_batch if cuda else 1)
        self.device, self.args, self.layout = device, args, layout
        self.mean = getattr(self.model, "input_mean", IMAGENET_MEAN)
        self.std = getattr(self.model, "input_std", IMAGENET_STD)
        self.dataset: RawFrameDataset | None = None
        self.loader_workers = 0

    # one step of each path, with a given forward (the module, or a compiled callable)
    def train_step(self, forward: Callable, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            loss = self.model.compute_loss(forward(x), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss

    def test_step(self, forward: Callable, x: torch.Tensor, videos: int) -> torch.Tensor:
        with autocast(self.device, self.amp):
            return forward(x).logits.float().view(videos, self.cfg.test_crops, -1).mean(1)

    def items(self, split: str) -> int:
        return self.batch if split == "train" else self.test_batch

    def random_input(self, split: str) -> torch.Tensor:
        """What :class:`DeviceBatch` would hand over: normalized floats in its memory layout."""
        s, c = self.cfg.input_size, (2 * self.cfg.flow_stack if self.cfg.modality == "flow" else 3)
        n = self.batch if split == "train" else self.test_batch * self.cfg.test_crops
        frames = self.cfg.num_segments if split == "train" else self.cfg.test_segments
        x = torch.randn(n, frames, s, s, c, device=self.device)  # the NTHWC memory of channels-last
        x = x.permute(0, 4, 1, 2, 3) if self.kind == "clip" else x.permute(0, 1, 4, 2, 3)
        return x if self.channels_last else x.contiguous()

    def step_fn(self, split: str, forward: Callable, source: Callable[[], tuple]) -> Callable[[], None]:
        if split == "train":
            self.model.train()
            return lambda: self.train_step(forward, *source()[:2])

        self.model.eval()

        def test() -> None:
            x, _, index = source()
            self.test_step(forward, x, len(index))

        return test

    def loader(self, split: str, need_batches: int, world: int = 1, rank: int = 0, stats: PipelineStats | None = None):
        """Batches on the device (``device_batches``), from one epoch long enough for ``need_batches``."""
        cfg, args, train = self.cfg, self.args, split == "train"
        if train:
            plan = FramePlan(cfg.sampling, cfg.num_segments, train=True)
            crop = MultiScaleCrop(cfg.input_size, tuple(cfg.scales), cfg.max_distort, cfg.more_fix_crop, cfg.flip)
        else:
            plan = FramePlan(cfg.sampling, cfg.test_segments, train=False)
            crop = OverSample(cfg.input_size, cfg.test_crops, cfg.test_scale)
        batch = self.batch if train else self.test_batch
        # One long epoch covering every step, so no epoch boundary drains what the workers have ahead.
        records = read_list(self.layout, "train")
        need = (need_batches + 8) * batch * world
        records = records * -(-need // len(records))
        flow = {"modality": cfg.modality, "flow_stack": cfg.flow_stack}
        stage = args.worker_stage or worker_stage(self.device)
        ds = RawFrameDataset(self.layout, records, plan, crop, stage=stage, **flow)
        ds.read_ahead, ds.drop_cache = args.read_ahead, args.cold
        sampler = EpochSampler(len(ds), world, rank, shuffle=train, global_batch=batch * world if train else 0)
        pin = self.device.type == "cuda"
        self.loader_workers = workers(args)
        loader = make_loader(
            ds, sampler, batch, self.loader_workers, pin, ring=pin and not args.no_ring, prefetch=args.ring_prefetch
        )
        self.dataset = ds
        to_device = DeviceBatch(ds, self.device, self.kind, self.mean, self.std, self.channels_last)
        return device_batches(loader, to_device, stats=stats)

    def in_flight(self) -> int:
        """Batches the workers may have decoded ahead of the consumer."""
        return self.loader_workers * (self.args.ring_prefetch if self.dataset and self.dataset.ring else 4)


def workers(args: argparse.Namespace) -> int:
    """``--workers``, else what ``workers: auto`` gives the engine on a GPU (one worker for a CPU check)."""
    return args.workers or (auto_workers() if torch.cuda.is_available() else 1)


# --- compiled forwards ---------------------------------------------------------------------


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` (L2 over everything), in float64."""
    a, b = a.double().flatten(), b.double().flatten()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def centered_logits(m: Method, forward: Callable, x: torch.Tensor, amp: torch.dtype | None) -> torch.Tensor:
    with torch.inference_mode(), autocast(m.device, amp):
        z = forward(x).logits.float()
    return z - z.mean(-1, keepdim=True)  # RRA's are log-probabilities: compare their shape, not their level


def check_compiled(m: Method, split: str, forward: Callable, x: torch.Tensor, y: torch.Tensor) -> dict:
    """A compiled forward against eager on the same batch, and eager bf16 against eager fp32 (the noise)."""
    if split == "test":
        m.model.eval()
        eager = centered_logits(m, m.model, x, m.amp)
        fp32 = centered_logits(m, m.model, x, None)
        got = centered_logits(m, forward, x, m.amp)
        noise, err = rel_err(eager, fp32), rel_err(got, eager)
        return {"logits_rel_err": err, "bf16_noise": noise, "ok": bool(err <= max(2 * noise, 1e-3))}
    # Training: one forward and backward each, from the same batch-norm statistics. Dropout draws differ,
    # so the losses only roughly agree; the updates of the trunk's statistics (before any dropout) must
    # agree within 5% (relative L2 over every statistic of every layer that trains).
    m.model.train()
    trunk = getattr(m.model, "trunk", m.model)
    bns = [b for b in trunk.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm) and b.training]
    before = [(b.running_mean.clone(), b.running_var.clone()) for b in bns]

    def run(fn: Callable) -> tuple[float, torch.Tensor]:
        with autocast(m.device, m.amp):
            loss = m.model.compute_loss(fn(x), y)
        loss.backward()
        m.optimizer.zero_grad(set_to_none=True)
        delta = [torch.cat([b.running_mean - r0, b.running_var - v0]) for b, (r0, v0) in zip(bns, before, strict=True)]
        with torch.no_grad():
            for b, (r0, v0) in zip(bns, before, strict=True):
                b.running_mean.copy_(r0)
                b.running_var.copy_(v0)
        return loss.item(), torch.cat(delta) if delta else torch.zeros(1, device=m.device)

    loss_e, stats_e = run(m.model)
    loss_c, stats_c = run(forward)
    err = rel_err(stats_c, stats_e) if stats_e.abs().sum() > 0 else 0.0
    ok = math.isfinite(loss_c) and err <= 0.05  # the losses differ by their dropout draws: reported only
    return {"loss_eager": loss_e, "loss_compiled": loss_c, "bn_stats_rel_err": err, "bn_layers": len(bns), "ok": ok}


def compile_forward(m: Method, split: str, mode: str | None) -> Callable:
    torch._dynamo.reset()
    if m.device.type == "cuda":
        torch.cuda.empty_cache()
    return compiled(m.model, mode) if mode else m.model


def ceilings(m: Method, split: str, out: dict, save: Callable[[], None] = lambda: None) -> tuple[Callable, str]:
    """The ceiling of eager and of each compiled mode into ``out`` (``save()`` after each); the forward the
    pipeline uses (compiled already), and its mode."""
    args, dev = m.args, m.device
    x = m.random_input(split)
    y = torch.randint(NUM_CLASSES, (len(x),), device=dev)
    n = m.items(split)
    grad = torch.inference_mode() if split == "test" else contextlib.nullcontext()
    want = args.pipeline_compile
    modes = list(dict.fromkeys(["off", *args.compile_modes]))
    if want in modes:  # measured last, so its compiled forward is still there for the pipeline
        modes = [k for k in modes if k != want] + [want]
    last: tuple[Callable, str] = (m.model, "off")
    for mode in modes:
        forward = compile_forward(m, split, None if mode == "off" else mode)
        step = m.step_fn(split, forward, lambda: (x, y, torch.arange(m.test_batch)))
        row: dict = {}
        try:
            with grad:
                t = time.perf_counter()
                step()  # the compilation, if any
                step()
                sync(dev)
                row["first_calls_s"] = time.perf_counter() - t
            if mode != "off" and not args.no_check:
                row["check"] = check_compiled(m, split, forward, x, y)
            with grad:
                row |= timed(step, n, dev, args.ceiling_steps, args.window, args.warmup)
            last = (forward, mode)
        except Exception as e:  # a mode that fails to compile or run is reported, not fatal
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
        out[mode] = row
        save()
        print(f"  {m.name} {split} ceiling {mode}: {_short(row)}", flush=True)
    ok = {k: r["rate"] for k, r in out.items() if "rate" in r and r.get("check", {}).get("ok", True)}
    chosen = (max(ok, key=ok.get) if ok else "off") if want == "best" else (want if want in ok else "off")
    if chosen == last[1]:
        return last
    forward = compile_forward(m, split, None if chosen == "off" else chosen)
    step = m.step_fn(split, forward, lambda: (x, y, torch.arange(m.test_batch)))
    with grad:  # compiled again before the loader starts, so no batch waits for the compilation
        for _ in range(3):
            step()
        sync(dev)
    return forward, chosen


def _short(row: dict) -> str:
    if "error" in row:
        return row["error"][:200]
    s = f"{row['rate']:.1f}/s"
    if "check" in row:
        s += f", check {'ok' if row['check']['ok'] else 'FAILED'}"
    return s + f", first calls {row['first_calls_s']:.1f} s"


# --- one path ------------------------------------------------------------------------------


def measure_path(m: Method, split: str, row: dict, save: Callable[[], None] = lambda: None) -> dict:
    """One path into ``row``, ``save()`` after the ceilings and after each loader set-up (``--variants``)."""
    args = m.args
    row |= {"batch": m.items(split), "unit": "clips/s" if split == "train" else "videos/s"}
    if split == "test":
        row["views"] = [m.cfg.test_segments, m.cfg.test_crops]
    ceiling_rows = row["ceiling"] = {}
    forward, mode = ceilings(m, split, ceiling_rows, save)
    eager = ceiling_rows["off"].get("rate")
    row["compiled_speedup"] = {
        k: r["rate"] / eager for k, r in ceiling_rows.items() if k != "off" and "rate" in r and eager
    }
    save()
    if args.ceilings_only:
        return row
    row["pipeline_forward"] = mode
    ceiling = ceiling_rows.get(mode, {}).get("rate") or eager
    for i, (label, over) in enumerate(args.variants):
        m.args = argparse.Namespace(**{**vars(args), **over})
        try:
            phases = loader_phases(m, split, forward, ceiling, eager)
        finally:
            m.args = args
        if i == 0:
            row |= phases
        if label:
            row.setdefault("variants", {})[label] = {"settings": over, **phases}
        save()
    return row


def loader_phases(m: Method, split: str, forward: Callable, ceiling: float | None, eager: float | None) -> dict:
    """The data path alone, then the pipeline, on one loader (``m.args`` says how it is set up)."""
    args, dev, n = m.args, m.device, m.items(split)
    row: dict = {}
    stats = PipelineStats()
    need = workers(args) * max(args.ring_prefetch, 4) + 2 * args.warmup + 2 * args.steps + 40
    before = allocator_stats(dev)
    batches = m.loader(split, need, stats=stats)
    source = lambda: next(batches)  # noqa: E731
    tag = f"{m.name} {split}" + (f" [{args.variant_label}]" if args.variant_label else "")
    try:
        with torch.inference_mode() if split == "test" else contextlib.nullcontext():
            # First the batches the workers decoded ahead of the timing, untimed: no rate counts them.
            for _ in range(m.in_flight() + args.warmup):
                source()
            if not args.no_data_only:
                stats.reset()
                row["data_only"] = timed(source, n, dev, args.steps, args.window)
                row["data_only"]["stats"] = _stats(stats, m, row["data_only"]["seconds"])
                print(f"  {tag} data path alone: {row['data_only']['rate']:.1f}/s", flush=True)
            if not args.data_only:
                headroom = row.get("data_only", {}).get("rate", 0) / ceiling if ceiling else 0
                stats.reset()
                min_steps = args.min_steps if headroom >= GPU_BOUND else None
                step = m.step_fn(split, forward, source)
                row["pipeline"] = timed(step, n, dev, args.steps, args.window, args.warmup, min_steps)
                row["pipeline"]["stats"] = _stats(stats, m, row["pipeline"]["seconds"])
    finally:
        batches.close()
    if "pipeline" in row:
        row["ratio"] = row["pipeline"]["rate"] / ceiling if ceiling else None
        row["ratio_to_eager"] = row["pipeline"]["rate"] / eager if eager else None
        print(f"  {tag} pipeline: {row['pipeline']['rate']:.1f}/s = {row['ratio']:.3f} of the ceiling", flush=True)
    if "data_only" in row:
        row["data_headroom"] = row["data_only"]["rate"] / ceiling if ceiling else None
    row["allocator"] = allocator_delta(before, dev)
    row["ring"] = ring_info(m.dataset)
    row["workers"] = m.loader_workers
    return row


VARIANT_KEYS = {"workers": int, "read_ahead": int, "ring_prefetch": int, "cold": bool, "data_only": bool, "steps": int}


def parse_variants(text: str) -> list[tuple[str, dict]]:
    """``"before:workers=12,read_ahead=0;cold:cold=1"`` -> ``[("before", {...}), ("cold", {...})]``."""
    out = []
    for part in filter(None, (x.strip() for x in text.split(";"))):
        label, _, items = part.partition(":")
        over: dict = {"variant_label": label}
        for item in filter(None, items.split(",")):
            key, _, value = item.partition("=")
            if key not in VARIANT_KEYS:
                raise SystemExit(f"--variants: unknown setting {key!r} (known: {', '.join(VARIANT_KEYS)})")
            over[key] = VARIANT_KEYS[key](int(value))
        out.append((label, over))
    return out


def _stats(stats: PipelineStats, m: Method, seconds: float) -> dict:
    """Where the time went, per batch (seconds), and the workers' rates (decoded frames a second).

    ``frames_per_s``: decoded in the timed window; ``worker_capacity_frames_per_s``: what the
    workers would decode if never idle (frames a second of a worker's wall time, times the
    workers); ``worker_cpu_share``: a worker's CPU time over its wall time while it works on a
    batch (below 1: waiting for reads, or for a core).
    """
    s = stats.to_dict()
    b = max(stats.batches, 1)
    out = {k: (v / b if k.endswith("_s") else v) for k, v in s.items()}
    out["per_batch"] = True
    if stats.decoded:
        per_worker = stats.decoded / max(stats.worker_wall_s, 1e-9)
        out["frames_per_s"] = stats.decoded / max(seconds, 1e-9)
        out["worker_frames_per_wall_s"] = per_worker
        out["worker_capacity_frames_per_s"] = per_worker * m.loader_workers
        out["worker_cpu_share"] = stats.worker_cpu_s / max(stats.worker_wall_s, 1e-9)
    return out


# Caching-allocator events that stall the GPU: a retry (after a failed allocation, every cached
# block is freed) and each device free (cudaFree) synchronize the whole device.
ALLOCATOR_EVENTS = ("num_alloc_retries", "num_device_free", "num_sync_all_streams")


def allocator_stats(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    stats = torch.cuda.memory_stats(device)
    out = {k: stats.get(k, 0) for k in ALLOCATOR_EVENTS}
    return out | {"reserved_gib": stats.get("reserved_bytes.all.current", 0) / 2**30}


def allocator_delta(before: dict, device: torch.device) -> dict:
    """Allocator events during a phase (and the memory reserved at its end)."""
    after = allocator_stats(device)
    return {k: after[k] - before[k] for k in ALLOCATOR_EVENTS if k in after} | (
        {"reserved_gib": after["reserved_gib"]} if after else {}
    )


def ring_info(ds: RawFrameDataset | None) -> dict | None:
    """The slot ring the workers decoded into (``None`` without one): its size and the batches that missed it."""
    ring = ds.ring if ds is not None else None
    return None if ring is None else {"slots": len(ring.buffers), "gb": ring.nbytes / 1e9, "misses": ring.misses}


def profile_pipeline(m: Method, folder: Path, splits: list[str]) -> None:
    """torch.profiler over a few pipeline steps (every thread's CUDA calls, the kernels): tables in ``folder``."""
    from torch.profiler import ProfilerActivity, profile

    folder.mkdir(parents=True, exist_ok=True)
    for split in splits:
        batches = m.loader(split, 20)
        step = m.step_fn(split, m.model, lambda b=batches: next(b))
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if m.device.type == "cuda" else [])
        grad = torch.inference_mode() if split == "test" else contextlib.nullcontext()
        with grad, profile(activities=activities) as prof:
            for _ in range(10):
                step()
            sync(m.device)
        batches.close()
        ka = prof.key_averages()
        text = ka.table(sort_by="self_cpu_time_total", row_limit=40)
        if m.device.type == "cuda":
            text += "\n" + ka.table(sort_by="self_device_time_total", row_limit=40)
        (folder / f"{split}.txt").write_text(text)


def measure(name: str, args, layout, device, row: dict, save: Callable[[], None] = lambda: None) -> dict:
    """Every path of one method into ``row``; ``save()`` after each (a time limit keeps what is done)."""
    m = Method(name, args, layout, device)
    row |= {
        "model": m.cfg.model.name,
        "backbone": m.cfg.model.kwargs.get("backbone"),
        "input": [m.cfg.num_segments, m.cfg.input_size],
        "amp": "bf16" if m.amp else "off",
    }
    if args.profile:
        profile_pipeline(m, args.profile / name, args.splits)
    for split in args.splits:
        try:
            measure_path(m, split, row.setdefault(split, {}), save)
        except Exception as e:  # one path failing (out of memory...) leaves the others
            row.setdefault(split, {})["error"] = f"{type(e).__name__}: {str(e)[:600]}"
            print(f"  {name} {split}: {row[split]['error']}", flush=True)
        save()
        torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return row


def measure_ddp(name: str, args, layout, env) -> dict:
    """Rank 0 alone, then every rank under DDP: the efficiency of the scale-out (training pipeline)."""
    m = Method(name, args, layout, env.device)

    def pipeline(forward, world: int, rank: int) -> float:
        batches = m.loader("train", args.warmup + args.steps, world, rank)
        try:
            step = m.step_fn("train", forward, lambda: next(batches))
            return timed(step, m.batch * world, env.device, args.steps, args.window, args.warmup)["rate"]
        finally:
            batches.close()

    single = pipeline(m.model, 1, 0) if env.is_main else 0.0
    barrier(env)
    ids = [env.device.index] if env.device.type == "cuda" else None
    many = pipeline(nn.parallel.DistributedDataParallel(m.model, device_ids=ids), env.world, env.rank)
    return {
        "model": m.cfg.model.name,
        "processes": env.world,
        "batch_per_gpu": m.batch,
        "single_clips_per_s": single,
        "ddp_clips_per_s": many,
        "efficiency": many / (env.world * single) if single else None,
    }


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")


def host_info() -> dict:
    from ytfgvc.data.host import usable_cores

    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpus": os.cpu_count(), "usable_cores": usable_cores(), "memory_gb": round(pages / 1e9, 1)}


def other_store(args: argparse.Namespace) -> None:
    """Flow stacks and/or archives for the generated frames (``benchmarks/_stores.py``)."""
    if args.store != "folder" or args.modality != "rgb":
        from _stores import prepare_store

        layout = DatasetLayout(args.frames_root, "throughput")
        prepare_store(layout, args.store, args.modality, args.flow_stack, args.frame_size)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    for mod in args.imports:
        importlib.import_module(mod)
    for key in ("recompile_limit", "cache_size_limit"):  # every compiled mode and path may recompile the forward
        with contextlib.suppress(AttributeError):
            setattr(torch._dynamo.config, key, 64)
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    tmp = None
    if alone:  # the frames first, by forked processes, before CUDA starts
        if args.frames_root is None:
            tmp = tempfile.TemporaryDirectory(prefix="ytfgvc-throughput-")
            args.frames_root = Path(tmp.name)
        t = time.perf_counter()
        make_frames(
            args.frames_root, args.videos, args.frames_per_video, args.frame_size, args.jpeg_quality, args.encoder
        )
        other_store(args)
        print(f"frames: {args.videos} videos x {args.frames_per_video} in {time.perf_counter() - t:.1f} s", flush=True)
    env = init_distributed(args.device)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    if not alone:
        if args.frames_root is None:  # rank 0's temporary folder, shared with the other ranks of this host
            tmp = tempfile.TemporaryDirectory(prefix="ytfgvc-throughput-") if env.is_main else None
            args.frames_root = Path(all_gather_objects(tmp.name if tmp else None, env)[0])
        if env.is_main:
            make_frames(args.frames_root, args.videos, args.frames_per_video, args.frame_size, args.jpeg_quality,
                        args.encoder, jobs=1)  # fmt: skip
            other_store(args)
        barrier(env)
    layout = DatasetLayout(args.frames_root, "throughput")
    results = {
        "label": args.label,
        "device": device_name(env.device),
        "processes": env.world,
        "torch": torch.__version__,
        "host": host_info(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "methods": {},
    }
    try:
        for name in args.methods.split(","):
            if args.ddp:
                results["methods"][name] = measure_ddp(name, args, layout, env)
            else:
                row = results["methods"][name] = {}
                measure(name, args, layout, env.device, row, lambda: args.out and write_json(args.out, results))
            if env.is_main:
                print(f"{name}: {json.dumps(results['methods'][name], default=_round)[:2000]}", flush=True)
                if args.out:
                    write_json(args.out, results)
        barrier(env)
    finally:
        shutdown_distributed(env)
        if tmp is not None:
            tmp.cleanup()
    if env.is_main:
        print(report(results))
        if args.out:
            write_json(args.out, results)
    return results


def write_json(path: Path, results: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=_round) + "\n")
    os.replace(tmp, path)


def _round(v):
    return round(v, 4) if isinstance(v, float) else str(v)


def report(results: dict) -> str:
    lines = [f"device: {results['device']} x {results['processes']}, torch {results['torch']} {results['label']}"]
    for name, r in results["methods"].items():
        if "efficiency" in r:
            eff = "n/a" if r["efficiency"] is None else f"{r['efficiency']:.3f}"
            lines.append(
                f"{name:12s} DDP x{r['processes']}: {r['ddp_clips_per_s']:.1f} clips/s vs one process "
                f"{r['single_clips_per_s']:.1f} -> efficiency {eff}"
            )
            continue
        for split in ("train", "test"):
            s = r.get(split)
            if s is None:
                continue
            if "error" in s:
                lines.append(f"{name:12s} {split}: {s['error'][:200]}")
                continue
            ceil = ", ".join(f"{k} {v['rate']:.1f}" for k, v in s["ceiling"].items() if "rate" in v)
            lines.append(f"{name:12s} {split} ({s['unit']}): ceilings {ceil}")
            for label, v in [("", s), *s.get("variants", {}).items()]:
                if label == "" and s.get("variants"):
                    continue
                parts = []
                if "pipeline" in v:
                    pipe = v["pipeline"]
                    parts.append(f"pipeline {pipe['rate']:.1f} ({pipe['steps']} steps) = {v['ratio']:.3f}")
                if "data_only" in v:
                    parts.append(f"data path alone {v['data_only']['rate']:.1f} ({v['data_headroom']:.2f}x)")
                if parts:
                    lines.append(f"{'':12s}   {label or 'default'}: " + ", ".join(parts) + f", {v['workers']} workers")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
