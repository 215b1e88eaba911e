"""Foundation commands: ``datasets``, ``annotations import``, ``synth``, ``demo``."""

from __future__ import annotations

from pathlib import Path

import click

from ytfgvc.commands.options import emit, json_option, root_option
from ytfgvc.config import default_of
from ytfgvc.synth import SynthConfig


@click.command()
@root_option
@json_option
def datasets(root: Path, as_json: bool) -> None:
    """List dataset cards and what exists for each under --root.

    \b
    Example:
      ytfgvc datasets --root ./ytfgvc-data --json
    """
    from ytfgvc.datasets.inventory import all_status

    rows = all_status(root)
    row = "{:<10} {:>7} {:>17} {:>4} {:>16} {:>10} {:>8}"
    lines = [row.format("dataset", "classes", "paper train/test", "fps", "imported", "downloaded", "prepared")]
    for r in rows:
        paper = f"{r.paper_train or '-'}/{r.paper_test or '-'}"
        imported = f"{r.listed_train}/{r.listed_test}" if r.imported else "no"
        lines.append(row.format(r.name, r.classes, paper, f"{r.sample_fps:g}", imported, r.downloaded, r.prepared))
    lines.append(f"root: {root}")
    emit({"root": str(root), "datasets": [r.to_dict() for r in rows]}, as_json, "\n".join(lines))


@click.group()
def annotations() -> None:
    """Official annotation lists: import and check."""


@annotations.command("import")
@click.argument("dataset")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace a different import already under --root.")
@root_option
@json_option
def import_cmd(dataset: str, src: Path, force: bool, root: Path, as_json: bool) -> None:
    """Validate train_list.json, test_list.json and label2name.json in SRC and install them.

    \b
    Example:
      ytfgvc annotations import birds ~/Downloads/youtube-birds --root /data/ytfgvc
    """
    from ytfgvc.datasets.official import import_annotations

    result = import_annotations(root, dataset, src, force=force)
    c = result.counts
    text = [f"{dataset}: {result.status} ({c['classes']} classes, {c['train']} train, {c['test']} test)"]
    text += [f"warning: {w}" for w in result.warnings]
    emit(result.to_dict(), as_json, "\n".join(text))


@click.command()
@click.option("--classes", default=default_of(SynthConfig, "classes"), show_default=True, help="Number of classes.")
@click.option(
    "--videos-per-class", default=default_of(SynthConfig, "videos_per_class"), show_default=True, help="Per class."
)
@click.option("--seed", default=default_of(SynthConfig, "seed"), show_default=True, help="Everything follows from it.")
@click.option(
    "--visible-fraction",
    type=float,
    default=None,
    help="Share of each video's frames that show the bird, in (0, 1] [drawn per video in 0.25-0.35]; "
    "the rest of every video is the default's.",
)
@click.option("--jobs", default=0, help="Worker processes (default: all cores).")
@click.option("--force", is_flag=True, help="Delete a synthetic dataset made with other settings first.")
@root_option
@json_option
def synth(
    classes: int,
    videos_per_class: int,
    seed: int,
    visible_fraction: float | None,
    jobs: int,
    force: bool,
    root: Path,
    as_json: bool,
) -> None:
    """Generate the offline synthetic fine-grained dataset and its mirror.

    \b
    Example:
      ytfgvc synth --classes 10 --videos-per-class 16 --seed 0
      ytfgvc synth --visible-fraction 0.1 --root /tmp/sparse
    """
    from ytfgvc.synth import SynthConfig, generate

    cfg = SynthConfig(classes=classes, videos_per_class=videos_per_class, seed=seed, visible_fraction=visible_fraction)
    r = generate(root, cfg, jobs=jobs, force=force, progress=not as_json)
    text = (
        f"synthetic: {r.videos} videos ({r.generated} made, {r.skipped} already there), "
        f"{r.bytes / 1e6:.1f} MB in {r.seconds:.1f} s under {r.root}\n"
        f"  deliberately too long: {len(r.too_long)}, too small: {len(r.too_small)}; lists {r.imported['status']}"
    )
    emit(r.to_dict(), as_json, text)


@click.command()
@root_option
@click.option("--jobs", default=0, help="Worker processes (default: all cores).")
def demo(root: Path, jobs: int) -> None:
    """Run every stage on the synthetic dataset, offline, on a CPU.

    \b
    Example:
      ytfgvc demo --root ./ytfgvc-data
    """
    from ytfgvc.demo import run_demo

    run_demo(root, jobs=jobs, echo=click.echo)


COMMANDS = [datasets, annotations, synth, demo]
