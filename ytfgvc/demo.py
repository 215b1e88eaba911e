"""``ytfgvc demo``: every stage that exists, in order, on the synthetic dataset, offline.

Each stage is a function ``(ctx) -> str`` that does its work and returns one summary
line; later stages append themselves to :data:`STAGES`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def stage_synth(ctx: DemoContext) -> str:
    from ytfgvc.synth import generate

    r = generate(ctx.root, ctx.synth, jobs=ctx.jobs, progress=True)
    ctx.results["synth"] = r
    return (
        f"{r.videos} videos in {r.root}/mirror ({r.bytes / 1e6:.1f} MB; "
        f"{len(r.too_long)} too long and {len(r.too_small)} too small on purpose), lists {r.imported['status']}"
    )


def stage_datasets(ctx: DemoContext) -> str:
    from ytfgvc.datasets import get_card
    from ytfgvc.inventory import dataset_status

    s = dataset_status(ctx.root, get_card(DATASET))
    listed = f"{s.listed_train} train / {s.listed_test} test listed"
    return f"{s.name}: {listed}, {s.downloaded} downloaded, {s.prepared} prepared"


def stage_prepare(ctx: DemoContext) -> str:
    from ytfgvc.layout import DatasetLayout
    from ytfgvc.prepare import NoVideosError, PrepareConfig, prepare_dataset
    from ytfgvc.prepare.lists import read_frames_meta
    from ytfgvc.records import ok_video_ids

    try:
        r = prepare_dataset(ctx.root, DATASET, PrepareConfig(jobs=ctx.jobs), progress=True)
    except NoVideosError:
        return "no downloaded videos yet (the download stage puts them in videos/): nothing to prepare"
    ctx.results["prepare"] = r
    layout = DatasetLayout(ctx.root, DATASET)
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
    ("datasets", stage_datasets),
    ("prepare", stage_prepare),
]


def run_demo(
    root: Path, jobs: int = 0, echo: Callable[[str], None] = print, synth: SynthConfig | None = None
) -> DemoContext:
    """Run :data:`STAGES` in order; ``synth`` shrinks the dataset (tests use a tiny one)."""
    ctx = DemoContext(root=Path(root), jobs=jobs, synth=synth or SynthConfig())
    t0 = time.perf_counter()
    for name, fn in STAGES:
        t = time.perf_counter()
        echo(f"[{name}] ...")
        line = fn(ctx)
        echo(f"[{name}] {line} ({time.perf_counter() - t:.1f} s)")
    echo(f"demo finished in {time.perf_counter() - t0:.1f} s; everything is under {ctx.root.resolve()}")
    return ctx
