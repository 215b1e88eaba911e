"""``ytfgvc download DATASET``: plan, pace, fetch in parallel, record, summarise.

Requests are paced globally (one start every ``--sleep`` seconds, whatever ``--jobs``),
transient failures are retried with exponential backoff, and a circuit breaker stops the
run after ``--breaker`` rate-limited results in a row, printing the command that resumes
it. The ledger is written by the main thread only, one transaction per video.
"""

from __future__ import annotations

import contextlib
import queue
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.annotations import annotations_hash, load_official
from ytfgvc.datasets import get_card
from ytfgvc.download.config import DownloadConfig, parse_sleep
from ytfgvc.download.ledger import Ledger, utc_now
from ytfgvc.download.manifest import write_manifest
from ytfgvc.download.plan import Item, listed_items, plan, select, sweep_leftovers
from ytfgvc.download.server import MirrorServer
from ytfgvc.download.sources import Source, parse_source
from ytfgvc.download.worker import FetchDone, Limits, Outcome, Task, VideoWorker, run_task
from ytfgvc.download.ytdlp import FetchOptions, YtDlpFetcher, available_js_runtimes
from ytfgvc.layout import DatasetLayout
from ytfgvc.records import STATUSES

# Verification (probe, sha256, rename) is local CPU and disk work, done beside the requests.
VERIFY_THREADS = 2
SHORT = {
    "ok": "ok",
    "unavailable": "unavail",
    "blocked": "blocked",
    "filtered_duration": "long",
    "filtered_resolution": "small",
    "rate_limited": "429",
    "network_error": "net",
    "corrupt": "corrupt",
    "error": "err",
}


class Pacer:
    """Spaces request starts across all threads by a random wait in ``[lo, hi]`` seconds."""

    def __init__(self, lo: float, hi: float, stop: threading.Event, seed: int | None = None):
        self.lo, self.hi, self.stop = lo, hi, stop
        self._next = 0.0
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def wait(self) -> bool:
        """Block until this thread may send its request; False if the run is stopping."""
        if self.hi <= 0:
            return not self.stop.is_set()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._rng.uniform(self.lo, self.hi)
        return not self.stop.wait(start - now) if start > now else not self.stop.is_set()


class Breaker:
    """Stops the run after ``limit`` rate-limit signals in a row (HTTP 429, "try again later", bot
    checks), or after ``NETWORK_FACTOR * limit`` network errors in a row (the network is down:
    going on would only burn retries)."""

    NETWORK_FACTOR = 2

    def __init__(self, limit: int, stop: threading.Event):
        self.limit, self.stop = limit, stop
        self.streak = 0
        self.network_streak = 0
        self.tripped: str | None = None  # "rate_limited" or "network"
        self.last_reason: str | None = None
        self._lock = threading.Lock()

    def observe(self, status: str, reason: str | None) -> None:
        with self._lock:
            limited = status == "rate_limited" or reason == "bot check"
            self.streak = self.streak + 1 if limited else 0
            self.network_streak = self.network_streak + 1 if status == "network_error" else 0
            if limited or status == "network_error":
                self.last_reason = reason
            if self.tripped:
                return
            if self.streak >= self.limit:
                self.tripped = "rate_limited"
            elif self.network_streak >= self.NETWORK_FACTOR * self.limit:
                self.tripped = "network"
            if self.tripped:
                self.stop.set()


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
    stopped: str | None = None  # "breaker" or "interrupted"
    message: str | None = None
    resume_command: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fetcher(source: Source, card, cfg: DownloadConfig, stop: threading.Event) -> YtDlpFetcher | None:
    if source.kind == "dir":
        return None
    return YtDlpFetcher(
        FetchOptions(
            max_duration_s=card.filters.max_duration_s,
            min_resolution=card.filters.min_resolution,
            timeout_s=cfg.timeout_s,
            cookies=cfg.cookies,
            proxy=cfg.proxy,
            ie_key=source.ie_key,
            js_runtimes=available_js_runtimes() if source.kind == "youtube" else None,
        ),
        stop,
    )


def _ytdlp_version() -> str:
    import yt_dlp

    return yt_dlp.version.__version__


def _totals(ledger: Ledger, selected: list[Item]) -> dict[str, int]:
    records = ledger.records()
    c = Counter(records[it.video_id].status if it.video_id in records else "pending" for it in selected)
    return {s: c[s] for s in (*STATUSES, "pending") if c[s]}


@contextlib.contextmanager
def _reachable(source: Source, needed: bool) -> Iterator[Source]:
    """The source, reachable for the run: a mirror folder gets a loopback server until the block ends."""
    if source.kind != "mirror" or not needed:
        yield source
        return
    with MirrorServer(source.folder) as server:
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
    """
    t0, started = time.perf_counter(), utc_now()
    card = get_card(cfg.dataset)
    layout = DatasetLayout(root, cfg.dataset)
    source = parse_source(cfg.source, card, layout)
    run_cfg = cfg.resolved(source.spec, source.kind)
    if items is None:
        items = listed_items(load_official(root, cfg.dataset), cfg.split)
    selected = select(items, cfg.shard_tuple, cfg.limit)  # every id checked before any request
    notes = []
    if source.kind == "youtube" and not available_js_runtimes():
        notes.append("no JavaScript runtime that yt-dlp accepts: YouTube may refuse formats; see `ytfgvc doctor`")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    for n in notes:
        log(f"warning: {n}")

    layout.videos_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    breaker = Breaker(run_cfg.breaker, stop)
    pacer = Pacer(*parse_sleep(run_cfg.sleep), stop)
    fetcher = _fetcher(source, card, run_cfg, stop)
    version = _ytdlp_version() if fetcher else None
    limits = Limits(card.filters.max_duration_s, card.filters.min_resolution)
    tally = _Tally()
    with Ledger(layout.ledger_path, cfg.dataset) as ledger:
        p = plan(selected, ledger.records(), layout, cfg.retry_failed)
        sweep_leftovers(layout, {t.video_id for t in p.tasks})
        found = []
        if p.missing_files:
            found.append(f"{p.missing_files} videos recorded ok had no file under videos/: fetching them again")
        if p.adopt:
            found.append(f"{p.adopt} files found under videos/ without an ok record: verifying them, not fetching")
        for n in found:
            log(f"note: {n}")
        notes += found

        def record(task: Task, out: Outcome) -> None:
            ledger.record(out.record(task, source.spec if source.kind != "dir" else str(source.folder), version))
            tally.counts[out.status] += 1
            tally.bytes += out.bytes or 0

        interrupted, described = False, source.describe()
        try:
            with _reachable(source, bool(p.tasks)) as reachable:
                described = reachable.describe()
                worker = VideoWorker(layout, reachable, limits, fetcher, stop)
                _execute(p.tasks, worker, run_cfg, pacer, breaker, record, progress, cfg.dataset, tally.counts)
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            manifest = write_manifest(layout, ledger.records(), annotations_hash(root, cfg.dataset))
            result = DownloadResult(
                dataset=cfg.dataset,
                source=described,
                selected=len(selected),
                done_before=p.done,
                settled=dict(p.settled),
                attempted=sum(tally.counts.values()),
                this_run={s: tally.counts[s] for s in STATUSES if tally.counts[s]},
                totals=_totals(ledger, selected),
                bytes=tally.bytes,
                seconds=round(time.perf_counter() - t0, 2),
                manifest_hash=manifest["hash"],
                manifest_path=str(layout.manifest_path),
                extractions=fetcher.extractions if fetcher else 0,
                stopped="breaker" if breaker.tripped else "interrupted" if interrupted else None,
                message=_breaker_message(breaker, cfg, root) if breaker.tripped else None,
                resume_command=cfg.command(root),
                notes=notes,
            )
            ledger.log_run(started, run_cfg.to_record(), {k: v for k, v in result.to_dict().items() if k != "notes"})
    return result


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
        "consider --cookies FILE, --proxy URL or a longer --sleep, then resume with:\n  "
        f"{cfg.command(root)}"
    )
    if breaker.last_reason == "bot check":
        text += "\n(videos answered with a bot check were marked blocked: add --retry-failed to ask for them again)"
    return text


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
) -> None:
    """Run ``tasks``: ``cfg.jobs`` threads make requests; fetched files are verified on other threads,
    so probing and hashing never hold up the next request. Each outcome is recorded as it
    arrives, by this (the main) thread.
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
            bar.set_postfix_str(" ".join(f"{SHORT[s]}={counts[s]}" for s in STATUSES if counts[s]))
        bar.update()

    def drain() -> None:
        cancelled = False
        while pending:
            with contextlib.suppress(queue.Empty):
                take(finished.get(timeout=0.5))  # a timeout keeps Ctrl-C responsive
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
    finally:
        fetch_pool.shutdown(wait=True, cancel_futures=True)
        verify_pool.shutdown(wait=True)
        bar.close()
