"""A loopback HTTP server for a mirror folder: ``GET /<id>.mp4`` with byte ranges.

``ytfgvc download synthetic`` starts one on ``127.0.0.1`` (a free port) for the
synthetic mirror and stops it when done, so the synthetic dataset goes through the same
yt-dlp path as a lab's mirror. ``ytfgvc serve-mirror`` runs one in the foreground.

Only names of the form ``/<video id>.mp4`` are served (ids are validated, so no path
can leave the folder); everything else is 404. ``Range: bytes=a-b`` (one range) gets a
206, which is what yt-dlp sends when it resumes a partial download.
"""

from __future__ import annotations

import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ytfgvc.layout import is_valid_video_id

_PATH = re.compile(r"^/([A-Za-z0-9_-]{11})\.mp4$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 1 << 16


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end)`` inclusive for a satisfiable single range, None without one, ``"bad"`` otherwise."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return "bad"
    if m.group(1):
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    else:  # suffix range: the last N bytes
        n = int(m.group(2))
        start, end = max(0, size - n), size - 1
    if start >= size or start > end:
        return "bad"
    return start, end


class MirrorHandler(BaseHTTPRequestHandler):
    """Serves ``<folder>/<id>.mp4``; the folder is the server's ``folder`` attribute."""

    server: MirrorHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if self.server.verbose:
            super().log_message(format, *args)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        self.server.count_request(self.path)
        m = _PATH.match(self.path.split("?", 1)[0])
        path = self.server.folder / f"{m.group(1)}.mp4" if m and is_valid_video_id(m.group(1)) else None
        if path is None or not path.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        size = path.stat().st_size
        rng = parse_range(self.headers.get("Range"), size)
        if rng == "bad":
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = send_video_headers(self, rng, size)
        if body:
            send_file_range(self.wfile, path, start, end)


def send_video_headers(handler: BaseHTTPRequestHandler, rng, size: int) -> tuple[int, int]:
    """Status and headers for an MP4 of ``size`` bytes: 206 for a range from :func:`parse_range`, else 200.

    Returns the first and last byte to send.
    """
    start, end = rng if isinstance(rng, tuple) else (0, size - 1)
    handler.send_response(HTTPStatus.PARTIAL_CONTENT if isinstance(rng, tuple) else HTTPStatus.OK)
    handler.send_header("Content-Type", "video/mp4")
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("Content-Length", str(end - start + 1))
    if isinstance(rng, tuple):
        handler.send_header("Content-Range", f"bytes {start}-{end}/{size}")
    handler.end_headers()
    return start, end


def send_file_range(out, path: Path, start: int, end: int) -> None:
    """Copy bytes ``start..end`` (inclusive) of ``path`` to ``out``; a client hanging up is not an error."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                block = f.read(min(CHUNK, left))
                if not block:
                    break
                out.write(block)
                left -= len(block)
    except (BrokenPipeError, ConnectionResetError):
        pass


class MirrorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path, host: str, port: int, handler=MirrorHandler, verbose: bool = False):
        self.folder = Path(folder)
        self.verbose = verbose
        self.requests: list[str] = []
        self._lock = threading.Lock()
        super().__init__((host, port), handler)

    def handle_error(self, request, client_address) -> None:
        import sys

        # A client that hangs up early is normal (yt-dlp reads only the headers while extracting).
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)

    def count_request(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)


class MirrorServer:
    """Serve ``folder`` on ``host:port`` (port 0: any free port) in a background thread.

    Use as a context manager; ``url_template`` is the ``--source`` that reaches it.

    Example:
        >>> with MirrorServer(layout.mirror_dir) as srv:
        ...     download(..., source=srv.url_template)
    """

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
        self.httpd = MirrorHTTPServer(folder, host, port, verbose=verbose)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url_template(self) -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}/{{id}}.mp4"

    @property
    def requests(self) -> list[str]:
        return list(self.httpd.requests)

    def start(self) -> MirrorServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="ytfgvc-mirror", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MirrorServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_forever(folder: Path, host: str = "127.0.0.1", port: int = 0, on_ready=print) -> None:
    """Serve until interrupted (``ytfgvc serve-mirror``)."""
    srv = MirrorServer(folder, host, port, verbose=True)
    on_ready(srv.url_template)
    try:
        srv.httpd.serve_forever()
    finally:
        srv.httpd.server_close()


__all__ = ["MirrorServer", "MirrorHandler", "MirrorHTTPServer", "parse_range", "send_file_range", "serve_forever"]
