"""The download's decisions, one at a time: error classes, filters on info, format choice, shards, pacing."""

from __future__ import annotations

import threading
import time

import pytest

from ytfgvc.download.classify import classify_exception, classify_message
from ytfgvc.download.config import DownloadConfig, parse_shard, redact_url
from ytfgvc.download.ledger import VideoRecord, merge_records
from ytfgvc.download.plan import Item, select, shard_of
from ytfgvc.download.runner import Pacer
from ytfgvc.download.server import parse_range
from ytfgvc.download.sources import YOUTUBE_TEMPLATE, Source
from ytfgvc.download.ytdlp import FORMAT, FORMAT_SORT, decide
from ytfgvc.errors import YtfgvcError

from .utils import make_ids


@pytest.mark.parametrize(
    ("message", "status", "reason"),
    [
        ("[youtube] abc: Private video. Sign in if you've been granted access", "unavailable", "private video"),
        ("[youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable", "removed"),
        (
            "Video unavailable. This video is no longer available because the YouTube account associated with this "
            "video has been terminated.",
            "unavailable",
            "terminated account",
        ),  # fmt: skip
        ("[youtube] abc: Video unavailable", "unavailable", "video unavailable"),
        (
            "Video unavailable. This video contains content from SME, who has blocked it on copyright grounds",
            "blocked",
            "copyright",
        ),  # fmt: skip
        ("The uploader has not made this video available in your country", "blocked", "region blocked"),
        ("Sign in to confirm your age. This video may be inappropriate for some users.", "blocked", "age check"),
        ("Sign in to confirm you're not a bot. Use --cookies-from-browser", "blocked", "bot check"),
        ("Join this channel to get access to members-only content like this video", "blocked", "members only"),
        (
            "This content isn't available, try again later. The current session has been rate-limited by YouTube",
            "rate_limited",
            "rate limited",
        ),  # fmt: skip
        ("Unable to download webpage: HTTP Error 429: Too Many Requests", "rate_limited", "rate limited"),
        ("Unable to download webpage: <urlopen error timed out>", "network_error", "timeout"),
        (
            "Got error: 254 bytes read, 23806 more expected. Giving up after 3 retries",
            "network_error",
            "body cut short",
        ),  # noqa: E501
    ],
)
def test_youtube_messages_map_to_statuses_by_meaning(message, status, reason):
    assert classify_message(message) == (status, reason)


def test_http_errors_are_classified_by_status_and_phase():
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import DownloadError, ExtractorError

    class _Resp:
        def __init__(self, status):
            self.status, self.reason, self.headers, self.url = status, "x", {}, "http://h/x"

        def read(self, *a):
            return b""

        def close(self):
            pass

    def wrapped(status):
        cause = HTTPError(_Resp(status))
        err = ExtractorError(f"Unable to download webpage: HTTP Error {status}", cause=cause)
        return DownloadError(f"ERROR: {err}", exc_info=(type(err), err, None))

    assert classify_exception(wrapped(404)).status == "unavailable"
    assert classify_exception(wrapped(403)).status == "blocked"
    assert classify_exception(wrapped(403), phase="download").status == "error"  # stale media URL, not the video
    assert classify_exception(wrapped(502)).status == "network_error"
    assert classify_exception(wrapped(418)).status == "error"
    assert classify_exception(ConnectionRefusedError("refused")).status == "network_error"
    f = classify_exception(RuntimeError("[youtube] dQw4w9WgXcQ: Unable to extract player response; please report"))
    assert f.status == "error" and "dQw4w9WgXcQ" not in f.reason  # groups across ids


def _fmt(fid, w, h, vcodec, acodec="none", size=None, proto="https", ext="mp4"):
    return dict(format_id=fid, url=f"https://v/{fid}", width=w, height=h, vcodec=vcodec, acodec=acodec,
                filesize=size, protocol=proto, ext=ext)  # fmt: skip


YOUTUBE_LIKE = [
    _fmt("139", None, None, "none", "mp4a.40.5", 10_000, ext="m4a"),
    _fmt("sb0", 160, 90, "none", ext="mhtml", proto="mhtml"),
    _fmt("160", 256, 144, "avc1.4d400c", size=100_000),
    _fmt("278", 256, 144, "vp9", size=80_000, ext="webm"),
    _fmt("134", 640, 360, "avc1.4d401e", size=900_000),
    _fmt("243", 640, 360, "vp9", size=700_000, ext="webm"),
    _fmt("396", 640, 360, "av01.0.01M.08", size=500_000),
    _fmt("230", 640, 360, "avc1.4D401E", proto="m3u8_native"),
    _fmt("18", 640, 360, "avc1.42001E", "mp4a.40.2", 1_200_000),
    _fmt("135", 854, 480, "avc1.4d401f", size=1_500_000),
    _fmt("137", 1920, 1080, "avc1.640028", size=9_000_000),
]


def _info(formats, **kw):
    info = {"id": "abcdefghijk", "title": "t", "formats": [dict(f) for f in formats], "duration": 60}
    return {**info, "extractor": "youtube", "extractor_key": "Youtube", "webpage_url": "https://y/x", **kw}


def test_decide_filters_on_the_extracted_info():
    assert decide(_info(YOUTUBE_LIKE), 300, 360) is None
    f = decide(_info(YOUTUBE_LIKE, duration=301), 300, 360)
    assert f.status == "filtered_duration" and "301" in f.message
    small = [f for f in YOUTUBE_LIKE if (f["height"] or 0) < 360]
    f = decide(_info(small), 300, 360)
    assert f.status == "filtered_resolution" and "144p" in f.message
    portrait = [_fmt("134", 360, 640, "avc1"), _fmt("133", 240, 426, "avc1")]
    assert decide(_info(portrait), 300, 360) is None  # counts by its width
    assert decide(_info([_fmt("x", None, None, None)], duration=None), 300, 360) is None  # unknown: probe later
    assert decide({"url": "http://m/a.mp4", "width": 426, "height": 240}, 300, 360).status == "filtered_resolution"
    assert decide(_info(YOUTUBE_LIKE[:1]), 300, 360).status == "error"  # audio only
    assert decide(_info(YOUTUBE_LIKE, is_live=True, duration=None), 300, 360).status == "filtered_duration"


def test_format_choice_is_the_smallest_qualifying_video_only_h264():
    import yt_dlp

    params = {"quiet": True, "simulate": True, "format": FORMAT.format(r=360), "format_sort": FORMAT_SORT}
    with yt_dlp.YoutubeDL(params) as ydl:
        chosen = ydl.process_ie_result(_info(YOUTUBE_LIKE), download=False)
        assert (chosen["format_id"], chosen["acodec"]) == ("134", "none")  # not itag 18 (with audio), not 1080p
        no_h264 = [f for f in YOUTUBE_LIKE if not f["vcodec"].startswith("avc")]
        assert ydl.process_ie_result(_info(no_h264), download=False)["height"] == 360
        portrait = [_fmt("134", 360, 640, "avc1", size=9), _fmt("133", 240, 426, "avc1", size=1)]
        assert ydl.process_ie_result(_info(portrait), download=False)["format_id"] == "134"
        direct = {"id": "abcdefghijk", "title": "t", "url": "http://m/abcdefghijk.mp4", "ext": "mp4", "direct": True}
        assert ydl.process_ie_result(dict(direct), download=False)["url"] == direct["url"]  # sizes unknown: taken


def test_shards_partition_the_ids_whatever_the_split_or_limit():
    items = [Item(v) for v in make_ids(300, "s")]
    for n in (1, 2, 3, 7):
        parts = [select(items, (i, n)) for i in range(n)]
        ids = [it.video_id for part in parts for it in part]
        assert sorted(ids) == sorted(it.video_id for it in items) and len(set(ids)) == len(ids)
        assert min(len(p) for p in parts) > 0.6 * len(items) / n  # roughly balanced
    sub = items[::3]  # another split or list: every id stays in its shard
    assert all(shard_of(it.video_id, 4) == 1 for it in select(sub, (1, 4)))
    assert [it.video_id for it in select(items, (0, 2), limit=5)] == [it.video_id for it in select(items, (0, 2))][:5]
    for bad in ("2/2", "1/0", "a/b", "-1/3"):
        with pytest.raises(YtfgvcError):
            parse_shard(bad)


def test_source_urls_only_take_valid_ids():
    yt = Source("youtube", "youtube", YOUTUBE_TEMPLATE)
    assert yt.url("dQw4w9WgXcQ") == "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    for bad in ("dQw4w9WgXc", "dQw4w9WgXcQ&list=x", "../../../etc", "dQw4w9WgXc/"):
        with pytest.raises(YtfgvcError):
            yt.url(bad)


def test_pacer_spaces_requests_across_threads():
    stop = threading.Event()
    pacer = Pacer(0.1, 0.1, stop)
    t = time.perf_counter()
    threads = [threading.Thread(target=pacer.wait) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert time.perf_counter() - t >= 0.3  # four starts, 0.1 s apart, whatever the number of threads
    stop.set()
    assert pacer.wait() is False


def test_defaults_depend_on_the_source_and_resume_commands_round_trip(tmp_path):
    cfg = DownloadConfig(dataset="birds")
    yt = cfg.resolved("youtube", "youtube")
    assert (yt.sleep, yt.jobs, yt.backoff_s) == ("5-10", 2, 30.0)
    assert cfg.resolved("http://m/{id}.mp4", "url").sleep == "0"
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    cfg = DownloadConfig(dataset="birds", shard="3/8", cookies=cookies, proxy="socks5://u:secret@h:1080")
    cmd = cfg.command(tmp_path)
    assert cmd.startswith(f"ytfgvc download birds --root {tmp_path} --shard 3/8 --cookies")
    assert "secret" not in cmd and redact_url("http://u:p@h:1") == "http://u:***@h:1"


def test_merging_records_prefers_ok_then_permanent_then_latest():
    a = VideoRecord("abcdefghijk", "network_error", attempts=3, first_attempt="2026-01-01", last_attempt="2026-01-02")
    b = VideoRecord("abcdefghijk", "ok", sha256="s", attempts=1, first_attempt="2026-01-03", last_attempt="2026-01-03")
    c = VideoRecord("abcdefghijk", "unavailable", attempts=1, last_attempt="2026-02-01")
    m = merge_records(a, b)
    assert (m.status, m.attempts, m.first_attempt, m.last_attempt) == ("ok", 3, "2026-01-01", "2026-01-03")
    assert merge_records(c, b).status == "ok" and merge_records(a, c).status == "unavailable"


def test_range_header_parsing():
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=95-200", 100) == (95, 99)
    assert parse_range("bytes=100-", 100) == "bad" and parse_range("bytes=5-1", 100) == "bad"
    assert parse_range("bytes=0-1,5-6", 100) == "bad" and parse_range("lines=1-2", 100) == "bad"


def test_probe_catches_files_cut_short_wherever_the_index_is(tmp_path):
    import av
    import numpy as np

    from ytfgvc.download.probe import CorruptVideo, probe_video

    rng = np.random.default_rng(0)
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:  # index first, like most web videos
        s = c.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 360, 640, "yuv420p"
        s.options = {"g": "10", "preset": "ultrafast"}
        for _ in range(30):
            img = rng.integers(0, 255, (640, 360, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    probe = probe_video(path)
    assert (probe.duration_s, probe.short_side, probe.codec) == (3.0, 360, "h264")
    data = path.read_bytes()
    for keep in (0.5, 0.9, 0.999):
        cut = tmp_path / f"cut{keep}.mp4"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(CorruptVideo):
            probe_video(cut)
