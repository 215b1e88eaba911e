"""``ytfgvc leaderboard render``: ``leaderboard/README.md`` and ``leaderboard/index.html`` from the entries.

The page is one self-contained file (template in ``page/``): inline CSS and JS whose
sha256 hashes are the only ones its Content-Security-Policy allows (``default-src
'none'``), so it makes no network request and runs no script but its own. Everything a
submitter wrote is escaped: ``html.escape`` in HTML and SVG text and attributes,
JSON with ``<``, ``>``, ``&`` written as ``\\u003c``... inside the data ``<script>``,
HTML- and Markdown-escaping in the README. Links are shown only for http(s) URLs (checked
when the entry is written and again here). Output is deterministic (no timestamps), so a
re-render of unchanged entries changes no file.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ytfgvc import __version__
from ytfgvc.errors import YtfgvcError
from ytfgvc.leaderboard.core import common_core
from ytfgvc.leaderboard.entries import STATUS_TEXT, is_web_url, load_entries
from ytfgvc.system.fsutil import write_text_atomic

DATASET_ORDER = ("birds", "cars")

# (key, heading, type) of the sortable columns of the page's tables.
COLUMNS = [
    ("rank", "#", "num"),
    ("method", "method", "text"),
    ("top1", "top-1 %", "num"),
    ("top5", "top-5 %", "num"),
    ("mean_class", "mean class %", "num"),
    ("coverage", "coverage", "num"),
    ("top1_all", "top-1, missing = wrong", "num"),
    ("core_top1", "common core top-1 %", "num"),
    ("backbone", "backbone", "text"),
    ("pretraining", "pretraining", "text"),
    ("frames_crops", "frames × crops", "text"),
    ("params", "params", "text"),
    ("weights", "starting weights", "text"),
    ("recipe", "recipe", "text"),
    ("external", "external data", "text"),
    ("manifest", "snapshot", "text"),
    ("submitted", "submitted", "text"),
]


@dataclass
class RenderResult:
    readme: Path
    index: Path
    entries: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"readme": str(self.readme), "index": str(self.index), "entries": self.entries}


def _title(dataset: str) -> str:
    from ytfgvc.datasets import get_card

    try:
        return get_card(dataset).title or dataset
    except YtfgvcError:
        return dataset


def board_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One display row per entry (of one dataset), best top-1 first (ties: method name, then slug)."""
    core = common_core(entries)
    rows = []
    for entry in entries:
        meta, s = entry["metadata"], entry.get("scores")
        external = entry.get("external_data") or {}
        row: dict[str, Any] = {
            "slug": entry["slug"],
            "method": entry["method"],
            "kind": entry["kind"],
            "status": STATUS_TEXT[entry["kind"]],
            **{k: meta.get(k, "") for k in ("backbone", "pretraining", "frames_crops", "params", "notes")},
            "code_url": meta.get("code_url", "") if is_web_url(meta.get("code_url", "")) else "",
            "paper_url": meta.get("paper_url", "") if is_web_url(meta.get("paper_url", "")) else "",
            "external": ("yes: " + external.get("details", "")) if external.get("used") else ("no" if s else ""),
            "submitted": entry.get("submitted", ""),
            **{k: (entry.get("provenance") or {}).get(k, "") for k in ("weights", "recipe")},
            "manifest": (entry.get("manifest") or "")[:12],  # a sha256 (checked), so safe in a code span
        }
        if s:
            row.update(
                top1=s["top1"],
                top5=s["top5"],
                mean_class=s["mean_class"],
                ci={k: s["intervals"][k] for k in ("top1", "top5", "mean_class")},
                n_scored=s["n_scored"],
                n_official=s["n_official"],
                coverage=s["coverage"],
                top1_all=s["missing_as_wrong"]["top1"],
            )
        else:
            row.update(top1=entry["reported"]["top1"], top5=None, mean_class=None, ci={}, coverage=None, top1_all=None)
        row["core_top1"] = core.top1.get(entry["slug"]) if core else None
        row["core_n"] = core.count if row["core_top1"] is not None else None
        row["core_left_out"] = bool(core and entry["slug"] in core.left_out)
        rows.append(row)
    rows.sort(key=lambda r: (-r["top1"], r["method"].casefold(), r["slug"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def group(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows per dataset: Birds, Cars, then any other dataset by name."""
    order = {name: i for i, name in enumerate(DATASET_ORDER)}
    names = sorted({x["dataset"] for x in entries}, key=lambda d: (order.get(d, len(order)), d))
    return {d: board_rows([x for x in entries if x["dataset"] == d]) for d in names}


# ----------------------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]|~$])")


def md(text: str) -> str:
    """Text safe in a Markdown table cell: HTML-escaped, markup characters backslashed, one line."""
    text = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def md_url(url: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in "()[]|<> " else c for c in url)


def _reported(value: float) -> str:
    """A reported number as printed (72.361 stays 72.361; re-scored numbers get 2 decimals)."""
    return f"{value:g}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _with_ci(row: dict[str, Any], key: str) -> str:
    if row[key] is None:
        return "—"
    ci = row["ci"].get(key)
    return f"{row[key]:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{_reported(row[key])} (reported)"


def _core(row: dict[str, Any]) -> str:
    if row["core_top1"] is None:
        return "not scored (entry before ytfgvc-entry-2)" if row["core_left_out"] else "—"
    return f"{row['core_top1']:.2f} on {row['core_n']:,}"


def _coverage(row: dict[str, Any]) -> str:
    if row["coverage"] is None:
        return "—"
    return f"{row['n_scored']:,} / {row['n_official']:,} ({row['coverage'] * 100:.1f}%)"


def render_markdown(groups: dict[str, list[dict[str, Any]]]) -> str:
    out = [
        "# ytfgvc leaderboard",
        "",
        "Generated by `ytfgvc leaderboard render` from `submissions/`; do not edit by hand. "
        "The same tables, sortable and with a chart, are in `index.html`.",
        "",
        "Every *re-scored* number was computed from the submitted predictions by `ytfgvc leaderboard submit` "
        "(top-1, top-5 and mean class accuracy in %, each with its 95% bootstrap interval over test videos). "
        "Coverage is videos scored / official test videos; *top-1, missing = wrong* counts every video without a "
        "prediction as an error; *starting weights* and *recipe* are what the predictions file says the model "
        "started from and how it was trained (`ytfgvc benchmark` writes both); *snapshot* is the start of the "
        "submitter's download manifest hash. *Common core top-1* is every re-scored entry's top-1 on the test "
        "videos all re-scored entries of the dataset cover (computed from each entry's kept top-5 and the "
        "official labels it was scored against), so entries made from different copies of the dataset compare "
        "on the same videos; the number after *on* is how many there are. "
        "Rows *reported in paper, not re-scored* are numbers printed in a paper, for reference only. "
        "How to submit: docs/leaderboard.md in the ytfgvc repository.",
    ]
    head = (
        "| # | method | top-1 % [95% CI] | top-5 % [95% CI] | mean class % [95% CI] | coverage "
        "| top-1, missing = wrong | common core top-1 % | backbone | pretraining | frames × crops | params "
        "| starting weights | recipe | external data | snapshot | links | status |"
    )
    for dataset, rows in groups.items():
        out += ["", f"## {md(_title(dataset))} (`{dataset}`)", "", head, "|" + "---|" * 18]
        for r in rows:
            links = " ".join(
                f"[{name}]({md_url(r[key])})" for key, name in (("paper_url", "paper"), ("code_url", "code")) if r[key]
            )
            cells = [
                str(r["rank"]),
                f"**{md(r['method'])}**",
                _with_ci(r, "top1"),
                _with_ci(r, "top5"),
                _with_ci(r, "mean_class"),
                _coverage(r),
                _pct(r["top1_all"]),
                _core(r),
                md(r["backbone"]),
                md(r["pretraining"]),
                md(r["frames_crops"]),
                md(r["params"]),
                md(r["weights"]),
                md(r["recipe"]),
                md(r["external"]),
                f"`{r['manifest']}`" if r["manifest"] else ("unknown" if r["kind"] == "rescored" else ""),
                links,
                md(r["status"]),
            ]
            out.append("| " + " | ".join(cells) + " |")
    if not groups:
        out += ["", "No entries yet."]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- HTML


def esc(text: Any) -> str:
    """HTML-escape text for element content and quoted attributes."""
    return html.escape(str(text), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>``, ``&`` (and U+2028/9) as ``\\u`` escapes."""
    text = json.dumps(obj, ensure_ascii=True, sort_keys=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@cache
def _asset(name: str) -> str:
    return resources.files("ytfgvc.leaderboard").joinpath("page", name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _cell(row: dict[str, Any], key: str) -> str:
    if key == "method":
        links = "".join(
            f' <a href="{esc(row[k])}" rel="noopener noreferrer nofollow">{name}</a>'
            for k, name in (("paper_url", "paper"), ("code_url", "code"))
            if row[k]
        )
        badge = f'<span class="badge {esc(row["kind"])}">{esc(row["status"])}</span>'
        notes = f'<div class="notes">{esc(row["notes"])}</div>' if row["notes"] else ""
        return f'<td><span class="method">{esc(row["method"])}</span>{links}<br>{badge}{notes}</td>'
    if key in ("top1", "top5", "mean_class"):
        if row[key] is None:
            return '<td class="num">—</td>'
        ci = row["ci"].get(key)
        if not ci:
            return f'<td class="num">{_reported(row[key])}<span class="ci">reported</span></td>'
        return f'<td class="num">{row[key]:.2f}<span class="ci">[{ci[0]:.2f}, {ci[1]:.2f}]</span></td>'
    if key == "coverage":
        if row["coverage"] is None:
            return '<td class="num">—</td>'
        counts = f'<span class="ci">{row["n_scored"]:,} / {row["n_official"]:,}</span>'
        return f'<td class="num">{row["coverage"] * 100:.1f}%{counts}</td>'
    if key == "core_top1":
        if row["core_top1"] is None:
            return '<td class="num">—</td>'
        return f'<td class="num">{row["core_top1"]:.2f}<span class="ci">on {row["core_n"]:,}</span></td>'
    if key in ("rank", "top1_all"):
        return f'<td class="num">{esc(_pct(row[key]) if key == "top1_all" else row[key])}</td>'
    return f"<td>{esc(row[key])}</td>"


def chart_svg(rows: list[dict[str, Any]], dataset: str) -> str:
    """Horizontal bars of top-1 with 95% interval whiskers; paper rows as dashed outlines."""
    left, width, bar_h, gap, top = 250, 480, 16, 8, 24
    height = top + len(rows) * (bar_h + gap) + 10
    full = left + width + 70

    def x(v: float) -> float:
        return left + width * max(0.0, min(100.0, v)) / 100

    parts = [
        f'<svg class="chart" role="img" aria-label="top-1 accuracy, {esc(dataset)}" viewBox="0 0 {full} {height}"'
        f' width="{full}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for t in range(0, 101, 20):
        parts.append(f'<line class="axis" x1="{x(t):.1f}" y1="{top - 6}" x2="{x(t):.1f}" y2="{height - 6}"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{top - 10}" text-anchor="middle">{t}</text>')
    chance = _chance_top1(dataset)
    if chance is not None:
        parts.append(
            f'<line class="chance" x1="{x(chance):.1f}" y1="{top - 6}" x2="{x(chance):.1f}" y2="{height - 6}">'
            f"<title>chance: {chance:.2f}% top-1 (uniform guessing)</title></line>"
        )
        parts.append(f'<text class="chance" x="{x(chance) + 3:.1f}" y="{height - 8}">chance</text>')
    for i, r in enumerate(rows):
        y = top + i * (bar_h + gap)
        name = r["method"] if len(r["method"]) <= 34 else r["method"][:33] + "…"
        ci = r["ci"].get("top1")
        value = f"{r['top1']:.2f}" if ci else _reported(r["top1"])
        tip = f"{r['method']}: top-1 {value}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (reported in paper)")
        parts.append(f"<g><title>{esc(tip)}</title>")
        parts.append(f'<text x="{left - 8}" y="{y + bar_h - 3}" text-anchor="end">{esc(name)}</text>')
        cls = "bar" if r["kind"] == "rescored" else "bar paper"
        parts.append(f'<rect class="{cls}" x="{left}" y="{y}" width="{x(r["top1"]) - left:.1f}" height="{bar_h}"/>')
        if ci:
            lo, hi, mid = x(ci[0]), x(ci[1]), y + bar_h / 2
            parts.append(f'<line class="ci" x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}"/>')
            for end in (lo, hi):
                parts.append(f'<line class="ci" x1="{end:.1f}" y1="{y + 3}" x2="{end:.1f}" y2="{y + bar_h - 3}"/>')
        end = max(x(r["top1"]), x(ci[1]) if ci else 0)
        parts.append(f'<text x="{end + 4:.1f}" y="{y + bar_h - 3}">{value}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def shown_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """The columns with something to show in ``rows`` (an empty column only takes width)."""
    always = {"rank", "method", "top1"}
    return [c for c in COLUMNS if c[0] in always or any(r.get(c[0]) not in (None, "") for r in rows)]


def _chance_top1(dataset: str) -> float | None:
    """100 / classes of the dataset's card (None without a card)."""
    from ytfgvc.datasets import get_card

    try:
        return 100.0 / get_card(dataset).num_classes
    except YtfgvcError:
        return None


def _panel(dataset: str, rows: list[dict[str, Any]]) -> str:
    sorted_by = {"top1": ' aria-sort="descending"'}
    columns = shown_columns(rows)
    heads = "".join(
        f'<th data-key="{k}" data-type="{t}"{sorted_by.get(k, "")}><button type="button">{esc(label)}</button></th>'
        for k, label, t in columns
    )
    body = "\n".join(
        f'<tr data-slug="{esc(r["slug"])}" class="{esc(r["kind"])}">'
        + "".join(_cell(r, k) for k, _, _ in columns)
        + "</tr>"
        for r in rows
    )
    return (
        f'<section id="panel-{esc(dataset)}" role="tabpanel" aria-labelledby="tab-{esc(dataset)}">\n'
        f"<h2>{esc(_title(dataset))}</h2>\n{chart_svg(rows, dataset)}\n"
        f'<div class="scroll"><table class="board" data-dataset="{esc(dataset)}">\n<thead><tr>{heads}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>\n</section>"
    )


def render_html(groups: dict[str, list[dict[str, Any]]]) -> str:
    css, js = _asset("page.css"), _asset("page.js")
    tabs = "".join(
        f'<button type="button" role="tab" id="tab-{esc(d)}" data-tab="{esc(d)}" aria-controls="panel-{esc(d)}" '
        f'aria-selected="{"true" if i == 0 else "false"}">{esc(_title(d))} ({len(rows)})</button>'
        for i, (d, rows) in enumerate(groups.items())
    )
    keys = [k for k, _, _ in COLUMNS]
    data = {
        "version": __version__,
        "datasets": {
            d: {"title": _title(d), "rows": {r["slug"]: {k: r.get(k) for k in keys} for r in rows}}
            for d, rows in groups.items()
        },
    }
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(js)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    fills = {
        "CSP": csp,
        "CSS": css,
        "JS": js,
        "VERSION": esc(__version__),
        "TABS": f'<nav class="tabs" role="tablist">{tabs}</nav>' if groups else "<p>No entries yet.</p>",
        "PANELS": "\n".join(_panel(d, rows) for d, rows in groups.items()),
        "DATA": script_json(data),
    }
    # One pass: text put in is never scanned for placeholders again.
    return re.sub(r"@([A-Z]+)@", lambda m: fills[m.group(1)], _asset("page.html"))


def render(leaderboard_dir: Path) -> RenderResult:
    """Check every entry under ``<leaderboard>/submissions/`` and write README.md and index.html."""
    leaderboard_dir = Path(leaderboard_dir)
    groups = group(load_entries(leaderboard_dir))
    readme, index = leaderboard_dir / "README.md", leaderboard_dir / "index.html"
    write_text_atomic(readme, render_markdown(groups))
    write_text_atomic(index, render_html(groups))
    return RenderResult(readme, index, {d: len(rows) for d, rows in groups.items()})
