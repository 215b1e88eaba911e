"""Map what went wrong (a yt-dlp error, an HTTP status, a timeout) to a ledger status.

The statuses and their permanent/transient split are fixed in :mod:`ytfgvc.snapshot`.
Errors are mapped by meaning, in this order (the first rule that matches wins):

=================  ==============================================================
``rate_limited``   HTTP 429, "too many requests", "try again later", "rate-limited"
``unavailable``    private video (checked before "sign in": YouTube says "Private
                   video. Sign in if you've been granted access")
``blocked``        HTTP 401/403 while extracting, copyright, region/geo, age check,
                   sign-in, bot check, members-only, payment, DRM
``unavailable``    HTTP 404/410, removed, deleted, terminated account, "video
                   unavailable", "does not exist"
``network_error``  timeouts, refused/reset connections, DNS, a body cut short, HTTP 5xx
``error``          anything else (kept transient: the next run tries again)
=================  ==============================================================

An HTTP 403 on the *media* URL after a successful extraction is not the video being
blocked: on YouTube it is what an outdated yt-dlp gets, so it is an ``error`` (retried)
whose reason says to update.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

MAX_MESSAGE = 2000
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Failure:
    """A classified failure: ``status`` for the ledger, a short ``reason``, the original ``message``."""

    status: str
    reason: str
    message: str


# (status, reason, pattern) in priority order; patterns are matched on the lower-cased message.
_RULES: list[tuple[str, str, re.Pattern[str]]] = [
    (s, r, re.compile(p))
    for s, r, p in [
        ("rate_limited", "rate limited", r"too many requests|try again later|rate[- ]limit"),
        ("unavailable", "private video", r"private video|video is private"),
        ("blocked", "copyright", r"copyright"),
        ("blocked", "region blocked", r"your country|geo[- ]?restrict|not available in your (region|location)"),
        ("blocked", "age check", r"confirm your age|age[- ]restricted|age[- ]verification|inappropriate for some"),
        ("blocked", "bot check", r"not a bot|captcha"),
        ("blocked", "members only", r"members[- ]only|join this channel"),
        ("blocked", "payment required", r"requires payment|premium members"),
        ("blocked", "drm", r"\bdrm\b"),
        ("blocked", "sign-in required", r"sign in|log ?in required|login required"),
        ("unavailable", "terminated account", r"account .*(terminated|closed|deleted)"),
        ("unavailable", "removed", r"has been removed|been deleted|no longer available|violat"),
        ("unavailable", "does not exist", r"does not exist"),
        ("unavailable", "video unavailable", r"video unavailable|video is unavailable|content isn't available"),
        ("network_error", "timeout", r"timed out|timeout"),
        ("network_error", "connection error", r"connection (refused|reset|aborted)|remote end closed|broken pipe"),
        ("network_error", "dns", r"name or service not known|name resolution|nodename nor servname|getaddrinfo"),
        (
            "network_error",
            "body cut short",
            r"content too short|incomplete ?read|did not get any data|bytes read, \d+ more expected",
        ),
        ("network_error", "network unreachable", r"network is unreachable|no route to host"),
    ]
]


def clean_message(text: str) -> str:
    """The message without yt-dlp's ``ERROR:`` prefix and colours, capped in length."""
    text = _ANSI.sub("", str(text)).replace("\r", " ").strip()
    text = re.sub(r"^ERROR:\s*", "", text).strip()
    return text[:MAX_MESSAGE]


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (yt-dlp's ``exc_info`` and ``cause`` included)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or any(e is s for s in seen) or len(seen) > 20:
            continue
        seen.append(e)
        exc_info = getattr(e, "exc_info", None)
        todo += [
            exc_info[1] if isinstance(exc_info, tuple) and len(exc_info) > 1 else None,
            getattr(e, "cause", None) if isinstance(getattr(e, "cause", None), BaseException) else None,
            e.__cause__,
            e.__context__,
        ]
    return seen


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of the first HTTP error wrapped in ``exc``, if any."""
    for e in _chain(exc):
        status = getattr(e, "status", None)
        if isinstance(status, int) and 100 <= status < 600 and type(e).__name__ == "HTTPError":
            return status
        code = getattr(e, "code", None)  # urllib's HTTPError
        if isinstance(code, int) and 100 <= code < 600 and type(e).__name__ == "HTTPError":
            return code
    return None


def _is_network(exc: BaseException) -> str | None:
    from yt_dlp.networking.exceptions import TransportError
    from yt_dlp.utils import ContentTooShortError

    for e in _chain(exc):
        if isinstance(e, (TimeoutError, socket.timeout)) or "timeout" in type(e).__name__.lower():
            return "timeout"
        if isinstance(e, ContentTooShortError):
            return "body cut short"
        if isinstance(e, (ConnectionError, TransportError)):
            return "connection error"
    return None


def classify_http(status: int, phase: str) -> tuple[str, str]:
    """Status and reason for an HTTP error code met while extracting or downloading."""
    if status == 429:
        return "rate_limited", "HTTP 429"
    if status >= 500:
        return "network_error", f"HTTP {status}"
    if phase == "download" and status in (401, 403):
        return "error", f"HTTP {status} on the media URL (often fixed by updating yt-dlp: see `ytfgvc doctor`)"
    if status in (404, 410):
        return "unavailable", f"HTTP {status}"
    if status in (401, 403, 451):
        return "blocked", f"HTTP {status}"
    return "error", f"HTTP {status}"


def classify_message(message: str) -> tuple[str, str] | None:
    """Status and reason from the text of an error, or None when nothing matches."""
    low = message.lower()
    for status, reason, pattern in _RULES:
        if pattern.search(low):
            return status, reason
    return None


def classify_exception(exc: BaseException, phase: str = "extract") -> Failure:
    """Classify an exception raised by yt-dlp (or the network) while ``phase`` ("extract"/"download")."""
    message = clean_message(str(exc) or type(exc).__name__)
    by_text = classify_message(message)
    if by_text and by_text[0] == "rate_limited":
        return Failure(*by_text, message)
    status = http_status(exc)
    if status is not None:
        return Failure(*classify_http(status, phase), message)
    if by_text:
        return Failure(*by_text, message)
    net = _is_network(exc)
    if net:
        return Failure("network_error", net, message)
    return Failure("error", type(exc).__name__ if not message else _first_words(message), message)


def _first_words(message: str, n: int = 8) -> str:
    """A short, id-free reason from a message, so that equal errors group together in reports."""
    text = re.sub(r"^\[[^\]]+\]\s*", "", message)  # "[youtube] "
    text = re.sub(r"^[A-Za-z0-9_-]{11}:\s*", "", text)  # the video id
    return " ".join(text.split()[:n])
