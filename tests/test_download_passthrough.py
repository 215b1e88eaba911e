"""yt-dlp's options passed through: --cookies-from-browser, --extractor-args, --limit-rate, --proxy (a list).

No YouTube here: every option is shown reaching the ``YoutubeDL`` parameters of a real run
against the loopback server, and where the server can see it (a cookie, a proxy, a slower
transfer), arriving there.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.ledger import Ledger
from ytfgvc.download.pacing import NodePacer
from ytfgvc.download.passthrough import browser_cookies_file, ytdlp_params
from ytfgvc.download.remote import RemoteSpec, _proxy_setter
from ytfgvc.download.worker import Limits
from ytfgvc.download.ytdlp import FetchOptions
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import ok_video_ids

from .loopback import FaultServer, make_dataset
from .utils import make_ids

SECRET = "SECRETTOKEN"


def firefox_profile(folder: Path, host: str, name: str, value: str) -> Path:
    """A Firefox profile folder whose cookies.sqlite holds one cookie (what yt-dlp reads for ``firefox:PATH``)."""
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "cookies.sqlite") as db:
        db.execute(
            "CREATE TABLE moz_cookies (id INTEGER PRIMARY KEY, originAttributes TEXT NOT NULL DEFAULT '', "
            "name TEXT, value TEXT, host TEXT, path TEXT, expiry INTEGER, lastAccessed INTEGER, "
            "creationTime INTEGER, isSecure INTEGER, isHttpOnly INTEGER)"
        )
        db.execute("PRAGMA user_version = 12")
        db.execute(
            "INSERT INTO moz_cookies (name, value, host, path, expiry, isSecure) VALUES (?, ?, ?, '/', ?, 0)",
            (name, value, host, 4102444800),
        )
    db.close()
    return folder


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The params of every ``YoutubeDL`` made while the test runs."""
    import yt_dlp

    made: list[dict] = []
    real = yt_dlp.YoutubeDL.__init__

    def init(self, params=None, *a, **kw):
        made.append(dict(params or {}))
        real(self, params, *a, **kw)

    monkeypatch.setattr(yt_dlp.YoutubeDL, "__init__", init)
    return made


def dead_origin() -> str:
    """A URL template on a port nobody listens on: only a proxy can answer for it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/{{id}}.mp4"


def test_each_option_reaches_ytdlp_and_the_server(tmp_path: Path, dl_card, clips, spy):
    ids = make_ids(6, "y")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    profile = firefox_profile(tmp_path / "firefox", "127.0.0.1", "sid", "cookie-from-firefox")
    with FaultServer(layout.mirror_dir) as p0, FaultServer(layout.mirror_dir) as p1:
        proxies = (f"http://user:pw@127.0.0.1:{p0.port}", f"http://127.0.0.1:{p1.port}")
        cfg = DownloadConfig(
            dataset="dltest",
            source=dead_origin(),
            jobs=2,
            retries=0,
            timeout_s=5,
            proxy=proxies,
            cookies_from_browser=f"firefox:{profile}",
            extractor_args=("youtube:player_client=mweb;po_token=mweb.gvs+" + SECRET, "generic:impersonate"),
            limit_rate="4M",
        )
        r = download(tmp_path, cfg, progress=False)
        assert r.totals == {"ok": 6}  # the origin is dead: every byte came through the proxies
        assert p0.proxied and p1.proxied  # one proxy per worker thread
        cookies = [c for srv in (p0, p1) for c in srv.cookies]
    assert cookies and all(c == "sid=cookie-from-firefox" for c in cookies)
    made = [p for p in spy if "format_sort" in p]  # the fetcher's own, not the one yt-dlp's parser makes
    assert {p["proxy"] for p in made} == set(proxies)
    for p in made:
        assert p["cookiesfrombrowser"] == ("firefox", str(profile), None, None)
        assert p["extractor_args"] == {
            "youtube": {"player_client": ["mweb"], "po_token": ["mweb.gvs+" + SECRET]},
            "generic": {"impersonate": [""]},
        }
        assert p["ratelimit"] == 4 * 1024 * 1024
    with Ledger(layout.ledger_path, "dltest", readonly=True) as ledger:
        recorded = json.dumps(ledger.runs())
    assert SECRET not in recorded and "user:pw" not in recorded and "user:***@" in recorded
    assert SECRET not in r.resume_command and "--cookies-from-browser" in r.resume_command


def test_proxies_rotate_per_shard(tmp_path: Path, dl_card, clips):
    ids = make_ids(8, "w")
    roots = [tmp_path / "s0", tmp_path / "s1"]
    for root in roots:
        make_dataset(root, dict.fromkeys(ids, clips["ok"]))
    mirror = DatasetLayout(roots[0], "dltest").mirror_dir
    with FaultServer(mirror) as p0, FaultServer(mirror) as p1:
        proxies = (f"http://127.0.0.1:{p0.port}", f"http://127.0.0.1:{p1.port}")
        for i, root in enumerate(roots):
            cfg = DownloadConfig(dataset="dltest", source=dead_origin(), jobs=1, retries=0, shard=f"{i}/2")
            download(root, cfg.replace(proxy=proxies), progress=False)
        seen = [{u.rsplit("/", 1)[1][:11] for u in srv.proxied} for srv in (p0, p1)]
    shard_ids = [set(ok_video_ids(DatasetLayout(root, "dltest"))) for root in roots]
    assert seen == shard_ids and all(seen)  # shard 0 through the first proxy only, shard 1 through the second


def test_limit_rate_slows_the_transfer(tmp_path: Path, dl_card, clips):
    vid = make_ids(1, "l")[0]
    layout = make_dataset(tmp_path, {vid: clips["ok"]})
    size = clips["ok"].stat().st_size
    cfg = DownloadConfig(dataset="dltest", split="train", limit_rate="8K")
    with FaultServer(layout.mirror_dir) as srv:
        t = time.perf_counter()
        download(tmp_path, cfg.replace(source=srv.mp4), progress=False)
        took = time.perf_counter() - t
    assert took >= 0.6 * size / 8192  # yt-dlp's own pacing of the transfer


def test_options_ytdlp_refuses_are_refused_before_anything(tmp_path: Path, dl_card, clips):
    for kw, words in [
        ({"limit_rate": "fast"}, 'invalid rate limit "fast"'),
        ({"cookies_from_browser": "netscape"}, "unsupported browser"),
        ({"cookies_from_browser": "chrome+wallet"}, "unsupported keyring"),
        ({"extractor_args": ("youtube",)}, "--extractor-args"),
        ({"proxy": ("ftp://h:1",)}, "not a proxy URL"),
    ]:
        with pytest.raises(YtfgvcError, match=words):
            DownloadConfig(dataset="dltest", **kw)
    make_dataset(tmp_path, {make_ids(1)[0]: clips["ok"]})
    res = CliRunner().invoke(main, ["download", "dltest", "--root", str(tmp_path), "--limit-rate", "x"])
    assert res.exit_code == 2 and "yt-dlp refuses --limit-rate x" in res.output
    assert not DatasetLayout(tmp_path, "dltest").ledger_path.exists()


def test_browser_cookies_become_a_file_for_ray_nodes(tmp_path: Path):
    profile = firefox_profile(tmp_path / "ff", ".example.org", "SID", "v1")
    text = browser_cookies_file(ytdlp_params(f"firefox:{profile}")["cookiesfrombrowser"]).decode()
    assert "# Netscape HTTP Cookie File" in text and "\tSID\tv1" in text and ".example.org" in text


def test_ray_nodes_and_their_slots_get_their_own_proxies():
    async def lanes():
        pacer = NodePacer(jobs=2, lo=0, hi=0, breaker_limit=3)
        a, b = await pacer.acquire(1), await pacer.acquire(1)
        first = {pacer.lane(a), pacer.lane(b)}
        pacer.release(a)
        c = await pacer.acquire(1)
        return first, pacer.lane(c), pacer.lane(b)

    first, lane_c, lane_b = asyncio.run(lanes())
    assert first == {0, 1} and lane_c != lane_b  # a freed lane is taken again, never a held one

    class Fetcher:
        proxy = None

        def use_proxy(self, p):
            self.proxy = p

    proxies = tuple(f"http://p{i}:1" for i in range(8))
    spec = RemoteSpec(
        root="/r", dataset="d", source=None, limits=Limits(5, 360), cookies=None, retries=0, backoff_s=0,
        shared=True, token="t", jobs=2, sleep=(0, 0), breaker=3, nodes=("node-a", "node-b"), shard=1,
        fetch=FetchOptions(5, 360, proxies=proxies),
    )  # fmt: skip
    used = set()
    for node in spec.nodes:
        for lane in (0, 1):
            f = Fetcher()
            _proxy_setter(spec, node, f)(lane)
            used.add(f.proxy)
    assert used == set(proxies[4:])  # shard 1 of 2 nodes x 2 slots: proxies 4..7, one per slot


def test_doctor_lists_ytdlp_plugins_and_po_token_providers(tmp_path: Path):
    plugin = tmp_path / "plugins" / "yt_dlp_plugins" / "extractor"
    plugin.mkdir(parents=True)
    (plugin / "ytfgvc_fake.py").write_text(
        "from yt_dlp.extractor.common import InfoExtractor\n"
        "from yt_dlp.extractor.youtube.pot.provider import PoTokenProvider, register_provider\n\n\n"
        "class YtfgvcFakeIE(InfoExtractor):\n"
        "    _VALID_URL = r'ytfgvc-fake:(?P<id>.+)'\n\n\n"
        "@register_provider\n"
        "class YtfgvcFakePTP(PoTokenProvider):\n"
        "    PROVIDER_VERSION = '0.0.1'\n"
        "    BUG_REPORT_LOCATION = 'https://example.invalid'\n\n"
        "    def is_available(self):\n        return True\n\n"
        "    def _real_request_pot(self, request):\n        raise NotImplementedError\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), str(tmp_path / "plugins")])}
    code = "from ytfgvc.doctor import check_ytdlp_plugins; print(check_ytdlp_plugins().found)"  # a fresh yt-dlp
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    assert "PO token providers: YtfgvcFake 0.0.1" in found and "extractors: YtfgvcFakeIE" in found
