"""The data a run reads: the rawframe lists and frames (or flow stacks), checked against the official lists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ytfgvc.benchmark.config import BenchmarkConfig
from ytfgvc.data.rawframes import VideoRecord, missing_frames, read_list
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, default_root


@dataclass
class DataInfo:
    layout: DatasetLayout
    train: list[VideoRecord]
    test: list[VideoRecord]
    num_classes: int
    n_official: int | None
    manifest: str | None
    annotations: str | None


def load_data(cfg: BenchmarkConfig) -> DataInfo:
    """Read and check the lists and frames of ``cfg.dataset``; the number of classes and official test videos."""
    from ytfgvc.datasets import Dataset

    if not cfg.dataset:
        raise YtfgvcError("no dataset given", "pass DATASET (birds, cars or synthetic)")
    ds = Dataset.open(Path(cfg.root) if cfg.root else default_root(), cfg.dataset)
    layout = ds.layout
    splits = {s: read_list(layout, s) for s in ("train", "test")}
    for split, recs in splits.items():
        missing = missing_frames(layout, recs)
        if missing:
            raise YtfgvcError(
                f"no frames for {len(missing)} of {len(recs)} {split} videos (first: {', '.join(missing[:3])})",
                f"run `ytfgvc prepare {cfg.dataset}` first",
            )
        if cfg.modality == "flow":
            check_flow(layout, recs, split, cfg)
    n_official, annotations, num_classes = None, None, ds.card.num_classes
    if ds.imported:
        official = ds.official()
        n_official, annotations = len(official.test), ds.annotations_hash
        num_classes = max(official.labels) + 1 if official.labels else num_classes
        unknown = sorted({r.video_id for r in splits["test"]} - {v for v, _ in official.test})
        if unknown:
            raise YtfgvcError(
                f"{len(unknown)} test videos are not in the official test list (first: {', '.join(unknown[:3])})",
                f"run `ytfgvc prepare {cfg.dataset}` again to rewrite the lists",
            )
    num_classes = cfg.num_classes or num_classes
    top = max(r.label for recs in splits.values() for r in recs)
    if top >= num_classes:
        raise YtfgvcError(f"label {top} in the lists, but only {num_classes} classes", "check --set num_classes")
    return DataInfo(
        layout, splits["train"], splits["test"], num_classes, n_official, lists_manifest(layout), annotations
    )


def check_flow(layout: DatasetLayout, records: list[VideoRecord], split: str, cfg: BenchmarkConfig) -> None:
    """Every listed video has flow stacks of ``cfg.flow_stack`` JPEG fields; else an error naming the fix."""
    from ytfgvc.store import read_meta

    command = f"ytfgvc prepare {cfg.dataset} --flow --flow-stack {cfg.flow_stack}"
    missing = missing_frames(layout, records, "flow", cfg.flow_stack)
    if missing:
        raise YtfgvcError(
            f"no flow stacks for {len(missing)} of {len(records)} {split} videos (first: {', '.join(missing[:3])})",
            f"run `{command}`",
        )
    vid, meta = records[0].video_id, read_meta(layout, "flow", records[0].video_id)
    if meta is None:
        raise YtfgvcError(
            f"the flow of {vid} has no readable meta.json (its stack size is unknown)", f"run `{command} --force`"
        )
    stack, fmt = meta.get("stack"), meta.get("format", "jpg")
    if stack != cfg.flow_stack or fmt != "jpg":
        other = f", or --set flow_stack={stack}" if fmt == "jpg" and isinstance(stack, int) else ""
        raise YtfgvcError(
            f"the flow of {vid} has stacks of {stack} fields in {fmt}, the config asks for {cfg.flow_stack} in jpg",
            f"run `{command} --force`{other}",
        )


def lists_manifest(layout: DatasetLayout) -> str | None:
    """The snapshot the lists were made from (``lists/meta.json``), else the one on disk now (hand-made lists)."""
    import json

    from ytfgvc.snapshot import manifest_hash

    try:
        meta = json.loads(layout.lists_meta_path.read_text())
        if isinstance(meta, dict) and "manifest" in meta:
            return meta["manifest"] if isinstance(meta["manifest"], str) else None
    except (OSError, ValueError, RecursionError):
        pass
    return manifest_hash(layout)


def resolve(cfg: BenchmarkConfig, data: DataInfo) -> BenchmarkConfig:
    """Fill in what the data decides: the absolute root, the number of classes, the run name."""
    model = cfg.model.replace(kwargs=cfg.model_kwargs())
    return cfg.replace(
        root=str(data.layout.root.resolve()), num_classes=data.num_classes, run=cfg.run_name, model=model
    )
