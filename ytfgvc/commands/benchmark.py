"""``ytfgvc benchmark`` (train and test under the protocol) and ``ytfgvc table6`` (the comparison)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from ytfgvc.commands.options import emit, json_option, root_option
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
@click.option(
    "--modality",
    type=click.Choice(["rgb", "flow"]),
    default=None,
    help="The stream to train: rgb frames, or flow stacks (after `ytfgvc prepare --flow`; the method's flow "
    "recipe; e.g. --model tsn --modality flow) [rgb].",
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="The runs folder [ROOT/runs]."
)
@click.option("--run-name", "run_name", default=None, help="Run folder name [<preset>-seed<seed>].")
@click.option("--resume", is_flag=True, help="Continue the run from its checkpoint (starts it when there is none).")
@click.option("--epochs", type=int, default=None, help="Training epochs [the method's recipe: RRA 120, TSN 80, ...].")
@click.option("--lr", type=float, default=None, help="Initial learning rate [the method's recipe].")
@click.option("--batch-size", type=int, default=None, help="Clips per optimizer step, over all processes.")
@click.option("--micro-batch", type=int, default=None, help="Clips per forward pass per process (accumulates).")
@click.option("--input-size", type=int, default=None, help="Square crop side in pixels [299 Inception, 224 others].")
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
    help="Data loader processes per GPU/process, or auto (its share of the cores less 2, at most 14).",
)
@click.option(
    "--device",
    default=None,
    metavar="auto|cpu|cuda|cuda:N",
    help="Where to train: auto (a GPU if there is one), cpu, cuda (under torchrun: each process's local GPU), "
    "or cuda:N (GPU N, one process) [auto].",
)
@click.option(
    "--amp",
    type=click.Choice(["auto", "bf16", "off"]),
    default=None,
    help="Mixed precision: auto (bf16 autocast on a GPU, fp32 on a CPU), bf16, or off (fp32) [auto].",
)
@click.option(
    "--compile/--no-compile",
    "compile_",
    default=None,
    help="torch.compile the model (default mode), or not; --set compile=auto|MODE for the others.",
)
@click.option("--seed", type=int, default=None, help="Seed of the model, the sampling and the augmentation [0].")
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
    """Train and test a model under the paper's protocol; write ROOT/runs/DATASET/MODEL/RUN/ (or OUT/...).

    Records: config.yaml, log.jsonl, checkpoint.pt (every epoch), predictions.json,
    metrics.json (top-1/top-5/mean class with 95% intervals and coverage), curves.png.
    Several GPUs or nodes: start the same command with torchrun. One process per run
    folder: the same run started twice is refused. Exit status 130 after SIGINT, 143
    after SIGTERM; --resume continues from the last epoch's checkpoint.

    \b
    Example:
      ytfgvc benchmark birds --model rra
      ytfgvc benchmark birds --model tsn --modality flow
      ytfgvc benchmark synthetic --model tsn --preset smoke
      ytfgvc benchmark birds --config baselines/tsn_tsninceptionv3_4_rgb.yaml --resume
      torchrun --nproc_per_node 8 -m ytfgvc benchmark birds --model rra --resume
      ytfgvc benchmark synthetic --table6 --preset smoke
    """
    from ytfgvc.benchmark.config import FLOW_METHODS, METHODS, load_config
    from ytfgvc.benchmark.run import run_benchmark
    from ytfgvc.benchmark.table6 import run_table6
    from ytfgvc.layout import runs_dir

    _import_plugins(imports)
    if table6 and method:
        raise YtfgvcError("--table6 runs all four methods; drop --model")
    flags["compile"] = compile_
    out = out or runs_dir(root)
    configs = []
    methods = FLOW_METHODS if flags.get("modality") == "flow" else METHODS  # I3D has no flow stream
    for m in list(methods) if table6 else [method]:
        over = _overrides(sets, m or "", **dict(flags))
        over.update(dataset=dataset, root=str(root), **({"run": run_name} if run_name else {}))
        configs.append(load_config(m, preset, config_file, over))
    echo = click.echo if not as_json else (lambda s: None)
    progress = progress and not as_json
    if table6:
        done = run_table6(configs, out, resume=resume, progress=progress, echo=echo)
        runs, summary = done.runs, done.to_dict()
    else:
        runs = [run_benchmark(configs[0], out, resume=resume, progress=progress, echo=echo)]
        summary = {"runs": [r.to_dict() for r in runs]}
    if int(os.environ.get("RANK", "0")) != 0:
        return
    lines = [_result_line(r) for r in runs]
    if table6:
        lines += ["", done.table.to_markdown(), f"table written to {done.files['md']} (+ .csv .tex .png)"]
    emit(summary, as_json, "\n".join(lines + [_meaning(runs)]))


def _meaning(runs: list) -> str:
    """What the numbers mean, for people: chance level, and what a smoke or from-scratch run is for."""
    from ytfgvc.benchmark.records import meaning

    return "\n".join(filter(None, ["", *dict.fromkeys(meaning(r.metrics) for r in runs if r.metrics)]))


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
      ytfgvc table6 ytfgvc-data/runs/birds ytfgvc-data/runs/cars --out results/
      ytfgvc table6 ytfgvc-data/runs/synthetic/tsn/smoke-seed0 ytfgvc-data/runs/synthetic/rra/smoke-seed0
    """
    from ytfgvc.benchmark.table6 import build_table, write_table

    table = build_table(list(runs))
    summary: dict[str, Any] = table.to_dict()
    text = table.to_markdown()
    if out is not None:
        summary["files"] = write_table(table, out)
        text += f"\nwritten to {summary['files']['md']} (+ .csv .tex .png)"
    emit(summary, as_json, text)


@click.command("fuse")
@click.argument("rgb_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("flow_run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--weights",
    default="1,1.5",
    show_default=True,
    help="RGB,FLOW weights of the summed scores: TSN's 1:1.5 (temporal-segment-networks README; docs/benchmark.md).",
)
@click.option("--run-name", "run_name", default=None, help="The fused run's folder name [<RGB run>-fusion].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Runs folder [RUN_RGB's].")
@json_option
def fuse_cmd(
    rgb_run: Path, flow_run: Path, weights: str, run_name: str | None, out: Path | None, as_json: bool
) -> None:
    """Fuse the RGB and flow runs of one method into a run of its own (TSN's weighted sum of scores).

    Reads both runs' scores.npz; writes OUT/DATASET/METHOD/RUN/ with predictions.json,
    scores.npz and metrics.json (modality fusion: what was fused, with which weights), scored
    on the test videos both runs scored. `ytfgvc table6` shows it in a Fusion column.

    \b
    Example:
      ytfgvc fuse ytfgvc-data/runs/birds/tsn/paper-seed0 ytfgvc-data/runs/birds/tsn/paper-flow-seed0
      ytfgvc fuse RUN_RGB RUN_FLOW --weights 1,1 --run-name paper-fusion-equal
    """
    from ytfgvc.benchmark.fusion import fuse_runs, parse_weights

    result = fuse_runs(rgb_run, flow_run, parse_weights(weights), run_name, out)
    emit(result.to_dict(), as_json, result.summary())


COMMANDS = [benchmark, table6_cmd, fuse_cmd]
