"""``prepare_dataset``: every downloaded video of a dataset, in worker processes (or Ray tasks), resumable.

A video counts as prepared when ``frames/<id>/meta.json`` exists (and, with ``flow``,
``flow/<id>/meta.json``) and was made with the same settings: folders are written under a
``.tmp-`` name and renamed when complete, so a killed run leaves nothing that counts.
A second run does only what is missing; folders made with other settings are left alone
and reported (``force`` redoes them). One bad video is one line in the summary.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ytfgvc.datasets import Dataset
from ytfgvc.distributed import require_ray
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare.config import FRAME_KEYS, PrepareConfig, VideoSettings
from ytfgvc.prepare.flow import get_flow_backend
from ytfgvc.prepare.lists import ListsResult, read_frames_meta, write_lists
from ytfgvc.prepare.video import VideoJob, VideoResult, prepare_video
from ytfgvc.snapshot import snapshot
from ytfgvc.store import read_meta
from ytfgvc.system.fserrors import disk_full_error, is_disk_full
from ytfgvc.system.fsutil import sweep_temporaries
from ytfgvc.system.lifeline import Token, bind_to_main, main_token
from ytfgvc.system.locks import exclusive

if TYPE_CHECKING:
    from ytfgvc.prepare.repack import RepackResult

MAX_ERRORS_SHOWN = 20


class NoVideosError(YtfgvcError):
    """Nothing downloaded yet for this dataset."""


@dataclass
class PrepareResult:
    dataset: str
    videos: int  # downloaded ("ok") videos considered
    prepared: int  # of those, complete now (frames, and flow if asked; deferred ones not included)
    made_frames: int
    made_flow: int
    already: int  # complete before this run
    stale: list[str]  # made with other settings; left alone (use force)
    errors: dict[str, str]
    frames_written: int
    flow_pairs: int
    seconds: float
    jobs: int
    settings: VideoSettings
    manifest: str | None
    lists: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    deferred: int = 0  # left for a later run by ``limit``
    executor: str = "local"  # or "ray": ``jobs`` is then the cap on videos in progress (0: none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        what = "frames and flow" if self.settings.get("flow") else "frames"
        lines = [
            f"{self.dataset}: {self.prepared} of {self.videos} downloaded videos prepared ({what}; "
            f"{self.made_frames} newly framed, {self.made_flow} new flow, {self.already} already done; "
            f"{self.frames_written:,} frames, {self.flow_pairs:,} flow pairs in {self.seconds:.1f} s, "
            + (
                f"{self.jobs} worker{'s' if self.jobs != 1 else ''})"
                if self.executor == "local"
                else f"on a Ray cluster{f', at most {self.jobs} at a time' if self.jobs else ''})"
            )
        ]
        if self.deferred:
            lines.append(f"  {self.deferred} videos left for a later run (--limit)")
        if self.stale:
            lines.append(
                f"  {len(self.stale)} made with other settings, left as they are (--force redoes them): "
                + ", ".join(self.stale[:5])
                + (" …" if len(self.stale) > 5 else "")
            )
        if self.errors:
            lines.append(f"  {len(self.errors)} failed (the rest went on):")
            shown = sorted(self.errors.items())[:MAX_ERRORS_SHOWN]
            lines += [f"    {vid}: {reason}" for vid, reason in shown]
            if len(self.errors) > len(shown):
                lines.append(f"    … {len(self.errors) - len(shown)} more in lists/missing.txt (and --json)")
        lines += [f"  warning: {w}" for w in self.warnings]
        if self.lists:
            lines.append("  " + ListsResult(**self.lists).summary())
        else:
            lines.append(f"  manifest: {self.manifest or 'none (videos not from `ytfgvc download`)'}")
        return "\n".join(lines)


def _dataset_lock(layout: DatasetLayout):
    """One ``prepare`` per dataset (``download`` may run beside it: it writes other files, see the README)."""
    return exclusive(layout.prepare_lock_path, f"`ytfgvc prepare {layout.dataset}` on {layout.base}")


def _frames_match(meta: dict[str, Any], settings: VideoSettings) -> bool:
    return all(meta.get(k) == getattr(settings, k) for k in FRAME_KEYS)


def _flow_match(meta: dict[str, Any], settings: VideoSettings, resolved_params: dict[str, Any]) -> bool:
    return (
        meta.get("backend") == settings.flow_backend
        and meta.get("stack") == settings.flow_stack
        and meta.get("format") == settings.flow_format
        and meta.get("sample_fps") == settings.sample_fps
        and meta.get("params") == resolved_params
    )


def plan_jobs(
    layout: DatasetLayout, ids: list[str], cfg: PrepareConfig, settings: VideoSettings
) -> tuple[list[VideoJob], list[str], list[str]]:
    """``(jobs, already done, stale)`` for ``ids`` given what is on disk."""
    resolved = get_flow_backend(cfg.flow_backend, **cfg.flow_params).params if cfg.flow else {}
    jobs, done, stale = [], [], []
    for vid in ids:
        fmeta = read_frames_meta(layout, vid)
        wmeta = read_meta(layout, "flow", vid) if cfg.flow else None
        frames_ok = fmeta is not None and _frames_match(fmeta, settings)
        flow_ok = wmeta is not None and _flow_match(wmeta, settings, resolved)
        if not cfg.force and ((fmeta is not None and not frames_ok) or (wmeta is not None and not flow_ok)):
            stale.append(vid)
            continue
        write_frames = cfg.force or not frames_ok
        write_flow = cfg.flow and (cfg.force or not flow_ok)
        if not (write_frames or write_flow):
            done.append(vid)
            continue
        expect = None
        if frames_ok and not write_frames:
            expect = fmeta.get("native_index")
        elif flow_ok and not write_flow:
            expect = [s["native"] for s in wmeta.get("stacks", [])]
        jobs.append(
            VideoJob(
                video_id=vid,
                src=str(layout.video_path(vid)),
                frames_dir=str(layout.frames_dir(vid)),
                flow_dir=str(layout.flow_dir(vid)),
                settings=settings,
                write_frames=write_frames,
                write_flow=write_flow,
                expect_native=expect,
                store=cfg.store,
                frames_archive=str(layout.frames_archive(vid)),
                flow_archive=str(layout.flow_archive(vid)),
            )
        )
    return jobs, done, stale


def _default_workers(cfg: PrepareConfig) -> int:
    """One per CPU core; with flow on GPUs (the torch backend), one process per GPU."""
    if cfg.flow and cfg.flow_backend == "torch" and cfg.flow_params.get("device", "auto") == "auto":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    return os.cpu_count() or 1


def _init_worker(cv_threads: int, counter, main: Token) -> None:
    import cv2

    from ytfgvc.prepare.flow import set_worker_index

    # A forkserver worker's parent is the forkserver, and the forkserver lives as long as any
    # worker does: only a watch on the main process itself ends them when it dies.
    bind_to_main(main, parent_death_signal=True)
    cv2.setNumThreads(cv_threads)
    with counter.get_lock():  # a stable index per worker: the torch flow backend picks its GPU by it
        set_worker_index(counter.value)
        counter.value += 1


WORKER_DIED = "worker process died (a crash or out of memory) while preparing it; run again to retry"


def _run_jobs(
    jobs: list[VideoJob],
    workers: int,
    progress: bool,
    desc: str,
    work: Callable[[VideoJob], VideoResult] = prepare_video,
) -> Iterator[VideoResult]:
    """Yield results as videos finish, with a progress bar (videos/s, frames/s).

    A worker that dies (a decoder crash on a hostile file, the OOM killer) fails only the
    videos in flight; a fresh pool takes the rest.
    """
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress, dynamic_ncols=True)
    t0, frames = time.perf_counter(), 0

    def tick(r: VideoResult) -> VideoResult:
        nonlocal frames
        frames += r.frames
        bar.update(1)
        bar.set_postfix_str(f"{frames / max(time.perf_counter() - t0, 1e-9):.1f} frames/s", refresh=False)
        return r

    try:
        if workers == 1:
            for job in jobs:
                yield tick(work(job))
            return
        # forkserver, not fork: OpenCV's and FFmpeg's thread pools do not survive fork(). The
        # server imports the heavy modules once (before any thread starts); workers fork from it.
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["ytfgvc.prepare.video", "ytfgvc.prepare.flow"])
        cv_threads = max(1, (os.cpu_count() or 1) // workers)
        todo = iter(jobs)
        more = True
        while more:
            counter = ctx.Value("i", 0)
            init = (cv_threads, counter, main_token())
            with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
                running: dict[Future, VideoJob] = {}
                broken = False
                try:
                    while True:
                        while not broken and len(running) < 2 * workers:
                            job = next(todo, None)
                            if job is None:
                                more = False
                                break
                            running[pool.submit(work, job)] = job
                        if not running:
                            break
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            job = running.pop(fut)
                            try:
                                result = fut.result()
                            except BrokenProcessPool:
                                broken = True
                                result = VideoResult(job.video_id, error=WORKER_DIED)
                            yield tick(result)
                except BaseException:  # interrupted, out of space: abandon the videos in flight
                    _stop_workers(pool)  # first: shutdown() forgets them
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """End the pool's workers now rather than after their videos: what they leave is under ``.tmp-`` names."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()


def _prepare_videos(
    layout: DatasetLayout, ids: list[str], cfg: PrepareConfig, settings: VideoSettings, progress: bool
) -> tuple[list[VideoResult], list[str], list[str], int, int]:
    """Frames (and flow) for what ``ids`` lack: ``(results, already done, stale, deferred, workers)``."""
    for folder in (layout.frames_root, layout.flow_root, layout.lists_dir):
        sweep_temporaries(folder)
    jobs, done, stale = plan_jobs(layout, ids, cfg, settings)
    deferred = 0
    if cfg.limit is not None and len(jobs) > cfg.limit:
        deferred, jobs = len(jobs) - cfg.limit, jobs[: cfg.limit]
    desc = f"prepare {layout.dataset}"
    if cfg.cluster.is_ray:
        from ytfgvc.prepare.remote import run_jobs_on_ray

        return (
            list(run_jobs_on_ray(layout, jobs, cfg.cluster, cfg.jobs, progress, desc)),
            done,
            stale,
            deferred,
            cfg.jobs,
        )
    workers = max(1, min(cfg.jobs or _default_workers(cfg), len(jobs) or 1))
    return list(_run_jobs(jobs, workers, progress, desc)), done, stale, deferred, workers


def _selected_ids(ds: Dataset, snap: Any, video_ids: list[str] | None) -> list[str]:
    """The downloaded ids this run prepares (all, or those of ``video_ids``); none at all is an error."""
    ids = sorted(snap.ids)
    if not ids:
        raise NoVideosError(
            f"{ds.name}: no downloaded videos under {ds.layout.videos_dir}",
            f"run `ytfgvc download {ds.name}` first (or put <id>.mp4 files there)",
        )
    if video_ids is None:
        return ids
    unknown = sorted(set(video_ids) - set(ids))
    if unknown:
        raise YtfgvcError(f"{len(unknown)} requested ids are not downloaded: {', '.join(unknown[:5])}")
    wanted = set(video_ids)
    return [v for v in ids if v in wanted]


def _write_lists(ds: Dataset, snap: Any, errors: dict[str, str], warnings: list[str]) -> dict[str, Any] | None:
    """The rawframe lists (with why each missing video is missing), or a warning when no lists are imported."""
    if not ds.imported:
        warnings.append(f"no official lists imported: lists/ not written (`ytfgvc annotations import {ds.name}`)")
        return None
    reasons = {v: "not downloaded" for v in ds.official().label_of() if v not in snap.ids}
    reasons.update({v: f"prepare failed: {e}" for v, e in errors.items()})
    return write_lists(ds, reasons, manifest=snap.hash).to_dict()


def prepare_dataset(
    root: Path,
    dataset: str,
    cfg: PrepareConfig | None = None,
    progress: bool = False,
    video_ids: list[str] | None = None,
) -> PrepareResult | RepackResult:
    """Frames (and flow) for every downloaded video of ``dataset``, then the rawframe lists.

    Args:
        root: the data folder (``--root``).
        dataset: a dataset with a card.
        cfg: settings; defaults to :class:`PrepareConfig()`.
        progress: show a progress bar on stderr.
        video_ids: restrict this run to these downloaded videos (lists still cover all).

    With ``cfg.repack`` it converts the folder store to the packed store instead
    (:func:`ytfgvc.prepare.repack.repack_dataset`) and returns that run's result.

    Raises:
        NoVideosError: nothing downloaded for ``dataset`` yet.
    """
    cfg = cfg or PrepareConfig()
    if cfg.repack:
        from ytfgvc.prepare.repack import repack_dataset

        return repack_dataset(root, dataset, cfg, progress)
    if cfg.cluster.is_ray:
        require_ray()  # before anything is written
    ds = Dataset.open(root, dataset)
    layout, t0 = ds.layout, time.perf_counter()
    snap = snapshot(layout)  # the ids framed and the hash the lists carry: one read of the ledger
    ids = _selected_ids(ds, snap, video_ids)
    settings = cfg.video_settings(ds.card)
    with _dataset_lock(layout) as lock:
        try:
            results, done, stale, deferred, workers = _prepare_videos(layout, ids, cfg, settings, progress)
            lock.check()
            errors = {r.video_id: r.error for r in results if r.error}
            warnings = [f"{r.video_id}: {w}" for r in results for w in r.warnings]
            lists = _write_lists(ds, snap, errors, warnings)
        except Exception as e:
            if is_disk_full(e):  # a worker's JPEG, a meta.json, the lists: nothing half-written is kept
                raise disk_full_error(getattr(e, "filename", None) or layout.base, e) from None
            raise
    ok = [r for r in results if not r.error]
    return PrepareResult(
        dataset=dataset,
        videos=len(ids),
        prepared=len(done) + len(ok),
        made_frames=sum(r.wrote_frames for r in ok),
        made_flow=sum(r.wrote_flow for r in ok),
        already=len(done),
        stale=stale,
        errors=errors,
        frames_written=sum(r.frames for r in ok if r.wrote_frames),
        flow_pairs=sum(r.flow_pairs for r in ok),
        seconds=time.perf_counter() - t0,
        jobs=workers,
        settings={**asdict(settings), "flow": cfg.flow},
        manifest=snap.hash,
        lists=lists,
        warnings=warnings,
        deferred=deferred,
        executor=cfg.cluster.executor,
    )
