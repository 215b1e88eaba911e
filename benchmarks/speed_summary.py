"""Summarize a GPU speed session (``benchmarks/gpu_speed_session.sh``): its JSON files, as text and Markdown tables.

Reads, in a folder, ``throughput.json`` (eager, steady state), ``i3d_test_loader.json`` (I3D's
test path: before/after, workers, cold), ``compile.json`` (compiled ceilings),
``time_to_table6.json`` and ``env.json``; any may be missing (a step that did not run or
ended early). Prints the figures the README's tables take, the ``COMPILE_AUTO`` entries that
the rule in ``ytfgvc/benchmark/hardware.py`` gives, and Table 6's GPU-hours measured and
projected with those compiled ceilings.

    python benchmarks/speed_summary.py OUT_DIR [--merge-compile FILE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

ADOPT = 1.05  # a compiled mode is adopted when its ceiling is at least this much above eager's (and checked)


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def merge_compile(paths: list[Path]) -> dict | None:
    """Several train_throughput results (one per process) as one: methods and paths side by side."""
    out: dict | None = None
    for p in paths:
        r = load(p)
        if r is None:
            continue
        if out is None:
            out = {k: v for k, v in r.items() if k != "methods"} | {"methods": {}, "runs": []}
        out["runs"].append({"file": p.name, "settings": r.get("settings", {})})
        for name, m in r.get("methods", {}).items():
            into = out["methods"].setdefault(name, {})
            for k, v in m.items():
                if k in ("train", "test") and "error" in v and k in into:
                    continue  # a path that failed in one run and ran in another
                into[k] = v
    return out


def fmt(v, nd: int = 1) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def best_compiled(path: dict) -> tuple[str | None, float | None, dict]:
    eager = path.get("ceiling", {}).get("off", {}).get("rate")
    best, rate, check = None, None, {}
    for mode, r in path.get("ceiling", {}).items():
        if mode == "off" or "rate" not in r:
            continue
        if rate is None or r["rate"] > rate:
            best, rate, check = mode, r["rate"], r.get("check", {})
    return best, (rate / eager if rate and eager else None), check


def throughput_table(eager: dict | None, comp: dict | None) -> list[str]:
    lines = [
        "| method | path | eager ceiling | compiled ceiling (mode, x eager, check) | pipeline | ratio | "
        "data path alone (x ceiling) | timed steps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys([*(eager or {}).get("methods", {}), *(comp or {}).get("methods", {})]))
    for name in names:
        for split in ("train", "test"):
            e = (eager or {}).get("methods", {}).get(name, {}).get(split, {})
            c = (comp or {}).get("methods", {}).get(name, {}).get(split, {})
            if not e and not c:
                continue
            ceiling = (e or c).get("ceiling", {}).get("off", {}).get("rate")
            mode, x, check = best_compiled(c)
            comp_text = "—"
            if mode:
                ok = {True: "ok", False: "FAILED"}.get(check.get("ok"), "unchecked")
                comp_text = f"{c['ceiling'][mode]['rate']:.1f} ({mode}, {x:.2f}x, {ok})"
            pipe, ratio, data, headroom, steps = None, None, None, None, ""
            if "pipeline" in e:
                pipe, ratio, steps = e["pipeline"]["rate"], e["ratio"], str(e["pipeline"]["steps"])
            if "data_only" in e:
                data, headroom = e["data_only"]["rate"], e.get("data_headroom")
            if "pipeline" in c and c.get("pipeline_forward", "off") != "off":
                steps += f"; compiled: pipeline {c['pipeline']['rate']:.1f} = {c['ratio']:.3f} of its ceiling"
            unit = (e or c).get("unit", "")
            lines.append(
                f"| {name} | {split} ({unit}) | {fmt(ceiling)} | {comp_text} | {fmt(pipe)} | {fmt(ratio, 3)} | "
                f"{fmt(data)} ({fmt(headroom, 2)}x) | {steps} |"
            )
    return lines


def where_time_went(eager: dict | None) -> list[str]:
    lines = [
        "| method | path | consumer wait / batch (s) | loader wait / batch (s) | device / batch (s) | "
        "frames/s decoded | worker capacity (frames/s) | worker CPU share | ring misses |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in (eager or {}).get("methods", {}).items():
        for split in ("train", "test"):
            p = m.get(split, {})
            if "pipeline" not in p:
                continue
            s = p["pipeline"]["stats"]
            lines.append(
                f"| {name} | {split} | {fmt(s.get('consumer_wait_s'), 4)} | {fmt(s.get('loader_wait_s'), 4)} | "
                f"{fmt(s.get('device_s'), 4)} | {fmt(s.get('frames_per_s'), 0)} | "
                f"{fmt(s.get('worker_capacity_frames_per_s'), 0)} | {fmt(s.get('worker_cpu_share'), 2)} | "
                f"{(p.get('ring') or {}).get('misses', '—')} |"
            )
    return lines


def variants_table(loader: dict | None, eager: dict | None) -> list[str]:
    lines = [
        "| I3D test path | workers | read-ahead | cold | data path alone (videos/s) | pipeline | ratio | "
        "worker capacity (frames/s) | worker CPU share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    after = (eager or {}).get("methods", {}).get("i3d", {}).get("test")
    if after and "pipeline" in after:
        rows.append(("after (defaults; throughput.json)", after, {}))
    for label, v in (loader or {}).get("methods", {}).get("i3d", {}).get("test", {}).get("variants", {}).items():
        rows.append((label, v, v.get("settings", {})))
    settings = (loader or eager or {}).get("settings", {})
    for label, v, over in rows:
        s = (v.get("pipeline") or v.get("data_only") or {}).get("stats", {})
        ra = over.get("read_ahead", settings.get("read_ahead", "32"))
        cold = "yes" if over.get("cold") else "no"
        pipe = v.get("pipeline", {}).get("rate")
        lines.append(
            f"| {label} | {v.get('workers')} | {ra} | {cold} | {fmt(v.get('data_only', {}).get('rate'))} | "
            f"{fmt(pipe)} | {fmt(v.get('ratio'), 3)} | {fmt(s.get('worker_capacity_frames_per_s'), 0)} | "
            f"{fmt(s.get('worker_cpu_share'), 2)} |"
        )
    return lines


def compile_auto(comp: dict | None) -> dict[str, dict[str, str]]:
    """What the rule adopts: per method and path, the fastest mode at least 5% above eager whose check passed."""
    out: dict[str, dict[str, str]] = {}
    for name, m in (comp or {}).get("methods", {}).items():
        for split in ("train", "test"):
            c = m.get(split, {}).get("ceiling", {})
            eager = c.get("off", {}).get("rate")
            good = {
                k: v["rate"]
                for k, v in c.items()
                if k != "off" and "rate" in v and v.get("check", {}).get("ok") and eager and v["rate"] >= ADOPT * eager
            }
            if good:
                out.setdefault(name, {})[split] = max(good, key=good.get)
    return out


def table6_lines(t6: dict | None, comp: dict | None, comp_path: Path | None) -> list[str]:
    if not t6:
        return ["(no time_to_table6.json)"]
    from time_to_table6 import report, speedups, table

    datasets = [r["dataset"] for r in t6.get("runs", [])]
    datasets = list(dict.fromkeys(datasets)) or ["birds", "cars"]
    if comp and comp_path is not None:
        speed = speedups(comp_path)
        rows, total = table(t6, datasets, speed)
        t6 = t6 | {"projected_with_compile": {"speedups": speed, "runs": rows, "gpu_hours": total}}
    return report(t6).splitlines()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--merge-compile", type=Path, nargs="*", default=[], help="write these merged as compile.json")
    args = p.parse_args(argv)
    f = args.folder
    if args.merge_compile:
        merged = merge_compile(args.merge_compile)
        if merged is not None:
            (f / "compile.json").write_text(json.dumps(merged, indent=1) + "\n")
    env, eager, loader = load(f / "env.json"), load(f / "throughput.json"), load(f / "i3d_test_loader.json")
    comp, t6 = load(f / "compile.json"), load(f / "time_to_table6.json")
    device = next((r["device"] for r in (eager, loader, comp, t6) if r and "device" in r), "?")
    torch_v = next((r["torch"] for r in (eager, loader, comp, t6) if r and "torch" in r), "?")
    host = next((r["host"] for r in (eager, loader, comp, t6) if r and "host" in r), {})
    out = [f"# GPU speed session: {device}, torch {torch_v}, host {host}", ""]
    if env:
        out += [f"env: {json.dumps(env)[:1500]}", ""]
    out += ["## Throughput in steady state (eager pipeline; compiled ceilings)", ""]
    out += throughput_table(eager, comp) + [""]
    out += ["## Where the pipeline's time went (eager)", ""] + where_time_went(eager) + [""]
    out += [
        "## I3D's test path: before and after, workers, from disk",
        "",
        "before: main's loader settings (12 workers, no read-ahead) on this branch's code; main itself, with 150",
        "steps, measured 0.719 (443 of 616 videos/s) on an H100 (issue 22). cold: every file read from the disk.",
        "",
    ]
    out += variants_table(loader, eager) + [""]
    out += ["## compile: auto, by the rule (paste into COMPILE_AUTO in ytfgvc/benchmark/hardware.py)", ""]
    out += [f"COMPILE_AUTO = {json.dumps(compile_auto(comp))}", ""]
    out += ["## Time to Table 6", ""] + table6_lines(t6, comp, f / "compile.json" if comp else None)
    print("\n".join(out))


if __name__ == "__main__":
    main()
