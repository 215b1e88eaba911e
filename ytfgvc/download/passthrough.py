"""yt-dlp's own options, passed through under their own names.

``--cookies-from-browser``, ``--extractor-args`` and ``--limit-rate`` are parsed by yt-dlp's
own command-line parser (:func:`yt_dlp.parse_options`, which ignores configuration files
when given arguments), so they mean exactly what they mean to yt-dlp and give the same
``YoutubeDL`` parameters: ``cookiesfrombrowser`` (a tuple ``(browser, profile, keyring,
container)``), ``extractor_args`` (``{ie_key: {arg: [values]}}``) and ``ratelimit`` (bytes
per second). A value yt-dlp refuses is refused here, with yt-dlp's message, before anything
is asked.

``--proxy`` takes a list. Request slot ``k`` (a worker thread here, a slot of a node's pacer
on Ray) of node ``j`` (0 here) of shard ``i`` uses proxy number
``((i * M + j) * J + k) mod P``, with ``M`` the Ray nodes when the run started (1 here), ``J``
``--jobs`` and ``P`` the proxies given: threads, shards and nodes each get their own proxy as
long as there are proxies enough, and share them in turn when there are not.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import optparse
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ytfgvc.errors import YtfgvcError

# Extractor arguments whose values are secrets of a session: hidden in records and printed commands.
SECRET_ARGS = ("po_token", "visitor_data", "data_sync_id")
_PROXY = re.compile(r"^(https?|socks[45]h?)://")


def ytdlp_params(
    cookies_from_browser: str | None = None,
    extractor_args: Sequence[str] = (),
    limit_rate: str | None = None,
) -> dict[str, Any]:
    """The ``YoutubeDL`` parameters these options give, as yt-dlp's parser makes them ({} when none is set)."""
    argv: list[str] = []
    if cookies_from_browser:
        argv += ["--cookies-from-browser", cookies_from_browser]
    for arg in extractor_args:
        argv += ["--extractor-args", arg]
    if limit_rate:
        argv += ["--limit-rate", limit_rate]
    if not argv:
        return {}
    import yt_dlp

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            opts = yt_dlp.parse_options(argv).ydl_opts
    except (optparse.OptParseError, SystemExit) as e:
        said = (str(e) if isinstance(e, optparse.OptParseError) else err.getvalue()).strip().splitlines()
        reason = said[-1].split("error: ", 1)[-1] if said else "refused"
        raise YtfgvcError(f"yt-dlp refuses {' '.join(redact_args(argv))}: {reason}", "see `yt-dlp --help`") from None
    return {k: opts[k] for k in ("cookiesfrombrowser", "extractor_args", "ratelimit") if opts.get(k)}


def check_proxies(proxies: Sequence[str]) -> tuple[str, ...]:
    """The proxies as a tuple, each checked to be a proxy URL (the message never shows a password)."""
    from ytfgvc.download.config import redact_url

    for p in proxies:
        if not _PROXY.match(p):
            raise YtfgvcError(f"--proxy {redact_url(p)!r} is not a proxy URL", "e.g. socks5://127.0.0.1:1080")
    return tuple(proxies)


def proxy_index(shard: int, nodes: int, node: int, jobs: int, slot: int) -> int:
    """Which proxy (before ``mod P``) slot ``slot`` of node ``node`` of shard ``shard`` uses (module docstring)."""
    return (shard * max(nodes, 1) + node) * max(jobs, 1) + slot


def pick_proxy(proxies: Sequence[str], index: int) -> str | None:
    """Proxy number ``index mod P``, or None without proxies."""
    return proxies[index % len(proxies)] if proxies else None


def node_number(nodes: Sequence[str], node_id: str) -> int:
    """The number of a Ray node: its place among the nodes of the run's start; a later node, one from its id."""
    if node_id in nodes:
        return list(nodes).index(node_id)
    return len(nodes) + int.from_bytes(hashlib.sha256(node_id.encode()).digest()[:4], "big") % 1024


def redact_args(args: Sequence[str]) -> list[str]:
    """Command-line words with proxy passwords and session secrets of extractor arguments hidden."""
    from ytfgvc.download.config import redact_url

    out = []
    for a in args:
        a = redact_url(a) or a
        for name in SECRET_ARGS:
            a = re.sub(rf"({name}=)[^;]*", r"\1***", a)
        out.append(a)
    return out


def browser_cookies_file(cookies_from_browser: tuple, cookiefile: Path | None = None) -> bytes:
    """The cookies yt-dlp reads from the browser (and ``cookiefile``), as a Netscape cookies.txt.

    For a Ray cluster: the nodes do not have this machine's browser, so they get the file.
    """
    import yt_dlp
    from yt_dlp.cookies import load_cookies

    with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) as ydl:
        try:
            jar = load_cookies(str(cookiefile) if cookiefile else None, cookies_from_browser, ydl)
        except Exception as e:
            cause = e.__cause__ or e
            raise YtfgvcError(f"cannot read cookies from {cookies_from_browser[0]}: {cause}") from None
    with tempfile.TemporaryDirectory(prefix="ytfgvc-cookies-") as tmp:
        path = Path(tmp) / "cookies.txt"
        jar.save(str(path))
        return path.read_bytes()
