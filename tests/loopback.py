"""A loopback HTTP server with faults, and tiny datasets, for the download tests.

``FaultServer`` serves ``/<id>.mp4`` from a folder (with byte ranges, like the real
mirror) and ``/<id>.html`` pages, unless a fault is set for the id:

* ``("status", code)``: answer with that HTTP status;
* ``("fail_first", n, code)``: answer ``code`` to the first ``n`` requests, then serve;
* ``("sleep", s)``: wait ``s`` seconds before answering;
* ``("trickle", s)``: send the body in small chunks, ``s`` seconds apart;
* ``("body", bytes)``: serve these bytes as ``video/mp4``;
* ``("cut", n)``: promise the whole file, send bytes up to offset ``n``, hang up;
* ``("hang", n)``: send bytes up to offset ``n`` then wait until :meth:`release`.

Every request is logged as ``(method, path, range header)``, with its time in ``times``, and
its ``Cookie`` header in ``cookies``. A request in absolute form (``GET http://host/<id>.mp4``,
what a client sends to an HTTP proxy) is served the same, and also logged in ``proxied``: a
server can stand in for a proxy in front of a dead origin.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from ytfgvc.download.server import parse_range, send_file_range, send_video_headers

_PATH = re.compile(r"^/([A-Za-z0-9_-]{11})\.(mp4|html)$")

CARD = """\
schema: ytfgvc-card-1
name: dltest
title: download tests
num_classes: 2
split_sizes: {train: null, test: null}
sample_fps: 2
filters: {max_duration_s: 5, min_resolution: 360}
default_source: mirror
"""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _status(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        if code == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()

    def _serve(self, body: bool) -> None:
        srv = self.server
        target = urlsplit(self.path).path if self.path.startswith("http://") else self.path
        with srv.lock:
            srv.log.append((self.command, target, self.headers.get("Range")))
            srv.times.append(time.monotonic())
            srv.cookies.append(self.headers.get("Cookie"))
            if target != self.path:
                srv.proxied.append(self.path)
            n_seen = sum(1 for _, p, _ in srv.log if p == target)
        m = _PATH.match(target)
        if not m:
            return self._status(404)
        vid, ext = m.groups()
        fault = srv.faults.get(vid, ())
        kind = fault[0] if fault else None
        if kind == "status":
            return self._status(fault[1])
        if kind == "fail_first" and n_seen <= fault[1]:
            return self._status(fault[2])
        if kind == "sleep":
            time.sleep(fault[1])
        if ext == "html":
            page = srv.pages.get(vid)
            if page is None:
                return self._status(404)
            return self._send(page, "text/html; charset=utf-8", body)
        if kind == "body":
            return self._send(fault[1], "video/mp4", body)
        path = srv.folder / f"{vid}.mp4"
        if not path.is_file():
            return self._status(404)
        size = path.stat().st_size
        rng = parse_range(self.headers.get("Range"), size)
        if rng == "bad":
            return self._status(416)
        start, end = send_video_headers(self, rng, size)
        if not body:
            return
        try:
            if kind in ("cut", "hang"):
                stop_at = min(end, fault[1] - 1)
                if stop_at >= start:
                    send_file_range(self.wfile, path, start, stop_at)
                self.wfile.flush()
                if kind == "hang":
                    srv.released.wait(30)
                self.close_connection = True
                return
            if kind == "trickle":
                data = path.read_bytes()[start : end + 1]
                for i in range(0, len(data), 8192):
                    self.wfile.write(data[i : i + 8192])
                    self.wfile.flush()
                    time.sleep(fault[1])
                return
            send_file_range(self.wfile, path, start, end)
        except (ConnectionError, TimeoutError):
            pass

    def _send(self, data: bytes, ctype: str, body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            with contextlib.suppress(ConnectionError, TimeoutError):
                self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up early is part of the tests


class FaultServer:
    """Threaded HTTP server on 127.0.0.1 (a free port); a context manager."""

    def __init__(self, folder: Path):
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.folder = Path(folder)
        self.httpd.faults = {}
        self.httpd.pages = {}
        self.httpd.log = []
        self.httpd.times = []  # time.monotonic() of each request in log
        self.httpd.cookies = []  # the Cookie header of each request in log
        self.httpd.proxied = []  # absolute URLs asked of this server as a proxy
        self.httpd.lock = threading.Lock()
        self.httpd.released = threading.Event()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def mp4(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{id}}.mp4"

    @property
    def html(self) -> str:
        return f"http://127.0.0.1:{self.port}/{{id}}.html"

    @property
    def faults(self) -> dict:
        return self.httpd.faults

    @property
    def log(self) -> list[tuple[str, str, str | None]]:
        with self.httpd.lock:
            return list(self.httpd.log)

    @property
    def cookies(self) -> list[str | None]:
        with self.httpd.lock:
            return list(self.httpd.cookies)

    @property
    def proxied(self) -> list[str]:
        with self.httpd.lock:
            return list(self.httpd.proxied)

    def first_requests(self) -> dict[str, float]:
        """When each path was first requested (time.monotonic())."""
        with self.httpd.lock:
            pairs = list(zip(self.httpd.log, self.httpd.times, strict=True))
        out: dict[str, float] = {}
        for (_, path, _), t in pairs:
            out.setdefault(path, t)
        return out

    def requested(self, vid: str, ext: str = "mp4") -> list[tuple[str, str, str | None]]:
        return [r for r in self.log if r[1] == f"/{vid}.{ext}"]

    def clear_log(self) -> None:
        with self.httpd.lock:
            for log in (self.httpd.log, self.httpd.times, self.httpd.cookies, self.httpd.proxied):
                log.clear()

    def page(self, vid: str, duration_s: float, width: int, height: int) -> None:
        """An HTML page describing ``vid`` (schema.org JSON-LD) and pointing at its .mp4."""
        ld = {
            "@context": "https://schema.org",
            "@type": "VideoObject",
            "name": vid,
            "contentUrl": f"http://127.0.0.1:{self.port}/{vid}.mp4",
            "duration": f"PT{duration_s:g}S",
            "width": width,
            "height": height,
            "uploadDate": "2018-01-01",
        }
        html = f'<html><head><title>{vid}</title><script type="application/ld+json">{json.dumps(ld)}</script>'
        self.httpd.pages[vid] = (html + "</head><body></body></html>").encode()

    def release(self) -> None:
        self.httpd.released.set()

    def __enter__(self) -> FaultServer:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


def make_dataset(root: Path, files: dict[str, Path], test: tuple[str, ...] = (), labels: dict[str, int] | None = None):
    """Import lists for the ``dltest`` card (ids in order; ``test`` ones in the test split) and fill its mirror."""
    from ytfgvc.datasets.official import import_annotations
    from ytfgvc.layout import DatasetLayout

    from .utils import write_release

    files = dict(files)
    if not test:  # a release has a test split: the last video, or a companion copy of a lone one
        if len(files) == 1:
            files["tcompanion0"] = next(iter(files.values()))
        test = (list(files)[-1],)
    labels = dict(labels or {vid: i % 2 for i, vid in enumerate(files)})
    trained = sorted({labels[vid] for vid in files if vid not in test}) or [0]
    for vid in test:  # a release has no class without a training video
        if labels[vid] not in trained:
            labels[vid] = trained[0]
    train = [[vid, labels[vid]] for vid in files if vid not in test]
    tst = [[vid, labels[vid]] for vid in files if vid in test]
    write_release(root / "official-dltest", train, tst, {str(c): f"class {c}" for c in trained})
    import_annotations(root, "dltest", root / "official-dltest")
    layout = DatasetLayout(root, "dltest")
    layout.mirror_dir.mkdir(parents=True, exist_ok=True)
    for vid, src in files.items():
        shutil.copyfile(src, layout.mirror_video(vid))
    return layout


# --------------------------------------------------------------------------- fixtures


def _frames(w: int, h: int, n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)[:h, :w]
    return [np.roll(base, 4 * t, axis=1) for t in range(n)]


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny real videos for a card with max 5 s and min 360p: ok, portrait, small, long, webm (VP9)."""
    from .utils import write_video

    d = tmp_path_factory.mktemp("clips")
    specs = {
        "ok": (640, 360, 20, 10, "libx264", "mp4"),  # 2 s
        "portrait": (360, 640, 20, 10, "libx264", "mp4"),  # counts by its width: 360p
        "small": (426, 240, 20, 10, "libx264", "mp4"),
        "long": (640, 360, 14, 2, "libx264", "mp4"),  # 7 s > 5 s
        "webm": (640, 360, 20, 10, "libvpx-vp9", "webm"),
    }
    out = {}
    for i, (name, (w, h, n, fps, codec, ext)) in enumerate(specs.items()):
        out[name] = write_video(d / f"{name}.{ext}", _frames(w, h, n, i), fps=fps, codec=codec)
    return out


@pytest.fixture
def dl_card(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the ``dltest`` card (max 5 s, min 360p) visible; returns its name."""
    cards = tmp_path_factory.mktemp("cards")
    (cards / "dltest.yaml").write_text(CARD)
    monkeypatch.setenv("YTFGVC_CARDS", str(cards))
    return "dltest"
