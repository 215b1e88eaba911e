"""``ytfgvc download --executor ray``: each video is a Ray task; this process alone records.

A task (:func:`download_task`) fetches and verifies one video on whatever node Ray picks,
exactly as a local worker thread does (:func:`~ytfgvc.download.worker.run_task`), and
returns a :class:`RemoteResult`. Before each request it takes a slot from its node's
:class:`~ytfgvc.download.pacing.NodePacer` actor (``--jobs`` at a time, starts ``--sleep``
apart, a breaker per node). The driver (:func:`run_on_ray`) writes each result into the
ledger as it arrives, once per video id, and, when the node did not see ``--root``, the
returned files under ``videos/`` first (see :mod:`ytfgvc.distributed.cluster`).

A task whose worker or node dies is run again by Ray (``TASK_RETRIES``); a task that
raises is recorded as ``error`` (transient: the next run asks again); a node whose
breaker tripped hands its videos back, and they are offered to the other nodes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.distributed.cluster import (
    TASK_RETRIES,
    RaySession,
    TaskPool,
    describe_error,
    resolve_shared,
    scratch_root,
    write_file,
)
from ytfgvc.download.ledger import utc_now
from ytfgvc.download.pacing import NodePacer
from ytfgvc.download.passthrough import node_number, pick_proxy, proxy_index
from ytfgvc.download.sources import Source
from ytfgvc.download.worker import FetchDone, Limits, Outcome, Task, VideoWorker, run_task
from ytfgvc.download.ytdlp import FetchOptions, YtDlpFetcher, available_js_runtimes
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import OBTAINED
from ytfgvc.system.fsutil import sha256_bytes

# How many times a video handed back by a node whose breaker tripped is offered to another node.
MAX_HANDBACKS = 3
# How often the driver looks for nodes that joined (and gives each its pacer).
NODE_REFRESH_S = 10.0


@dataclass(frozen=True)
class RemoteSpec:
    """What every download task of one run needs (put in Ray's object store once)."""

    root: str  # absolute: the same path on every node that shares it
    dataset: str
    source: Source  # reachable: a mirror's URL is filled in
    limits: Limits
    fetch: FetchOptions | None  # None for a folder source; cookies and JS runtimes are set on the node
    cookies: bytes | None  # --cookies and --cookies-from-browser, read on the driver
    retries: int
    backoff_s: float
    shared: bool | None  # --ray-shared-root (None: detect)
    token: str  # this run's shared-root marker, also the pacers' name prefix
    jobs: int
    sleep: tuple[float, float]
    breaker: int
    nodes: tuple[str, ...] = ()  # the nodes when the run started, in order: which proxies each uses
    shard: int = 0  # --shard i


@dataclass
class RemoteResult:
    """A task's result: the outcome to record (None: not attempted, its node's breaker had tripped)."""

    outcome: Outcome | None
    node_id: str
    ytdlp_version: str | None = None
    extractions: int = 0
    files: dict[str, bytes] | None = None  # {"video", "info"} when the node did not see --root


@dataclass
class RayRun:
    """What the driver learned beyond the records."""

    extractions: int = 0
    tripped: list[dict[str, Any]] = field(default_factory=list)  # the pacer state of each node that stopped
    nodes: int = 0
    handed_back: int = 0  # videos left pending because every node that took them had stopped
    returned: int = 0  # videos whose node did not see --root: written here from the bytes it returned
    max_parallel: int = 0  # the most requests one node had in flight at once
    per_node: Counter = field(default_factory=Counter)  # videos recorded from each node's results

    def summary(self) -> dict[str, Any]:
        """What ``DownloadResult.cluster`` reports."""
        hosts = sorted({str(s["host"]) for s in self.tripped})
        return {
            "nodes": self.nodes,
            "returned": self.returned,
            "max_parallel": self.max_parallel,
            "videos_per_node": sorted(self.per_node.values(), reverse=True),
            "stopped_nodes": hosts,
            "pending": self.handed_back,
        }


# --------------------------------------------------------------------------- on a node


def pacer_name(token: str, node_id: str) -> str:
    return f"ytfgvc-pacer-{token}-{node_id}"


@functools.cache
def _pacer_class() -> Any:
    import ray

    return ray.remote(NodePacer)


def _pacer_actor(spec: RemoteSpec, node_id: str) -> Any:
    """The pacer of ``node_id`` for this run, created (pinned to that node) if it does not exist yet."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = _pacer_class().options(
        name=pacer_name(spec.token, node_id),
        get_if_exists=True,
        num_cpus=0,
        max_restarts=3,
        max_task_retries=3,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    )
    return actor.remote(spec.jobs, spec.sleep[0], spec.sleep[1], spec.breaker)


class _Gate:
    """``run_task``'s hooks on a node: a pacer slot before each request, given back after it.

    With proxies, the request goes through the proxy of the slot's lane (``on_lane(lane)``).
    """

    def __init__(self, pacer: Any, on_lane: Callable[[int], None] | None = None):
        import ray

        self.ray, self.pacer, self.pid, self.slot = ray, pacer, os.getpid(), None
        self.on_lane = on_lane

    def before(self) -> bool:
        self.slot = self.ray.get(self.pacer.acquire.remote(self.pid))
        if self.slot is not None and self.on_lane is not None:
            self.on_lane(self.ray.get(self.pacer.lane.remote(self.slot)))
        return self.slot is not None

    def after(self, status: str, reason: str | None) -> None:
        self.release()
        self.pacer.observe.remote(status, reason)

    def release(self) -> None:
        if self.slot is not None:
            self.pacer.release.remote(self.slot)
            self.slot = None


# This worker process's fetcher for the run it last served: building yt-dlp's YoutubeDL costs
# ~45 ms, as much as fetching a small file from a mirror. Not kept with --cookies (the file
# lives in the task's scratch folder, removed when the task ends).
_FETCHER: dict[str, YtDlpFetcher] = {}
_PACER: dict[tuple[str, str], Any] = {}


def _node_fetcher(spec: RemoteSpec, scratch: Path) -> YtDlpFetcher | None:
    if spec.fetch is None:
        return None
    if spec.cookies is None and spec.token in _FETCHER:
        return _FETCHER[spec.token]
    options = spec.fetch
    if spec.source.kind == "youtube":
        options = dataclasses.replace(options, js_runtimes=available_js_runtimes())  # what this node has
    if spec.cookies is not None:
        cookies = scratch / "cookies.txt"
        cookies.write_bytes(spec.cookies)
        os.chmod(cookies, 0o600)
        return YtDlpFetcher(dataclasses.replace(options, cookies=cookies))
    _FETCHER.clear()
    _FETCHER[spec.token] = YtDlpFetcher(options)
    return _FETCHER[spec.token]


def _node_pacer(spec: RemoteSpec, node_id: str) -> Any:
    key = (spec.token, node_id)
    if key not in _PACER:  # one lookup per worker process and run
        _PACER.clear()
        _PACER[key] = _pacer_actor(spec, node_id)
    return _PACER[key]


def _proxy_setter(spec: RemoteSpec, node_id: str, fetcher: YtDlpFetcher | None) -> Callable[[int], None] | None:
    """What makes a request of lane ``k`` on this node go through its proxy (see ytfgvc.download.passthrough)."""
    if fetcher is None or not (spec.fetch and spec.fetch.proxies):
        return None
    proxies, node = spec.fetch.proxies, node_number(spec.nodes, node_id)
    return lambda lane: fetcher.use_proxy(
        pick_proxy(proxies, proxy_index(spec.shard, len(spec.nodes), node, spec.jobs, lane))
    )


def download_task(spec: RemoteSpec, task: Task) -> RemoteResult:
    """Fetch and verify one video on this node (the body of the Ray task)."""
    import ray
    import yt_dlp

    node_id = ray.get_runtime_context().get_node_id()
    with scratch_root() as scratch:
        root = Path(spec.root)
        shared = resolve_shared(DatasetLayout(root, spec.dataset), spec.token, spec.shared, _hostname())
        layout = DatasetLayout(root if shared else scratch / "root", spec.dataset)
        layout.videos_dir.mkdir(parents=True, exist_ok=True)
        if spec.source.kind == "dir" and not (spec.source.folder and spec.source.folder.is_dir()):
            raise YtfgvcError(f"node {_hostname()} does not see the --source folder {spec.source.folder}")
        fetcher = _node_fetcher(spec, scratch)
        extractions = fetcher.extractions if fetcher else 0
        worker = VideoWorker(layout, spec.source, spec.limits, fetcher, fetcher.stop if fetcher else threading.Event())
        gate = _Gate(_node_pacer(spec, node_id), _proxy_setter(spec, node_id, fetcher))
        try:
            result = run_task(worker, task, spec.retries, spec.backoff_s, gate.before, gate.after)
        finally:
            gate.release()
        if isinstance(result, FetchDone):
            result = worker.finish(result)
        files = None
        if result is not None and result.status in OBTAINED and not shared:
            vid = task.video_id
            files = {"video": layout.video_path(vid).read_bytes(), "info": layout.info_path(vid).read_bytes()}
        version = yt_dlp.version.__version__ if fetcher else None
        return RemoteResult(result, node_id, version, fetcher.extractions - extractions if fetcher else 0, files)


def _hostname() -> str:
    import socket

    return socket.gethostname()


# --------------------------------------------------------------------------- the driver


def keep_returned(layout: DatasetLayout, out: Outcome, files: dict[str, bytes]) -> Outcome:
    """Write a video a node returned under ``videos/`` (info first, then the video, each renamed into place)."""
    data = files["video"]
    if sha256_bytes(data) != out.sha256:
        return dataclasses.replace(
            out,
            status="error",
            reason="damaged on its way to the driver",
            message=f"sha256 {sha256_bytes(data)[:12]} received, {str(out.sha256)[:12]} sent",
            sha256=None,
            bytes=None,
        )
    write_file(layout.info_path(out.video_id), files["info"])
    write_file(layout.video_path(out.video_id), data)
    return out


class _Pacers:
    """The driver's view of the nodes and their pacers (created here, so they live as long as the run)."""

    def __init__(self, session: RaySession, spec: RemoteSpec):
        self.session, self.spec = session, spec
        self.actors: dict[str, Any] = {}
        self._last = 0.0
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last < NODE_REFRESH_S:
            return
        self._last = time.monotonic()
        self.nodes = {n["id"]: n for n in self.session.alive_nodes() if n["cpus"] > 0}
        for node_id in self.nodes:
            if node_id not in self.actors:
                self.actors[node_id] = _pacer_actor(self.spec, node_id)

    def states(self) -> list[dict[str, Any]]:
        """Each node's pacer state (slots, breaker), with the node's id and address."""
        ray = self.session.ray
        out = []
        for node_id, actor in self.actors.items():
            with contextlib.suppress(ray.exceptions.RayError):
                state = ray.get(actor.state.remote(), timeout=10)
                out.append({"node": node_id, "host": self.nodes.get(node_id, {}).get("host"), **state})
        return out


def _remote_fn(ray: Any) -> Any:
    # Download tasks wait on the network, not on a CPU, but verification decodes: one CPU each.
    return ray.remote(num_cpus=1, max_retries=TASK_RETRIES, retry_exceptions=False)(download_task)


def run_on_ray(
    session: RaySession,
    spec: RemoteSpec,
    tasks: list[Task],
    record: Callable[[Task, Outcome, str | None], None],
    progress: bool,
    desc: str,
    postfix: Callable[[], str],
) -> RayRun:
    """Run ``tasks`` on the cluster; ``record(task, outcome, ytdlp_version)`` each result here, once per id."""
    from tqdm import tqdm

    ray = session.ray
    layout = DatasetLayout(Path(spec.root), spec.dataset)
    run = RayRun()
    if not tasks:
        return run
    spec_ref = ray.put(spec)
    pacers = _Pacers(session, spec)
    pool = TaskPool(_remote_fn(ray), window=max(16, 2 * session.total_cpus()))
    by_id = {t.video_id: t for t in tasks}
    for t in tasks:
        pool.submit(t.video_id, spec_ref, t)
    stopped_nodes: set[str] = set()
    handbacks: Counter = Counter()
    recorded: set[str] = set()
    bar = tqdm(total=len(tasks), desc=desc, unit="video", disable=not progress, dynamic_ncols=True)
    try:
        for vid, res, err in pool.results(tick=pacers.refresh):
            task, version = by_id[vid], None
            if err is not None:
                if isinstance(err, YtfgvcError):  # the run's setup is wrong on a node: stop, say why
                    raise YtfgvcError(err.message, err.hint)
                now = utc_now()
                out = Outcome(vid, "error", "task failed on the cluster", describe_error(err), 0, now, now)
            elif res.outcome is None:
                stopped_nodes.add(res.node_id)
                others = [n for n in pacers.nodes if n not in stopped_nodes]
                if others and handbacks[vid] < MAX_HANDBACKS:
                    handbacks[vid] += 1
                    pool.submit(vid, spec_ref, task, node_id=random.choice(others))
                else:
                    run.handed_back += 1
                    bar.update()
                continue
            else:
                out, version = res.outcome, res.ytdlp_version
                run.extractions += res.extractions
                run.per_node[res.node_id] += 1
                if res.files is not None:
                    out = keep_returned(layout, out, res.files)
                    run.returned += 1
            if vid not in recorded:  # a result is recorded once, whatever Ray re-ran
                recorded.add(vid)
                record(task, out, version)
            bar.set_postfix_str(postfix())
            bar.update()
    except BaseException:
        pool.cancel()
        raise
    finally:
        bar.close()
    states = pacers.states()
    run.tripped = [st for st in states if st["tripped"]]
    run.max_parallel = max((st["max_held"] for st in states), default=0)
    run.nodes = len(pacers.nodes)
    return run


def breaker_message(run: RayRun, resume: str) -> str:
    """What to say when some nodes' breakers stopped them."""
    hosts = ", ".join(sorted({str(s["host"]) for s in run.tripped}))
    bot = any(s["last_reason"] == "bot check" for s in run.tripped)
    why = "bot checks" if bot else "rate-limited answers (or network errors)"
    text = (
        f"{len(run.tripped)} of {run.nodes} nodes stopped asking after {why} in a row ({hosts}): the source "
        f"is refusing their IPs. Finished videos are kept; {run.handed_back} videos no node could take are pending. "
        "Wait (YouTube's limits last up to an hour), consider a longer --sleep, then resume with:\n  " + resume
    )
    if bot:
        text += "\n(videos answered with a bot check were marked blocked: add --retry-failed to ask for them again)"
    return text
