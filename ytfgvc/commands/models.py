"""Model commands: ``models`` (what can be built) and ``visualize`` (where RRA looks)."""

from __future__ import annotations

from pathlib import Path

import click

from ytfgvc.commands.options import emit, json_option


@click.command()
@json_option
def models(as_json: bool) -> None:
    """List the registered models and the backbones they can sit on.

    \b
    Example:
      ytfgvc models
      ytfgvc models --json
    """
    from ytfgvc.models import list_models
    from ytfgvc.models.backbones import list_backbones

    names, backbones = list_models(), list_backbones()
    lines = ["models:   " + ", ".join(names), "backbones:"]
    lines += [f"  {name:<14} {doc}" for name, doc in backbones.items()]
    lines.append("options and the paper's equations: docs/models.md")
    emit({"models": names, "backbones": backbones}, as_json, "\n".join(lines))


@click.command()
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.argument("video_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write [RUN/visualize/ID.png].")
@click.option("--frames", "num_frames", type=click.IntRange(min=1), help="Frames to show [the run's num_segments].")
@click.option("--no-suppressed", is_flag=True, help="Leave out the top-4 suppressed channels (Fig. 4) rows.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder holding the frames [the root in RUN/config.yaml].",
)
@json_option
@click.pass_context
def visualize(
    ctx: click.Context,
    run: Path,
    video_id: str,
    out: Path | None,
    num_frames: int | None,
    no_suppressed: bool,
    root: Path | None,
    as_json: bool,
) -> None:
    """Draw the attention of a trained RRA run on one video (paper eq. 7, Fig. 1, 4 and 7).

    One column per frame; one row for the input, one per glimpse (I_vis of eq. 7), and one
    per glimpse for the channels it suppresses most (Fig. 4). Red is high.

    \b
    Example:
      ytfgvc visualize ytfgvc-data/runs/birds/rra/paper-seed0 dQw4w9WgXcQ --out rra-dQw4.png
    """
    from ytfgvc.benchmark.visualize import visualize_run

    root = root or (ctx.find_root().obj or {}).get("root")
    v = visualize_run(run, video_id, out=out, root=root, num_frames=num_frames, suppressed=not no_suppressed)
    preds = ", ".join(f"{k}: {label}" for k, label in v.predictions.items())
    text = f"{v.path}: {len(v.frame_numbers)} frames x {len(v.heat)} maps ({preds})"
    emit(v.to_dict(), as_json, text)


COMMANDS = [models, visualize]
