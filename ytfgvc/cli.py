"""The ``ytfgvc`` command line: a thin shell over the library.

Each command parses its options into a config, calls one library function and prints a
summary (``--json`` for machines). A :class:`~ytfgvc.errors.YtfgvcError`, a full disk and a
locked database (:mod:`ytfgvc.system.fserrors`) become one line on stderr and exit code 2. SIGTERM
stops a command as Ctrl-C does (:mod:`ytfgvc.system.interrupts`): exit code 130 after SIGINT, 143
after SIGTERM, with the command that resumes the work.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from ytfgvc import __version__
from ytfgvc.commands import benchmark, core, download, leaderboard, models, prepare, study
from ytfgvc.commands.options import root_flag
from ytfgvc.errors import ValidationError, YtfgvcError


class _Group(click.Group):
    """Errors become one line on stderr (or, with ``--json``, a JSON object on stdout) and an exit status."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["ytfgvc.json"] = "--json" in args  # the subcommand's flag: errors follow it
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        from ytfgvc.system.fserrors import as_user_error
        from ytfgvc.system.interrupts import exit_status, signal_name, sigterm_as_interrupt

        as_json = ctx.meta.get("ytfgvc.json", False)
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except ValidationError as e:
            problems = [str(p) for p in e.problems]
            _fail(as_json, e.exit_code, f"error: {e.report()}", error=e.message, hint=e.hint, problems=problems)
        except YtfgvcError as e:
            _fail(as_json, e.exit_code, f"error: {e}", error=e.message, hint=e.hint)
        except KeyboardInterrupt as e:
            again = shlex.join(["ytfgvc", *sys.argv[1:]])
            text = f"interrupted ({signal_name(e)}): finished work is kept; resume with:\n  {again}"
            _fail(as_json, exit_status(e), text, error=f"interrupted ({signal_name(e)})", resume=again)
        except Exception as e:  # a full disk or a locked database, wherever it surfaced; else a bug
            mapped = as_user_error(e)
            if mapped is None:
                raise
            _fail(as_json, mapped.exit_code, f"error: {mapped}", error=mapped.message, hint=mapped.hint)


def _fail(as_json: bool, status: int, text: str, **fields: Any) -> None:
    """Exit with ``status`` after ``text`` on stderr, or with ``--json`` a JSON object on stdout.

    The object: ``error`` (the message), ``exit_status``, and where there are some ``hint``
    (what to do), ``problems`` (every one, for a rejected file) and ``resume`` (the command).
    """
    if as_json:
        data = {"error": fields.pop("error"), "exit_status": status, **{k: v for k, v in fields.items() if v}}
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(text, err=True)
    sys.exit(status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ytfgvc")
@root_flag
@click.pass_context
def main(ctx: click.Context, root: Path | None) -> None:
    """Fine-grained video toolkit for YouTube-Birds and YouTube-Cars (RRA, ECCV 2018).

    \b
    Example (offline, on a CPU):
      ytfgvc demo
      ytfgvc datasets --root ./ytfgvc-data
    """
    ctx.obj = {"root": root}


for _module in (core, models, download, prepare, benchmark, leaderboard, study):
    for _command in _module.COMMANDS:
        main.add_command(_command)
