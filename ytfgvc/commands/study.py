"""``ytfgvc study``: many runs (variants x seeds) on the synthetic dataset, then one report."""

from __future__ import annotations

from pathlib import Path

import click

from ytfgvc.commands.options import emit, json_option, root_option


@click.command("study")
@click.argument("name", default="rra-vs-tsn")
@click.option(
    "--profile",
    type=click.Choice(["gpu", "cpu", "micro"]),
    default="gpu",
    show_default=True,
    help="Size: gpu (one GPU, minutes), cpu (2 cores, under an hour), micro (a plumbing check, seconds).",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="The runs folder [ROOT/runs]."
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The report to write [gpu: baselines/synthetic/README.md; cpu: baselines/synthetic/README-cpu.md; "
    "micro: OUT/study-micro/README.md].",
)
@click.option("--parallel", type=int, default=None, help="Runs at a time (own processes when > 1) [the profile's].")
@click.option("--results-only", is_flag=True, help="Only rebuild the report from the run folders under OUT.")
@click.option(
    "--export",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also copy the runs' small files (no checkpoints) and the report here, to carry them elsewhere.",
)
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
    export: Path | None,
    figures: bool,
    progress: bool,
    root: Path,
    as_json: bool,
) -> None:
    """Run a study (NAME: rra-vs-tsn, or a study.yaml) and write its report.

    Makes the synthetic data at the profile's size under ROOT/study-PROFILE (synth, copy
    from the mirror folder, prepare frames), trains and tests every (variant, seed) under
    OUT/study-PROFILE (finished runs are skipped, killed ones resume), then regenerates the
    report: accuracies over seeds, the RRA − TSN paired bootstrap, Tables 3 and 4 beside the
    paper's, and the attention mass on the planted detail.

    \b
    Example:
      ytfgvc study rra-vs-tsn --profile micro --out /tmp/runs
      ytfgvc study rra-vs-tsn --profile gpu --root /tmp/data --out runs
      ytfgvc study rra-vs-tsn --profile gpu --out runs --results-only
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
        export=export,
        figures=figures,
        progress=progress and not as_json,
        echo=echo,
    )
    failed = f"; FAILED runs: {summary.failed}" if summary.failed else ""
    emit(summary.to_dict(), as_json, f"report written to {summary.report}{failed}")


COMMANDS = [study_cmd]
