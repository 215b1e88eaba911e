"""``ytfgvc benchmark`` (train and test under the protocol) and ``ytfgvc table6`` (the comparison)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from ytfgvc.cli import emit, json_option, root_option
from ytfgvc.errors import YtfgvcError


def _overrides(sets: tuple[str, ...], method: str, **flags: Any) -> dict[str, Any]:
    """Flags and ``--set`` items (``KEY=V`` for every method, ``METHOD:KEY=V`` for one) as a config dict."""
    from ytfgvc.benchmark.config import deep_merge, parse_set

    out: dict[str, Any] = {}
    kwargs = {k: flags.pop(k) for k in ("backbone", "weights", "pretrained") if flags.get(k) is not None}
    flags = {k: v for k, v in flags.items() if v is not None}
    if "weights" in kwargs:
        kwargs["weights"] = str(Path(kwargs["weights"]).resolve())
        kwargs.setdefault("pretrained", True)
    if kwargs:
        out["model"] = {"kwargs": kwargs}
    out.update(flags)
    mine = []
    for item in sets:
        head, sep, rest = item.partition(":")
        if sep and "=" not in head:
            if head == method:
                mine.append(rest)
        else:
            mine.append(item)
    return deep_merge(out, parse_set(mine))


class WorkersType(click.ParamType):
    """``auto`` or a non-negative integer."""

    name = "auto|N"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
        self.fail(f"{value!r} is neither auto nor a number of processes", param, ctx)


def _import_plugins(modules: tuple[str, ...]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise YtfgvcError(f"--import {name}: {e}", "pass an importable module name (e.g. mypkg.models)") from None


@click.command()
@click.argument("dataset")
@click.option("--model", "method", default=None, help="rra, tsn, bninception, i3d, or any registered model.")
@click.option("--preset", type=click.Choice(["paper", "smoke"]), default=None, help="Protocol sizes [paper].")
@click.option(
    "--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A config YAML."
)
@click.option("--table6", is_flag=True, help="Run all four methods, then write Table 6 under OUT/DATASET/.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True)
@click.option("--run-name", "run_name", default=None, help="Run folder name [<preset>-seed<seed>].")
@click.option("--resume", is_flag=True, help="Continue the run from its checkpoint (starts it when there is none).")
@click.option("--epochs", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--batch-size", type=int, default=None, help="Clips per optimizer step, over all processes.")
@click.option("--micro-batch", type=int, default=None, help="Clips per forward pass per process (accumulates).")
@click.option("--input-size", type=int, default=None)
@click.option("--backbone", default=None, help="Backbone name passed to the model.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), default=None, help="Pretrained weights file.")
@click.option("--pretrained/--no-pretrained", default=None, help="Load ImageNet weights (torchvision/timm).")
@click.option(
    "--allow-scratch",
    "allow_scratch",
    is_flag=True,
    default=None,
    help="Let a paper-preset run start without pretrained weights (then marked 'from scratch' everywhere).",
)
@click.option(
    "--workers",
    type=WorkersType(),
    default=None,
    help="Data loader processes per GPU/process, or auto (its share of the cores, at most 12).",
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option(
    "--decode",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default=None,
    help="Where JPEGs are decoded: loader workers (cpu, and auto), or nvjpeg on the GPU (gpu).",
)
@click.option("--amp", type=click.Choice(["auto", "bf16", "off"]), default=None)
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the model.")
@click.option("--seed", type=int, default=None)
@click.option("--set", "sets", multiple=True, help="KEY=VALUE (or METHOD:KEY=VALUE) for any config key; repeatable.")
@click.option("--import", "imports", multiple=True, help="Import a module that registers more models; repeatable.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@root_option
@json_option
def benchmark(
    dataset: str,
    method: str | None,
    preset: str | None,
    config_file: Path | None,
    table6: bool,
    out: Path,
    run_name: str | None,
    resume: bool,
    sets: tuple[str, ...],
    imports: tuple[str, ...],
    progress: bool,
    root: Path,
    as_json: bool,
    compile_: bool | None,
    **flags: Any,
) -> None:
    """Train and test a model under the paper's protocol; write runs/DATASET/MODEL/RUN/.

    Records: config.yaml, log.jsonl, checkpoint.pt (every epoch), predictions.json,
    metrics.json (top-1/top-5/mean class with 95% intervals and coverage), curves.png.
    Several GPUs or nodes: start the same command with torchrun. One process per run
    folder: the same run started twice is refused. Exit status 130 after SIGINT, 143
    after SIGTERM; --resume continues from the last epoch's checkpoint.

    \b
    Example:
      ytfgvc benchmark birds --model rra
      ytfgvc benchmark synthetic --model tsn --preset smoke
      ytfgvc benchmark birds --config baselines/tsn_inceptionv3_4_rgb.yaml --resume
      torchrun --nproc_per_node 8 -m ytfgvc benchmark birds --model rra --resume
      ytfgvc benchmark synthetic --table6 --preset smoke
    """
    from ytfgvc.benchmark.config import METHODS, load_config
    from ytfgvc.benchmark.run import run_benchmark

    _import_plugins(imports)
    if table6 and method:
        raise YtfgvcError("--table6 runs all four methods; drop --model")
    methods = list(METHODS) if table6 else [method]
    flags["compile"] = compile_
    main_rank = int(os.environ.get("RANK", "0")) == 0
    results = []
    env = None
    if table6:  # one process group for the four runs
        from ytfgvc.engine import init_distributed

        cfg0 = load_config(METHODS[0], preset, config_file, _overrides(sets, METHODS[0], **dict(flags)))
        env = init_distributed(cfg0.device)
    try:
        for m in methods:
            over = _overrides(sets, m or "", **dict(flags))
            over.update(dataset=dataset, root=str(root))
            if run_name:
                over["run"] = run_name
            cfg = load_config(m, preset, config_file, over)
            results.append(run_benchmark(cfg, out, resume=resume, progress=progress and not as_json, env=env,
                                         echo=click.echo if not as_json else (lambda s: None)))  # fmt: skip
    finally:
        if env is not None:
            from ytfgvc.engine import shutdown_distributed

            shutdown_distributed(env)
    if not main_rank:
        return
    summary: dict[str, Any] = {"runs": [r.to_dict() for r in results]}
    lines = [_result_line(r) for r in results]
    if table6:
        from ytfgvc.benchmark.table6 import build_table, write_table

        table = build_table([r.run_dir for r in results])
        summary["table6"] = write_table(table, Path(out) / dataset)
        lines += ["", table.to_markdown(), f"table written to {summary['table6']['md']} (+ .csv .tex .png)"]
    emit(summary, as_json, "\n".join(lines))


def _result_line(r) -> str:
    if r.metrics is None:
        return f"{r.run_dir}: {r.status}"
    s = r.metrics["scores"]
    return (
        f"{r.run_dir}: {r.status}; top-1 {s['top1']:.2f}% [{s['intervals']['top1'][0]:.1f}, "
        f"{s['intervals']['top1'][1]:.1f}], top-5 {s['top5']:.2f}%, mean class {s['mean_class']:.2f}%, "
        f"{s['n_scored']}/{s['n_official']} test videos"
    )


@click.command("table6")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Write md/csv/tex/png here."
)
@json_option
def table6_cmd(runs: tuple[Path, ...], out: Path | None, as_json: bool) -> None:
    """Render Table 6 (the paper's top-1 beside ours, with intervals and coverage) from run folders.

    \b
    Example:
      ytfgvc table6 runs/birds runs/cars --out results/
      ytfgvc table6 runs/synthetic/tsn/smoke-seed0 runs/synthetic/rra/smoke-seed0
    """
    from ytfgvc.benchmark.table6 import build_table, write_table

    table = build_table(list(runs))
    summary: dict[str, Any] = table.to_dict()
    text = table.to_markdown()
    if out is not None:
        summary["files"] = write_table(table, out)
        text += f"\nwritten to {summary['files']['md']} (+ .csv .tex .png)"
    emit(summary, as_json, text)


COMMANDS = [benchmark, table6_cmd]
