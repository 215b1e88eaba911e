"""One video, start to finish: fetch into a temporary folder, verify, keep or discard.

A video's temporary folder is ``videos/.tmp-<id>/`` (see :meth:`DatasetLayout.download_tmp_dir`).
A finished file is probed (:func:`~ytfgvc.download.probe.probe_video`), checked against
the card's filters and the source's metadata, hashed, and only then renamed to
``videos/<id>.mp4``; anything else leaves nothing under ``videos/`` but, after a network
failure, the partial download that the next attempt resumes.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.download.classify import Failure
from ytfgvc.download.fingerprint import Fingerprint, FingerprintError, perceptual_hash
from ytfgvc.download.ledger import VideoRecord, utc_now
from ytfgvc.download.probe import CorruptVideo, VideoProbe, is_mp4, probe_video, remux_to_mp4
from ytfgvc.download.recover import judge
from ytfgvc.download.sources import Source
from ytfgvc.download.ytdlp import Cancelled, Fetched, YtDlpFetcher
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import OBTAINED, TRANSIENT
from ytfgvc.system.fserrors import disk_full_error, says_disk_full
from ytfgvc.system.fsutil import atomic_path, sha256_file

# A file may be this much shorter or longer than the source said (YouTube rounds to seconds).
DURATION_TOLERANCE_S = 2.0
DURATION_TOLERANCE = 0.1
KEEP_PARTIAL = ("network_error", "rate_limited")  # the next attempt resumes these


@dataclass
class Task:
    """A video to process; ``adopt``: a finished-looking file is already there, verify it instead."""

    video_id: str
    split: str | None = None
    label: int | None = None
    adopt: bool = False


@dataclass
class Outcome:
    """The final result of a task in this run (what goes into the ledger)."""

    video_id: str
    status: str
    reason: str | None = None
    message: str | None = None
    attempts: int = 0
    started: str = ""
    finished: str = ""
    bytes: int | None = None
    sha256: str | None = None
    probe: VideoProbe | None = None
    info: dict[str, Any] = field(default_factory=dict)
    phash: str | None = None  # the kept file's perceptual hash (ytfgvc.download.fingerprint)
    origin: str | None = None  # recovered only: JSON, where the file came from (ytfgvc.download.recover)

    def record(self, task: Task, source: str, ytdlp_version: str | None) -> VideoRecord:
        p, i = self.probe, self.info
        return VideoRecord(
            id=self.video_id,
            status=self.status,
            reason=self.reason,
            message=self.message,
            attempts=self.attempts,
            first_attempt=self.started,
            last_attempt=self.finished,
            bytes=self.bytes,
            sha256=self.sha256,
            duration=p.duration_s if p else i.get("duration"),
            width=p.width if p else i.get("width"),
            height=p.height if p else i.get("height"),
            codec=p.codec if p else i.get("vcodec"),
            fps=p.fps if p else i.get("fps"),
            format_id=i.get("format_id"),
            source=source,
            ytdlp_version=ytdlp_version,
            split=task.split,
            label=task.label,
            title=i.get("title"),
            uploader=i.get("uploader"),
            phash=self.phash,
            origin=self.origin,
        )


@dataclass
class Limits:
    max_duration_s: float
    min_resolution: int


def check_probe(probe: VideoProbe, limits: Limits, info: dict[str, Any]) -> Failure | None:
    """The card's filters on a probed file, and its duration against what the source said."""
    if probe.duration_s > limits.max_duration_s:
        return Failure(
            "filtered_duration",
            f"longer than {limits.max_duration_s:g} s",
            f"duration {probe.duration_s:g} s > {limits.max_duration_s:g} s (probed after download)",
        )
    if probe.short_side < limits.min_resolution:
        return Failure(
            "filtered_resolution",
            f"below {limits.min_resolution}p",
            f"{probe.width}x{probe.height}: smaller side {probe.short_side} < {limits.min_resolution} "
            "(probed after download)",
        )
    said = info.get("duration")
    tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE * said) if isinstance(said, (int, float)) else 0
    if isinstance(said, (int, float)) and said > 0 and abs(probe.duration_s - said) > tolerance:
        return Failure(
            "corrupt",
            "duration differs from the source's",
            f"the file lasts {probe.duration_s:.1f} s, the source said {said:.1f} s",
        )
    return None


class VideoWorker:
    """Runs tasks for one source; thread-safe (yt-dlp state is per thread)."""

    def __init__(
        self,
        layout: DatasetLayout,
        source: Source,
        limits: Limits,
        fetcher: YtDlpFetcher | None,
        stop: threading.Event,
        references: dict[str, Fingerprint] | None = None,
    ):
        self.layout = layout
        self.source = source
        self.limits = limits
        self.fetcher = fetcher
        self.stop = stop
        self.references = references  # --verify-fingerprints: keep a file only if it matches one of these

    # --- one attempt -----------------------------------------------------------------
    def _fetch(self, video_id: str, workdir: Path) -> Fetched:
        if self.source.kind == "dir":
            src = self.source.find_file(video_id)
            if src is None:
                return Fetched(
                    failure=Failure("unavailable", "not in the folder", f"no {video_id}.* in {self.source.folder}")
                )
            workdir.mkdir(parents=True, exist_ok=True)
            dst = workdir / f"{video_id}{src.suffix}"
            shutil.copyfile(src, dst)
            return Fetched(path=dst, info={"id": video_id, "source_file": str(src), "source_sha256": sha256_file(dst)})
        assert self.fetcher is not None
        return self.fetcher.fetch(video_id, self.source.url(video_id), workdir)

    def verify_and_keep(self, video_id: str, path: Path, info: dict[str, Any], workdir: Path) -> Outcome:
        """Probe ``path``; if it passes, rename it to ``videos/<id>.mp4`` (with its info.json)."""
        out = Outcome(video_id, "ok", info=info)
        received = self._received(video_id, path, info)
        try:
            if not is_mp4(path):
                workdir.mkdir(parents=True, exist_ok=True)
                remuxed = workdir / f"{video_id}.remux.mp4"
                remux_to_mp4(path, remuxed)
                path = remuxed
            probe = probe_video(path)
        except CorruptVideo as e:
            out.status, out.reason, out.message = "corrupt", "does not decode", str(e)
            return out
        except OSError as e:
            out.status, out.reason, out.message = "error", "cannot read the file", str(e)
            return out
        out.probe = probe
        failure = check_probe(probe, self.limits, info)
        if failure is None:
            failure = self._fingerprint(out, path, probe.duration_s, received)
        if failure is not None:
            out.status, out.reason, out.message = failure.status, failure.reason, failure.message
            return out
        out.bytes = path.stat().st_size
        out.sha256 = sha256_file(path)
        # Atomic, but no fsync: a commit to disk costs more than the download of a small video, and
        # a file lost to a power cut is verified again (or fetched again) by the next run.
        with atomic_path(self.layout.info_path(video_id)) as tmp:
            tmp.write_text(json.dumps({**info, "probe": probe.to_dict()}, indent=1, default=str) + "\n")
        os.replace(path, self.layout.video_path(video_id))
        return out

    def _received(self, video_id: str, path: Path, info: dict[str, Any]) -> dict[str, str] | None:
        """Under --verify-fingerprints: what arrived (a file or URL, its sha256), before any remux."""
        if self.references is None:
            return None
        where = info.get("source_file") or (self.source.url(video_id) if self.source.template else str(path))
        return {"from": str(where), "sha256": info.get("source_sha256") or sha256_file(path)}

    def _fingerprint(self, out: Outcome, path: Path, duration_s: float, received: dict | None) -> Failure | None:
        """Hash the file; under --verify-fingerprints, keep it as ``recovered`` only if it matches."""
        try:
            out.phash = perceptual_hash(path, duration_s)
        except FingerprintError as e:
            return Failure("corrupt", "does not decode", f"the frames the fingerprint needs: {e}")
        if self.references is None:
            return None
        return judge(out, duration_s, self.references.get(out.video_id), received or {})

    def adopt(self, task: Task) -> Outcome:
        """Verify a file found at ``videos/<id>.mp4`` without a ledger record saying ``ok``.

        A run killed between the rename and the ledger update leaves one; so does a user who
        copies files in. If it does not pass, it is removed and the video is fetched.
        """
        vid = task.video_id
        found = self.layout.video_path(vid)
        out = self.verify_and_keep(vid, found, _read_info(self.layout, vid), self.layout.download_tmp_dir(vid))
        if out.status in OBTAINED:
            out.reason = out.reason or "verified a file already under videos/"
        else:
            found.unlink(missing_ok=True)
        shutil.rmtree(self.layout.download_tmp_dir(vid), ignore_errors=True)
        return out

    def attempt(self, task: Task) -> Outcome | Fetched:
        """One try at fetching ``task``: a failure :class:`Outcome`, or the :class:`Fetched` file to verify.

        Raises :class:`Cancelled` when the run is stopping.
        """
        vid = task.video_id
        workdir = self.layout.download_tmp_dir(vid)
        fetched = self._fetch(vid, workdir)
        if fetched.failure is None:
            return fetched
        f = fetched.failure
        if says_disk_full(f.message):  # no video can be kept until space is freed: the run stops
            raise disk_full_error(workdir)
        if f.status not in KEEP_PARTIAL or not any(workdir.glob("*")):
            shutil.rmtree(workdir, ignore_errors=True)
        return Outcome(vid, f.status, f.reason, f.message, info=fetched.info)

    def finish(self, done: FetchDone) -> Outcome:
        """Verify a fetched file and keep it or discard it; the task's final :class:`Outcome`."""
        vid = done.task.video_id
        workdir = self.layout.download_tmp_dir(vid)
        assert done.fetched.path is not None
        out = self.verify_and_keep(vid, done.fetched.path, done.fetched.info, workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        out.attempts, out.started, out.finished = done.attempts, done.started, utc_now()
        return out


@dataclass
class FetchDone:
    """A file fetched for ``task``, waiting for :meth:`VideoWorker.finish` (off the request path)."""

    task: Task
    fetched: Fetched
    attempts: int
    started: str


def _read_info(layout: DatasetLayout, video_id: str) -> dict[str, Any]:
    p = layout.info_path(video_id)
    try:
        info = json.loads(p.read_text()) if p.is_file() else {}
    except (OSError, ValueError, RecursionError):
        info = {}
    info.pop("probe", None)
    return info if isinstance(info, dict) else {}


def run_task(
    worker: VideoWorker,
    task: Task,
    retries: int,
    backoff_s: float,
    before_attempt: Callable[[], bool],
    after_attempt: Callable[[str, str | None], None],
) -> Outcome | FetchDone | None:
    """Fetch ``task``, retrying transient failures up to ``retries`` times, waiting ``backoff_s * 2**k``.

    ``before_attempt()`` paces requests (returns False to stop); ``after_attempt(status, reason)``
    feeds the circuit breaker. Returns the failure :class:`Outcome`, a :class:`FetchDone` to
    verify, or None when the run stopped before anything happened.
    """
    started = utc_now()
    if task.adopt:
        out = worker.adopt(task)
        if out.status in OBTAINED:
            out.started, out.finished = started, utc_now()
            return out
    attempts = 0
    out: Outcome | None = None
    for k in range(retries + 1):
        if worker.stop.is_set() or (worker.source.uses_network and not before_attempt()):
            break
        try:
            result = worker.attempt(task)
        except Cancelled:
            break
        attempts += 1
        if isinstance(result, Fetched):
            after_attempt("fetched", None)
            return FetchDone(task, result, attempts, started)
        out = result
        after_attempt(out.status, out.reason)
        if out.status not in TRANSIENT or k == retries:
            break
        wait = backoff_s * (2**k)
        if wait and worker.stop.wait(wait):
            break
    if out is None:
        return None
    out.attempts, out.started, out.finished = attempts, started, utc_now()
    return out
