"""Table 6 of the paper beside ours: Markdown, CSV, LaTeX and a bar chart, from run folders.

Each row is one method on one dataset: the paper's top-1, our top-1 with its 95%
bootstrap interval, the difference, top-5 and mean class accuracy (with intervals), the
coverage (test videos scored / official test videos), since a smaller test set is not the
paper's test set, and the provenance of the number: the weights the model started from
(a file and its sha256, a hub tag, or *from scratch*) and the training recipe (with the
keys the run changed from it). When several finished runs exist for a method and dataset,
the latest one is shown and the others are listed as ignored.

Two streams: where flow runs (``benchmark --modality flow``) or fused runs (``ytfgvc fuse``)
are among the runs given, the table gets **Flow** and **Fusion** top-1 columns beside the RGB
one (the paper reports RGB only for Birds and Cars: its Table 6 numbers stay in the RGB row's
"paper" column), and the other columns keep describing the RGB run. Without them the table
is exactly the RGB table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ytfgvc.benchmark.config import METHODS
from ytfgvc.benchmark.records import METRICS_SCHEMA
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles
from ytfgvc.system.fsutil import atomic_path, write_text_atomic


def paper_top1(dataset: str, method: str) -> float | None:
    """The paper's Table 6 top-1 for ``method`` on ``dataset`` (from the dataset card), or None."""
    from ytfgvc.datasets import get_card

    try:
        return get_card(dataset).paper_table6.get(method)
    except YtfgvcError:  # a run of a dataset without a card here
        return None


METHOD_NAMES = {"bninception": "BN-Inception", "i3d": "I3D", "tsn": "TSN", "rra": "RRA"}
DASH = "—"
STREAMS = ("flow", "fusion")  # modalities shown in columns of their own, beside RGB


@dataclass
class StreamScore:
    """A flow or fused run's top-1 in the row of its method (``weights``: a fusion's RGB and flow weights)."""

    top1: float
    top1_ci: list[float]
    n_scored: int
    run: str
    run_dir: str
    weights: dict[str, float] | None = None

    def cell(self) -> str:
        return f"{self.top1:.2f} [{self.top1_ci[0]:.1f}, {self.top1_ci[1]:.1f}]"


@dataclass
class Row:
    dataset: str
    method: str
    paper_top1: float | None
    top1: float | None  # the RGB run's (None: only flow or fused runs of this method were given)
    top1_ci: list[float] | None
    top5: float | None
    top5_ci: list[float] | None
    mean_class: float | None
    mean_class_ci: list[float] | None
    n_scored: int
    n_official: int
    coverage: float
    preset: str
    run: str
    run_dir: str
    backbone: str | None = None
    weights: str = "from scratch"
    weights_sha256: str | None = None
    recipe: str = ""
    chance_top1: float | None = None  # guessing uniformly (100 / classes); None for runs that predate it
    flow: StreamScore | None = None
    fusion: StreamScore | None = None

    @property
    def from_scratch(self) -> bool:
        return self.weights == "from scratch"

    @property
    def diff(self) -> float | None:
        return None if self.paper_top1 is None or self.top1 is None else round(self.top1 - self.paper_top1, 2)

    def stream_cell(self, stream: str) -> str:
        score = getattr(self, stream)
        return DASH if score is None else score.cell()

    @property
    def label(self) -> str:
        name = METHOD_NAMES.get(self.method, self.method)
        return f"{name} ({self.backbone})" if self.backbone else name


@dataclass
class Table6:
    rows: list[Row]
    ignored: list[str] = field(default_factory=list)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(r.dataset for r in self.rows))

    @property
    def streams(self) -> bool:
        """Whether flow or fused runs are in the table (and so its Flow and Fusion columns)."""
        return any(r.flow or r.fusion for r in self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{**asdict(r), "diff": r.diff} for r in self.rows],
            "ignored": self.ignored,
        }

    def to_markdown(self) -> str:
        out = []
        ours, streams = ("RGB" if self.streams else "ours"), self.streams
        for ds in self.datasets:
            out += [
                f"### Table 6 — {ds}",
                "",
                f"| method | paper top-1 | {ours} top-1 (95% CI) | Δ | "
                + ("flow top-1 (95% CI) | fusion top-1 (95% CI) | " if streams else "")
                + "top-5 (95% CI) | mean class (95% CI) | scored / official | starting weights | recipe | run |",
                "|---|---:|---:|---:|" + ("---:|---:|" if streams else "") + "---:|---:|---:|---|---|---|",
            ]
            for r in (r for r in self.rows if r.dataset == ds):
                cells = [
                    _md(r.label),
                    _num(r.paper_top1),
                    _ci(r.top1, r.top1_ci),
                    _signed(r.diff),
                    *([r.stream_cell("flow"), r.stream_cell("fusion")] if streams else []),
                    _ci(r.top5, r.top5_ci),
                    _ci(r.mean_class, r.mean_class_ci),
                    f"{r.n_scored} / {r.n_official} ({100 * r.coverage:.1f}%)" if r.top1 is not None else DASH,
                    "*from scratch*" if r.from_scratch else _md(r.weights),
                    _md(r.recipe),
                    _md(f"{r.preset}: {r.run}"),
                ]
                out.append("| " + " | ".join(cells) + " |")
            chance = next((r.chance_top1 for r in self.rows if r.dataset == ds and r.chance_top1), None)
            if chance is not None:
                out += [f"Chance: {chance:.2f}% top-1 (uniform guessing).", ""]
            if streams:
                out += [_streams_note([r for r in self.rows if r.dataset == ds]), ""]
            out.append("")
        if self.ignored:
            out.append("Older runs not shown: " + ", ".join(_md(p) for p in self.ignored))
            out.append("")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        extra = ["flow_top1", "flow_top1_lo", "flow_top1_hi", "fusion_top1", "fusion_top1_lo", "fusion_top1_hi",
                 "fusion_weights"] if self.streams else []  # fmt: skip
        w.writerow(
            [
                "dataset", "method", "paper_top1", "top1", "top1_lo", "top1_hi", "diff", "top5", "top5_lo", "top5_hi",
                "mean_class", "mean_class_lo", "mean_class_hi", "n_scored", "n_official", "coverage", "weights",
                "weights_sha256", "recipe", "preset", "run", *extra,
            ]
        )  # fmt: skip
        for r in self.rows:
            w.writerow(
                [
                    r.dataset, r.method, _blank(r.paper_top1), _blank(r.top1), *_pair(r.top1_ci),
                    _blank(r.diff), _blank(r.top5), *_pair(r.top5_ci), _blank(r.mean_class), *_pair(r.mean_class_ci),
                    r.n_scored, r.n_official, r.coverage, r.weights, r.weights_sha256 or "", r.recipe, r.preset, r.run,
                    *(_stream_csv(r) if self.streams else []),
                ]
            )  # fmt: skip
        return buf.getvalue()

    def to_latex(self) -> str:
        streams = self.streams
        ncols = 11 if streams else 9
        lines = [
            "\\begin{tabular}{lrrr" + ("rr" if streams else "") + "rrrll}",
            "\\toprule",
            f"Method & Paper top-1 & {'RGB' if streams else 'Ours'} top-1 & $\\Delta$ & "
            + ("Flow & Fusion & " if streams else "")
            + "Top-5 & Mean class & Scored & Weights & Recipe \\\\",
        ]
        for ds in self.datasets:
            lines += ["\\midrule", f"\\multicolumn{{{ncols}}}{{l}}{{\\textit{{{_tex(ds)}}}}} \\\\"]
            for r in (r for r in self.rows if r.dataset == ds):
                paper = "--" if r.paper_top1 is None else _num(r.paper_top1)
                diff = "--" if r.diff is None else f"{r.diff:+.2f}"
                cells = [_tex(r.label), paper, _tex_ci(r.top1, r.top1_ci), diff]
                if streams:
                    cells += [_tex_ci(s.top1, s.top1_ci) if s else "--" for s in (r.flow, r.fusion)]
                cells += [_tex_num(r.top5), _tex_num(r.mean_class), f"{r.n_scored}/{r.n_official}"]
                lines.append(" & ".join([*cells, _tex(r.weights), _tex(r.recipe)]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", ""]
        return "\n".join(lines)

    def plot(self, path: Path) -> None:
        """Grouped bars per dataset: the paper's top-1 and ours, with our 95% interval."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np

        datasets = self.datasets
        fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 3.6), squeeze=False)
        for ax, ds in zip(axes[0], datasets, strict=True):
            rows = [r for r in self.rows if r.dataset == ds]
            x = np.arange(len(rows))
            paper = [r.paper_top1 for r in rows]
            if self.streams:
                _stream_bars(ax, rows, x, paper)
            elif any(p is not None for p in paper):
                ours, err = _bars(rows)
                ax.bar(x - 0.2, [p or 0 for p in paper], 0.4, label="paper", color="0.7")
                ax.bar(x + 0.2, ours, 0.4, capsize=3, label="ours", color="tab:blue", **err)
                ax.legend(fontsize=8)
            else:
                ours, err = _bars(rows)
                ax.bar(x, ours, 0.5, capsize=3, color="tab:blue", **err)
            ax.set_xticks(x, [_tick(r) for r in rows], fontsize=7)
            chance = next((r.chance_top1 for r in rows if r.chance_top1), None)
            if chance is not None:
                ax.axhline(chance, color="tab:red", ls="--", lw=1, label=f"chance ({chance:.1f}%)")
                ax.legend(fontsize=8)
            ax.set(title=ds, ylabel="top-1 (%)", ylim=(0, 100))
            ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)


def _bars(rows: list) -> tuple[Any, Any]:
    """Bar heights and error bars (95% interval) of ``rows``' top-1 (rows or stream scores; None: no bar)."""
    import numpy as np

    top, err = [], []
    for r in rows:
        ok = r is not None and r.top1 is not None
        top.append(r.top1 if ok else np.nan)
        err.append([r.top1 - r.top1_ci[0], r.top1_ci[1] - r.top1] if ok else [0, 0])
    return np.array(top, dtype=float), {"yerr": np.array(err).T.clip(min=0)}


def _stream_bars(ax, rows: list[Row], x, paper: list) -> None:
    """Paper, RGB, flow and fusion bars side by side."""
    width = 0.2
    series = [("RGB", rows, "tab:blue"), ("flow", [r.flow for r in rows], "tab:orange"),
              ("fusion", [r.fusion for r in rows], "tab:green")]  # fmt: skip
    if any(p is not None for p in paper):
        ax.bar(x - 1.5 * width, [p or 0 for p in paper], width, label="paper", color="0.7")
    for i, (name, items, colour) in enumerate(series):
        top, err = _bars(items)
        ax.bar(x + (i - 0.5) * width, top, width, capsize=2, label=name, color=colour, **err)
    ax.legend(fontsize=7)


def _tick(r: Row) -> str:
    """A bar's label: the method, its backbone, and its weights and recipe in short."""
    weights = "from scratch" if r.from_scratch else _short(r.weights, 22)
    return "\n".join([r.label.replace(" (", "\n("), weights, _short(r.recipe, 22)])


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_TEX = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in str(text))


def _num(v: float | None) -> str:
    """Two decimals, half up from the printed value (the paper's 73.205 shows as 73.21)."""
    return DASH if v is None else str(Decimal(str(v)).quantize(Decimal("0.01"), ROUND_HALF_UP))


def _signed(v: float | None) -> str:
    return DASH if v is None else f"{v:+.2f}"


def _ci(v: float | None, ci: list[float] | None) -> str:
    return DASH if v is None else f"{v:.2f} [{ci[0]:.1f}, {ci[1]:.1f}]"


def _tex_ci(v: float | None, ci: list[float] | None) -> str:
    return "--" if v is None else f"{v:.2f} {{\\scriptsize [{ci[0]:.1f}, {ci[1]:.1f}]}}"


def _tex_num(v: float | None) -> str:
    return "--" if v is None else f"{v:.2f}"


def _blank(v: Any) -> Any:
    return "" if v is None else v


def _pair(ci: list[float] | None) -> list[Any]:
    return ["", ""] if ci is None else list(ci)


def _stream_csv(r: Row) -> list[Any]:
    out: list[Any] = []
    for s in (r.flow, r.fusion):
        out += ["", "", ""] if s is None else [s.top1, *s.top1_ci]
    w = r.fusion.weights if r.fusion is not None and r.fusion.weights else None
    return [*out, f"{w['rgb']:g}:{w['flow']:g}" if w else ""]


def _streams_note(rows: list[Row]) -> str:
    """Where the Flow and Fusion columns come from (the weights of each fusion)."""
    fusions = [r.fusion.weights for r in rows if r.fusion and r.fusion.weights]
    weights = sorted({f"{w['rgb']:g}:{w['flow']:g}" for w in fusions})
    fused = f" (RGB:flow weights {', '.join(weights)})" if weights else ""
    return (
        "Flow: runs of `--modality flow`; Fusion: `ytfgvc fuse` of the RGB and flow runs" + fused + ". The paper "
        "reports RGB only for YouTube-Birds and YouTube-Cars; its numbers are beside the RGB column."
    )


def find_metrics(paths: list[Path]) -> list[Path]:
    """``metrics.json`` files: given directly, in a run folder, or anywhere under a folder."""
    found = []
    for p in map(Path, paths):
        if p.is_file():
            found.append(p)
        elif RunFiles(p).finished:
            found.append(RunFiles(p).metrics)
        elif p.is_dir():
            found += sorted(p.rglob(RunFiles(p).metrics.name))
        else:
            raise YtfgvcError(f"{p} does not exist", "pass run folders (runs/<dataset>/<method>/<run>) or runs/")
    if not found:
        raise YtfgvcError(f"no finished runs (metrics.json) under {', '.join(map(str, paths))}")
    return list(dict.fromkeys(found))


def _latest_runs(paths: list[Path]) -> tuple[dict[tuple[str, str, str], tuple[str, Path, dict]], list[str]]:
    """The latest finished run per (dataset, method, modality), and the older ones' folders."""
    latest: dict[tuple[str, str, str], tuple[str, Path, dict]] = {}
    ignored = []
    for p in find_metrics(paths):
        try:
            m = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise YtfgvcError(f"cannot read {p}: {e}") from None
        if not isinstance(m, dict) or m.get("schema") != METRICS_SCHEMA:
            raise YtfgvcError(f"{p} is not a ytfgvc run record ({METRICS_SCHEMA})")
        key = (m["dataset"], m["method"], m.get("modality", "rgb"))  # runs before the flow stream are RGB
        if key in latest:
            older, newer = sorted([latest[key], (m.get("finished", ""), p, m)], key=lambda t: t[0])
            ignored.append(str(older[1].parent))
            latest[key] = newer
        else:
            latest[key] = (m.get("finished", ""), p, m)
    return latest, ignored


def build_table(paths: list[Path]) -> Table6:
    """Read finished runs into Table 6 rows (methods in the paper's order, then others; flow and fused runs
    in their method's row)."""
    latest, ignored = _latest_runs(paths)
    order = {m: i for i, m in enumerate(METHODS)}
    methods = sorted({(ds, method) for ds, method, _ in latest}, key=lambda k: (k[0], order.get(k[1], 99), k[1]))
    rows = []
    for ds, method in methods:
        rgb = latest.get((ds, method, "rgb"))
        streams = {s: _stream(latest[(ds, method, s)]) for s in STREAMS if (ds, method, s) in latest}
        base = rgb or next(latest[(ds, method, s)] for s in STREAMS if (ds, method, s) in latest)
        rows.append(_row(ds, method, base, rgb is not None, streams))
    return Table6(rows, ignored)


def _row(ds: str, method: str, run: tuple[str, Path, dict], is_rgb: bool, streams: dict[str, StreamScore]) -> Row:
    _, p, m = run
    s = m["scores"]
    mine = {
        "top1": s["top1"], "top1_ci": s["intervals"]["top1"], "top5": s["top5"], "top5_ci": s["intervals"]["top5"],
        "mean_class": s["mean_class"], "mean_class_ci": s["intervals"]["mean_class"],
    } if is_rgb else dict.fromkeys(("top1", "top1_ci", "top5", "top5_ci", "mean_class", "mean_class_ci"))  # fmt: skip
    return Row(
        dataset=ds,
        method=method,
        paper_top1=paper_top1(ds, method),
        **mine,
        n_scored=s["n_scored"],
        n_official=s["n_official"],
        coverage=s["coverage"],
        preset=m.get("preset", ""),
        run=m.get("run", "") if is_rgb else "",
        run_dir=str(p.parent) if is_rgb else "",
        backbone=m.get("backbone"),
        **_provenance(m),
        chance_top1=(m.get("chance") or {}).get("top1"),
        **streams,
    )


def _stream(run: tuple[str, Path, dict]) -> StreamScore:
    _, p, m = run
    s = m["scores"]
    weights = (m.get("fusion") or {}).get("weights")
    return StreamScore(s["top1"], s["intervals"]["top1"], s["n_scored"], m.get("run", ""), str(p.parent), weights)


def _provenance(m: dict[str, Any]) -> dict[str, Any]:
    """A row's weights and recipe from ``metrics.json`` (runs before the recipes have neither: say so)."""
    from ytfgvc.benchmark.records import recipe_label, weights_label

    weights = m.get("weights") or {"source": m.get("pretrained_source") or "from scratch"}
    recipe = recipe_label(m["recipe"]) if m.get("recipe") else "not recorded (run predates recipes)"
    return {"weights": weights_label(weights), "weights_sha256": weights.get("sha256"), "recipe": recipe}


@dataclass
class Table6Run:
    """What :func:`run_table6` did: one result per method, the table, and its files (rank 0 only)."""

    runs: list[Any]
    table: Table6 | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [r.to_dict() for r in self.runs], "table6": self.files}


def run_table6(configs: list[Any], out: Path, resume: bool = False, progress: bool = True, echo=print) -> Table6Run:
    """Train and test each config (the four methods, one process group), then write Table 6 under ``out/<dataset>``.

    What ``ytfgvc benchmark DATASET --table6`` does. Under ``torchrun`` every rank trains;
    rank 0 alone builds and writes the table.
    """
    from ytfgvc.benchmark.run import run_benchmark
    from ytfgvc.engine import init_distributed, shutdown_distributed

    env = init_distributed(configs[0].device)
    try:
        runs = [run_benchmark(cfg, out, resume=resume, progress=progress, env=env, echo=echo) for cfg in configs]
    finally:
        shutdown_distributed(env)
    result = Table6Run(runs)
    if env.is_main:
        result.table = build_table([r.run_dir for r in runs])
        result.files = write_table(result.table, Path(out) / configs[0].dataset)
    return result


def write_table(table: Table6, folder: Path, stem: str = "table6") -> dict[str, str]:
    """Write ``<stem>.md``, ``.csv``, ``.tex`` and ``.png`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"{stem}.{ext}" for ext in ("md", "csv", "tex", "png")}
    write_text_atomic(paths["md"], table.to_markdown())
    write_text_atomic(paths["csv"], table.to_csv())
    write_text_atomic(paths["tex"], table.to_latex())
    table.plot(paths["png"])
    return {k: str(v) for k, v in paths.items()}
