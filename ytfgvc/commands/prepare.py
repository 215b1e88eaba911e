"""``ytfgvc prepare``: frames, rawframe lists and optical flow for the downloaded videos."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from ytfgvc.commands.options import cluster_options, emit, json_option, root_option
from ytfgvc.config import default_of
from ytfgvc.distributed import ClusterConfig
from ytfgvc.errors import YtfgvcError
from ytfgvc.prepare.config import PrepareConfig
from ytfgvc.store import STORES


def _parse_params(items: tuple[str, ...]) -> dict:
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise YtfgvcError(f"--flow-param expects KEY=VALUE, got {item!r}", "e.g. --flow-param warps=3")
        params[key.strip()] = yaml.safe_load(value)
    return params


@click.command()
@click.argument("dataset")
@click.option(
    "--jobs", default=default_of(PrepareConfig, "jobs"), show_default=True, help="Worker processes (0: one per core)."
)
@click.option(
    "--short-side",
    default=default_of(PrepareConfig, "short_side"),
    show_default=True,
    help="Resize so the shorter side is this (never up).",
)
@click.option("--sample-fps", type=float, default=None, help="Frames kept per second (default: the dataset card's).")
@click.option("--flow", is_flag=True, help="Also compute TV-L1 optical flow stacks.")
@click.option(
    "--flow-backend",
    default=default_of(PrepareConfig, "flow_backend"),
    show_default=True,
    help="Flow backend: opencv (CPU) or torch.",
)
@click.option(
    "--flow-format",
    type=click.Choice(["jpg", "npy"]),
    default=default_of(PrepareConfig, "flow_format"),
    show_default=True,
    help="jpg: clamped to +-20 px, 8 bit; npy: float16, lossless.",
)
@click.option(
    "--flow-stack",
    default=default_of(PrepareConfig, "flow_stack"),
    show_default=True,
    help="Flow fields per stack, anchored at each frame.",
)
@click.option("--flow-param", multiple=True, metavar="KEY=VALUE", help="Backend parameter, e.g. warps=3 (repeat).")
@click.option("--limit", type=int, default=None, help="Prepare (or repack) at most this many videos in this run.")
@click.option("--force", is_flag=True, help="Redo videos already prepared, also those made with other settings.")
@click.option(
    "--store",
    type=click.Choice(STORES),
    default=default_of(PrepareConfig, "store"),
    show_default=True,
    help="folder: one file per frame and flow field; packed: one uncompressed ZIP per video for its frames "
    "and one for its flow (2 files a video; e.g. --store packed).",
)
@click.option(
    "--repack",
    is_flag=True,
    help="Convert the videos prepared in folders to the packed store, in place, video by video "
    "(e.g. ytfgvc prepare birds --repack --jobs 8); a killed run resumes when run again.",
)
@cluster_options
@root_option
@json_option
def prepare(
    dataset: str,
    jobs: int,
    short_side: int,
    sample_fps: float | None,
    flow: bool,
    flow_backend: str,
    flow_format: str,
    flow_stack: int,
    flow_param: tuple[str, ...],
    limit: int | None,
    force: bool,
    store: str,
    repack: bool,
    cluster: ClusterConfig,
    root: Path,
    as_json: bool,
) -> None:
    """Decode each downloaded video once: frames at the card's rate, lists, and flow.

    Writes frames/<id>/img_00001.jpg … + meta.json, lists/train.txt and lists/test.txt
    (MMAction2 rawframe format), and with --flow flow/<id>/flow_x_00001.jpg … With
    --store packed the same files go into frames/<id>.zip and flow/<id>.zip (uncompressed
    ZIP archives, 2 files a video); --repack converts a folder store in place. A second
    run does only what is missing; a killed run leaves nothing half-written, and its
    workers end with it. One prepare per dataset at a time (a second is refused).
    Exit status 130 after SIGINT, 143 after SIGTERM (the resume command is printed).

    \b
    Example:
      ytfgvc prepare birds --jobs 8
      ytfgvc prepare cars --flow --flow-stack 5 --jobs 16 --json
      ytfgvc prepare birds --flow --store packed --jobs 16
      ytfgvc prepare birds --repack --jobs 8
      ytfgvc prepare birds --flow --executor ray --ray-address auto --root /shared/ytfgvc
    """
    from ytfgvc.prepare import prepare_dataset

    cfg = PrepareConfig(
        short_side=short_side,
        sample_fps=sample_fps,
        flow=flow,
        flow_backend=flow_backend,
        flow_format=flow_format,
        flow_stack=flow_stack,
        flow_params=_parse_params(flow_param),
        jobs=jobs,
        force=force,
        limit=limit,
        store="packed" if repack else store,
        repack=repack,
        cluster=cluster,
    )
    result = prepare_dataset(root, dataset, cfg, progress=not as_json)
    emit(result.to_dict(), as_json, result.summary())


COMMANDS = [prepare]
