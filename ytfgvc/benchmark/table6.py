"""Table 6 of the paper beside ours: Markdown, CSV, LaTeX and a bar chart, from run folders.

Each row is one method on one dataset: the paper's top-1, our top-1 with its 95%
bootstrap interval, the difference, top-5 and mean class accuracy (with intervals), the
coverage (test videos scored / official test videos), since a smaller test set is not the
paper's test set, and the provenance of the number: the weights the model started from
(a file and its sha256, a hub tag, or *from scratch*) and the training recipe (with the
keys the run changed from it). When several finished runs exist for a method and dataset,
the latest one is shown and the others are listed as ignored.
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


@dataclass
class Row:
    dataset: str
    method: str
    paper_top1: float | None
    top1: float
    top1_ci: list[float]
    top5: float
    top5_ci: list[float]
    mean_class: float
    mean_class_ci: list[float]
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

    @property
    def from_scratch(self) -> bool:
        return self.weights == "from scratch"

    @property
    def diff(self) -> float | None:
        return None if self.paper_top1 is None else round(self.top1 - self.paper_top1, 2)

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [{**asdict(r), "diff": r.diff} for r in self.rows],
            "ignored": self.ignored,
        }

    def to_markdown(self) -> str:
        out = []
        for ds in self.datasets:
            out += [
                f"### Table 6 — {ds}",
                "",
                "| method | paper top-1 | ours top-1 (95% CI) | Δ | top-5 (95% CI) | mean class (95% CI) "
                "| scored / official | starting weights | recipe | run |",
                "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
            ]
            for r in (r for r in self.rows if r.dataset == ds):
                cells = [
                    _md(r.label),
                    _num(r.paper_top1),
                    f"{r.top1:.2f} [{r.top1_ci[0]:.1f}, {r.top1_ci[1]:.1f}]",
                    _signed(r.diff),
                    f"{r.top5:.2f} [{r.top5_ci[0]:.1f}, {r.top5_ci[1]:.1f}]",
                    f"{r.mean_class:.2f} [{r.mean_class_ci[0]:.1f}, {r.mean_class_ci[1]:.1f}]",
                    f"{r.n_scored} / {r.n_official} ({100 * r.coverage:.1f}%)",
                    "*from scratch*" if r.from_scratch else _md(r.weights),
                    _md(r.recipe),
                    _md(f"{r.preset}: {r.run}"),
                ]
                out.append("| " + " | ".join(cells) + " |")
            chance = next((r.chance_top1 for r in self.rows if r.dataset == ds and r.chance_top1), None)
            if chance is not None:
                out += [f"Chance: {chance:.2f}% top-1 (uniform guessing).", ""]
            out.append("")
        if self.ignored:
            out.append("Older runs not shown: " + ", ".join(_md(p) for p in self.ignored))
            out.append("")
        return "\n".join(out)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            [
                "dataset", "method", "paper_top1", "top1", "top1_lo", "top1_hi", "diff", "top5", "top5_lo", "top5_hi",
                "mean_class", "mean_class_lo", "mean_class_hi", "n_scored", "n_official", "coverage", "weights",
                "weights_sha256", "recipe", "preset", "run",
            ]
        )  # fmt: skip
        for r in self.rows:
            w.writerow(
                [
                    r.dataset, r.method, "" if r.paper_top1 is None else r.paper_top1, r.top1, *r.top1_ci,
                    "" if r.diff is None else r.diff, r.top5, *r.top5_ci, r.mean_class, *r.mean_class_ci,
                    r.n_scored, r.n_official, r.coverage, r.weights, r.weights_sha256 or "", r.recipe, r.preset, r.run,
                ]
            )  # fmt: skip
        return buf.getvalue()

    def to_latex(self) -> str:
        lines = [
            "\\begin{tabular}{lrrrrrrll}",
            "\\toprule",
            "Method & Paper top-1 & Ours top-1 & $\\Delta$ & Top-5 & Mean class & Scored & Weights & Recipe \\\\",
        ]
        for ds in self.datasets:
            lines += ["\\midrule", f"\\multicolumn{{9}}{{l}}{{\\textit{{{_tex(ds)}}}}} \\\\"]
            for r in (r for r in self.rows if r.dataset == ds):
                paper = "--" if r.paper_top1 is None else _num(r.paper_top1)
                diff = "--" if r.diff is None else f"{r.diff:+.2f}"
                ci = f"{{\\scriptsize [{r.top1_ci[0]:.1f}, {r.top1_ci[1]:.1f}]}}"
                lines.append(
                    f"{_tex(r.label)} & {paper} & {r.top1:.2f} {ci} & {diff} & {r.top5:.2f} & {r.mean_class:.2f}"
                    f" & {r.n_scored}/{r.n_official} & {_tex(r.weights)} & {_tex(r.recipe)} \\\\"
                )
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
            ours = np.array([r.top1 for r in rows])
            err = np.array([[r.top1 - r.top1_ci[0], r.top1_ci[1] - r.top1] for r in rows]).T.clip(min=0)
            paper = [r.paper_top1 for r in rows]
            if any(p is not None for p in paper):
                ax.bar(x - 0.2, [p or 0 for p in paper], 0.4, label="paper", color="0.7")
                ax.bar(x + 0.2, ours, 0.4, yerr=err, capsize=3, label="ours", color="tab:blue")
                ax.legend(fontsize=8)
            else:
                ax.bar(x, ours, 0.5, yerr=err, capsize=3, color="tab:blue")
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


def build_table(paths: list[Path]) -> Table6:
    """Read finished runs into Table 6 rows (methods in the paper's order, then others)."""
    latest: dict[tuple[str, str], tuple[str, Path, dict]] = {}
    ignored = []
    for p in find_metrics(paths):
        try:
            m = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise YtfgvcError(f"cannot read {p}: {e}") from None
        if not isinstance(m, dict) or m.get("schema") != METRICS_SCHEMA:
            raise YtfgvcError(f"{p} is not a ytfgvc run record ({METRICS_SCHEMA})")
        key = (m["dataset"], m["method"])
        if key in latest:
            older, newer = sorted([latest[key], (m.get("finished", ""), p, m)], key=lambda t: t[0])
            ignored.append(str(older[1].parent))
            latest[key] = newer
        else:
            latest[key] = (m.get("finished", ""), p, m)
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (ds, method), (_, p, m) in sorted(latest.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99), kv[0][1])):
        s = m["scores"]
        rows.append(
            Row(
                dataset=ds,
                method=method,
                paper_top1=paper_top1(ds, method),
                top1=s["top1"],
                top1_ci=s["intervals"]["top1"],
                top5=s["top5"],
                top5_ci=s["intervals"]["top5"],
                mean_class=s["mean_class"],
                mean_class_ci=s["intervals"]["mean_class"],
                n_scored=s["n_scored"],
                n_official=s["n_official"],
                coverage=s["coverage"],
                preset=m.get("preset", ""),
                run=m.get("run", ""),
                run_dir=str(p.parent),
                backbone=m.get("backbone"),
                **_provenance(m),
                chance_top1=(m.get("chance") or {}).get("top1"),
            )
        )
    return Table6(rows, ignored)


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
