"""``ytfgvc leaderboard validate|submit|render|compare|rescore``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ytfgvc.commands.options import emit, json_option, root_option
from ytfgvc.errors import ValidationError

SHOWN_PROBLEMS = 50

leaderboard_dir_option = click.option(
    "--leaderboard-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder holding submissions/, README.md and index.html [ROOT/leaderboard]. In a clone, "
    "`--leaderboard-dir leaderboard` is the committed leaderboard.",
)


def _scores_line(scores: dict) -> str:
    iv = scores["intervals"]
    parts = [
        f"{name} {scores[k]:.2f} [{iv[k][0]:.2f}, {iv[k][1]:.2f}]"
        for k, name in (("top1", "top-1"), ("top5", "top-5"), ("mean_class", "mean class"))
    ]
    cov = f"coverage {scores['n_scored']}/{scores['n_official']} ({scores['coverage'] * 100:.1f}%)"
    return ", ".join(parts) + f"; {cov}"


@click.group()
def leaderboard() -> None:
    """Validate, submit, compare and publish results on the leaderboard.

    \b
    Example:
      ytfgvc leaderboard validate ytfgvc-data/runs/birds/rra/paper-seed0/predictions.json --dataset birds
    """


@leaderboard.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", required=True, help="The dataset the predictions are for (its test list is under --root).")
@click.option("--allow-partial", is_flag=True, help="Accept a file that leaves official test videos out.")
@root_option
@json_option
def validate(file: Path, dataset: str, allow_partial: bool, root: Path, as_json: bool) -> None:
    """Check a predictions file strictly and list every problem; writes nothing.

    \b
    Example:
      ytfgvc leaderboard validate predictions.json --dataset birds --root /data/ytfgvc
    """
    from ytfgvc.datasets.official import load_official
    from ytfgvc.predictions import validate_file

    report = validate_file(file, load_official(root, dataset), dataset, allow_partial=allow_partial)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        sys.exit(0 if report.ok else 2)
    if not report.ok:
        shown = [str(p) for p in report.problems[:SHOWN_PROBLEMS]]
        if len(report.problems) > SHOWN_PROBLEMS:
            shown.append(f"… and {len(report.problems) - SHOWN_PROBLEMS} more problems (--json lists all)")
        raise ValidationError(f"{file}: predictions rejected", shown)
    pred = report.predictions
    assert pred is not None
    for w in report.warnings:
        click.echo(f"warning: {w}")
    click.echo(
        f"valid: {dataset} predictions for {len(pred.top5)} / {pred.n_official} official test videos "
        f"(coverage {pred.coverage * 100:.1f}%), manifest {(pred.manifest or 'unknown')[:12]}"
    )


@leaderboard.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", required=True, help="The dataset the predictions are for.")
@click.option("--method", required=True, help="The method's name as shown on the leaderboard.")
@click.option("--backbone", default="", help="Backbone network, e.g. 'Inception-V3'.")
@click.option("--pretraining", default="", help="Pretraining data, e.g. 'ImageNet'.")
@click.option("--frames-crops", default="", help="Test input, frames x crops, e.g. '25 x 10'.")
@click.option("--params", default="", help="Number of parameters, e.g. '23.8M'.")
@click.option("--code-url", default="", help="http(s) link to the code.")
@click.option("--paper-url", default="", help="http(s) link to the paper.")
@click.option("--notes", default="", help="Anything else worth knowing (shown as text).")
@click.option(
    "--starting-weights",
    default="",
    help="What the model started from (a file and its sha256, a hub tag, 'from scratch'); wins over the file's.",
)
@click.option("--recipe", default="", help="How it was trained (e.g. 'tsn-official'); wins over the file's.")
@click.option("--allow-partial", is_flag=True, help="Accept partial coverage (scored on covered videos; shown).")
@click.option("--replace", is_flag=True, help="Replace this method's existing entry.")
@leaderboard_dir_option
@root_option
@json_option
def submit(
    file: Path,
    dataset: str,
    method: str,
    backbone: str,
    pretraining: str,
    frames_crops: str,
    params: str,
    code_url: str,
    paper_url: str,
    notes: str,
    starting_weights: str,
    recipe: str,
    allow_partial: bool,
    replace: bool,
    leaderboard_dir: Path,
    root: Path,
    as_json: bool,
) -> None:
    """Validate and re-score a predictions file, then write its leaderboard entry.

    \b
    Example:
      ytfgvc leaderboard submit ytfgvc-data/runs/birds/rra/paper-seed0/predictions.json --dataset birds \\
          --method 'RRA (Inception-V3)' --backbone Inception-V3 --pretraining ImageNet \\
          --frames-crops '25 x 10' --allow-partial
    """
    from ytfgvc.leaderboard.entries import Metadata
    from ytfgvc.leaderboard.submit import submit as do_submit

    meta = Metadata(backbone, pretraining, frames_crops, params, code_url, paper_url, notes)
    r = do_submit(
        file,
        dataset,
        method,
        root,
        metadata=meta,
        leaderboard_dir=leaderboard_dir,
        allow_partial=allow_partial,
        replace=replace,
        provenance={"weights": starting_weights, "recipe": recipe},
    )
    verb = "replaced" if r.replaced else "wrote"
    lines = [f"warning: {w}" for w in r.warnings]
    lines.append(f"{r.entry['method']} on {dataset}: {_scores_line(r.entry['scores'])}")
    lines.append(f"{verb} {r.path}; run `ytfgvc leaderboard render` to update the page")
    emit(r.to_dict(), as_json, "\n".join(lines))


@leaderboard.command()
@leaderboard_dir_option
@root_option
@json_option
def render(leaderboard_dir: Path | None, root: Path, as_json: bool) -> None:
    """Write README.md and index.html of the leaderboard from its entries.

    \b
    Example:
      ytfgvc leaderboard render --leaderboard-dir leaderboard
    """
    from ytfgvc.layout import leaderboard_dir as default_dir
    from ytfgvc.leaderboard.render import render as do_render

    r = do_render(leaderboard_dir or default_dir(root))
    counts = ", ".join(f"{d} {n}" for d, n in r.entries.items()) or "no entries"
    emit(r.to_dict(), as_json, f"rendered {r.readme} and {r.index} ({counts})")


@leaderboard.command()
@click.argument("a")
@click.argument("b")
@click.option("--dataset", required=True, help="The dataset both are for.")
@click.option(
    "--metric", type=click.Choice(["top1", "top5"]), default="top1", show_default=True, help="What to compare."
)
@leaderboard_dir_option
@root_option
@json_option
def compare(a: str, b: str, dataset: str, metric: str, leaderboard_dir: Path, root: Path, as_json: bool) -> None:
    """Is A better than B? Paired bootstrap on the test videos both cover.

    A and B are entry slugs, entry files or predictions files.

    \b
    Example:
      ytfgvc leaderboard compare rra tsn --dataset birds
    """
    from ytfgvc.leaderboard.compare import compare as do_compare

    r = do_compare(a, b, dataset, root, leaderboard_dir=leaderboard_dir, metric=metric)
    emit(r.to_dict(), as_json, r.sentence())


@leaderboard.command()
@click.option("--dataset", required=True, help="Re-score this dataset's entries.")
@click.option("--write", is_flag=True, help="Rewrite entries whose scores changed (default: only report).")
@leaderboard_dir_option
@root_option
@json_option
def rescore(dataset: str, write: bool, leaderboard_dir: Path, root: Path, as_json: bool) -> None:
    """Re-score every entry from its kept predictions against the imported test list.

    Exits 1 when an entry's stored scores differ and --write was not given.

    \b
    Example:
      ytfgvc leaderboard rescore --dataset birds --root /data/ytfgvc
    """
    from ytfgvc.leaderboard.submit import rescore as do_rescore

    r = do_rescore(root, dataset, leaderboard_dir, write=write)
    changed = ", ".join(r.changed) or "none"
    action = "rewritten" if write else "differ"
    emit(r.to_dict(), as_json, f"{dataset}: {r.checked} entries re-scored; {action}: {changed}")
    if r.changed and not write:
        sys.exit(1)


COMMANDS = [leaderboard]
