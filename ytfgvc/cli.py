"""The ``ytfgvc`` command line: a thin shell over the library.

Each command parses its options into a config, calls one library function and prints a
summary (``--json`` for machines). A :class:`~ytfgvc.errors.YtfgvcError`, a full disk and a
locked database (:mod:`ytfgvc.system.fserrors`) become one line on stderr and exit code 2. SIGTERM
stops a command as Ctrl-C does (:mod:`ytfgvc.system.interrupts`): exit code 130 after SIGINT, 143
after SIGTERM, with the command that resumes the work.
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ytfgvc import __version__
from ytfgvc.errors import ValidationError, YtfgvcError
from ytfgvc.layout import default_root


def root_option(f):
    """``--root`` on a command; falls back to the group's ``--root``, then ``$YTFGVC_ROOT``."""

    @click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data folder (default: $YTFGVC_ROOT, else ./ytfgvc-data).",
    )
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


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from ytfgvc.system.fserrors import as_user_error
        from ytfgvc.system.interrupts import exit_status, signal_name, sigterm_as_interrupt

        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except ValidationError as e:
            click.echo(f"error: {e.report()}", err=True)
            sys.exit(e.exit_code)
        except YtfgvcError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt as e:
            again = shlex.join(["ytfgvc", *sys.argv[1:]])
            click.echo(f"interrupted ({signal_name(e)}): finished work is kept; resume with:\n  {again}", err=True)
            sys.exit(exit_status(e))
        except Exception as e:  # a full disk or a locked database, wherever it surfaced; else a bug
            mapped = as_user_error(e)
            if mapped is None:
                raise
            click.echo(f"error: {mapped}", err=True)
            sys.exit(mapped.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ytfgvc")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (default: $YTFGVC_ROOT, else ./ytfgvc-data).",
)
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """Fine-grained video toolkit for YouTube-Birds and YouTube-Cars (RRA, ECCV 2018).

    \b
    Example (offline, on a CPU):
      ytfgvc demo
      ytfgvc datasets --root ./ytfgvc-data
    """
    ctx.obj = {"root": root}


COMMAND_MODULES = [
    "ytfgvc.commands.core",
    "ytfgvc.commands.models",
    "ytfgvc.commands.download",
    "ytfgvc.commands.prepare",
    "ytfgvc.commands.benchmark",
    "ytfgvc.commands.leaderboard",
    "ytfgvc.commands.study",
]


def _register() -> None:
    # Each command module exposes COMMANDS, a list of click commands.
    import importlib

    for name in COMMAND_MODULES:
        for cmd in importlib.import_module(name).COMMANDS:
            main.add_command(cmd)


_register()
