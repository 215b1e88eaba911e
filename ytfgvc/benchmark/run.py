"""Run one benchmark: train a model under the protocol, test it, and write its run folder.

    >>> from ytfgvc.benchmark.config import load_config
    >>> from ytfgvc.benchmark.run import run_benchmark
    >>> cfg = load_config("tsn", "smoke").replace(dataset="synthetic", root="ytfgvc-data")
    >>> result = run_benchmark(cfg, out="runs")          # doctest: +SKIP

The run folder (:mod:`ytfgvc.benchmark.records`) is written by rank 0 only; the
checkpoint after every epoch lets ``resume=True`` continue exactly where a killed run
stopped, and a finished run (``metrics.json`` present) is not run again. One process
runs a folder at a time (``<run>/.lock``, :mod:`ytfgvc.system.locks`): the same run started
twice is refused, naming the process that has it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ytfgvc.benchmark import records
from ytfgvc.benchmark.config import BenchmarkConfig, upgrade_config_dict
from ytfgvc.benchmark.data import DataInfo, load_data, resolve
from ytfgvc.benchmark.hardware import Setup, compiled, resolve_setup, wrap_model
from ytfgvc.benchmark.optim import build_optimizer, lr_at, set_lr
from ytfgvc.benchmark.recipes import get_recipe
from ytfgvc.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DeviceBatch,
    EpochSampler,
    device_batches,
    make_loader,
    worker_stage,
)
from ytfgvc.data.rawframes import FramePlan, RawFrameDataset
from ytfgvc.data.transforms import MultiScaleCrop, OverSample
from ytfgvc.engine import (
    DistEnv,
    all_gather_objects,
    barrier,
    evaluate,
    init_distributed,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    seed_everything,
    set_rng_state,
    shutdown_distributed,
    train_one_epoch,
)
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles, run_dir
from ytfgvc.models.backbones import FROM_SCRATCH
from ytfgvc.predictions import run_predictions, write_predictions
from ytfgvc.system.fserrors import disk_full_error, is_disk_full
from ytfgvc.system.locks import Lock, LockHeld

# Keys that may change when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("workers", "compile", "test_batch", "device", "find_unused_parameters")


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "finished", "already finished" or "stopped" (after stop_after epochs)
    metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "status": self.status, "metrics": self.metrics}


def _check_same_config(saved: dict[str, Any], cfg: BenchmarkConfig, folder: Path) -> None:
    now = cfg.to_dict()
    diff = [k for k in sorted(set(saved) | set(now)) if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k)]
    if diff:
        raise YtfgvcError(
            f"{folder} was started with a different config ({', '.join(diff)})",
            "resume with the same options (see its config.yaml), or pass --run-name NAME for a new run",
        )


def run_benchmark(
    cfg: BenchmarkConfig,
    out: Path | str = "runs",
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    echo: Callable[[str], None] = print,
    env: DistEnv | None = None,
) -> RunResult:
    """Train and test ``cfg`` and write ``<out>/<dataset>/<method>/<run>/``.

    Args:
        cfg: the benchmark config (see :func:`ytfgvc.benchmark.config.load_config`).
        out: the runs folder.
        resume: continue the run from its checkpoint (a run without one starts afresh).
        progress: show a progress bar (rank 0 only).
        stop_after: stop after this many epochs, as if killed (tests and time-boxed jobs).
        echo: where rank 0's messages go.
        env: an initialised process group to use (default: join the one ``torchrun`` describes).
    """
    own = env is None
    env = env or init_distributed(cfg.device)
    try:
        quiet = not env.is_main
        return _run(
            cfg, Path(out), env, resume, progress and not quiet, stop_after, (lambda s: None) if quiet else echo
        )
    finally:
        if own:
            shutdown_distributed(env)


@dataclass
class _Run:
    """What one run carries from step to step."""

    cfg: BenchmarkConfig
    data: DataInfo
    env: DistEnv
    folder: Path
    model: nn.Module
    kind: str
    setup: Setup
    optimizer: torch.optim.Optimizer
    history: list[dict[str, Any]]
    start_epoch: int
    elapsed: float  # seconds spent by earlier sessions of this run
    started: str
    session_start: float

    @property
    def mean_std(self) -> tuple[Any, Any]:
        return getattr(self.model, "input_mean", IMAGENET_MEAN), getattr(self.model, "input_std", IMAGENET_STD)

    def seconds(self) -> float:
        return self.elapsed + time.time() - self.session_start


def _run(
    cfg: BenchmarkConfig,
    out: Path,
    env: DistEnv,
    resume: bool,
    progress: bool,
    stop_after: int | None,
    echo: Callable[[str], None],
) -> RunResult:
    session_start = time.time()
    data = load_data(cfg)
    cfg = resolve(cfg, data)
    folder = run_dir(out, cfg.dataset, cfg.method, cfg.run_name)
    with _one_process_per_run(folder, env, echo):
        return _run_locked(cfg, data, folder, env, resume, progress, stop_after, echo, session_start)


@contextlib.contextmanager
def _one_process_per_run(folder: Path, env: DistEnv, echo: Callable[[str], None]) -> Iterator[None]:
    """Rank 0 holds ``<run>/.lock`` for the run; every rank stops when it cannot (the run is going on elsewhere)."""
    lock, refusal = None, None
    created = [d for d in (folder, *folder.parents) if not d.exists()]  # deepest first: removed again if unused
    if env.is_main:
        try:
            lock = Lock(RunFiles(folder).lock, f"`ytfgvc benchmark` of {folder}").acquire()
        except LockHeld as e:
            refusal = (e.message, e.hint)
        if lock is not None and lock.took_over is not None:
            echo(f"note: took over {lock.path} from a process that is gone ({lock.took_over.describe()})")
    refused = all_gather_objects(refusal, env)[0]
    if refused is not None:
        raise LockHeld(*refused, holder=None)
    try:
        yield
    except BaseException:
        stopped_before_writing = [p.name for p in folder.iterdir()] == [RunFiles(folder).lock.name]
        if lock is not None and stopped_before_writing:
            lock.release(remove=True)
            for d in created:
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if empty
        raise
    finally:
        if lock is not None:
            lock.release()


def _run_locked(
    cfg: BenchmarkConfig,
    data: DataInfo,
    folder: Path,
    env: DistEnv,
    resume: bool,
    progress: bool,
    stop_after: int | None,
    echo: Callable[[str], None],
    session_start: float,
) -> RunResult:
    files = RunFiles(folder)
    seen = all_gather_objects((files.finished, files.checkpoint.is_file()), env)
    if len(set(seen)) > 1:
        raise YtfgvcError(
            f"the processes see different contents in {folder}",
            "put --out on a filesystem that every node mounts at the same path",
        )
    finished, has_checkpoint = seen[0]
    if finished:
        return RunResult(folder, "already finished", json.loads(files.metrics.read_text()))
    state = None
    if has_checkpoint:
        if not resume:
            raise YtfgvcError(f"{folder} holds an unfinished run", "pass --resume to continue it, or --run-name NAME")
        state = load_checkpoint(files.checkpoint)
        _check_same_config(upgrade_config_dict(state["config"]), cfg, folder)
    run = build_run(cfg, data, env, folder, state, session_start)
    if state is not None:
        echo(f"resuming {folder} after epoch {run.start_epoch} of {cfg.epochs}")
    if env.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(files.config)
    barrier(env)
    if not _train(run, state, progress, stop_after, echo):
        return RunResult(folder, "stopped")
    index, logits = _test(run, progress)
    metrics = _finish(run, index, logits) if env.is_main else None
    barrier(env)
    if metrics is not None:
        echo(f"{cfg.method} on {cfg.dataset}: top-1 {metrics['scores']['top1']:.2f}% -> {folder}")
    return RunResult(folder, "finished", metrics)


def build_run(cfg, data, env, folder, state=None, session_start: float | None = None) -> _Run:
    """The model (seeded, on the device, restored from ``state``), its optimizer and the hardware setup.

    Also what ``benchmarks/time_to_table6.py`` times an epoch of (with :func:`train_data`, :func:`test_data`).
    """
    seed_everything(cfg.seed)
    model = _create_model(cfg)
    _check_weights(cfg, model)
    kind = getattr(model, "input_kind", "frames")
    if (kind == "clip") != (cfg.sampling == "clip"):
        raise YtfgvcError(f"model {cfg.model.name!r} takes {kind} input but the config samples {cfg.sampling}")
    model.to(env.device)
    setup = resolve_setup(cfg, env, model, kind, len(data.train))
    if setup.channels_last:
        try:
            model.to(memory_format=torch.channels_last_3d if kind == "clip" else torch.channels_last)
        except RuntimeError:
            setup = Setup(**{**setup.__dict__, "channels_last": False})
    optimizer = build_optimizer(
        model, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.param_groups, flow=cfg.modality == "flow"
    )
    if env.distributed:
        torch.manual_seed(cfg.seed + env.rank)  # different dropout on each rank
    start = time.time() if session_start is None else session_start
    run = _Run(cfg, data, env, folder, model, kind, setup, optimizer, [], 0, 0.0, _now(), start)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        run.history, run.start_epoch = state["history"], state["epoch"]
        run.elapsed, run.started = state["elapsed_s"], state["started"]
    return run


def _create_model(cfg: BenchmarkConfig) -> nn.Module:
    """``cfg``'s model; a model that takes no flow input, asked for it, is one line naming the fix."""
    from ytfgvc.models import create_model

    try:
        return create_model(cfg.model.name, cfg.num_classes, **cfg.model.kwargs)
    except TypeError as e:
        if cfg.modality != "flow" or "modality" not in str(e):
            raise
        hint = "train tsn, rra or bninception on flow"
        raise YtfgvcError(f"model {cfg.model.name!r} takes no flow input ({e})", hint) from None


def _check_weights(cfg: BenchmarkConfig, model: nn.Module) -> None:
    """A ``paper``-preset run must start from pretrained weights, unless ``allow_scratch`` says otherwise."""
    if cfg.preset != "paper" or cfg.allow_scratch or weights_record(model)["source"] != FROM_SCRATCH:
        return
    backbone = cfg.model.kwargs.get("backbone", "its backbone")
    why = getattr(model, "pretrained_message", "") or f"{backbone}: no pretrained weights"
    raise YtfgvcError(
        f"the paper preset starts {cfg.method} from pretrained weights, and none could be loaded ({why})",
        "pass --weights FILE with a copy of that file (docs/models.md says where each comes from), "
        "or --allow-scratch to train from scratch (marked 'from scratch' in every record)",
    )


def weights_record(model: nn.Module) -> dict[str, Any]:
    """Where the model's starting weights came from: ``source``, ``file`` (a name), ``sha256`` (of a file)."""
    source = getattr(model, "pretrained_source", FROM_SCRATCH) or FROM_SCRATCH
    kind, _, where = source.partition(":")
    name = Path(where.removesuffix(" (inflated)")).name if kind in ("file", "tsn") else None
    return {"source": source, "file": name, "sha256": getattr(model, "pretrained_sha256", None)}


def train_data(run: _Run) -> tuple[DataLoader, EpochSampler, DeviceBatch]:
    """The training loader (its batches are micro-batches), its sampler, and what moves its batches to the device."""
    cfg, env, setup = run.cfg, run.env, run.setup
    train_ds = RawFrameDataset(
        run.data.layout,
        run.data.train,
        FramePlan(cfg.sampling, cfg.num_segments, train=True),
        MultiScaleCrop(cfg.input_size, tuple(cfg.scales), cfg.max_distort, cfg.more_fix_crop, cfg.flip),
        seed=cfg.seed,
        stage=worker_stage(env.device),
        modality=cfg.modality,
        flow_stack=cfg.flow_stack,
    )
    to_device = DeviceBatch(train_ds, env.device, run.kind, *run.mean_std, setup.channels_last)
    sampler = EpochSampler(len(train_ds), env.world, env.rank, shuffle=True, seed=cfg.seed, global_batch=cfg.batch_size)
    pin = env.device.type == "cuda"
    return make_loader(train_ds, sampler, setup.micro_batch, setup.workers, pin, cfg.seed), sampler, to_device


def test_data(run: _Run) -> tuple[DataLoader, EpochSampler, DeviceBatch]:
    """The test loader, its sampler (every test video once, padded over ranks) and what moves its batches."""
    cfg, data, env, setup = run.cfg, run.data, run.env, run.setup
    test_ds = RawFrameDataset(
        data.layout,
        data.test,
        FramePlan(cfg.sampling, cfg.test_segments, train=False),
        OverSample(cfg.input_size, cfg.test_crops, cfg.test_scale),
        seed=cfg.seed,
        stage=worker_stage(env.device),
        modality=cfg.modality,
        flow_stack=cfg.flow_stack,
    )
    to_device = DeviceBatch(test_ds, env.device, run.kind, *run.mean_std, setup.channels_last)
    sampler = EpochSampler(len(data.test), env.world, env.rank)
    pin = env.device.type == "cuda"
    return make_loader(test_ds, sampler, cfg.test_batch, setup.workers, pin, cfg.seed), sampler, to_device


def _train(run: _Run, state: dict | None, progress: bool, stop_after: int | None, echo: Callable) -> bool:
    """Train from ``run.start_epoch`` to the end (True), or stop after ``stop_after`` epochs (False)."""
    from tqdm import tqdm

    cfg, env, model, setup = run.cfg, run.env, run.model, run.setup
    loader, sampler, to_device = train_data(run)
    if state is not None:  # last, so that nothing above draws from the restored generators
        if len(state["rng"]) == env.world:
            set_rng_state(state["rng"][env.rank], env)
        else:
            echo(f"warning: the checkpoint has RNG states for {len(state['rng'])} processes, not {env.world}")

    per_epoch = len(sampler) * env.world
    total, done = cfg.epochs * per_epoch, run.start_epoch * per_epoch
    bar = tqdm(total=total, initial=done, unit="clip", disable=not progress, desc="train")
    forward, frozen_now = None, None
    for epoch in range(run.start_epoch, cfg.epochs):
        frozen = epoch < cfg.freeze_epochs
        lr = lr_at(epoch, cfg.lr, cfg.lr_steps, cfg.lr_gamma)
        set_lr(run.optimizer, lr)
        model.train()
        model.freeze_pretrained(frozen)  # after train(): a model may keep frozen layers in eval mode here
        if frozen != frozen_now:
            forward, frozen_now = wrap_model(model, env, cfg, setup.compile["train"]), frozen
        sampler.set_epoch(epoch)
        bar.set_postfix(epoch=f"{epoch + 1}/{cfg.epochs}", lr=f"{lr:.1e}")
        stats = _train_epoch(
            model,
            forward,
            device_batches(loader, to_device),
            run.optimizer,
            env,
            setup.accum_steps,
            setup.amp,
            cfg.clip_grad_norm,
            on_step=lambda n: bar.update(n * env.world),
        )
        row = {
            "epoch": epoch + 1,
            "loss": round(stats.loss, 6),
            "accuracy": round(stats.accuracy, 4),
            "lr": lr,
            "frozen": frozen,
            "clips": stats.clips,
            "seconds": round(stats.seconds, 3),
            "clips_per_s": round(stats.clips_per_s, 2),
            "gpu_memory_gb": stats.peak_memory_gb,
        }
        run.history.append(row)
        _save(run, epoch + 1)
        if env.is_main:
            msg = f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.4f}, train top-1 {row['accuracy']:.2f}%, "
            (bar.write if progress else echo)(msg + f"lr {lr:.1e}, {row['clips_per_s']:.1f} clips/s")
        if stop_after is not None and stop_after <= epoch + 1 < cfg.epochs:
            bar.close()
            return False
    bar.close()
    return True


def _save(run: _Run, epochs_done: int) -> None:
    """Checkpoint (with every rank's RNG states) and log, by rank 0; every rank waits for it."""
    rngs = all_gather_objects(rng_state(run.env), run.env)
    if run.env.is_main:
        state = {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "epoch": epochs_done,
            "history": run.history,
            "rng": rngs,
            "config": run.cfg.to_dict(),
            "elapsed_s": run.seconds(),
            "started": run.started,
        }
        try:
            save_checkpoint(RunFiles(run.folder).checkpoint, state)
            records.write_log(RunFiles(run.folder).log, run.history)
        except Exception as e:
            if is_disk_full(e):  # the previous checkpoint is intact: --resume continues from it
                raise disk_full_error(run.folder, e) from None
            raise
    barrier(run.env)


def _train_epoch(model: nn.Module, *args: Any, **kw: Any):
    try:
        return train_one_epoch(model, *args, **kw)
    except RuntimeError as e:
        if "Expected to have finished reduction" in str(e):
            raise YtfgvcError(
                "some of the model's parameters get no gradient, which DistributedDataParallel refuses",
                "pass --set find_unused_parameters=true",
            ) from e
        raise


def _test(run: _Run, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """The test protocol over every test video; per-video logits on every rank."""
    from tqdm import tqdm

    data, env, model, setup = run.data, run.env, run.model, run.setup
    loader, sampler, to_device = test_data(run)
    crop = to_device.crop
    model.eval()
    forward = compiled(model, setup.compile["test"])
    with tqdm(total=len(sampler) * env.world, unit="video", disable=not progress, desc="test") as bar:
        index, logits = evaluate(
            forward,
            device_batches(loader, to_device),
            crop.num_views,
            env,
            setup.amp,
            on_step=lambda n: bar.update(n * env.world),
            fuse=getattr(model, "fuse_views", None),
        )
    if len(index) != len(data.test):
        raise RuntimeError(f"scored {len(index)} of {len(data.test)} test videos")
    return index, logits


def _finish(run: _Run, index: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    """Score, then write predictions.json, scores.npz, curves.png and (last, marking the run finished) metrics.json."""
    from ytfgvc.metrics import score_matrix

    cfg, data, env, setup, folder, history = run.cfg, run.data, run.env, run.setup, run.folder, run.history
    elapsed = run.seconds()
    z = logits.astype(np.float64)
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    videos = [data.test[i] for i in index]
    targets = np.array([r.label for r in videos])
    scores = score_matrix(probs, targets, n_official=data.n_official)
    weights = weights_record(run.model)
    recipe = records.recipe_record(get_recipe(cfg.recipe), cfg.to_dict())
    provenance = records.provenance(weights, recipe)
    doc = run_predictions(cfg.dataset, data.manifest, [r.video_id for r in videos], probs, provenance)
    files = RunFiles(folder)
    write_predictions(files.predictions, doc)
    records.write_scores(files.scores, [r.video_id for r in videos], targets, z)
    title = f"{cfg.method} on {cfg.dataset} ({cfg.run_name})"
    records.plot_curves(files.curves, history, title, scores.to_dict(), records.chance(cfg.num_classes)["top1"])
    cuda = env.device.type == "cuda"
    metrics = {
        "schema": records.METRICS_SCHEMA,
        "dataset": cfg.dataset,
        "method": cfg.method,
        "model": cfg.model.name,
        "backbone": cfg.model.kwargs.get("backbone"),
        "run": cfg.run_name,
        "preset": cfg.preset,
        "modality": cfg.modality,
        "scores": scores.to_dict(),
        "num_classes": cfg.num_classes,
        "chance": records.chance(cfg.num_classes),
        "data": {
            "manifest": data.manifest,
            "annotations": data.annotations,
            "train_videos": len(data.train),
            "test_videos": len(data.test),
            "official_test_videos": data.n_official,
        },
        "protocol": {
            "sampling": cfg.sampling,
            "train_frames": cfg.num_segments,
            "test_frames": cfg.test_segments,
            "test_crops": cfg.test_crops,
            "test_short_side": OverSample(cfg.input_size, cfg.test_crops, cfg.test_scale).short_side,
            "input_size": cfg.input_size,
            **({"flow_stack": cfg.flow_stack} if cfg.modality == "flow" else {}),
            "scores": getattr(run.model, "view_fusion", "logits averaged over views")
            + "; predictions.json holds their softmax",
        },
        "training": {
            "epochs": len(history),
            "final_loss": history[-1]["loss"] if history else None,
            "final_accuracy": history[-1]["accuracy"] if history else None,
            "batch": {
                "global": cfg.batch_size,
                "micro": setup.micro_batch,
                "accum_steps": setup.accum_steps,
                "processes": env.world,
                "notes": setup.notes,
            },
            "amp": "bf16" if setup.amp is not None else "off",
            "channels_last": setup.channels_last,
            "compile": {"config": cfg.compile, **{k: v or "off" for k, v in setup.compile.items()}},
            "workers": setup.workers,
        },
        "pretrained_source": weights["source"],
        "weights": weights,
        "recipe": recipe,
        "versions": records.tool_versions(),
        "git": records.git_info(),
        "device": records.device_info(env.device, env.world),
        "wall_time_s": round(elapsed, 2),
        "gpu_hours": round(elapsed * env.world / 3600, 4) if cuda else 0.0,
        "started": run.started,
        "finished": _now(),
    }
    from ytfgvc.system.fsutil import write_json_atomic

    write_json_atomic(files.metrics, metrics)
    return metrics


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
