"""Training and test throughput: the full pipeline from JPEG frames on disk vs the model alone.

For each method (its ``paper`` preset: backbone, input size, frames; bf16 and channels-last
on GPU), in one process:

* train ceiling: optimizer steps on random tensors already on the device (clips/s);
* train pipeline: the same steps fed by the real data path (rawframe dataset, loader
  workers decoding the JPEGs, into pinned slots on a GPU; multi-scale crop, flip,
  normalization), from a frames folder this script generates;
* test ceiling and pipeline: the test protocol (25 segments × 10 crops for TSN/RRA, the
  middle frame or clip for BN-Inception/I3D) in videos/s.

The figure is the ratio pipeline / ceiling (target ≥ 0.9). With ``--ddp`` under
torchrun, rank 0 first measures the train pipeline alone, then all ranks measure it
with DistributedDataParallel; the scaling efficiency is
``ddp clips/s / (world × single clips/s)``.

    python benchmarks/train_throughput.py --out results.json                  # a GPU, all four methods
    torchrun --nproc_per_node 2 benchmarks/train_throughput.py --ddp --methods tsn --out ddp.json
    python benchmarks/train_throughput.py --device cpu --tiny                 # a CPU, toy sizes
    python benchmarks/train_throughput.py --methods i3d --no-ring             # workers' batches in new segments
    python benchmarks/train_throughput.py --methods i3d --worker-stage pixels    # workers crop too
    python benchmarks/train_throughput.py --store packed --out packed.json    # the frames in archives (ytfgvc.store)
    python benchmarks/train_throughput.py --modality flow --methods tsn       # the flow stream (generated stacks)
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ytfgvc.benchmark.config import load_config  # noqa: E402
from ytfgvc.data.loader import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    DeviceBatch,
    EpochSampler,
    auto_workers,
    device_batches,
    make_loader,
    worker_stage,
)
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset, read_list  # noqa: E402
from ytfgvc.data.transforms import MultiScaleCrop, OverSample  # noqa: E402
from ytfgvc.engine import all_gather_objects, autocast, barrier, init_distributed, shutdown_distributed  # noqa: E402
from ytfgvc.layout import DatasetLayout  # noqa: E402
from ytfgvc.models import create_model  # noqa: E402

# Clips per training step per GPU (the paper's batch of 256 is reached by accumulation;
# throughput is per step). Videos per test forward come from the preset's test_batch.
SPLITS = (("train", True), ("test", False))
GPU_BATCH = {"rra": 64, "tsn": 64, "bninception": 256, "i3d": 16}
NUM_CLASSES = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--methods", default="rra,tsn,bninception,i3d", help="comma-separated methods or model names")
    p.add_argument("--steps", type=int, default=30, help="timed training steps (test: timed batches)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    p.add_argument("--batch", type=int, default=0, help="clips per step per GPU (default: per method)")
    p.add_argument("--test-batch", type=int, default=0, help="videos per test forward (default: per method)")
    p.add_argument("--backbone", default=None, help="override the paper's backbone (e.g. resnet18)")
    p.add_argument("--input-size", type=int, default=0, help="override the input size")
    p.add_argument("--pretrained", action="store_true", help="load pretrained weights (no effect on speed)")
    p.add_argument("--workers", type=int, default=0, help="loader workers (default: as workers: auto)")
    p.add_argument(
        "--worker-stage", default=None, choices=["pixels", "frames"], help="workers decoding: crop there or on the GPU"
    )
    p.add_argument("--no-ring", action="store_true", help="workers decoding: new segments, not slots")
    p.add_argument("--no-data-only", action="store_true", help="skip timing the data path alone (no model)")
    p.add_argument("--no-cudnn-benchmark", action="store_true", help="leave cudnn.benchmark off")
    p.add_argument("--profile", type=Path, default=None, help="write torch.profiler tables of pipeline steps here")
    p.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--frames-root", type=Path, default=None, help="where to generate frames (default: a temp dir)")
    p.add_argument("--videos", type=int, default=256, help="videos to generate")
    p.add_argument("--frames-per-video", type=int, default=60)
    p.add_argument("--frame-size", default="340x256", help="WxH of the generated JPEGs")
    p.add_argument("--no-test", action="store_true", help="skip the test-throughput measurement")
    p.add_argument("--ddp", action="store_true", help="under torchrun: DDP scaling vs one GPU")
    p.add_argument("--import", dest="imports", action="append", default=[], help="module registering more models")
    p.add_argument("--tiny", action="store_true", help="toy sizes for a CPU check (resnet18 at 64 px, few videos)")
    p.add_argument("--store", default="folder", choices=["folder", "packed"], help="the generated frames' store")
    p.add_argument("--modality", default="rgb", choices=["rgb", "flow"], help="flow: the methods' flow stream")
    p.add_argument("--flow-stack", type=int, default=5, help="flow fields per stack (--modality flow)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    a = p.parse_args(argv)
    if a.tiny:
        a.backbone = a.backbone or "resnet18"
        a.input_size = a.input_size or 64
        a.batch, a.test_batch = a.batch or 2, a.test_batch or 1
        a.steps, a.warmup = min(a.steps, 3), min(a.warmup, 1)
        a.videos, a.frames_per_video, a.frame_size = min(a.videos, 8), min(a.frames_per_video, 12), "96x72"
    return a


def make_frames(root: Path, videos: int, frames: int, size: str, seed: int = 0) -> DatasetLayout:
    """``videos`` folders of ``frames`` JPEGs (smooth shapes + noise, sized like prepared frames) and lists."""
    from torchvision.io import encode_jpeg

    layout = DatasetLayout(root, "throughput")
    w, h = (int(v) for v in size.split("x"))
    done = layout.lists_dir / f"done-{videos}-{frames}-{size}"
    if done.is_file():
        return layout
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pool = []  # distinct frames, reused across videos (decoding cost depends on size and content, not identity)
    for i in range(min(videos * frames, 240)):
        fx, fy, phase = rng.uniform(0.01, 0.05, 3)
        base = 127 + 60 * np.sin(fx * xx + fy * yy + phase + 0.1 * i)[..., None] * rng.uniform(0.5, 1, 3)
        img = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        pool.append(encode_jpeg(torch.from_numpy(img).permute(2, 0, 1).contiguous(), quality=90).numpy().tobytes())
    lines = []
    for v in range(videos):
        vid = f"tp{v:09d}"
        d = layout.frames_dir(vid)
        d.mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            (d / layout.frame_name(i + 1)).write_bytes(pool[(v * 7 + i) % len(pool)])
        lines.append(f"{layout.list_entry_dir(vid)} {frames} {int(rng.integers(NUM_CLASSES))}\n")
    layout.lists_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        layout.list_path(split).write_text("".join(lines))
    done.write_text("")
    return layout


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cycle(loader, sampler):
    """Batches over as many epochs as needed."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def timed(step, n_warmup: int, n_steps: int, device: torch.device) -> float:
    """Seconds for ``n_steps`` calls of ``step`` after ``n_warmup`` untimed ones."""
    for _ in range(n_warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(n_steps):
        step()
    sync(device)
    return time.perf_counter() - t


class Method:
    """One method's model, optimizer and data, as the benchmark engine sets them up."""

    def __init__(self, name: str, args: argparse.Namespace, layout: DatasetLayout, device: torch.device, env):
        over: dict = {}
        if args.backbone:
            over.setdefault("model", {}).setdefault("kwargs", {})["backbone"] = args.backbone
        if args.input_size:
            over["input_size"] = args.input_size
        over.setdefault("model", {}).setdefault("kwargs", {})["pretrained"] = args.pretrained
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
        self.device, self.env, self.args, self.layout = device, env, args, layout
        self.mean = getattr(self.model, "input_mean", IMAGENET_MEAN)
        self.std = getattr(self.model, "input_std", IMAGENET_STD)
        self.forward = self.model
        if args.compile:
            self.forward = torch.compile(self.model)

    def wrap_ddp(self) -> None:
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.args.compile:
            self.forward = torch.compile(self.forward)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(self.device, self.amp):
            loss = self.model.compute_loss(self.forward(x), y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def random_input(self, n: int, frames: int) -> torch.Tensor:
        """What :class:`DeviceBatch` would hand over: normalized floats in its memory layout."""
        s, c = self.cfg.input_size, (2 * self.cfg.flow_stack if self.cfg.modality == "flow" else 3)
        x = torch.randn(n, frames, s, s, c, device=self.device)  # the NTHWC memory of channels-last
        x = x.permute(0, 4, 1, 2, 3) if self.kind == "clip" else x.permute(0, 1, 4, 2, 3)
        return x if self.channels_last else x.contiguous()

    def loader(self, train: bool, world: int = 1, rank: int = 0):
        cfg = self.cfg
        if train:
            plan = FramePlan(cfg.sampling, cfg.num_segments, train=True)
            crop = MultiScaleCrop(cfg.input_size, tuple(cfg.scales), cfg.max_distort, cfg.more_fix_crop, cfg.flip)
        else:
            plan = FramePlan(cfg.sampling, cfg.test_segments, train=False)
            crop = OverSample(cfg.input_size, cfg.test_crops, cfg.test_scale)
        batch = self.batch if train else self.test_batch
        # One long epoch covering every timed step, so no epoch boundary drains the prefetch queue.
        records = read_list(self.layout, "train")
        need = (self.args.warmup + self.args.steps + 8) * batch * world
        records = records * -(-need // len(records))
        stage = self.args.worker_stage or worker_stage(self.device)
        flow = {"modality": cfg.modality, "flow_stack": cfg.flow_stack}
        ds = RawFrameDataset(self.layout, records, plan, crop, stage=stage, **flow)
        sampler = EpochSampler(len(ds), world, rank, shuffle=train, global_batch=batch * world if train else 0)
        pin = self.device.type == "cuda"
        loader = make_loader(ds, sampler, batch, workers(self.args), pin, ring=pin and not self.args.no_ring)
        self.dataset = ds
        to_device = DeviceBatch(ds, self.device, self.kind, self.mean, self.std, self.channels_last)
        return device_batches(cycle(loader, sampler), to_device), crop.num_views

    def train_ceiling(self) -> float:
        x = self.random_input(self.batch, self.cfg.num_segments)
        y = torch.randint(NUM_CLASSES, (self.batch,), device=self.device)
        self.model.train()
        s = timed(lambda: self.train_step(x, y), self.args.warmup, self.args.steps, self.device)
        return self.batch * self.args.steps / s

    def train_pipeline(self, world: int = 1, rank: int = 0) -> float:
        batches, _ = self.loader(True, world, rank)
        self.model.train()

        def step() -> None:
            x, y, _ = next(batches)
            self.train_step(x, y)

        s = timed(step, self.args.warmup, self.args.steps, self.device)
        batches.close()
        return self.batch * world * self.args.steps / s

    def data_only(self, train: bool) -> float:
        """The data path alone: batches ready on the device per second (clips/s, or videos/s in test)."""
        batches, _ = self.loader(train)
        s = timed(lambda: next(batches), self.args.warmup, self.args.steps, self.device)
        batches.close()
        return (self.batch if train else self.test_batch) * self.args.steps / s

    @torch.inference_mode()
    def test_ceiling(self) -> float:
        views = self.cfg.test_crops
        x = self.random_input(self.test_batch * views, self.cfg.test_segments)
        self.model.eval()

        def step() -> None:
            with autocast(self.device, self.amp):
                self.forward(x).logits.float().view(self.test_batch, views, -1).mean(1)

        s = timed(step, self.args.warmup, self.args.steps, self.device)
        return self.test_batch * self.args.steps / s

    @torch.inference_mode()
    def test_pipeline(self) -> float:
        batches, views = self.loader(False)
        self.model.eval()

        def step() -> None:
            x, _, index = next(batches)
            with autocast(self.device, self.amp):
                self.forward(x).logits.float().view(len(index), views, -1).mean(1)

        s = timed(step, self.args.warmup, self.args.steps, self.device)
        batches.close()
        return self.test_batch * self.args.steps / s


def workers(args: argparse.Namespace) -> int:
    """``--workers``, else what ``workers: auto`` gives the engine on a GPU (one worker for a CPU check)."""
    return args.workers or (auto_workers() if torch.cuda.is_available() else 1)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")


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


def ring_info(ds: RawFrameDataset) -> dict | None:
    """The slot ring the workers decoded into (``None`` without one): its size and the batches that missed it."""
    ring = ds.ring
    return None if ring is None else {"slots": len(ring.buffers), "gb": ring.nbytes / 1e9, "misses": ring.misses}


def profile_pipeline(m: Method, folder: Path, test: bool) -> None:
    """torch.profiler over a few pipeline steps (every thread's CUDA calls, the kernels): tables in ``folder``."""
    from torch.profiler import ProfilerActivity, profile

    folder.mkdir(parents=True, exist_ok=True)
    runs = [("train", m.train_pipeline), ("train-ceiling", m.train_ceiling), ("train-data", lambda: m.data_only(True))]
    if test:
        runs += [("test", m.test_pipeline), ("test-ceiling", m.test_ceiling), ("test-data", lambda: m.data_only(False))]
    for kind, fn in runs:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if m.device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            fn()
        ka = prof.key_averages()
        text = ka.table(sort_by="self_cpu_time_total", row_limit=40)
        if m.device.type == "cuda":
            text += "\n" + ka.table(sort_by="self_device_time_total", row_limit=40)
        (folder / f"{kind}.txt").write_text(text)


def measure(name: str, args, layout, env) -> dict:
    m = Method(name, args, layout, env.device, env)
    row = {
        "model": m.cfg.model.name,
        "backbone": m.cfg.model.kwargs.get("backbone"),
        "input": [m.cfg.num_segments, m.cfg.input_size],
        "batch": m.batch,
        "amp": "bf16" if m.amp else "off",
        "workers": workers(args),
    }
    if args.profile:
        profile_pipeline(m, args.profile / name, not args.no_test)
    ceiling = m.train_ceiling()
    before = allocator_stats(m.device)
    pipeline = m.train_pipeline()
    row["train"] = {"ceiling_clips_per_s": ceiling, "pipeline_clips_per_s": pipeline, "ratio": pipeline / ceiling}
    row["train"]["allocator"] = allocator_delta(before, m.device)
    row["train"]["ring"] = ring_info(m.dataset)
    if not args.no_data_only:
        row["train"]["data_only_clips_per_s"] = m.data_only(True)
    if not args.no_test:
        t_ceiling = m.test_ceiling()
        before = allocator_stats(m.device)
        t_pipeline = m.test_pipeline()
        row["test"] = {
            "views": [m.cfg.test_segments, m.cfg.test_crops],
            "batch_videos": m.test_batch,
            "ceiling_videos_per_s": t_ceiling,
            "pipeline_videos_per_s": t_pipeline,
            "ratio": t_pipeline / t_ceiling,
            "allocator": allocator_delta(before, m.device),
            "ring": ring_info(m.dataset),
        }
        if not args.no_data_only:
            row["test"]["data_only_videos_per_s"] = m.data_only(False)
    return row


def measure_ddp(name: str, args, layout, env) -> dict:
    """Rank 0 alone, then every rank under DDP; the efficiency of the scale-out."""
    m = Method(name, args, layout, env.device, env)
    single = m.train_pipeline() if env.is_main else 0.0
    barrier(env)
    m.wrap_ddp()
    many = m.train_pipeline(env.world, env.rank)
    return {
        "model": m.cfg.model.name,
        "processes": env.world,
        "batch_per_gpu": m.batch,
        "single_clips_per_s": single,
        "ddp_clips_per_s": many,
        "efficiency": many / (env.world * single) if single else None,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    for mod in args.imports:
        importlib.import_module(mod)
    env = init_distributed(args.device)
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    tmp = None
    if args.frames_root is None:  # rank 0's temporary folder, shared with the other ranks of this host
        tmp = tempfile.TemporaryDirectory(prefix="ytfgvc-throughput-") if env.is_main else None
        args.frames_root = Path(all_gather_objects(tmp.name if tmp else None, env)[0])
    if env.is_main:
        t = time.perf_counter()
        layout = make_frames(args.frames_root, args.videos, args.frames_per_video, args.frame_size)
        if args.store != "folder" or args.modality != "rgb":  # flow stacks and/or archives (benchmarks/_stores.py)
            from _stores import prepare_store

            prepare_store(layout, args.store, args.modality, args.flow_stack, args.frame_size)
        print(f"frames: {args.videos} videos x {args.frames_per_video} in {time.perf_counter() - t:.1f} s", flush=True)
    barrier(env)
    layout = DatasetLayout(args.frames_root, "throughput")
    results = {
        "device": device_name(env.device),
        "processes": env.world,
        "torch": torch.__version__,
        "settings": {k: str(v) for k, v in vars(args).items()},
        "methods": {},
    }
    try:
        for name in args.methods.split(","):
            if args.ddp:
                results["methods"][name] = measure_ddp(name, args, layout, env)
            else:
                results["methods"][name] = measure(name, args, layout, env)
            if env.is_main:
                print(f"{name}: {json.dumps(results['methods'][name], default=_round)}", flush=True)
        barrier(env)
    finally:
        shutdown_distributed(env)
        if tmp is not None:
            tmp.cleanup()
    if env.is_main:
        print(report(results))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2, default=_round) + "\n")
    return results


def _round(v):
    return round(v, 3) if isinstance(v, float) else str(v)


def report(results: dict) -> str:
    lines = [f"device: {results['device']} x {results['processes']}, torch {results['torch']}"]
    for name, r in results["methods"].items():
        if "efficiency" in r:
            eff = "n/a" if r["efficiency"] is None else f"{r['efficiency']:.3f}"
            lines.append(
                f"{name:12s} DDP x{r['processes']}: {r['ddp_clips_per_s']:.1f} clips/s vs one process "
                f"{r['single_clips_per_s']:.1f} -> efficiency {eff}"
            )
            continue
        t = r["train"]
        lines.append(
            f"{name:12s} train: pipeline {t['pipeline_clips_per_s']:.1f} / ceiling {t['ceiling_clips_per_s']:.1f}"
            f" clips/s = {t['ratio']:.3f}"
            + (f" (data path alone {t['data_only_clips_per_s']:.1f})" if "data_only_clips_per_s" in t else "")
        )
        if "test" in r:
            s = r["test"]
            lines.append(
                f"{'':12s} test {s['views'][0]}x{s['views'][1]}: pipeline {s['pipeline_videos_per_s']:.2f} / "
                f"ceiling {s['ceiling_videos_per_s']:.2f} videos/s = {s['ratio']:.3f}"
                + (f" (data path alone {s['data_only_videos_per_s']:.2f})" if "data_only_videos_per_s" in s else "")
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
