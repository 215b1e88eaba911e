"""``ytfgvc download DATASET --recheck``: a census of which listed videos the source still has.

For each selected id, yt-dlp extracts the metadata only (:meth:`YtDlpFetcher.check`:
``extract_info(download=False, process=False)``: no format is chosen, nothing is downloaded,
nothing under ``videos/`` is touched), paced by the same :class:`Pacer`, retried the same way
and stopped by the same :class:`Breaker` as a download. Each answer becomes one row of the
ledger's ``checks`` table for today's census (UTC date): ``available``, ``unavailable``
(removed, private, HTTP 404/410...), ``blocked`` (copyright, region, age...) or ``unknown``
(rate limits, network errors, bot checks: nothing learnt about the video). Running it again
the same day asks only for the ids without an answer yet. ``health.json`` is rewritten at the
end (:mod:`ytfgvc.download.health`).
"""

from __future__ import annotations

import datetime as _dt
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.datasets import Dataset
from ytfgvc.download.classify import Failure
from ytfgvc.download.config import DownloadConfig, parse_sleep
from ytfgvc.download.health import write_health
from ytfgvc.download.ledger import Check, Ledger, utc_now
from ytfgvc.download.lock import one_writer
from ytfgvc.download.pacing import Breaker, Pacer
from ytfgvc.download.plan import listed_items, select
from ytfgvc.download.runner import Interrupted, fetch_options, reachable_source
from ytfgvc.download.sources import Source, parse_source
from ytfgvc.download.ytdlp import Cancelled, YtDlpFetcher
from ytfgvc.errors import YtfgvcError
from ytfgvc.snapshot import TRANSIENT
from ytfgvc.system.interrupts import signal_name

NOT_ASKED = "not asked (the run stopped)"


@dataclass
class CensusResult:
    """The summary of one census run (``--json`` prints it)."""

    dataset: str
    census: str  # the date, YYYY-MM-DD (UTC)
    source: str
    selected: int
    answered_before: int  # ids this census had already answered (an earlier run today)
    asked: int
    this_run: dict[str, int]
    totals: dict[str, int]  # this census, all runs of the day
    seconds: float
    health_path: str
    decay: dict[str, Any] = field(default_factory=dict)
    extractions: int = 0
    stopped: str | None = None  # "breaker" or "interrupted"
    message: str | None = None
    resume_command: str = ""
    signal: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The summary for people (what ``ytfgvc download --recheck`` prints)."""
        from ytfgvc.download.health import decay_text
        from ytfgvc.download.runner import counts_text

        return "\n".join([
            f"{self.dataset}: census {self.census} of {self.selected} videos from {self.source}",
            f"  this run:  {counts_text(self.this_run)} ({self.asked} asked in {self.seconds:.1f} s; "
            f"{self.answered_before} answered earlier today)",
            f"  census:    {counts_text(self.totals)}",
            f"  health:    {self.health_path}",
            *decay_text(self.decay),
        ])  # fmt: skip


def today() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")


def answer(f: Failure | None) -> tuple[str, str | None, str | None]:
    """A census status, reason and message from a metadata request's failure (None: it answered)."""
    if f is None:
        return "available", None, None
    if f.status == "unavailable" or (f.status == "blocked" and f.reason != "bot check"):
        return f.status, f.reason, f.message
    return "unknown", f.reason, f.message


def _ask(vid: str, census: str, source: Source, fetcher: YtDlpFetcher, cfg: DownloadConfig, pacer, breaker) -> Check:
    """Ask for one id's metadata, retrying transient failures; a Check (``unknown`` when nothing was learnt)."""
    status, reason, message = "unknown", NOT_ASKED, None
    for k in range(cfg.retries + 1):
        if fetcher.stop.is_set() or not pacer.wait():
            break
        try:
            f = fetcher.check(source.url(vid)).failure
        except Cancelled:
            break
        breaker.observe(f.status if f else "fetched", f.reason if f else None)
        status, reason, message = answer(f)
        if f is None or f.status not in TRANSIENT or k == cfg.retries:
            break
        if fetcher.stop.wait(float(cfg.backoff_s or 0) * 2**k):
            break
    return Check(vid, census, utc_now(), status, reason, message)


def recheck(
    root: Path,
    cfg: DownloadConfig,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    date: str | None = None,
) -> CensusResult:
    """Census of ``cfg.dataset``'s selected ids (``--split``, ``--shard``, ``--limit``) under ``root``.

    ``date`` names the census (default: today, UTC). Raises :class:`Interrupted` after
    recording what came back when SIGINT (or SIGTERM) stops it.
    """
    t0, census = time.perf_counter(), date or today()
    ds = Dataset.open(root, cfg.dataset)
    source = parse_source(cfg.source, ds.card, ds.layout)
    if source.kind == "dir":
        raise YtfgvcError("--recheck asks a source over the network; a folder has nothing to say about availability")
    if cfg.cluster.is_ray:
        raise YtfgvcError(
            "--recheck runs here, not on a Ray cluster",
            "to spread a census over machines, run --recheck --shard i/N on each and --merge their ledgers",
        )
    run_cfg = cfg.resolved(source.spec, source.kind)
    selected = [it.video_id for it in select(listed_items(ds.official(), cfg.split), cfg.shard_tuple, cfg.limit)]
    log = log or (lambda msg: print(msg, file=sys.stderr))
    stop = threading.Event()
    breaker, pacer = Breaker(run_cfg.breaker, stop), Pacer(*parse_sleep(run_cfg.sleep), stop)
    fetcher = YtDlpFetcher(fetch_options(source, ds.card, run_cfg), stop)
    tally: Counter = Counter()
    with one_writer(ds.layout, log), Ledger(ds.layout.ledger_path, cfg.dataset) as ledger:
        answered = {c.id for c in ledger.checks() if c.census == census and c.status != "unknown"}
        todo = [vid for vid in selected if vid not in answered]
        signal = None
        with reachable_source(source, bool(todo)) as reachable:
            try:
                _run(todo, census, reachable, fetcher, run_cfg, pacer, breaker, ledger, tally, progress)
            except KeyboardInterrupt as e:
                signal = signal_name(e)
        checks = ledger.checks()
        health = write_health(ds, ledger.records(), checks)
        day = Counter(c.status for c in checks if c.census == census and c.id in set(selected))
        result = CensusResult(
            dataset=cfg.dataset,
            census=census,
            source=reachable.describe() if todo else source.describe(),
            selected=len(selected),
            answered_before=len(selected) - len(todo),
            asked=sum(tally.values()),
            this_run=dict(tally),
            totals=dict(day),
            seconds=round(time.perf_counter() - t0, 2),
            health_path=str(ds.layout.health_path),
            decay=health["decay"],
            extractions=fetcher.extractions,
            stopped="breaker" if breaker.tripped else "interrupted" if signal else None,
            resume_command=cfg.command(root),
            signal=signal,
        )
        if result.stopped:
            why = (
                f"stopped by {signal}" if signal else f"the circuit breaker stopped the census ({breaker.last_reason})"
            )
            result.message = f"{why}: answers so far are kept; resume with:\n  {result.resume_command}"
        ledger.log_run(utc_now(), {**run_cfg.to_record(), "census": census}, result.to_dict())
    if signal:
        raise Interrupted(result)
    return result


def _run(todo, census, source, fetcher, cfg, pacer, breaker, ledger: Ledger, tally: Counter, progress: bool) -> None:
    """Ask ``cfg.jobs`` at a time; record each answer here (the main thread), as it arrives."""
    from tqdm import tqdm

    if not todo:
        return
    bar = tqdm(total=len(todo), desc=f"census {census}", unit="video", disable=not progress, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=cfg.jobs, thread_name_prefix="ytfgvc-census")
    futures = [pool.submit(_ask, vid, census, source, fetcher, cfg, pacer, breaker) for vid in todo]
    taken: set = set()

    def take(fut) -> None:
        if fut in taken:
            return
        taken.add(fut)
        check = fut.result()
        if check.reason != NOT_ASKED:
            ledger.record_check(check)
            tally[check.status] += 1
        bar.update()

    try:
        for fut in as_completed(futures):
            take(fut)
    except KeyboardInterrupt:  # stop asking; keep the answers that come back
        fetcher.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for fut in futures:
            if fut.done() and not fut.cancelled():
                take(fut)
        raise
    finally:
        fetcher.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
