"""``DownloadConfig``: the options of ``ytfgvc download``, validated where they are set.

Defaults that depend on the source (YouTube or a mirror) are resolved by
:meth:`DownloadConfig.resolved`, so what a run actually used is written down in full.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ytfgvc.config import ConfigBase
from ytfgvc.distributed import ClusterConfig
from ytfgvc.download.passthrough import check_proxies, redact_args, ytdlp_params
from ytfgvc.errors import YtfgvcError

SPLIT_CHOICES = ("train", "test", "all")

# yt-dlp's maintainers suggest 5-10 s between YouTube requests; a mirror or a folder needs none.
DEFAULT_SLEEP = {"youtube": "5-10", "url": "0", "mirror": "0", "dir": "0"}
DEFAULT_JOBS = {"youtube": 2, "url": 4, "mirror": 4, "dir": 4}
# First wait before retrying a transient failure; doubles at every retry.
DEFAULT_BACKOFF_S = {"youtube": 30.0, "url": 1.0, "mirror": 0.5, "dir": 0.5}

_SHARD = re.compile(r"^(\d+)/(\d+)$")
_SLEEP = re.compile(r"^(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?$")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/N"`` -> ``(i, N)`` with ``0 <= i < N``; None stays None."""
    if text is None:
        return None
    m = _SHARD.match(str(text).strip())
    if not m:
        raise YtfgvcError(f"--shard {text!r} is not i/N", "e.g. --shard 0/4, the first of 4 ($SLURM_ARRAY_TASK_ID/4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or i >= n:
        raise YtfgvcError(f"--shard {text}: i must be in 0..{max(n - 1, 0)}", "shards are numbered from 0")
    return i, n


def parse_sleep(text: str) -> tuple[float, float]:
    """``"5"`` -> ``(5, 5)``; ``"5-10"`` -> ``(5, 10)`` (a random wait in the range)."""
    m = _SLEEP.match(str(text).strip())
    if not m:
        raise YtfgvcError(f"--sleep {text!r} is not seconds or a range", "e.g. --sleep 0, --sleep 2 or --sleep 5-10")
    lo = float(m.group(1))
    hi = float(m.group(2)) if m.group(2) else lo
    if hi < lo:
        raise YtfgvcError(f"--sleep {text}: the range must go up", "e.g. --sleep 5-10")
    return lo, hi


def redact_url(url: str | None) -> str | None:
    """A proxy URL without its password (``http://user:***@host:port``)."""
    if not url:
        return url
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


@dataclass
class DownloadConfig(ConfigBase):
    """Options of one ``ytfgvc download`` run (see ``ytfgvc download --help``)."""

    dataset: str
    source: str | None = None  # None: the card's default_source
    split: str = "all"
    limit: int | None = None
    shard: str | None = None  # "i/N"
    jobs: int | None = None  # None: by source kind
    sleep: str | None = None  # None: by source kind
    retries: int = 2
    backoff_s: float | None = None  # None: by source kind
    breaker: int = 5
    timeout_s: float = 30.0
    retry_failed: bool = False
    cookies: Path | None = None
    proxy: tuple[str, ...] = ()  # rotated per worker, per --shard and per Ray node (ytfgvc.download.passthrough)
    cookies_from_browser: str | None = None  # yt-dlp's BROWSER[+KEYRING][:PROFILE][::CONTAINER]
    extractor_args: tuple[str, ...] = ()  # yt-dlp's IE_KEY:ARGS, each
    limit_rate: str | None = None  # yt-dlp's RATE, e.g. 50K or 4.2M
    recheck: bool = False  # a census, metadata only (ytfgvc.download.census.recheck), not a download
    verify_fingerprints: bool = False  # keep a file from another copy only if its fingerprint matches
    fingerprints: tuple[Path, ...] = ()  # other labs' manifest.json, fingerprints to check against
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # --executor, --ray-address, --ray-shared-root

    def __post_init__(self) -> None:
        if self.split not in SPLIT_CHOICES:
            raise YtfgvcError(f"--split {self.split!r} is not one of {', '.join(SPLIT_CHOICES)}")
        if self.limit is not None and self.limit < 0:
            raise YtfgvcError(f"--limit must be at least 0, got {self.limit}")
        parse_shard(self.shard)
        if self.jobs is not None and not 1 <= self.jobs <= 64:
            raise YtfgvcError(f"--jobs must be in 1..64, got {self.jobs}", "a few parallel requests per IP are plenty")
        if self.sleep is not None:
            parse_sleep(self.sleep)
        if not 0 <= self.retries <= 20:
            raise YtfgvcError(f"--retries must be in 0..20, got {self.retries}")
        if self.backoff_s is not None and self.backoff_s < 0:
            raise YtfgvcError(f"--backoff must be at least 0 seconds, got {self.backoff_s}")
        if self.breaker < 1:
            raise YtfgvcError(f"--breaker must be at least 1, got {self.breaker}")
        if not self.timeout_s > 0:
            raise YtfgvcError(f"--timeout must be positive, got {self.timeout_s}")
        if self.cookies is not None and not Path(self.cookies).is_file():
            raise YtfgvcError(f"--cookies {self.cookies}: no such file", "export cookies.txt in Netscape format")
        self._check_recovery()
        self.proxy = check_proxies((self.proxy,) if isinstance(self.proxy, str) else tuple(self.proxy or ()))
        self.extractor_args = tuple(self.extractor_args or ())
        self.ytdlp_params()  # yt-dlp's own parser checks its options now, before anything is asked

    def _check_recovery(self) -> None:
        """--verify-fingerprints and --fingerprints, checked together."""
        self.fingerprints = tuple(Path(f) for f in self.fingerprints or ())
        if self.fingerprints and not self.verify_fingerprints:
            raise YtfgvcError(
                "--fingerprints is what --verify-fingerprints checks against", "add --verify-fingerprints"
            )
        for f in self.fingerprints:
            if not f.is_file():
                raise YtfgvcError(
                    f"--fingerprints {f}: no such file", "pass another lab's <root>/<dataset>/manifest.json"
                )
        if self.verify_fingerprints and self.cluster.is_ray:
            raise YtfgvcError("--verify-fingerprints runs here, not on a Ray cluster", "leave out --executor ray")

    def ytdlp_params(self) -> dict:
        """``cookiesfrombrowser``, ``extractor_args``, ``ratelimit`` as yt-dlp's parser makes them."""
        return ytdlp_params(self.cookies_from_browser, self.extractor_args, self.limit_rate)

    @property
    def shard_tuple(self) -> tuple[int, int] | None:
        return parse_shard(self.shard)

    def resolved(self, source: str, kind: str) -> DownloadConfig:
        """A copy with the source and every per-source default filled in."""
        return self.replace(
            source=source,
            jobs=self.jobs or DEFAULT_JOBS[kind],
            sleep=self.sleep if self.sleep is not None else DEFAULT_SLEEP[kind],
            backoff_s=self.backoff_s if self.backoff_s is not None else DEFAULT_BACKOFF_S[kind],
        )

    def to_record(self) -> dict:
        """The config as recorded in the ledger: proxy passwords and session tokens hidden."""
        d = self.to_dict()
        d["proxy"] = [redact_url(p) for p in self.proxy]
        d["extractor_args"] = redact_args(self.extractor_args)
        return d

    def command(self, root: Path) -> str:
        """The ``ytfgvc download`` command line that runs this config again (to resume)."""
        args = ["ytfgvc", "download", self.dataset, "--root", str(root)]
        defaults = DownloadConfig(dataset=self.dataset)
        flags = [
            ("source", "--source"),
            ("split", "--split"),
            ("limit", "--limit"),
            ("shard", "--shard"),
            ("jobs", "--jobs"),
            ("sleep", "--sleep"),
            ("retries", "--retries"),
            ("backoff_s", "--backoff"),
            ("breaker", "--breaker"),
            ("timeout_s", "--timeout"),
            ("cookies", "--cookies"),
            ("proxy", "--proxy"),
            ("cookies_from_browser", "--cookies-from-browser"),
            ("extractor_args", "--extractor-args"),
            ("limit_rate", "--limit-rate"),
            ("fingerprints", "--fingerprints"),
        ]
        for name, flag in flags:
            value = getattr(self, name)
            if value is not None and value != getattr(defaults, name):
                for one in value if isinstance(value, tuple) else (value,):
                    args += [flag, *redact_args([str(one)])]
        switches = (("--retry-failed", self.retry_failed), ("--recheck", self.recheck),
                    ("--verify-fingerprints", self.verify_fingerprints))  # fmt: skip
        args += [flag for flag, on in switches if on]
        return shlex.join(args + self.cluster.flags())
