"""``ytfgvc study``: many runs (variants x seeds) on the synthetic dataset, then one report."""

from __future__ import annotations

from pathlib import Path

import click

from ytfgvc.commands.options import emit, json_option, root_option


def _names(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _seeds(value: str | None) -> list[int] | None:
    try:
        return [int(v) for v in _names(value)] if value else None
    except ValueError:
        raise click.BadParameter(f"expected seeds like 0,1,2, got {value!r}") from None


@click.command("study")
@click.argument("name", default="rra-vs-tsn")
@click.option(
    "--profile",
    type=click.Choice(["gpu", "cpu", "micro"]),
    default="gpu",
    show_default=True,
    help="Size: gpu (one GPU, minutes), cpu (2 cores, hours; rra-vs-tsn only), micro (a plumbing check, seconds).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="The runs folder [ROOT/runs]."
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The report to write [in a clone, beside the study file: rra-vs-tsn gpu README.md, cpu README-cpu.md; "
    "redundancy README-redundancy.md; crest-attention README-attention.md; else OUT/<folder>/README.md].",
)
@click.option("--parallel", type=int, default=None, help="Runs at a time (own processes when > 1) [the profile's].")
@click.option(
    "--results-only",
    is_flag=True,
    help="Only rebuild the report: from the finished run folders under OUT if there are any, else from the "
    "results folder (--results, default the committed baselines/synthetic/results-...).",
)
@click.option(
    "--results",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A results folder (runs.json, study.json, attention.json) to rebuild the report from, or to --merge "
    "into [the committed one beside the study file].",
)
@click.option(
    "--merge",
    type=click.Path(exists=True, path_type=Path),
    multiple=True,
    help="Exported results (a folder or .tar.gz written with --export) to add to the results folder first, "
    "with their figures; repeatable. With --results-only the report is then rebuilt from the results folder.",
)
@click.option(
    "--export",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the compact results, the runs' small files (no checkpoints) and the report here, to carry "
    "them elsewhere (then --merge them).",
)
@click.option("--variants", default=None, help="Run only these variants (comma-separated) [all of the profile].")
@click.option("--seeds", default=None, help="Run only these seeds (comma-separated) [all of the profile].")
@click.option(
    "--stop-after",
    type=float,
    default=None,
    help="Start no run after this many seconds (running ones finish); the report covers the finished runs.",
)
@click.option("--data-only", is_flag=True, help="Only make the data the runs need (synth, copy, frames), then stop.")
@click.option("--figures/--no-figures", default=True, help="Draw the eq. 7 heat maps of two test videos.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
@root_option
@json_option
def study_cmd(
    name: str,
    profile: str,
    out: Path,
    report: Path | None,
    parallel: int | None,
    results_only: bool,
    results: Path | None,
    merge: tuple[Path, ...],
    export: Path | None,
    variants: str | None,
    seeds: str | None,
    stop_after: float | None,
    data_only: bool,
    figures: bool,
    progress: bool,
    root: Path,
    as_json: bool,
) -> None:
    """Run a study (NAME: rra-vs-tsn, redundancy, crest-attention, or a study file) and write its report.

    Makes the synthetic data at the profile's size under ROOT/<folder> (synth, copy from
    the mirror folder, prepare frames), trains and tests every (variant, seed) under
    OUT/<folder> (finished runs are skipped, killed ones resume), then regenerates the
    report from the runs: per-seed, seed-level and pooled intervals, and per study the
    ablation tables, the dose-response or the attention on the planted crest.

    \b
    Example:
      ytfgvc study rra-vs-tsn --profile micro --out /tmp/runs
      ytfgvc study rra-vs-tsn --profile gpu --root /tmp/data --out runs --export /tmp/export
      ytfgvc study rra-vs-tsn --profile gpu --results-only --merge /tmp/export
      ytfgvc study redundancy --profile gpu --results-only
    """
    from ytfgvc.layout import runs_dir
    from ytfgvc.study import run_study

    echo = (lambda s: None) if as_json else click.echo
    summary = run_study(
        name,
        profile,
        root,
        out or runs_dir(root),
        report=report,
        parallel=parallel,
        results_only=results_only,
        results=results,
        merge=list(merge),
        export=export,
        variants=_names(variants),
        seeds=_seeds(seeds),
        stop_after=stop_after,
        data_only=data_only,
        figures=figures,
        progress=progress and not as_json,
        echo=echo,
    )
    failed = f"; FAILED runs: {summary.failed}" if summary.failed else ""
    late = f"; not started (time up): {len(summary.not_started)}" if summary.not_started else ""
    if data_only:
        emit(summary.to_dict(), as_json, f"data of study {summary.study} (profile {summary.profile}) made")
        return
    emit(summary.to_dict(), as_json, f"report written to {summary.report} (from {summary.source}){failed}{late}")


COMMANDS = [study_cmd]
