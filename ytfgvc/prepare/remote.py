"""``ytfgvc prepare --executor ray``: each video is a Ray task; this process writes the lists.

A task (:func:`prepare_task`) runs :func:`~ytfgvc.prepare.video.prepare_video` for one
video on whatever node Ray picks, with one CPU (OpenCV on one thread; and one GPU for the
torch flow backend when the cluster has GPUs), and returns its
:class:`~ytfgvc.prepare.video.VideoResult`. Where the node sees ``--root``
(:mod:`ytfgvc.distributed.cluster`), it reads the video there and writes
``frames/<id>/`` (and ``flow/<id>/``), or their archives with ``--store packed``, there
under a temporary name, renamed when complete, as a local worker does. Where it does not,
it answers that it needs the video; the driver sends the bytes, and the task works in a
scratch folder and returns the finished folders (or archives), which the driver writes
(flow first, then frames: a video counts as prepared once its frames' ``meta.json`` is
there). The driver yields each video's result once.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ytfgvc.distributed import ClusterConfig
from ytfgvc.distributed.cluster import (
    TASK_RETRIES,
    RaySession,
    TaskPool,
    describe_error,
    resolve_shared,
    scratch_root,
    shared_root_marker,
)
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare.video import VideoJob, VideoResult, prepare_video
from ytfgvc.store import destination, export_video, install_video
from ytfgvc.system.fsutil import sweep_temporaries


@dataclass(frozen=True)
class PrepareSpec:
    """What every prepare task of one run needs."""

    root: str  # absolute: the same path on every node that shares it
    dataset: str
    token: str  # this run's shared-root marker
    shared: bool | None  # --ray-shared-root (None: detect)


@dataclass
class RemotePrepared:
    """A task's answer: the result, with the video's frames and flow (files of a folder, or an
    archive: :func:`ytfgvc.store.export_video`) when the node did not see ``--root``; or
    ``needs_video`` (the node does not see ``--root``: send the video's bytes)."""

    result: VideoResult | None = None
    frames: dict[str, bytes] | None = None
    flow: dict[str, bytes] | None = None
    needs_video: bool = False


def prepare_task(spec: PrepareSpec, job: VideoJob, video: bytes | None) -> RemotePrepared:
    """Prepare one video on this node (the body of the Ray task)."""
    import socket

    import cv2

    cv2.setNumThreads(1)  # the task holds one CPU
    layout = DatasetLayout(Path(spec.root), spec.dataset)
    if video is None and resolve_shared(layout, spec.token, spec.shared, socket.gethostname()):
        return RemotePrepared(prepare_video(job))
    if video is None:
        return RemotePrepared(needs_video=True)
    with scratch_root() as scratch:
        here = DatasetLayout(scratch, spec.dataset)
        src = here.video_path(job.video_id)  # the same file name: frames' meta.json records it
        src.parent.mkdir(parents=True)
        src.write_bytes(video)
        local = dataclasses.replace(
            job,
            src=str(src),
            frames_dir=str(here.frames_dir(job.video_id)),
            flow_dir=str(here.flow_dir(job.video_id)),
            frames_archive=str(here.frames_archive(job.video_id)),
            flow_archive=str(here.flow_archive(job.video_id)),
        )
        result = prepare_video(local)
        if result.error:
            return RemotePrepared(result)
        return RemotePrepared(
            result,
            frames=export_video(local.destination("frames")) if result.wrote_frames else None,
            flow=export_video(local.destination("flow")) if result.wrote_flow else None,
        )


def gpus_per_task(jobs: list[VideoJob], cluster_gpus: int) -> int:
    """1 when the flow is the torch backend on a GPU (as locally: one video per GPU at a time), else 0.

    A Ray task that asks for no GPU sees none (Ray hides them), so the torch backend would
    run on its CPU.
    """
    s = jobs[0].settings
    torch_on_gpu = s.flow_backend == "torch" and s.flow_params.get("device", "auto") != "cpu"
    return 1 if cluster_gpus and torch_on_gpu and any(j.write_flow for j in jobs) else 0


def _absolute(job: VideoJob) -> VideoJob:
    def resolved(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    return dataclasses.replace(
        job,
        src=str(Path(job.src).resolve()),
        frames_dir=str(Path(job.frames_dir).resolve()),
        flow_dir=str(Path(job.flow_dir).resolve()),
        frames_archive=resolved(job.frames_archive),
        flow_archive=resolved(job.flow_archive),
    )


def run_jobs_on_ray(
    layout: DatasetLayout, jobs: list[VideoJob], cluster: ClusterConfig, window: int, progress: bool, desc: str
) -> Iterator[VideoResult]:
    """Yield each job's result as its task finishes (once per video), writing returned folders first.

    Args:
        layout: where the results go (the driver's ``--root``).
        jobs: from :func:`~ytfgvc.prepare.batch.plan_jobs`.
        cluster: ``--executor ray`` and its options.
        window: videos in progress at once (at most); 0: twice the cluster's CPUs.
        progress: show a progress bar on stderr.
        desc: the progress bar's label.
    """
    from tqdm import tqdm

    if not jobs:
        return
    with RaySession(cluster) as session, shared_root_marker(layout) as token:
        ray = session.ray
        spec_ref = ray.put(PrepareSpec(str(layout.root.resolve()), layout.dataset, token, cluster.shared_root))
        gpus = gpus_per_task(jobs, session.total_gpus())
        fn = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=TASK_RETRIES, retry_exceptions=False)(prepare_task)
        pool = TaskPool(fn, window or max(4, 2 * session.total_cpus()))
        by_id = {j.video_id: _absolute(j) for j in jobs}

        def video_ref(vid: str) -> Any:
            return ray.put(Path(by_id[vid].src).read_bytes())

        for vid, job in by_id.items():
            pool.submit(vid, spec_ref, job, video_ref(vid) if cluster.shared_root is False else None)
        seen: set[str] = set()
        bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress, dynamic_ncols=True)
        try:
            for vid, answer, err in pool.results():
                if err is not None:
                    if isinstance(err, YtfgvcError):
                        raise YtfgvcError(err.message, err.hint)
                    result = VideoResult(vid, error=f"task failed on the cluster: {describe_error(err)}")
                elif answer.needs_video:
                    pool.submit(vid, spec_ref, by_id[vid], video_ref(vid))
                    continue
                else:
                    result = answer.result
                    store = by_id[vid].store
                    if answer.flow is not None:
                        install_video(destination(layout, "flow", vid, store), answer.flow)
                    if answer.frames is not None:
                        install_video(destination(layout, "frames", vid, store), answer.frames)
                bar.update()
                if vid not in seen:
                    seen.add(vid)
                    yield result
        except BaseException:
            with contextlib.suppress(Exception):
                pool.cancel()
            raise
        finally:
            bar.close()
        # A task whose worker died left its temporary folder; no task of this run is writing now.
        for folder in (layout.frames_root, layout.flow_root):
            sweep_temporaries(folder)
