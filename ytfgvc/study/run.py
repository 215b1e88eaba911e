"""Studies: many benchmark runs (variants x seeds) on synthetic data, then one report.

    >>> from ytfgvc.study import run_study
    >>> summary = run_study("rra-vs-tsn", "micro", root="ytfgvc-data", out="runs")   # doctest: +SKIP
    >>> summary.report                                 # the report, rebuilt from the runs

:func:`run_study` is what ``ytfgvc study`` calls; :func:`run_variants` only trains and tests.

A study file (``baselines/<dataset>/*.yaml``, :data:`STUDIES`) holds ``name``, ``dataset``,
``report`` (which report: ``rra-vs-tsn``, ``redundancy`` or ``attention``), ``common``
(benchmark config keys shared by every run), ``variants`` (``name``, ``model``, ``kwargs``:
what the variant changes in the model; ``synth``: what it changes in the data, e.g.
``visible_fraction``) and ``profiles``: per profile the synthetic data
(``synth``: :class:`~ytfgvc.synth.SynthConfig` keys), the frames' ``short_side``, the
``seeds`` of every variant and ``more_seeds`` (``variants``, ``seeds``) for some, how many
runs go at once (``parallel``), the ``variants`` (``all`` or names), ``attention`` (the
variants whose glimpses are measured against the crest, and ``attention_videos``: ``all``
or how many test videos) and ``config`` overriding ``common``. ``folder`` names the
study's folder under ROOT and OUT (default ``{name}-{profile}``), ``results`` its committed
results folder beside the study file (default ``results-{name}-{profile}``: see
:mod:`ytfgvc.study.results`), ``reports`` the report file of a profile beside the study file
and ``figures`` the prefix of its figures in ``figures/`` (default ``{name}-{profile}-``).

Everything resumes: data already made is kept, finished runs are skipped, a killed run
continues from its checkpoint. Data go under ``<root>/<folder>/`` (a variant that changes
the data: ``<root>/<folder>/data-<key>/``), runs under
``<out>/<folder>/<dataset>/<model>/<variant>-seed<seed>/``. Runs start seed by seed (every
variant of seed 0, then of seed 1, ...), so a study stopped early has whole seeds.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import RunFiles, resource_file

# Shipped under baselines/ (layout.resource_file).
STUDIES = {
    "rra-vs-tsn": "synthetic/study.yaml",
    "redundancy": "synthetic/redundancy.yaml",
    "crest-attention": "synthetic/attention.yaml",
}
PROFILES = ("gpu", "cpu", "micro")
REPORT_KINDS = ("rra-vs-tsn", "redundancy", "attention")


@dataclass
class Variant:
    name: str
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    synth: dict[str, Any] = field(default_factory=dict)  # SynthConfig keys this variant's data change

    @property
    def data_key(self) -> str:
        """The name of this variant's data ("" for the profile's own data)."""
        return "-".join(f"{k}-{v}" for k, v in sorted(self.synth.items()))


@dataclass
class Study:
    """One profile of a study file, resolved."""

    name: str
    dataset: str
    profile: str
    path: Path
    synth: dict[str, Any]
    short_side: int
    seeds: list[int]
    parallel: int
    variants: list[Variant]
    config: dict[str, Any]  # benchmark config keys shared by every run (common < profile)
    kind: str = "rra-vs-tsn"
    folder: str = ""
    results: str = ""
    report_file: str | None = None
    more_seeds: dict[str, list[int]] = field(default_factory=dict)  # variant -> seeds beyond ``seeds``
    attention: list[str] = field(default_factory=list)
    attention_videos: int | None = None  # None: every test video
    figure_prefix: str = ""  # the report's figures are figures/<prefix>*.png
    file_variants: list[str] = field(default_factory=list)  # every variant of the study file, this profile's or not

    def seeds_of(self, variant: Variant) -> list[int]:
        return sorted(set(self.seeds) | set(self.more_seeds.get(variant.name, [])))

    @property
    def all_seeds(self) -> list[int]:
        return sorted({s for v in self.variants for s in self.seeds_of(v)})

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise YtfgvcError(
            f"study {self.name} (profile {self.profile}) has no variant {name!r}",
            f"its variants: {', '.join(v.name for v in self.variants)}",
        )

    def jobs(self, variants: list[str] | None = None, seeds: list[int] | None = None) -> list[tuple[Variant, int]]:
        """Every (variant, seed) to run, seed by seed; ``variants``/``seeds`` keep only those.

        A name in ``variants`` that no variant of the study file has (a typo) is refused; one of
        the file that this profile does not run is left out.
        """
        typos = [n for n in variants or [] if n not in self.file_variants]
        if typos:
            raise YtfgvcError(
                f"{', '.join(typos)} matches no variant of study {self.name}",
                f"--variants takes some of {', '.join(self.file_variants)}",
            )
        chosen = [v for v in self.variants if variants is None or v.name in variants]
        return [
            (v, s) for s in self.all_seeds for v in chosen if s in self.seeds_of(v) and (seeds is None or s in seeds)
        ]

    def data_root(self, root: Path | str, variant: Variant | None = None) -> Path:
        base = Path(root) / self.folder
        key = variant.data_key if variant is not None else ""
        return base / f"data-{key}" if key else base

    def synth_config(self, variant: Variant | None = None) -> dict[str, Any]:
        return {**self.synth, **(variant.synth if variant is not None else {})}

    def runs_root(self, out: Path | str) -> Path:
        return Path(out) / self.folder

    @property
    def results_dir(self) -> Path:
        """The committed results folder (beside the study file)."""
        return self.path.parent / self.results

    def run_name(self, variant: Variant, seed: int) -> str:
        return f"{variant.name}-seed{seed}"

    def run_folder(self, out: Path | str, variant: Variant, seed: int) -> Path:
        from ytfgvc.layout import run_dir

        return run_dir(self.runs_root(out), self.dataset, variant.model, self.run_name(variant, seed))

    def run_overrides(self, root: Path | str, variant: Variant, seed: int) -> dict[str, Any]:
        """The benchmark config of one run (as a dict for :func:`~ytfgvc.benchmark.config.load_config`)."""
        from ytfgvc.config import deep_merge

        cfg = deep_merge(copy.deepcopy(self.config), {"model": {"name": variant.model, "kwargs": variant.kwargs}})
        cfg.update(
            dataset=self.dataset,
            root=str(self.data_root(root, variant).resolve()),
            run=self.run_name(variant, seed),
            seed=seed,
            preset="paper",
        )
        return cfg


def _study_path(name_or_path: str | Path) -> Path:
    if str(name_or_path) in STUDIES:
        return resource_file("baselines", STUDIES[str(name_or_path)])
    path = Path(name_or_path)
    if not path.is_file():
        raise YtfgvcError(f"unknown study {name_or_path!r}", f"use one of {', '.join(STUDIES)} or a study file path")
    return path


def load_study(name_or_path: str | Path, profile: str) -> Study:
    """Read a study file (a name in :data:`STUDIES` or a path) and resolve ``profile``."""
    from ytfgvc.config import deep_merge

    path = _study_path(name_or_path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise YtfgvcError(f"cannot read {path}: {e}") from None
    profiles = doc.get("profiles") or {}
    if profile not in profiles:
        raise YtfgvcError(f"{path}: no profile {profile!r}", f"use one of {', '.join(profiles)}")
    prof = profiles[profile]
    all_variants = [
        Variant(v["name"], v["model"], dict(v.get("kwargs") or {}), dict(v.get("synth") or {})) for v in doc["variants"]
    ]
    by_name = {v.name: v for v in all_variants}

    def named(names: Any, key: str) -> list[Variant]:
        if names == "all":
            return all_variants
        unknown = [w for w in names if w not in by_name]
        if unknown:
            raise YtfgvcError(
                f"{path}: profile {profile}: {key} names unknown variants {', '.join(unknown)}",
                f"the file's variants: {', '.join(by_name)}",
            )
        return [by_name[w] for w in names]

    variants = named(prof.get("variants", "all"), "variants")
    more = prof.get("more_seeds") or {}
    more_seeds = {
        v.name: [int(s) for s in more.get("seeds", [])] for v in named(more.get("variants", []), "more_seeds")
    }
    kind = doc.get("report", "rra-vs-tsn")
    if kind not in REPORT_KINDS:
        raise YtfgvcError(f"{path}: report {kind!r} is not a kind of report", f"use one of {', '.join(REPORT_KINDS)}")
    fill = {"name": doc["name"], "profile": profile}
    default_attention = ["rra"] if "rra" in {v.name for v in variants} else []
    wanted = prof.get("attention", default_attention)
    attention = [v.name for v in (variants if wanted == "all" else named(wanted, "attention"))]
    videos = prof.get("attention_videos", "all")
    return Study(
        name=doc["name"],
        dataset=doc["dataset"],
        profile=profile,
        path=path,
        synth=dict(prof["synth"]),
        short_side=int(prof.get("short_side", 256)),
        seeds=[int(s) for s in prof.get("seeds", [0])],
        parallel=max(1, int(prof.get("parallel", 1))),
        variants=variants,
        config=deep_merge(doc.get("common") or {}, prof.get("config") or {}),
        kind=kind,
        folder=str(doc.get("folder", "{name}-{profile}")).format(**fill),
        results=str(doc.get("results", "results-{name}-{profile}")).format(**fill),
        report_file=(doc.get("reports") or {}).get(profile),
        more_seeds=more_seeds,
        attention=attention,
        attention_videos=None if videos == "all" else int(videos),
        figure_prefix=str(doc.get("figures", "{name}-{profile}-")).format(**fill),
        file_variants=[v.name for v in all_variants],
    )


def ensure_data(
    study: Study,
    root: Path | str,
    variant: Variant | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Path:
    """Synthesise, "download" (copy from the mirror folder: no network, no yt-dlp) and prepare frames.

    ``variant``: make the data of a variant that changes them (its ``synth`` keys).
    """
    from ytfgvc.download import DownloadConfig, download
    from ytfgvc.layout import DatasetLayout
    from ytfgvc.prepare import PrepareConfig, prepare_dataset
    from ytfgvc.synth import SynthConfig, generate

    data_root = study.data_root(root, variant)
    data_root.mkdir(parents=True, exist_ok=True)
    key = f" [{variant.data_key}]" if variant is not None and variant.data_key else ""
    t0 = time.perf_counter()
    s = generate(data_root, SynthConfig(**study.synth_config(variant)), progress=progress)
    echo(f"synth{key}: {s.videos} videos ({s.generated} new) in {time.perf_counter() - t0:.0f}s")
    layout = DatasetLayout(data_root, study.dataset)
    t0 = time.perf_counter()
    d = download(data_root, DownloadConfig(dataset=study.dataset, source=str(layout.mirror_dir)), progress=progress)
    echo(f"download{key} (from the mirror folder): {d.totals} in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    prepare_dataset(data_root, study.dataset, PrepareConfig(short_side=study.short_side), progress=progress)
    echo(f"prepare{key}: frames in {time.perf_counter() - t0:.0f}s")
    return data_root


def data_variants(jobs: list[tuple[Variant, int]]) -> list[Variant | None]:
    """One variant per distinct data the ``jobs`` (variant, seed) need (``None``: the profile's own data)."""
    out: dict[str, Variant | None] = {}
    for v, _ in jobs:
        out.setdefault(v.data_key, v if v.data_key else None)
    return list(out.values())


def ensure_jobs_data(
    study: Study, root: Path | str, jobs: list[tuple[Variant, int]], progress: bool, echo: Callable[[str], None]
) -> None:
    """:func:`ensure_data` for every distinct data the ``jobs`` need."""
    for v in data_variants(jobs):
        ensure_data(study, root, v, progress, echo)


@dataclass
class StudyResult:
    runs_root: Path
    finished: list[Path]
    failed: dict[str, str]
    not_started: list[str]
    seconds: float
    session: Any = None  # record.Session: the session's entry in study.json
    started: float = 0.0  # time.perf_counter() when the session began


class _NotStarted(Exception):
    """A run not started because the session's time was up (``stop_after``)."""


def run_variants(
    study: Study,
    root: Path | str,
    out: Path | str,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    stop_after: float | None = None,
) -> StudyResult:
    """Make the data, then train and test every (variant, seed) not finished yet.

    Args:
        variants, seeds: run only these (the others are left as they are).
        stop_after: start no run after this many seconds (running ones finish); the
            runs not started are listed in the result.
    """
    from ytfgvc.study.record import open_session

    t0 = time.perf_counter()
    jobs = study.jobs(variants, seeds)
    if not jobs:
        raise YtfgvcError(
            f"no run of study {study.name} (profile {study.profile}) matches the variants and seeds given",
            f"profile {study.profile} runs {', '.join(v.name for v in study.variants)} with seeds"
            f" {', '.join(map(str, study.all_seeds))}",
        )
    ensure_jobs_data(study, root, jobs, progress, echo)
    todo = [(v, s) for v, s in jobs if not RunFiles(study.run_folder(out, v, s)).finished]
    session = open_session(study, root, out, _device_name(study), jobs, len(jobs) - len(todo))
    echo(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to go, {study.parallel} at a time")
    failed: dict[str, str] = {}
    not_started: list[str] = []
    run = _run_in_process if study.parallel == 1 else _run_in_subprocess

    def job(v: Variant, s: int) -> None:
        if stop_after is not None and time.perf_counter() - t0 > stop_after:
            raise _NotStarted
        run(study, root, out, v, s, progress)

    from tqdm import tqdm

    done = 0
    with (
        ThreadPoolExecutor(study.parallel) as pool,
        tqdm(total=len(todo), unit="run", desc="study", disable=not progress) as bar,
    ):
        futures = {pool.submit(job, v, s): (v, s) for v, s in todo}
        for fut in as_completed(futures):
            v, s = futures[fut]
            name = study.run_name(v, s)
            try:
                fut.result()
                done += 1
                bar.write(f"done {name} ({time.perf_counter() - t0:.0f}s since start)")
            except _NotStarted:
                not_started.append(name)
            except Exception as e:  # one failed run must not lose the others
                failed[name] = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                bar.write(f"FAILED {name}: {failed[name]}")
            session.update(time.perf_counter() - t0, done)
            bar.update()
    if not_started:
        echo(f"time is up (--stop-after {stop_after:.0f}s): {len(not_started)} runs not started")
    finished = [study.run_folder(out, v, s) for v, s in jobs]
    finished = [f for f in finished if RunFiles(f).finished]
    session.update(time.perf_counter() - t0, done)
    return StudyResult(
        study.runs_root(out), finished, failed, sorted(not_started), time.perf_counter() - t0, session, t0
    )


def _run_in_process(study: Study, root, out, variant: Variant, seed: int, progress: bool) -> None:
    from ytfgvc.benchmark.config import load_config
    from ytfgvc.benchmark.run import run_benchmark

    over = study.run_overrides(root, variant, seed)
    cfg = load_config(variant.model, "paper", None, over)
    run_benchmark(cfg, study.runs_root(out), resume=True, progress=progress, echo=lambda s: None)


def _run_in_subprocess(study: Study, root, out, variant: Variant, seed: int, progress: bool) -> None:
    """``python -m ytfgvc benchmark`` with the run's config (its own CUDA context; logs beside the run)."""
    over = study.run_overrides(root, variant, seed)
    folder = study.runs_root(out) / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    name = study.run_name(variant, seed)
    config = folder / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"method": variant.model, **over}, sort_keys=False))
    cmd = [sys.executable, "-m", "ytfgvc", "benchmark", study.dataset, "--config", str(config)]
    cmd += ["--out", str(study.runs_root(out)), "--resume", "--no-progress", "--root", over["root"]]
    env = dict(os.environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // study.parallel)  # the cores this process may use, shared by the runs at once
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log = folder / f"{name}.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit {proc.returncode}: {tail[0]} (log: {log})")


@dataclass
class StudySummary:
    """What ``ytfgvc study`` did: the report written (and from what), and the runs when it ran them."""

    study: str
    profile: str
    report: Path
    source: str = ""
    finished: int | None = None
    failed: dict[str, str] = field(default_factory=dict)
    not_started: list[str] = field(default_factory=list)
    seconds: float | None = None
    export: Path | None = None
    merged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"study": self.study, "profile": self.profile, "report": str(self.report)}
        d["source"] = self.source
        if self.finished is not None:
            d.update(finished=self.finished, failed=self.failed, not_started=self.not_started, seconds=self.seconds)
        if self.export is not None:
            d["export"] = str(self.export)
        if self.merged:
            d["merged"] = self.merged
        return d


def in_clone(study: Study) -> bool:
    """Whether the study file is the one of a git clone (its reports are committed beside it)."""
    return (study.path.parent.parent.parent / ".git").exists()


def default_report(study: Study, out: Path | str) -> Path:
    """Where the report goes: beside the study file in a clone (the file its ``reports`` names for the profile),
    else ``OUT/<folder>/README.md`` (a profile without a committed report, e.g. micro, or an installed study)."""
    if study.report_file is None or not in_clone(study):
        return study.runs_root(out) / "README.md"
    return study.path.parent / study.report_file


def run_study(
    name: str | Path,
    profile: str,
    root: Path | str,
    out: Path | str,
    *,
    report: Path | None = None,
    parallel: int | None = None,
    results_only: bool = False,
    results: Path | None = None,
    merge: list[Path] | None = None,
    export: Path | None = None,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    stop_after: float | None = None,
    data_only: bool = False,
    figures: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> StudySummary:
    """Run a study's variants (unless ``results_only``), then rebuild its report; what ``ytfgvc study`` does.

    Args:
        name: a study in :data:`STUDIES` or a study file path; ``profile`` one of its profiles.
        root: where the study's data are made (``<root>/<folder>/``).
        out: where its runs go (``<out>/<folder>/``).
        report: the report to write (default :func:`default_report`).
        parallel: runs at a time (their own processes when > 1); default the profile's.
        results_only: only rebuild the report: from the finished run folders under ``out``
            if there are any, else from the results folder (``results``, default the
            committed one, :attr:`Study.results_dir`).
        merge: exported results (folders or ``.tar.gz`` written by ``export``) to add to the
            committed results folder first (:func:`ytfgvc.study.record.merge_results`).
        export: also write the runs' small files, the compact results and the report there
            (:func:`export_runs`).
        variants, seeds, stop_after: see :func:`run_variants`.
        data_only: only make the data of the runs (``variants``, ``seeds``) and stop.
        figures: draw the eq. 7 heat maps of two test videos (needs the checkpoints).
    """
    from ytfgvc.study.record import merge_results
    from ytfgvc.study.report import build_report, load_results, measure_attention

    study = load_study(name, profile)
    if parallel is not None:
        study.parallel = max(1, parallel)
    out = Path(out) if out is not None else Path(root) / "runs"
    report = Path(report) if report is not None else default_report(study, out)
    summary = StudySummary(study.name, profile, report)
    for src in merge or []:
        summary.merged.append(merge_results(study, Path(src), results or study.results_dir, report.parent / "figures"))
        echo(f"merged {src} into {results or study.results_dir}")
    if data_only:
        ensure_jobs_data(study, root, study.jobs(variants, seeds), progress, echo)
        summary.source = "no report: --data-only"
        return summary
    result = None
    if not results_only:
        result = run_variants(study, root, out, progress, echo, variants, seeds, stop_after)
        summary.finished, summary.failed = len(result.finished), result.failed
        summary.not_started, summary.seconds = result.not_started, round(result.seconds, 1)
    data = load_results(study, root, out, results, prefer_results=bool(merge) and results_only)
    summary.source = data.source
    measure_attention(study, data, echo)
    if result is not None:  # the session's time includes the attention it measured (the report takes seconds)
        result.session.update(time.perf_counter() - result.started)
        data.record = result.session.doc
        summary.seconds = round(time.perf_counter() - result.started, 1)
    build_report(study, data, report, figures=figures)
    if export is not None:
        summary.export = export_runs(study, data, Path(export), report)
    return summary


def _device_name(study: Study) -> str:
    import platform

    import torch

    if study.config.get("device") == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


EXPORTED_RECORDS = (
    "config.yaml",
    "log.jsonl",
    "metrics.json",
    "predictions.json",
)  # small files: no PNG, no checkpoint


def export_runs(study: Study, data: Any, dest: Path, report: Path | None = None) -> Path:
    """Write what a study leaves behind, without checkpoints or frames, under ``dest``.

    * ``dest/<results>/``: the compact results (``runs.json``, ``study.json``,
      ``attention.json``) to commit, or to pass to ``--merge``;
    * ``dest/<folder>/``: the run folders' small files (:data:`EXPORTED_RECORDS`) in the
      same layout, with ``study.json``, ``attention.json``, the run configs, the report
      (``README.md``) and its ``figures/``: ``ytfgvc study --out DEST --results-only``
      re-renders the report from them alone.
    """
    import shutil

    from ytfgvc.study.record import write_results

    write_results(study, data, dest / study.results)
    if data.runs_root is not None:
        src, dst = data.runs_root, study.runs_root(dest)
        for r in data.runs:
            if r.folder is None:
                continue
            target = dst / r.folder.relative_to(src)
            target.mkdir(parents=True, exist_ok=True)
            for name in EXPORTED_RECORDS:
                if (r.folder / name).is_file():
                    shutil.copy2(r.folder / name, target / name)
        for name in ("study.json", "attention.json"):
            if (src / name).is_file():
                dst.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / name, dst / name)
        if (src / "configs").is_dir():
            shutil.copytree(src / "configs", dst / "configs", dirs_exist_ok=True)
    dst = study.runs_root(dest)
    if report is not None and report.is_file():
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copy2(report, dst / "README.md")
        figs = report.parent / "figures"
        if figs.is_dir():
            (dst / "figures").mkdir(parents=True, exist_ok=True)
            for png in figs.glob(f"{study.figure_prefix}*.png"):
                shutil.copy2(png, dst / "figures" / png.name)
    return dest
