"""Options and output shared by the commands: ``--root``, ``--json``, the cluster options, :func:`emit`."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import click

from ytfgvc.layout import default_root

# --root, as the group and every command that reads or writes data take it.
root_flag = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (default: $YTFGVC_ROOT, else ./ytfgvc-data).",
)


def root_option(f):
    """``--root`` on a command; falls back to the group's ``--root``, then ``$YTFGVC_ROOT``."""

    @root_flag
    @click.pass_context
    @functools.wraps(f)
    def wrapper(ctx: click.Context, root: Path | None, **kw: Any):
        group_root = (ctx.find_root().obj or {}).get("root")
        return ctx.invoke(f, root=root or group_root or default_root(), **kw)

    return wrapper


def cluster_options(f):
    """``--executor``, ``--ray-address``, ``--ray-shared-root``, passed on as ``cluster`` (a ClusterConfig)."""

    @click.option(
        "--executor",
        type=click.Choice(["local", "ray"]),
        default="local",
        show_default=True,
        help="Run each video here (local) or as a task on a Ray cluster (ray; pip install 'ytfgvc[ray]').",
    )
    @click.option(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join: auto (the one `ray start` runs here) or HOST:PORT (default: $RAY_ADDRESS, "
        "else a Ray started for this run).",
    )
    @click.option(
        "--ray-shared-root/--no-ray-shared-root",
        default=None,
        help="Whether every node sees --root at the same path (default: detect per node; where it does not, "
        "files travel through this process).",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, executor: str, ray_address: str | None, ray_shared_root: bool | None, **kw: Any):
        from ytfgvc.distributed import ClusterConfig

        return f(*args, cluster=ClusterConfig(executor, ray_address, ray_shared_root), **kw)

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")


def emit(summary: Any, as_json: bool, text: str) -> None:
    """Print ``text`` for people or ``summary`` as JSON for machines."""
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(text)
