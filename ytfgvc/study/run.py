"""Studies: many benchmark runs (variants x seeds) on one dataset, then one report.

    >>> from ytfgvc.study import run_study
    >>> summary = run_study("rra-vs-tsn", "micro", root="ytfgvc-data", out="runs")   # doctest: +SKIP
    >>> summary.report                                 # the report, rebuilt from the run folders

:func:`run_study` is what ``ytfgvc study`` calls; :func:`run_variants` only trains and tests.

A study file (``baselines/<dataset>/study.yaml``) holds ``name``, ``dataset``, ``common``
(benchmark config keys shared by every run), ``variants`` (``name``, ``model``, ``kwargs``:
what the variant changes) and ``profiles``: per profile the synthetic data size
(``synth``: :class:`~ytfgvc.synth.SynthConfig` keys), the frames' ``short_side``, the
``seeds``, how many runs go at once (``parallel``), the ``variants`` (``all`` or names) and
``config`` overriding ``common``.

Everything resumes: data already made is kept, finished runs are skipped, a killed run
continues from its checkpoint. Data go under ``<root>/study-<profile>/``, runs under
``<out>/study-<profile>/<dataset>/<model>/<variant>-seed<seed>/``.
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

STUDIES = {"rra-vs-tsn": "synthetic/study.yaml"}  # shipped under baselines/ (layout.resource_file)
PROFILES = ("gpu", "cpu", "micro")


@dataclass
class Variant:
    name: str
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)


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

    def data_root(self, root: Path | str) -> Path:
        return Path(root) / f"study-{self.profile}"

    def runs_root(self, out: Path | str) -> Path:
        return Path(out) / f"study-{self.profile}"

    def run_name(self, variant: Variant, seed: int) -> str:
        return f"{variant.name}-seed{seed}"

    def run_folder(self, out: Path | str, variant: Variant, seed: int) -> Path:
        from ytfgvc.layout import run_dir

        return run_dir(self.runs_root(out), self.dataset, variant.model, self.run_name(variant, seed))

    def run_overrides(self, root: Path | str, variant: Variant, seed: int) -> dict[str, Any]:
        """The benchmark config of one run (as a dict for :func:`~ytfgvc.benchmark.config.load_config`)."""
        from ytfgvc.benchmark.config import deep_merge

        cfg = deep_merge(copy.deepcopy(self.config), {"model": {"name": variant.model, "kwargs": variant.kwargs}})
        cfg.update(
            dataset=self.dataset,
            root=str(self.data_root(root).resolve()),
            run=self.run_name(variant, seed),
            seed=seed,
            preset="paper",
        )
        return cfg


def load_study(name_or_path: str | Path, profile: str) -> Study:
    """Read a study file (a name in :data:`STUDIES` or a path) and resolve ``profile``."""
    from ytfgvc.benchmark.config import deep_merge

    if str(name_or_path) in STUDIES:
        path = resource_file("baselines", STUDIES[str(name_or_path)])
    else:
        path = Path(name_or_path)
    if not path.is_file():
        raise YtfgvcError(f"unknown study {name_or_path!r}", f"use one of {', '.join(STUDIES)} or a study.yaml path")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise YtfgvcError(f"cannot read {path}: {e}") from None
    profiles = doc.get("profiles") or {}
    if profile not in profiles:
        raise YtfgvcError(f"{path}: no profile {profile!r}", f"use one of {', '.join(profiles)}")
    prof = profiles[profile]
    all_variants = [Variant(v["name"], v["model"], dict(v.get("kwargs") or {})) for v in doc["variants"]]
    by_name = {v.name: v for v in all_variants}
    wanted = prof.get("variants", "all")
    if wanted == "all":
        variants = all_variants
    else:
        unknown = [w for w in wanted if w not in by_name]
        if unknown:
            raise YtfgvcError(f"{path}: profile {profile} names unknown variants {', '.join(unknown)}")
        variants = [by_name[w] for w in wanted]
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
    )


def ensure_data(study: Study, root: Path | str, progress: bool = True, echo: Callable[[str], None] = print) -> Path:
    """Synthesise, "download" (copy from the mirror folder: no network, no yt-dlp) and prepare frames."""
    from ytfgvc.download import DownloadConfig, download
    from ytfgvc.layout import DatasetLayout
    from ytfgvc.prepare import PrepareConfig, prepare_dataset
    from ytfgvc.synth import SynthConfig, generate

    data_root = study.data_root(root)
    data_root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    s = generate(data_root, SynthConfig(**study.synth), progress=progress)
    echo(f"synth: {s.videos} videos ({s.generated} new) in {time.perf_counter() - t0:.0f}s")
    layout = DatasetLayout(data_root, study.dataset)
    t0 = time.perf_counter()
    d = download(data_root, DownloadConfig(dataset=study.dataset, source=str(layout.mirror_dir)), progress=progress)
    echo(f"download (from the mirror folder): {d.totals} in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    prepare_dataset(data_root, study.dataset, PrepareConfig(short_side=study.short_side), progress=progress)
    echo(f"prepare: frames in {time.perf_counter() - t0:.0f}s")
    return data_root


@dataclass
class StudyResult:
    runs_root: Path
    finished: list[Path]
    failed: dict[str, str]
    seconds: float


def run_variants(
    study: Study,
    root: Path | str,
    out: Path | str,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> StudyResult:
    """Make the data, then train and test every (variant, seed) not finished yet."""
    t0 = time.perf_counter()
    ensure_data(study, root, progress, echo)
    jobs = [(v, s) for s in study.seeds for v in study.variants]
    todo = [(v, s) for v, s in jobs if not RunFiles(study.run_folder(out, v, s)).finished]
    echo(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to go, {study.parallel} at a time")
    failed: dict[str, str] = {}
    run = _run_in_process if study.parallel == 1 else _run_in_subprocess
    from tqdm import tqdm

    with (
        ThreadPoolExecutor(study.parallel) as pool,
        tqdm(total=len(todo), unit="run", desc="study", disable=not progress) as bar,
    ):
        futures = {pool.submit(run, study, root, out, v, s, progress): (v, s) for v, s in todo}
        for fut in as_completed(futures):
            v, s = futures[fut]
            name = study.run_name(v, s)
            try:
                fut.result()
                bar.write(f"done {name} ({time.perf_counter() - t0:.0f}s since start)")
            except Exception as e:  # one failed run must not lose the others
                failed[name] = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                bar.write(f"FAILED {name}: {failed[name]}")
            bar.update()
    finished = [study.run_folder(out, v, s) for v, s in jobs]
    finished = [f for f in finished if RunFiles(f).finished]
    return StudyResult(study.runs_root(out), finished, failed, time.perf_counter() - t0)


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
    threads = max(1, (os.cpu_count() or 1) // study.parallel)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log = folder / f"{name}.log"
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"exit {proc.returncode}: {tail[0]} (log: {log})")


@dataclass
class StudySummary:
    """What ``ytfgvc study`` did: the report written, and the runs when it ran them."""

    study: str
    profile: str
    report: Path
    finished: int | None = None
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float | None = None
    export: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"study": self.study, "profile": self.profile, "report": str(self.report)}
        if self.finished is not None:
            d.update(finished=self.finished, failed=self.failed, seconds=self.seconds)
        if self.export is not None:
            d["export"] = str(self.export)
        return d


def default_report(study: Study, out: Path | str) -> Path:
    """Where the report goes: beside the study file in a clone (gpu: README.md, cpu: README-cpu.md), else under OUT.

    The micro profile, and any study whose file is installed (not in a clone), writes
    ``OUT/study-<profile>/README.md``.
    """
    in_clone = (study.path.parent.parent.parent / ".git").exists()
    if study.profile == "micro" or not in_clone:
        return study.runs_root(out) / "README.md"
    return study.path.parent / ("README.md" if study.profile == "gpu" else f"README-{study.profile}.md")


def run_study(
    name: str | Path,
    profile: str,
    root: Path | str,
    out: Path | str,
    *,
    report: Path | None = None,
    parallel: int | None = None,
    results_only: bool = False,
    export: Path | None = None,
    figures: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> StudySummary:
    """Run a study's variants (unless ``results_only``), then rebuild its report; what ``ytfgvc study`` does.

    Args:
        name: a study in :data:`STUDIES` or a study.yaml path; ``profile`` one of :data:`PROFILES`.
        root: where the study's data are made (``<root>/study-<profile>/``).
        out: where its runs go (``<out>/study-<profile>/``).
        report: the report to write (default :func:`default_report`).
        parallel: runs at a time (their own processes when > 1); default the profile's.
        export: also copy the runs' small files and the report there (:func:`export_runs`).
        figures: draw the eq. 7 heat maps of two test videos.
    """
    from ytfgvc.study.report import build_report, write_study_record

    study = load_study(name, profile)
    if parallel is not None:
        study.parallel = max(1, parallel)
    report = Path(report) if report is not None else default_report(study, out)
    t0 = time.perf_counter()
    summary = StudySummary(study.name, profile, report)
    if not results_only:
        result = run_variants(study, root, out, progress=progress, echo=echo)
        write_study_record(study, root, out, time.perf_counter() - t0, _device_name(study))
        summary.finished, summary.failed = len(result.finished), result.failed
        summary.seconds = round(result.seconds, 1)
    build_report(study, root, out, report, figures=figures)
    if export is not None:
        summary.export = export_runs(study, out, export, report)
    return summary


def _device_name(study: Study) -> str:
    import platform

    import torch

    if study.config.get("device") == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def export_runs(study: Study, out: Path | str, dest: Path | str, report: Path | None = None) -> Path:
    """Copy the study's run records (not checkpoints) to ``dest`` in the same layout, and the report.

    ``ytfgvc study --out DEST --results-only`` re-renders the report from the copy alone
    (``study.json`` holds the test labels, ``attention.json`` the attention numbers).
    """
    import shutil

    src, dst = study.runs_root(out), study.runs_root(dest)
    for v in study.variants:
        for seed in study.seeds:
            folder = study.run_folder(out, v, seed)
            target = dst / folder.relative_to(src)
            for name in RunFiles.RECORDS:
                if (folder / name).is_file():
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(folder / name, target / name)
    for name in ("study.json", "attention.json"):
        if (src / name).is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
    if (src / "configs").is_dir():
        shutil.copytree(src / "configs", dst / "configs", dirs_exist_ok=True)
    if report is not None and report.is_file():
        shutil.copy2(report, dst / "README.md")
        if (report.parent / "figures").is_dir():
            shutil.copytree(report.parent / "figures", dst / "figures", dirs_exist_ok=True)
    return dst
