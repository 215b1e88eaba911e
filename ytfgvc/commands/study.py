"""``ytfgvc study``: many runs (variants x seeds) on the synthetic dataset, then one report."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ytfgvc.cli import emit, json_option, root_option


@click.command("study")
@click.argument("name", default="rra-vs-tsn")
@click.option("--profile", type=click.Choice(["gpu", "cpu", "micro"]), default="gpu", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True)
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
@click.option("--progress/--no-progress", default=True)
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
    from ytfgvc.study import STUDIES, load_study, run_study
    from ytfgvc.study_report import build_report, write_study_record

    study = load_study(name, profile)
    if parallel is not None:
        study.parallel = max(1, parallel)
    if report is None:
        folder = STUDIES["rra-vs-tsn"].parent
        default = folder / "README.md" if profile == "gpu" else folder / f"README-{profile}.md"
        report = study.runs_root(out) / "README.md" if profile == "micro" else default
    t0 = time.perf_counter()
    summary: dict = {"study": study.name, "profile": profile}
    echo = (lambda s: None) if as_json else click.echo
    if not results_only:
        result = run_study(study, root, out, progress=progress and not as_json, echo=echo)
        write_study_record(study, root, out, time.perf_counter() - t0, _device(study))
        summary.update(finished=len(result.finished), failed=result.failed, seconds=round(result.seconds, 1))
    build_report(study, root, out, report, figures=figures)
    summary["report"] = str(report)
    if export is not None:
        from ytfgvc.study import export_runs

        summary["export"] = str(export_runs(study, out, export, report))
    emit(summary, as_json, f"report written to {report}" + (f"; FAILED runs: {summary['failed']}"
                                                             if summary.get("failed") else ""))  # fmt: skip


def _device(study) -> str:
    import torch

    if study.config.get("device") == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


COMMANDS = [study_cmd]
