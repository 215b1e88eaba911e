"""``ytfgvc demo``: every stage that exists, in order, on the synthetic dataset, offline.

Each stage is a function ``(ctx) -> str`` that does its work and returns one summary
line; :data:`STAGES` lists them in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.layout import RunFiles, runs_dir
from ytfgvc.synth import SynthConfig

DATASET = "synthetic"


@dataclass
class DemoContext:
    root: Path
    jobs: int = 0
    synth: SynthConfig = field(default_factory=SynthConfig)
    # TV-L1 on a CPU takes about a second a pair: the demo shows flow on this many of the
    # shortest videos, with this stack length (the paper's 5 is `ytfgvc prepare --flow`'s default).
    flow_videos: int = 1
    flow_stack: int = 1
    results: dict[str, Any] = field(default_factory=dict)
    echo: Callable[[str], None] = print

    @cached_property
    def dataset(self) -> Dataset:
        """The synthetic dataset under the demo's root: one handle for every stage."""
        return Dataset.open(self.root, DATASET)


def stage_synth(ctx: DemoContext) -> str:
    from ytfgvc.synth import generate

    r = generate(ctx.root, ctx.synth, jobs=ctx.jobs, progress=True)
    ctx.results["synth"] = r
    return (
        f"{r.videos} videos in {r.root}/mirror ({r.bytes / 1e6:.1f} MB; "
        f"{len(r.too_long)} too long and {len(r.too_small)} too small on purpose), lists {r.imported['status']}"
    )


def stage_download(ctx: DemoContext) -> str:
    """Download the synthetic mirror over loopback HTTP with yt-dlp; check the deliberate misfits were filtered."""
    from ytfgvc.download import DownloadConfig, download
    from ytfgvc.download.ledger import Ledger

    r = download(ctx.root, DownloadConfig(dataset=DATASET, jobs=ctx.jobs or None), progress=True)
    ctx.results["download"] = r
    synth = ctx.results.get("synth")
    checks = ""
    if synth is not None:
        with Ledger(ctx.dataset.layout.ledger_path, DATASET, readonly=True) as ledger:
            records = ledger.records()
        status = {vid: rec.status for vid, rec in records.items()}
        long_ok = sum(status.get(v) == "filtered_duration" for v in synth.too_long)
        small_ok = sum(status.get(v) == "filtered_resolution" for v in synth.too_small)
        checks = (
            f"; too long on purpose: {long_ok}/{len(synth.too_long)} filtered_duration, "
            f"too small on purpose: {small_ok}/{len(synth.too_small)} filtered_resolution"
        )
    counts = ", ".join(f"{k} {v}" for k, v in r.totals.items())
    return f"{counts} via yt-dlp from {r.source}{checks}; manifest {r.manifest_hash[:12]}"


def stage_datasets(ctx: DemoContext) -> str:
    from ytfgvc.datasets.inventory import dataset_status

    s = dataset_status(ctx.root, ctx.dataset.card)
    listed = f"{s.listed_train} train / {s.listed_test} test listed"
    return f"{s.name}: {listed}, {s.downloaded} downloaded, {s.prepared} prepared"


def stage_leaderboard(ctx: DemoContext) -> str:
    """Submit the benchmark's predictions (``ctx.results["benchmark"]["predictions"]``: {model: path}),
    or the class-prior baseline when no benchmark ran, to ``<root>/leaderboard/`` and render it."""
    from ytfgvc.leaderboard.baseline import demo_submit

    return demo_submit(ctx.root, DATASET, ctx.results.get("benchmark"))


BENCHMARK_METHODS = ("rra", "tsn")


def stage_benchmark(ctx: DemoContext) -> str:
    """The ``smoke`` preset of RRA and TSN on the prepared synthetic frames, then Table 6."""
    from ytfgvc.benchmark.config import load_config
    from ytfgvc.benchmark.run import run_benchmark
    from ytfgvc.benchmark.table6 import build_table, write_table
    from ytfgvc.models import list_models

    layout = ctx.dataset.layout
    if not (layout.list_path("train").is_file() and layout.list_path("test").is_file()):
        return f"skipped: no prepared frames and lists under {layout.base} (run `ytfgvc prepare {DATASET}`)"
    missing = [m for m in BENCHMARK_METHODS if m not in list_models()]
    if missing:
        return f"skipped: models {', '.join(missing)} are not registered in ytfgvc.models"
    runs_root = runs_dir(ctx.root)
    n_train = sum(1 for line in layout.list_path("train").read_text().splitlines() if line.strip())
    runs = []
    for method in BENCHMARK_METHODS:
        cfg = load_config(method, "smoke", overrides={"dataset": DATASET, "root": str(ctx.root)})
        if 0 < n_train < cfg.batch_size:  # a tiny synthetic set (tests): one batch of everything
            cfg = cfg.replace(batch_size=n_train)
        runs.append(run_benchmark(cfg, runs_root, resume=True, echo=ctx.echo))
    table = build_table([r.run_dir for r in runs])
    files = write_table(table, runs_root / DATASET)
    ctx.echo(table.to_markdown())
    ctx.results["benchmark"] = {
        "predictions": {m: str(RunFiles(r.run_dir).predictions) for m, r in zip(BENCHMARK_METHODS, runs, strict=True)},
        "runs": [str(r.run_dir) for r in runs],
        "table6": files,
    }
    top1 = ", ".join(f"{m} {r.metrics['scores']['top1']:.1f}%" for m, r in zip(BENCHMARK_METHODS, runs, strict=True))
    chance = runs[0].metrics["chance"]["top1"]
    return (
        f"smoke runs of {' and '.join(BENCHMARK_METHODS)} (top-1 {top1}; chance {chance:.1f}%: a plumbing check, "
        f"not a result); Table 6 in {files['md']}"
    )


def stage_prepare(ctx: DemoContext) -> str:
    from ytfgvc.prepare import NoVideosError, PrepareConfig, prepare_dataset
    from ytfgvc.prepare.lists import read_frames_meta
    from ytfgvc.snapshot import ok_video_ids

    try:
        r = prepare_dataset(ctx.root, DATASET, PrepareConfig(jobs=ctx.jobs), progress=True)
    except NoVideosError:
        return "no downloaded videos yet (the download stage puts them in videos/): nothing to prepare"
    ctx.results["prepare"] = r
    layout = ctx.dataset.layout
    metas = {v: m for v in sorted(ok_video_ids(layout)) if (m := read_frames_meta(layout, v))}
    ids = list(metas)

    def cost(v: str) -> tuple:  # flow pairs grow with kept frames, then native frames
        return metas[v]["num_frames"], metas[v]["source"]["native_frames"], v

    shortest = sorted(ids, key=cost)[: ctx.flow_videos]
    flow = ""
    if shortest:
        cfg = PrepareConfig(jobs=ctx.jobs, flow=True, flow_stack=ctx.flow_stack)
        f = prepare_dataset(ctx.root, DATASET, cfg, progress=True, video_ids=shortest)
        ctx.results["prepare_flow"] = f
        flow = (
            f"; TV-L1 flow (stack {ctx.flow_stack}) for the {len(shortest)} shortest, {f.flow_pairs} pairs"
            f"{', ' + str(len(f.errors)) + ' failed' if f.errors else ''} (`ytfgvc prepare {DATASET} --flow` does all)"
        )
    lists = r.lists or {"written": {"train": 0, "test": 0}, "listed": {"train": 0, "test": 0}}
    w, n = lists["written"], lists["listed"]
    failed = f", {len(r.errors)} failed" if r.errors else ""
    return (
        f"{r.prepared} of {r.videos} videos, {sum(m['num_frames'] for m in metas.values()):,} frames{failed}{flow}; "
        f"lists: {w['train']} of {n['train']} train, {w['test']} of {n['test']} test"
    )


STAGES: list[tuple[str, Callable[[DemoContext], str]]] = [
    ("synth", stage_synth),
    ("download", stage_download),
    ("prepare", stage_prepare),
    ("datasets", stage_datasets),
    ("benchmark", stage_benchmark),
    ("leaderboard", stage_leaderboard),
]


NEXT_STEPS = """next:
  the smoke scores only show the pipeline works (2 epochs, tiny inputs, chance level);
  ytfgvc study rra-vs-tsn --profile cpu     RRA against TSN on the synthetic data, for real (hours on 2 cores)
  ytfgvc annotations import birds DIR       the official lists (see ytfgvc datasets), then download, prepare, benchmark
  docs: README.md, docs/benchmark.md, docs/study.md"""


def run_demo(
    root: Path, jobs: int = 0, echo: Callable[[str], None] = print, synth: SynthConfig | None = None
) -> DemoContext:
    """Run :data:`STAGES` in order; ``synth`` shrinks the dataset (tests use a tiny one)."""
    ctx = DemoContext(root=Path(root), jobs=jobs, synth=synth or SynthConfig(), echo=echo)
    t0 = time.perf_counter()
    for name, fn in STAGES:
        t = time.perf_counter()
        echo(f"[{name}] ...")
        line = fn(ctx)
        echo(f"[{name}] {line} ({time.perf_counter() - t:.1f} s)")
    echo(f"demo finished in {time.perf_counter() - t0:.1f} s; everything is under {ctx.root.resolve()}")
    echo(NEXT_STEPS)
    return ctx
