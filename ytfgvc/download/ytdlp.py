"""yt-dlp embedded as a library: one extraction per video, filters before bytes, video only.

For each video, :meth:`YtDlpFetcher.fetch`:

1. extracts the info once (``extract_info(url, download=False, process=False)``: the
   extractor runs, no format is chosen and nothing is downloaded);
2. decides from that info (:func:`decide`): too long -> ``filtered_duration``; every
   video format known and below the minimum resolution -> ``filtered_resolution``;
3. otherwise hands the *same* info to ``process_ie_result(info, download=True)``, which
   picks the format and downloads it into the video's temporary folder.

Format choice (:data:`FORMAT`, :data:`FORMAT_SORT`): a video-only stream whose smaller
side is at least the card's minimum (``[height>=?N][width>=?N]``: both sides at least N is
the smaller side at least N, so portrait videos count by width; ``?`` lets formats of
unknown size through, for sources that do not say), else any stream with video; among
those, H.264 first, then the smallest resolution, then https over HLS, then the smallest
file. No itags are named: YouTube changes them, the filters do not care.
"""

from __future__ import annotations

import copy
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ytfgvc.download.classify import Failure, classify_exception, clean_message

FORMAT = "bv[height>=?{r}][width>=?{r}]/bv*[height>=?{r}][width>=?{r}]"
FORMAT_SORT = ["vcodec:h264", "+res", "proto", "+size", "+br"]
MAX_FILESIZE = 2 << 30  # no dataset video at the card's resolution comes near this
# Keys of yt-dlp's info kept in videos/<id>.info.json (the rest is large and changes).
INFO_KEYS = (
    "id",
    "title",
    "duration",
    "width",
    "height",
    "fps",
    "vcodec",
    "format_id",
    "format_note",
    "ext",
    "filesize",
    "filesize_approx",
    "tbr",
    "upload_date",
    "uploader",
    "channel_id",
    "webpage_url",
    "extractor_key",
    "availability",
    "live_status",
)


class Cancelled(Exception):
    """The run is stopping (breaker or Ctrl-C); the video is left for the next run."""


@dataclass
class Fetched:
    """What one fetch produced: a file (``path``) or a ``failure``, plus the source's info."""

    path: Path | None = None
    failure: Failure | None = None
    info: dict[str, Any] = field(default_factory=dict)


def decide(info: dict[str, Any], max_duration_s: float, min_resolution: int) -> Failure | None:
    """The filters applied to extracted info, before any byte of video: a Failure, or None to download.

    Unknown values never filter: a source that says nothing about duration or size is
    checked after download, by probing the file.
    """
    if info.get("_type") in ("playlist", "multi_video"):
        return Failure("error", "a playlist, not a video", f"{info.get('webpage_url')} is a playlist")
    if info.get("live_status") == "is_upcoming":
        return Failure("error", "not yet available (upcoming)", "the video is scheduled, not yet published")
    if info.get("is_live") or info.get("live_status") == "is_live":
        return Failure("filtered_duration", "live stream", "a live stream has no end")
    duration = info.get("duration")
    if isinstance(duration, (int, float)) and duration > max_duration_s:
        return Failure(
            "filtered_duration",
            f"longer than {max_duration_s:g} s",
            f"duration {duration:g} s > {max_duration_s:g} s (from the source's metadata)",
        )
    if info.get("formats"):
        video = [f for f in info["formats"] if f.get("vcodec") != "none"]
        if not video:
            return Failure("error", "no video stream offered", "the source lists no format with video")
    else:  # one stream described at the top level (a direct link, or a page pointing at one)
        video = [info]
    sides = [min(f["width"], f["height"]) for f in video if f.get("width") and f.get("height")]
    if sides and len(sides) == len(video) and max(sides) < min_resolution:
        return Failure(
            "filtered_resolution",
            f"below {min_resolution}p",
            f"largest format is {max(sides)}p (smaller side) < {min_resolution}p (from the source's metadata)",
        )
    return None


def trim_info(info: dict[str, Any]) -> dict[str, Any]:
    """The part of yt-dlp's info worth keeping beside the video."""
    return {k: info[k] for k in INFO_KEYS if info.get(k) is not None}


@functools.cache
def js_runtimes_found() -> list[tuple[str, str, str, bool]]:
    """``(name, path, version, supported)`` of each JavaScript runtime yt-dlp can use that is installed.

    Asks yt-dlp's own runtime classes, so "supported" is yt-dlp's judgement (e.g. node >= 22).
    """
    import yt_dlp  # noqa: F401 - fills the registry below
    from yt_dlp.globals import supported_js_runtimes

    found = []
    for name, cls in supported_js_runtimes.value.items():
        try:
            info = cls().info
        except Exception:  # a broken runtime is one we cannot use
            info = None
        if info is not None:
            found.append((name, info.path, info.version, bool(info.supported)))
    return found


def available_js_runtimes() -> dict[str, dict]:
    """yt-dlp's ``js_runtimes`` param: every supported runtime installed (yt-dlp alone enables only deno)."""
    return {name: {} for name, _path, _version, ok in js_runtimes_found() if ok}


class _Logger:
    """yt-dlp's messages go nowhere (errors come back as exceptions; progress is ours)."""

    def debug(self, msg: str) -> None:
        pass

    info = warning = error = debug


@dataclass
class FetchOptions:
    """What a :class:`YtDlpFetcher` passes to yt-dlp."""

    max_duration_s: float
    min_resolution: int
    timeout_s: float = 30.0
    cookies: Path | None = None
    proxies: tuple[str, ...] = ()
    proxy_offset: int = 0  # this process's first proxy (see ytfgvc.download.passthrough)
    ie_key: str | None = None
    js_runtimes: dict[str, dict] | None = None
    http_retries: int = 3  # yt-dlp's own retries of a broken transfer (it resumes with Range)
    ytdlp: dict[str, Any] = field(default_factory=dict)  # cookiesfrombrowser, extractor_args, ratelimit


class YtDlpFetcher:
    """Fetch videos with yt-dlp; one ``YoutubeDL`` per thread (and proxy), reused across videos.

    With proxies, each thread takes the next one in turn the first time it asks (``proxy_offset``
    first), unless :meth:`use_proxy` sets the one it must use (a Ray node's pacer slot does).
    ``extractions`` counts ``extract_info`` calls (one per video fetched).
    """

    def __init__(self, options: FetchOptions, stop: threading.Event | None = None):
        self.options = options
        self.stop = stop or threading.Event()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._lanes = 0
        self.extractions = 0

    def use_proxy(self, proxy: str | None) -> None:
        """Make this thread's next requests go through ``proxy``."""
        self._local.proxy = proxy

    def thread_proxy(self) -> str | None:
        """The proxy this thread uses (None without proxies)."""
        from ytfgvc.download.passthrough import pick_proxy

        if not self.options.proxies:
            return None
        if getattr(self._local, "proxy", None):
            return self._local.proxy
        if getattr(self._local, "lane", None) is None:
            with self._lock:
                self._local.lane, self._lanes = self._lanes, self._lanes + 1
        return pick_proxy(self.options.proxies, self.options.proxy_offset + self._local.lane)

    def params(self, proxy: str | None = None) -> dict[str, Any]:
        """The ``YoutubeDL`` parameters, with ``proxy``."""
        o = self.options
        p: dict[str, Any] = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _Logger(),
            "format": FORMAT.format(r=int(o.min_resolution)),
            "format_sort": list(FORMAT_SORT),
            "noplaylist": True,
            "socket_timeout": o.timeout_s,
            "retries": o.http_retries,
            "fragment_retries": o.http_retries,
            "max_filesize": MAX_FILESIZE,
            "continuedl": True,
            "overwrites": False,
            "writeinfojson": False,
            "progress_hooks": [self._hook],
            "outtmpl": {"default": "%(id)s.%(ext)s"},
        }
        if o.cookies:
            p["cookiefile"] = str(o.cookies)
        if proxy:
            p["proxy"] = proxy
        if o.js_runtimes:
            p["js_runtimes"] = o.js_runtimes
        p.update(copy.deepcopy(o.ytdlp))
        return p

    def _ydl(self):
        proxy = self.thread_proxy()
        ydls = self._local.__dict__.setdefault("ydls", {})
        if proxy not in ydls:
            import yt_dlp

            ydls[proxy] = yt_dlp.YoutubeDL(self.params(proxy))
        return ydls[proxy]

    def _hook(self, status: dict[str, Any]) -> None:
        if self.stop.is_set():
            from yt_dlp.utils import DownloadCancelled

            raise DownloadCancelled("stopping")

    def check(self, url: str) -> Fetched:
        """Metadata only, for a census: ``extract_info(download=False, process=False)``, no format, no bytes kept.

        Returns the source's trimmed info, or the classified failure; never raises for the video's failure.

        Raises:
            Cancelled: when the run is stopping.
        """
        _, got = self._extract(url)
        return got if isinstance(got, Fetched) else Fetched(info=trim_info(got))

    def _extract(self, url: str) -> tuple[Any, dict | Fetched]:
        """The yt-dlp instance and the source's unprocessed info for ``url``, or the classified failure."""
        from yt_dlp.utils import DownloadCancelled

        ydl = self._ydl()
        with self._lock:
            self.extractions += 1
        try:
            info = ydl.extract_info(url, download=False, process=False, ie_key=self.options.ie_key)
        except DownloadCancelled:
            raise Cancelled() from None
        except Exception as e:  # yt-dlp raises DownloadError and friends; each is classified
            return ydl, Fetched(failure=classify_exception(e, "extract"))
        if info is None:
            return ydl, Fetched(failure=Failure("error", "no info", "yt-dlp returned nothing for this URL"))
        return ydl, info

    def fetch(self, video_id: str, url: str, workdir: Path) -> Fetched:
        """Extract, decide, download into ``workdir/<id>.<ext>``; never raises for a video's failure.

        Raises:
            Cancelled: when the run is stopping.
        """
        from yt_dlp.utils import DownloadCancelled

        ydl, info = self._extract(url)
        if isinstance(info, Fetched):
            return info
        failure = decide(info, self.options.max_duration_s, self.options.min_resolution)
        if failure is not None:
            return Fetched(failure=failure, info=trim_info(info))
        ydl.params["outtmpl"]["default"] = str(workdir / f"{video_id}.%(ext)s")
        try:
            result = ydl.process_ie_result(info, download=True)
        except DownloadCancelled:
            raise Cancelled() from None
        except Exception as e:
            failure = classify_exception(e, "download")
            if "requested format is not available" in failure.message.lower():
                failure = Failure("error", "no format with video", failure.message)
            return Fetched(failure=failure, info=trim_info(info))
        path = _downloaded_file(result or {}, workdir, video_id)
        if path is None:
            msg = "yt-dlp finished without writing a file (over the size cap, or skipped)"
            return Fetched(failure=Failure("error", "no file written", clean_message(msg)), info=trim_info(info))
        return Fetched(path=path, info=trim_info(result or info))


def _downloaded_file(result: dict[str, Any], workdir: Path, video_id: str) -> Path | None:
    for d in result.get("requested_downloads") or []:
        p = d.get("filepath")
        if p and Path(p).is_file():
            return Path(p)
    found = [p for p in workdir.glob(f"{video_id}.*") if p.suffix not in (".part", ".ytdl") and p.is_file()]
    return found[0] if len(found) == 1 else None
