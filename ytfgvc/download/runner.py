"""``ytfgvc download DATASET``: plan, pace, fetch in parallel, record, summarise.

Requests are paced globally (one start every ``--sleep`` seconds, whatever ``--jobs``),
transient failures are retried with exponential backoff, and a circuit breaker stops the
run after ``--breaker`` rate-limited results in a row, printing the command that resumes
it. The ledger is written by the main thread only, one transaction per video.

``--executor ray`` runs each video as a task on a Ray cluster instead of a thread here
(:mod:`ytfgvc.download.remote`), paced per node; this process still plans, records and
writes the manifest, the same way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ytfgvc.datasets import Dataset
from ytfgvc.distributed import require_ray
from ytfgvc.distributed.cluster import RaySession, shared_root_marker
from ytfgvc.download.config import DownloadConfig, parse_sleep
from ytfgvc.download.ledger import Ledger, utc_now
from ytfgvc.download.lock import one_writer
from ytfgvc.download.manifest import write_manifest
from ytfgvc.download.pacing import Breaker, Pacer
from ytfgvc.download.passthrough import browser_cookies_file, proxy_index
from ytfgvc.download.plan import Item, listed_items, plan, select, sweep_leftovers
from ytfgvc.download.recover import references
from ytfgvc.download.server import MirrorServer
from ytfgvc.download.sources import Source, parse_source
from ytfgvc.download.worker import FetchDone, Limits, Outcome, Task, VideoWorker, run_task
from ytfgvc.download.ytdlp import FetchOptions, YtDlpFetcher, available_js_runtimes
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import OBTAINED, STATUSES
from ytfgvc.system.fserrors import disk_full_error, is_disk_full, is_locked, ledger_locked_error
from ytfgvc.system.interrupts import signal_name

if TYPE_CHECKING:
    from ytfgvc.download.remote import RayRun

# Verification (probe, sha256, rename) is local CPU and disk work, done beside the requests.
VERIFY_THREADS = 2
SHORT = {
    "ok": "ok",
    "recovered": "recov",
    "unavailable": "unavail",
    "blocked": "blocked",
    "filtered_duration": "long",
    "filtered_resolution": "small",
    "rate_limited": "429",
    "network_error": "net",
    "corrupt": "corrupt",
    "error": "err",
}


@dataclass
class DownloadResult:
    """The summary of one run (``--json`` prints it)."""

    dataset: str
    source: str
    selected: int
    done_before: int
    settled: dict[str, int]
    attempted: int
    this_run: dict[str, int]
    totals: dict[str, int]
    bytes: int
    seconds: float
    manifest_hash: str
    manifest_path: str
    extractions: int
    stopped: str | None = None  # "breaker" or "interrupted" (by ``signal``)
    message: str | None = None
    resume_command: str = ""
    notes: list[str] = field(default_factory=list)
    cluster: dict[str, Any] | None = None  # --executor ray: nodes, videos returned through this process, stopped nodes
    signal: str | None = None  # SIGINT or SIGTERM, when one stopped the run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The summary for people (what ``ytfgvc download`` prints)."""
        settled = sum(self.settled.values())
        before = f", {settled} settled before ({counts_text(self.settled)}; --retry-failed asks again)"
        lines = [
            f"{self.dataset}: {self.selected} selected from {self.source}",
            f"  this run:  {counts_text(self.this_run)} ({self.attempted} videos, {self.bytes / 1e6:.1f} MB in "
            f"{self.seconds:.1f} s)",
            f"  skipped:   {self.done_before} already ok" + (before if settled else ""),
            f"  in total:  {counts_text(self.totals)}",
            f"  manifest:  {self.manifest_hash[:16]}… ({self.manifest_path})",
        ]
        if self.cluster:
            c = self.cluster
            lines.append(
                f"  cluster:   {c['nodes']} Ray node(s), videos per node {c['videos_per_node'] or [0]}"
                + (f", {c['returned']} sent back through this process (--root not seen there)" if c["returned"] else "")
            )
        return "\n".join(lines)


def counts_text(counts: dict[str, int]) -> str:
    """``ok 3, unavailable 1`` (``nothing`` when empty)."""
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing"


def fetch_options(source: Source, card, cfg: DownloadConfig) -> FetchOptions | None:
    """What the fetcher passes to yt-dlp for ``cfg`` (resolved: ``jobs`` is set); None for a folder."""
    if source.kind == "dir":
        return None
    shard = cfg.shard_tuple[0] if cfg.shard_tuple else 0
    return FetchOptions(
        max_duration_s=card.filters.max_duration_s,
        min_resolution=card.filters.min_resolution,
        timeout_s=cfg.timeout_s,
        cookies=cfg.cookies,
        proxies=cfg.proxy,
        proxy_offset=proxy_index(shard, 1, 0, int(cfg.jobs or 1), 0),
        ie_key=source.ie_key,
        js_runtimes=available_js_runtimes() if source.kind == "youtube" else None,
        ytdlp=cfg.ytdlp_params(),
    )


def _ytdlp_version() -> str:
    import yt_dlp

    return yt_dlp.version.__version__


def _totals(ledger: Ledger, selected: list[Item]) -> dict[str, int]:
    records = ledger.records()
    c = Counter(records[it.video_id].status if it.video_id in records else "pending" for it in selected)
    return {s: c[s] for s in (*STATUSES, "pending") if c[s]}


@contextlib.contextmanager
def reachable_source(source: Source, needed: bool, host: str = "127.0.0.1") -> Iterator[Source]:
    """The source, reachable for the run: a mirror folder gets a server on ``host`` until the block ends."""
    if source.kind != "mirror" or not needed:
        yield source
        return
    with MirrorServer(source.folder, host=host) as server:
        yield source.with_template(server.url_template)


@dataclass
class _Tally:
    counts: Counter = field(default_factory=Counter)
    bytes: int = 0


def download(
    root: Path,
    cfg: DownloadConfig,
    items: list[Item] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> DownloadResult:
    """Download the videos of ``cfg.dataset`` listed under ``root`` as ``cfg`` says.

    Safe to interrupt and to run again: finished videos are never fetched twice, permanent
    failures are not asked for again unless ``cfg.retry_failed``.

    Args:
        root: the data folder (``--root``).
        cfg: the run's options.
        items: the videos to consider instead of the imported lists (every id is validated
            before any request).
        progress: show a progress bar on stderr.
        log: where warnings and notes go (default: stderr).

    Returns:
        The run's summary; ``stopped == "breaker"`` when the circuit breaker ended it.

    Raises:
        Interrupted: SIGINT (or SIGTERM, under :func:`ytfgvc.system.interrupts.sigterm_as_interrupt`)
            stopped the run; its ``result`` is the summary, written to the ledger too.
        LockHeld: another ``download`` (or ``--merge``) of this dataset is running.
        DiskFull, LedgerLocked: no space left, or another process keeps the ledger locked
            (:mod:`ytfgvc.system.fserrors`); finished videos are kept, and running again resumes.
    """
    t0, started = time.perf_counter(), utc_now()
    if cfg.cluster.is_ray:
        require_ray()  # before anything is read or written
    ds = Dataset.open(root, cfg.dataset)
    source = parse_source(cfg.source, ds.card, ds.layout)
    _refuse_what_cannot_run(cfg, source)
    run_cfg = cfg.resolved(source.spec, source.kind)
    selected = select(
        items if items is not None else listed_items(ds.official(), cfg.split), cfg.shard_tuple, cfg.limit
    )
    log = log or (lambda msg: print(msg, file=sys.stderr))
    notes = _warnings(source, log)
    layout, card = ds.layout, ds.card
    layout.videos_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    breaker, pacer = Breaker(run_cfg.breaker, stop), Pacer(*parse_sleep(run_cfg.sleep), stop)
    options = fetch_options(source, card, run_cfg)
    fetcher = YtDlpFetcher(options, stop) if options else None
    version = _ytdlp_version() if fetcher else None
    limits = Limits(card.filters.max_duration_s, card.filters.min_resolution)
    tally = _Tally()
    with one_writer(layout, log) as lock, Ledger(layout.ledger_path, cfg.dataset) as ledger:
        p, refs = _plan_tasks(ledger, layout, selected, cfg, source, notes, log)

        def record(task: Task, out: Outcome, ytdlp_version: str | None = version) -> None:
            lock.check()
            ledger.record(out.record(task, source.spec if source.kind != "dir" else str(source.folder), ytdlp_version))
            tally.counts[out.status] += 1
            tally.bytes += out.bytes or 0

        signal, described, cluster = None, source.describe(), None
        try:
            with contextlib.ExitStack() as stack:
                session = stack.enter_context(RaySession(cfg.cluster)) if cfg.cluster.is_ray else None
                host = session.serving_host() if session else "127.0.0.1"
                reachable = stack.enter_context(reachable_source(source, bool(p.tasks), host))
                described = reachable.describe()
                worker = VideoWorker(layout, reachable, limits, fetcher, stop, references=refs)
                if session is None:
                    _execute(
                        p.tasks, worker, run_cfg, pacer, breaker, record, progress, cfg.dataset, tally.counts,
                        idle=ledger.flush_if_due,
                    )  # fmt: skip
                else:
                    cluster = _execute_on_ray(session, p.tasks, worker, run_cfg, options, record, progress, tally)
        except KeyboardInterrupt as e:  # SIGINT, or SIGTERM under ytfgvc.system.interrupts: summarise, then stop
            signal = signal_name(e)
        except BaseException as e:
            _fail(e, layout, ledger, ds.annotations_hash)
        manifest = write_manifest(layout, ledger.records(), ds.annotations_hash)
        run = _RunState(selected, p, tally, time.perf_counter() - t0, fetcher, cluster, breaker, signal)
        result = _summary(cfg, root, described, notes, manifest, ledger, layout, run)
        result.message = _stop_message(breaker, cluster, signal, cfg, root)
        ledger.log_run(started, run_cfg.to_record(), {k: v for k, v in result.to_dict().items() if k != "notes"})
    if signal:
        raise Interrupted(result)
    return result


@dataclass
class _RunState:
    """What a run did, for its summary."""

    selected: list[Item]
    plan: Any
    tally: _Tally
    seconds: float
    fetcher: Any
    cluster: Any
    breaker: Breaker
    signal: str | None


def _summary(cfg: DownloadConfig, root: Path, source: str, notes: list[str], manifest: dict[str, Any],
             ledger: Ledger, layout: DatasetLayout, run: _RunState) -> DownloadResult:  # fmt: skip
    fetched = run.fetcher.extractions if run.fetcher else 0
    return DownloadResult(
        dataset=cfg.dataset,
        source=source,
        selected=len(run.selected),
        done_before=run.plan.done,
        settled=dict(run.plan.settled),
        attempted=sum(run.tally.counts.values()),
        this_run={s: run.tally.counts[s] for s in STATUSES if run.tally.counts[s]},
        totals=_totals(ledger, run.selected),
        bytes=run.tally.bytes,
        seconds=round(run.seconds, 2),
        manifest_hash=manifest["hash"],
        manifest_path=str(layout.manifest_path),
        extractions=fetched + (run.cluster.extractions if run.cluster else 0),
        stopped=_stopped(run.breaker, run.cluster, run.signal),
        resume_command=cfg.command(root),
        notes=notes,
        cluster=run.cluster.summary() if run.cluster else None,
        signal=run.signal,
    )


def _refuse_what_cannot_run(cfg: DownloadConfig, source: Source) -> None:
    """Options that cannot go together, refused before anything is written."""
    if cfg.recheck:
        raise YtfgvcError("a census is not a download", "call ytfgvc.download.census.recheck")
    if cfg.verify_fingerprints and source.kind == "youtube":
        raise YtfgvcError(
            "--verify-fingerprints checks files from another copy of a video",
            "pass --source DIR (files named <id>.mp4, .webm, ...) or a URL template of another lab's copy",
        )


def _warnings(source: Source, log: Callable[[str], None]) -> list[str]:
    """What the user should know before the run starts (logged, and kept in the summary)."""
    notes = []
    if source.kind == "youtube" and not available_js_runtimes():
        notes.append("no JavaScript runtime that yt-dlp accepts: YouTube may refuse formats; see `ytfgvc doctor`")
    for n in notes:
        log(f"warning: {n}")
    return notes


def _plan_tasks(ledger: Ledger, layout: DatasetLayout, selected: list[Item], cfg: DownloadConfig, source: Source,
                notes: list[str], log: Callable[[str], None]) -> tuple[Any, Any]:  # fmt: skip
    """What this run asks for (and, when recovering, the fingerprints to check against); leftovers swept."""
    records = ledger.records()
    p = plan(selected, records, layout, cfg.retry_failed or cfg.verify_fingerprints)
    refs = None
    if cfg.verify_fingerprints:  # recovery: only the files offered, checked against recorded fingerprints
        refs = references(records, list(cfg.fingerprints), cfg.dataset)
        p.tasks = [t for t in p.tasks if t.adopt or source.kind != "dir" or source.find_file(t.video_id)]
    sweep_leftovers(layout, {t.video_id for t in p.tasks})
    found = []
    if p.missing_files:
        found.append(f"{p.missing_files} videos recorded ok had no file under videos/: fetching them again")
    if p.adopt:
        found.append(f"{p.adopt} files found under videos/ without an ok record: verifying them, not fetching")
    for n in found:
        log(f"note: {n}")
    notes += found
    return p, refs


def _stopped(breaker: Breaker, cluster: Any, signal: str | None) -> str | None:
    if breaker.tripped or (cluster is not None and cluster.tripped):
        return "breaker"
    return "interrupted" if signal else None


def _stop_message(breaker: Breaker, cluster: Any, signal: str | None, cfg: DownloadConfig, root: Path) -> str | None:
    """Why the run stopped early, with the command that resumes it (None when it ran to the end)."""
    if cluster is not None and cluster.tripped:
        from ytfgvc.download.remote import breaker_message

        return breaker_message(cluster, cfg.command(root))
    if breaker.tripped:
        return _breaker_message(breaker, cfg, root)
    if signal:
        return f"stopped by {signal}: finished videos are kept; resume with:\n  {cfg.command(root)}"
    return None


def _fail(e: BaseException, layout: DatasetLayout, ledger: Ledger, annotations: str) -> NoReturn:
    """Re-raise what stopped the run, a full disk or a locked ledger as one line (see ytfgvc.system.fserrors).

    While the disk and the ledger still work, the manifest is rewritten first, as after a normal end.
    """
    full, locked = is_disk_full(e), is_locked(e)
    if not (full or locked):
        with contextlib.suppress(Exception):
            write_manifest(layout, ledger.records(), annotations)
    if full and not isinstance(e, YtfgvcError):
        raise disk_full_error(getattr(e, "filename", None) or layout.videos_dir, e) from None
    if locked and not isinstance(e, YtfgvcError):
        raise ledger_locked_error(layout.ledger_path) from None
    raise e


class Interrupted(KeyboardInterrupt):
    """A run (a download or a census) stopped by a signal, after recording what finished; ``result`` is its summary."""

    def __init__(self, result: Any):
        super().__init__(result.signal)
        self.result = result


def _breaker_message(breaker: Breaker, cfg: DownloadConfig, root: Path) -> str:
    if breaker.tripped == "network":
        return (
            f"stopped after {breaker.network_streak} network errors in a row (last: {breaker.last_reason}): "
            "is the network up, is the source reachable? Finished videos are kept; resume with:\n  "
            f"{cfg.command(root)}"
        )
    why = "bot checks" if breaker.last_reason == "bot check" else "rate-limited answers"
    text = (
        f"stopped after {breaker.streak} {why} in a row: the source is refusing this IP, and going on would make it "
        "worse. Finished videos are kept; the rest are pending. Wait (YouTube's limits last up to an hour), "
        "consider --cookies FILE or --cookies-from-browser, more --proxy URLs or a longer --sleep, then resume "
        "with:\n  "
        f"{cfg.command(root)}"
    )
    if breaker.last_reason == "bot check":
        text += "\n(videos answered with a bot check were marked blocked: add --retry-failed to ask for them again)"
    return text


def _postfix(counts: Counter) -> str:
    return " ".join(f"{SHORT[s]}={counts[s]}" for s in STATUSES if counts[s])


def _adopt_here(tasks: list[Task], worker: VideoWorker, record: Callable[..., None]) -> list[Task]:
    """Verify here the files found under ``videos/`` without an ok record (no request is made).

    Returns the tasks left to fetch: the others, and those whose file did not pass (removed).
    """
    adopt = [t for t in tasks if t.adopt]
    if not adopt:
        return tasks
    kept = set()
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="ytfgvc-verify") as pool:
        for task, out in zip(adopt, pool.map(worker.adopt, adopt), strict=True):
            if out.status in OBTAINED:
                out.started = out.finished = utc_now()
                record(task, out)
                kept.add(task.video_id)
    return [dataclasses.replace(t, adopt=False) for t in tasks if t.video_id not in kept]


def _node_options(options: FetchOptions | None) -> FetchOptions | None:
    """The fetch options a node starts from: cookies arrive as a file, JS runtimes are the node's own."""
    if options is None:
        return None
    ytdlp = {k: v for k, v in options.ytdlp.items() if k != "cookiesfrombrowser"}
    return dataclasses.replace(options, cookies=None, js_runtimes=None, ytdlp=ytdlp)


def _cookies_for_nodes(cfg: DownloadConfig) -> bytes | None:
    """The cookies.txt the nodes get: --cookies, and the browser's cookies read here (nodes lack the browser)."""
    browser = cfg.ytdlp_params().get("cookiesfrombrowser")
    if browser:
        return browser_cookies_file(browser, cfg.cookies)
    return Path(cfg.cookies).read_bytes() if cfg.cookies else None


def _execute_on_ray(
    session: RaySession,
    tasks: list[Task],
    worker: VideoWorker,
    cfg: DownloadConfig,
    options: FetchOptions | None,
    record: Callable[..., None],
    progress: bool,
    tally: _Tally,
) -> RayRun:
    """Run ``tasks`` as Ray tasks (see :mod:`ytfgvc.download.remote`); files found here are verified here."""
    from ytfgvc.download.remote import RemoteSpec, run_on_ray

    tasks = _adopt_here(tasks, worker, record)
    with shared_root_marker(worker.layout) as token:
        spec = RemoteSpec(
            root=str(worker.layout.root.resolve()),
            dataset=worker.layout.dataset,
            source=worker.source,
            limits=worker.limits,
            fetch=_node_options(options),
            cookies=_cookies_for_nodes(cfg),
            nodes=tuple(sorted(n["id"] for n in session.alive_nodes() if n["cpus"] > 0)),
            shard=cfg.shard_tuple[0] if cfg.shard_tuple else 0,
            retries=cfg.retries,
            backoff_s=float(cfg.backoff_s or 0),
            shared=cfg.cluster.shared_root,
            token=token,
            jobs=int(cfg.jobs or 1),
            sleep=parse_sleep(cfg.sleep or "0"),
            breaker=cfg.breaker,
        )
        desc = f"download {worker.layout.dataset}"
        return run_on_ray(session, spec, tasks, record, progress, desc, lambda: _postfix(tally.counts))


def _execute(
    tasks: list[Task],
    worker: VideoWorker,
    cfg: DownloadConfig,
    pacer: Pacer,
    breaker: Breaker,
    record: Callable[[Task, Outcome], None],
    progress: bool,
    dataset: str,
    counts: Counter,
    idle: Callable[[], None] = lambda: None,
) -> None:
    """Run ``tasks``: ``cfg.jobs`` threads make requests; fetched files are verified on other threads,
    so probing and hashing never hold up the next request. Each outcome is recorded as it
    arrives, by this (the main) thread, which calls ``idle`` at least every half second.
    """
    from tqdm import tqdm

    if not tasks:
        return
    bar = tqdm(total=len(tasks), desc=f"download {dataset}", unit="video", disable=not progress, dynamic_ncols=True)
    stop = worker.stop
    fetch_pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="ytfgvc-fetch")
    verify_pool = ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="ytfgvc-verify")
    finished: queue.Queue = queue.Queue()  # futures, as they finish (O(1) each, whatever the number pending)
    pending: dict = {}

    def submit(pool: ThreadPoolExecutor, task: Task, fn, *args) -> None:
        fut = pool.submit(fn, *args)
        pending[fut] = task
        fut.add_done_callback(finished.put)

    for t in tasks:
        submit(fetch_pool, t, run_task, worker, t, cfg.retries, cfg.backoff_s, pacer.wait, breaker.observe)

    def take(fut) -> None:
        task = pending.pop(fut)
        if fut.cancelled():
            return
        result = fut.result()
        if isinstance(result, FetchDone):
            submit(verify_pool, task, worker.finish, result)
            return
        if result is not None:
            record(task, result)
            bar.set_postfix_str(_postfix(counts))
        bar.update()

    def drain() -> None:
        cancelled = False
        while pending:
            with contextlib.suppress(queue.Empty):
                take(finished.get(timeout=0.5))  # a timeout keeps Ctrl-C responsive
            idle()
            if stop.is_set() and not cancelled:
                cancelled = True
                for f in list(pending):
                    f.cancel()

    try:
        drain()
    except KeyboardInterrupt:
        stop.set()
        drain()  # running fetches stop at their next step; files already fetched are still verified
        raise
    except BaseException:  # a full disk, a locked ledger: nothing more can be kept
        stop.set()
        raise
    finally:
        fetch_pool.shutdown(wait=True, cancel_futures=True)
        verify_pool.shutdown(wait=True)
        bar.close()
