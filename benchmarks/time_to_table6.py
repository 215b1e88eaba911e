"""Time to Table 6: the GPU-hours of the paper's eight RGB runs (4 methods x Birds and Cars) on one GPU.

Each method runs with its ``paper`` config (its recipe: optimizer, batch of 256 or 64 clips,
the micro-batch a run finds by probing the GPU's memory, frozen epochs; bf16, channels-last,
the loader workers; ``--compile`` as the config says, ``auto`` by default) through the
benchmark engine's own functions (``build_run``, ``train_data``, ``test_data``,
``train_one_epoch``, ``evaluate``), on synthetic frames of the real size and format:
340x256 JPEGs written as ``ytfgvc prepare`` writes them (OpenCV, quality 95), every frame
different. It times, per method:

* training (clips/s): ``--train-steps`` optimizer steps after ``--warmup-steps``, a subset
  of an epoch, timed and scaled; RRA also with its pretrained layers frozen, as in its
  first 30 epochs (the others' recipes freeze nothing);
* the test pass (videos/s): ``--test-batches`` batches after one;
* what each epoch adds: the wait for its first batch (the running workers start a new
  pass) and the checkpoint written after it; and, once per run, the model's setup (the
  micro-batch probe) and the test loader's start.

An epoch samples one clip per video (TSN, RRA: 4 segments; BN-Inception: one frame; I3D: 32
frames), so its cost depends on the number of videos, not on their length (which the
repository does not record): a run takes epochs x train clips / its rate, plus the test
videos / the test rate, plus epochs x the per-epoch costs, with the videos of the dataset
cards (Birds 12,666 train and 5,684 test, Cars 10,259 and 4,961; training drops the last
partial batch of each epoch).

    python benchmarks/time_to_table6.py --out table6.json                   # a GPU
    python benchmarks/time_to_table6.py --project-compile compile.json      # + the same with compiled ceilings
    python benchmarks/time_to_table6.py --device cpu --tiny                 # a CPU, toy sizes
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from train_throughput import device_name, host_info, make_frames, write_json  # noqa: E402

from ytfgvc.benchmark.config import load_config  # noqa: E402
from ytfgvc.benchmark.data import DataInfo, resolve  # noqa: E402
from ytfgvc.benchmark.hardware import compiled, wrap_model  # noqa: E402
from ytfgvc.benchmark.optim import lr_at, set_lr  # noqa: E402
from ytfgvc.benchmark.run import build_run, test_data, train_data  # noqa: E402
from ytfgvc.data.loader import device_batches  # noqa: E402
from ytfgvc.data.rawframes import VideoRecord  # noqa: E402
from ytfgvc.datasets.cards import get_card  # noqa: E402
from ytfgvc.engine import evaluate, init_distributed, save_checkpoint, train_one_epoch  # noqa: E402
from ytfgvc.layout import DatasetLayout  # noqa: E402

METHODS = ("rra", "tsn", "bninception", "i3d")
DATASETS = ("birds", "cars")
GOAL_HOURS = 4.0
NUM_CLASSES = 200


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--datasets", default=",".join(DATASETS), help="dataset cards whose video counts to use")
    p.add_argument("--train-steps", type=int, default=6, help="timed optimizer steps per training phase")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed optimizer steps first")
    p.add_argument("--test-batches", type=int, default=4, help="timed test batches (after one untimed)")
    p.add_argument("--compile", default=None, help="the config's compile (default: the preset's, auto)")
    p.add_argument("--workers", default=None, help="loader workers (default: the preset's, auto)")
    p.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE for every method's config")
    p.add_argument("--frames-root", type=Path, default=None, help="where to generate frames (default: a temp dir)")
    p.add_argument("--pool-videos", type=int, default=128, help="distinct frame folders (the list links to them)")
    p.add_argument("--frames-per-video", type=int, default=48)
    p.add_argument("--frame-size", default="340x256")
    p.add_argument("--project-compile", type=Path, default=None, help="train_throughput JSON with compiled ceilings")
    p.add_argument("--import", dest="imports", action="append", default=[], help="module registering more models")
    p.add_argument("--tiny", action="store_true", help="toy sizes for a CPU check (resnet18 at 64 px)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.tiny:
        a.train_steps, a.warmup_steps, a.test_batches = min(a.train_steps, 2), min(a.warmup_steps, 1), 1
        a.pool_videos, a.frames_per_video, a.frame_size = min(a.pool_videos, 8), min(a.frames_per_video, 12), "96x72"
    return a


def config(method: str, args: argparse.Namespace, root: Path):
    from ytfgvc.benchmark.config import deep_merge, parse_set

    over: dict = {"dataset": "table6", "root": str(root), "allow_scratch": True, "model": {"kwargs": {}}}
    over["model"]["kwargs"]["pretrained"] = False  # the same network and speed; no download
    if args.compile is not None:
        over["compile"] = args.compile
    if args.workers is not None:
        over["workers"] = int(args.workers) if args.workers.isdigit() else args.workers
    if args.tiny:
        over["model"]["kwargs"]["backbone"] = "resnet18"
        over |= {"input_size": 64, "batch_size": 4, "test_batch": 2, "workers": 1}
        if method == "i3d":
            over |= {"num_segments": 8, "test_segments": 8}
    return load_config(method, "paper", overrides=deep_merge(over, parse_set(args.sets)))


def linked_dataset(root: Path, pool: DatasetLayout, pool_ids: list[str], n_train: int, n_test: int) -> DataInfo:
    """A dataset ``table6`` whose videos are links to the pool's frame folders (labels at random)."""
    layout = DatasetLayout(root, "table6")
    layout.frames_root.mkdir(parents=True, exist_ok=True)
    frames = len(list(pool.frames_dir(pool_ids[0]).iterdir()))

    def records(prefix: str, n: int) -> list[VideoRecord]:
        out = []
        for i in range(n):
            vid = f"{prefix}{i:010d}"
            link = layout.frames_dir(vid)
            if not link.exists():
                link.symlink_to(pool.frames_dir(pool_ids[i % len(pool_ids)]), target_is_directory=True)
            out.append(VideoRecord(vid, frames, i % NUM_CLASSES))
        return out

    return DataInfo(layout, records("a", n_train), records("b", n_test), NUM_CLASSES, None, None, None)


def peak_memory(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Steps:
    """Time stamps after each micro-batch (the GPU waited for), to time steps after a warm-up."""

    def __init__(self, device: torch.device):
        self.device, self.stamps, self.items = device, [], []

    def __call__(self, n: int) -> None:
        sync(self.device)
        self.stamps.append(time.perf_counter())
        self.items.append(n)

    def rate(self, skip: int) -> float:
        """Items per second after the first ``skip`` calls (at least one: the clock starts when it ends)."""
        if not 1 <= skip < len(self.stamps):
            raise RuntimeError(f"{len(self.stamps)} steps ran: too few to time any after {skip}")
        return sum(self.items[skip:]) / (self.stamps[-1] - self.stamps[skip - 1])

    def first_wait(self, start: float, skip: int) -> float:
        """The wait for the first batch beyond a step's time: the loader starting."""
        step = (self.stamps[-1] - self.stamps[skip - 1]) / (len(self.stamps) - skip)
        return max(0.0, self.stamps[0] - start - step)


def measure(method: str, args: argparse.Namespace, env, root: Path, pool: DatasetLayout, pool_ids: list[str]) -> dict:
    cfg = config(method, args, root)
    n_train = (args.warmup_steps + args.train_steps) * cfg.batch_size
    n_test = (1 + args.test_batches) * cfg.test_batch
    data = linked_dataset(root, pool, pool_ids, n_train, n_test)
    cfg = resolve(cfg, data)
    t = time.perf_counter()
    run = build_run(cfg, data, env, root / "run")  # probes the micro-batch on a GPU
    setup_s = time.perf_counter() - t
    model, setup = run.model, run.setup
    row: dict = {
        "batch": {"global": cfg.batch_size, "micro": setup.micro_batch, "accum_steps": setup.accum_steps},
        "workers": setup.workers,
        "compile": {"config": cfg.compile, **{k: v or "off" for k, v in setup.compile.items()}},
        "epochs": cfg.epochs,
        "freeze_epochs": cfg.freeze_epochs,
        "setup_s": setup_s,
    }
    if cfg.freeze_epochs and not model.pretrained_parameters():
        model.pretrained_source = "benchmark: counted as pretrained"  # frozen as its pretrained trunk would be
    loader, sampler, to_device = train_data(run)
    skip = args.warmup_steps * setup.accum_steps
    phases = [("frozen", True), ("unfrozen", False)] if row["freeze_epochs"] else [("unfrozen", False)]
    for epoch, (phase, frozen) in enumerate(phases):
        set_lr(run.optimizer, lr_at(epoch, cfg.lr, cfg.lr_steps, cfg.lr_gamma))
        model.train()
        model.freeze_pretrained(frozen)
        forward = wrap_model(model, env, cfg, setup.compile["train"])
        sampler.set_epoch(epoch)
        steps, start = Steps(env.device), time.perf_counter()
        train_one_epoch(
            model, forward, device_batches(loader, to_device), run.optimizer, env, setup.accum_steps, setup.amp,
            cfg.clip_grad_norm, on_step=steps,
        )  # fmt: skip
        row[phase] = {
            "clips_per_s": steps.rate(skip),
            "timed_steps": (len(steps.stamps) - 1 - skip) // setup.accum_steps,
            "first_batch_wait_s": steps.first_wait(start, skip),
            "peak_gpu_memory_gb": peak_memory(env.device),
        }
        print(f"  {method} {phase}: {row[phase]['clips_per_s']:.1f} clips/s", flush=True)
    # What a new epoch waits for: its first batch, once the workers (already running) start the pass.
    sampler.set_epoch(len(phases))
    batches, t = device_batches(loader, to_device), time.perf_counter()
    next(batches)
    sync(env.device)
    row["epoch_start_s"] = time.perf_counter() - t
    batches.close()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        state = {"model": model.state_dict(), "optimizer": run.optimizer.state_dict()}
        save_checkpoint(Path(tmp) / "checkpoint.pt", state)
    row["checkpoint_s"] = time.perf_counter() - t
    del loader
    loader, _, to_device = test_data(run)
    model.eval()
    forward = compiled(model, setup.compile["test"])
    steps, start = Steps(env.device), time.perf_counter()
    evaluate(
        forward, device_batches(loader, to_device), to_device.crop.num_views, env, setup.amp, on_step=steps,
        fuse=getattr(model, "fuse_views", None),
    )  # fmt: skip
    row["test"] = {
        "videos_per_s": steps.rate(1),
        "batch": cfg.test_batch,
        "views": [cfg.test_segments, cfg.test_crops],
        "first_batch_wait_s": steps.first_wait(start, 1),
    }
    print(f"  {method} test: {row['test']['videos_per_s']:.1f} videos/s", flush=True)
    del loader, run, model
    torch._dynamo.reset()
    if env.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(env.device)
    return row


def run_hours(m: dict, n_train: int, n_test: int, speed: dict | None = None) -> dict:
    """Seconds and GPU-hours of one run from the measured rates (``speed``: factors on the rates, a projection)."""
    speed = speed or {}
    clips = n_train // m["batch"]["global"] * m["batch"]["global"]  # whole batches (drop_last)
    f_train, f_test = speed.get("train", 1.0), speed.get("test", 1.0)
    frozen = m["freeze_epochs"]
    train_s = (m["epochs"] - frozen) * clips / (m["unfrozen"]["clips_per_s"] * f_train)
    if frozen:
        train_s += frozen * clips / (m["frozen"]["clips_per_s"] * f_train)
    epoch_s = m["epochs"] * (m["epoch_start_s"] + m["checkpoint_s"])
    test_s = n_test / (m["test"]["videos_per_s"] * f_test) + m["test"]["first_batch_wait_s"]
    total = train_s + epoch_s + test_s + m["setup_s"]
    hours = total / 3600
    return {"train_s": train_s, "per_epoch_s": epoch_s, "test_s": test_s, "setup_s": m["setup_s"], "hours": hours}


def speedups(path: Path) -> dict[str, dict[str, float]]:
    """Compiled / eager ceiling per method and path (the best mode whose check passed), from train_throughput."""
    out: dict[str, dict[str, float]] = {}
    for name, r in json.loads(path.read_text()).get("methods", {}).items():
        for split in ("train", "test"):
            c = r.get(split, {}).get("ceiling", {})
            eager = c.get("off", {}).get("rate")
            ok = [v["rate"] for k, v in c.items() if k != "off" and "rate" in v and v.get("check", {}).get("ok", True)]
            if eager and ok:
                out.setdefault(name, {})[split] = max(1.0, max(ok) / eager)  # a slower mode would not be used
    return out


def table(results: dict, datasets: list[str], speed: dict | None = None) -> tuple[list[dict], float]:
    rows, total = [], 0.0
    for ds in datasets:
        card = get_card(ds)
        n_train, n_test = card.split_sizes.train, card.split_sizes.test
        for method, m in results["methods"].items():
            if "error" in m:
                continue
            h = run_hours(m, n_train, n_test, (speed or {}).get(method))
            rows.append({"dataset": ds, "method": method, "train_videos": n_train, "test_videos": n_test, **h})
            total += h["hours"]
    return rows, total


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    for mod in args.imports:
        importlib.import_module(mod)
    tmp = None
    if args.frames_root is None:
        tmp = tempfile.TemporaryDirectory(prefix="ytfgvc-table6-")
        args.frames_root = Path(tmp.name)
    t = time.perf_counter()
    pool = make_frames(args.frames_root, args.pool_videos, args.frames_per_video, args.frame_size, 95, "cv2")
    pool_ids = [f"tp{v:09d}" for v in range(args.pool_videos)]
    print(f"frames: {args.pool_videos} videos x {args.frames_per_video} in {time.perf_counter() - t:.1f} s", flush=True)
    env = init_distributed(args.device)
    datasets = [d for d in args.datasets.split(",") if d]
    results: dict = {
        "device": device_name(env.device),
        "torch": torch.__version__,
        "host": host_info(),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "methods": {},
    }
    try:
        for method in [m for m in args.methods.split(",") if m]:
            try:
                results["methods"][method] = measure(method, args, env, args.frames_root, pool, pool_ids)
            except Exception as e:  # one method failing (out of memory...) leaves the others
                results["methods"][method] = {"error": f"{type(e).__name__}: {str(e)[:600]}"}
                print(f"  {method}: {results['methods'][method]['error']}", flush=True)
            rows, total = table(results, datasets)
            results |= {"runs": rows, "gpu_hours": total, "goal_gpu_hours": GOAL_HOURS}
            if args.out:
                write_json(args.out, results)
        if args.project_compile and args.project_compile.is_file():
            speed = speedups(args.project_compile)
            rows, total = table(results, datasets, speed)
            results["projected_with_compile"] = {"speedups": speed, "runs": rows, "gpu_hours": total}
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.out:
        write_json(args.out, results)
    print(report(results))
    return results


def report(results: dict) -> str:
    lines = [f"device: {results['device']}, torch {results['torch']}"]
    for method, m in results["methods"].items():
        if "error" in m:
            lines.append(f"{method:12s} {m['error'][:200]}")
            continue
        frozen = f", frozen {m['frozen']['clips_per_s']:.1f}" if "frozen" in m else ""
        lines.append(
            f"{method:12s} batch {m['batch']['global']} (micro {m['batch']['micro']}), "
            f"compile {m['compile']['train']}: "
            f"train {m['unfrozen']['clips_per_s']:.1f} clips/s{frozen}; test {m['test']['videos_per_s']:.1f} videos/s; "
            f"per epoch +{m['epoch_start_s']:.2f} s start, {m['checkpoint_s']:.2f} s checkpoint"
        )
    for key, title in (("runs", "measured"), ("projected_with_compile", "projected with compiled ceilings")):
        runs = results.get(key)
        if isinstance(runs, dict):
            runs, total = runs["runs"], runs["gpu_hours"]
        else:
            total = results.get("gpu_hours", 0.0)
        if not runs:
            continue
        lines.append(f"-- {title}:")
        lines += [f"   {r['dataset']:6s} {r['method']:12s} {r['hours']:6.2f} GPU-hours" for r in runs]
        lines.append(f"   Table 6 (the {len(runs)} runs): {total:.2f} GPU-hours on one GPU (goal {GOAL_HOURS:.0f})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
