"""``ytfgvc prepare DATASET --repack``: the folder store of a prepared dataset becomes the packed store.

Video by video, in ``--jobs`` worker processes, under the dataset's prepare lock: each
video's ``frames/<id>/`` becomes ``frames/<id>.zip`` and its ``flow/<id>/`` becomes
``flow/<id>.zip`` (:func:`ytfgvc.store.repack.repack_folder`: written, verified byte for
byte, renamed, then the folder removed). Nothing is decoded; the lists do not change. A
killed run is resumed by running it again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.layout import KINDS, DatasetLayout, is_valid_video_id
from ytfgvc.prepare.config import PrepareConfig
from ytfgvc.prepare.video import VideoResult
from ytfgvc.store import META_NAME
from ytfgvc.store.repack import repack_folder
from ytfgvc.system.fsutil import sweep_temporaries


@dataclass
class RepackJob:
    """One video's folders to turn into archives (plain data: it crosses process boundaries)."""

    video_id: str
    pairs: list[tuple[str, str, str]]  # (kind, folder, archive)


def repack_job(job: RepackJob) -> VideoResult:
    """Repack one video's kinds; the files repacked count as ``frames`` (one error line if it fails)."""
    t0, result = time.perf_counter(), VideoResult(job.video_id)
    try:
        for _, folder, archive in job.pairs:
            result.frames += repack_folder(Path(folder), Path(archive))
    except Exception as e:  # a damaged folder, a full disk: this video stays as it was
        from ytfgvc.system.fserrors import is_disk_full

        if is_disk_full(e):
            raise
        result.error = f"repack failed: {e}"
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class RepackResult:
    """What ``--repack`` did: videos converted, files packed, and the videos it could not convert."""

    dataset: str
    videos: int  # with something in the folder store when the run started
    repacked: int
    files: int
    archives: int  # archives of this dataset now (frames and flow)
    folders_left: int  # videos still in the folder store (failed, or left by --limit)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [
            f"{self.dataset}: repacked {self.repacked} of {self.videos} videos in the folder store "
            f"({self.files:,} files into archives, {self.seconds:.1f} s, {self.jobs} worker"
            f"{'s' if self.jobs != 1 else ''}); {self.archives:,} archives now, "
            f"{self.folders_left} videos still in folders"
        ]
        lines += [f"  {vid}: {reason}" for vid, reason in sorted(self.errors.items())[:20]]
        if self.folders_left:
            lines.append(f"  run `ytfgvc prepare {self.dataset} --repack` again to convert the rest")
        return "\n".join(lines)


def folder_jobs(layout: DatasetLayout) -> list[RepackJob]:
    """One job per video with a finished folder (frames or flow), in id order."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for kind in KINDS:
        root = layout.kind_root(kind)
        for p in sorted(root.iterdir()) if root.is_dir() else []:
            if is_valid_video_id(p.name) and p.is_dir() and (p / META_NAME).is_file():
                pair = (kind, str(layout.video_folder(kind, p.name)), str(layout.video_archive(kind, p.name)))
                found.setdefault(p.name, []).append(pair)
    return [RepackJob(vid, pairs) for vid, pairs in sorted(found.items())]


def repack_dataset(root: Path, dataset: str, cfg: PrepareConfig, progress: bool = False) -> RepackResult:
    """Convert every video of ``dataset`` in the folder store to the packed store (see the module docstring)."""
    from ytfgvc.prepare.batch import _dataset_lock, _default_workers, _run_jobs

    ds = Dataset.open(root, dataset)
    layout, t0 = ds.layout, time.perf_counter()
    with _dataset_lock(layout):
        for kind in KINDS:
            sweep_temporaries(layout.kind_root(kind))
        jobs = folder_jobs(layout)
        todo = jobs[: cfg.limit] if cfg.limit else jobs
        workers = max(1, min(cfg.jobs or _default_workers(cfg), len(todo) or 1))
        results = list(_run_jobs(todo, workers, progress, f"repack {dataset}", work=repack_job))
    ok = [r for r in results if not r.error]
    return RepackResult(
        dataset=dataset,
        videos=len(jobs),
        repacked=len(ok),
        files=sum(r.frames for r in ok),
        archives=sum(1 for k in KINDS for p in _archives(layout, k)),
        folders_left=len(folder_jobs(layout)),
        errors={r.video_id: r.error for r in results if r.error},
        seconds=time.perf_counter() - t0,
        jobs=workers,
    )


def _archives(layout: DatasetLayout, kind: str) -> list[Path]:
    from ytfgvc.store import stored_ids

    return [layout.video_archive(kind, v) for v, s in stored_ids(layout, kind).items() if s == "packed"]
