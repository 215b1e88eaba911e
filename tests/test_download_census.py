"""``ytfgvc download --recheck``: a census over a loopback server whose answers change, health.json, the bias test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.download import DownloadConfig, download
from ytfgvc.download.census import recheck
from ytfgvc.download.health import loss_bias
from ytfgvc.download.report import status_report
from ytfgvc.errors import YtfgvcError
from ytfgvc.snapshot import ok_video_ids

from .loopback import FaultServer, make_dataset
from .utils import make_ids


def cfg(source: str, **kw) -> DownloadConfig:
    return DownloadConfig(dataset="dltest", source=source, **{"retries": 0, "timeout_s": 5.0, **kw})


def videos_state(layout) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in layout.videos_dir.iterdir()}


def test_census_records_what_the_server_says_over_time_and_never_touches_videos(tmp_path: Path, dl_card, clips):
    ids = make_ids(6, "c")
    labels = dict(zip(ids, [0, 0, 0, 1, 1, 1], strict=True))
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]), test=(ids[2], ids[5]), labels=labels)
    with FaultServer(layout.mirror_dir) as srv:
        assert download(tmp_path, cfg(srv.mp4), progress=False).totals == {"ok": 6}
        before = videos_state(layout)
        srv.clear_log()
        first = recheck(tmp_path, cfg(srv.mp4), progress=False, date="2026-01-01")
        assert first.totals == {"available": 6} and first.extractions == 6
        assert sorted(p for _, p, _ in srv.log) == sorted(f"/{v}.mp4" for v in ids)  # one metadata request each
        assert all(rng is None for _, _, rng in srv.log)  # no ranged transfer, as a download makes

        srv.faults[ids[3]] = ("status", 404)  # two class-1 videos die...
        srv.faults[ids[4]] = ("status", 410)
        srv.faults[ids[0]] = ("status", 429)  # ...and one answer says nothing about its video
        second = recheck(tmp_path, cfg(srv.mp4), progress=False, date="2026-02-01")
        assert second.totals == {"available": 3, "unavailable": 2, "unknown": 1}

        del srv.faults[ids[0]]
        srv.clear_log()
        again = recheck(tmp_path, cfg(srv.mp4), progress=False, date="2026-02-01")  # resumes the day's census
        assert [p for _, p, _ in srv.log] == [f"/{ids[0]}.mp4"] and again.answered_before == 5
        assert again.totals == {"available": 4, "unavailable": 2}
    assert videos_state(layout) == before and ok_video_ids(layout) == set(ids)  # videos/ untouched

    health = json.loads(layout.health_path.read_text())
    assert health["schema"] == "ytfgvc-health-1" and [c["date"] for c in health["censuses"]] == [
        "2026-01-01",
        "2026-02-01",
    ]
    feb = health["censuses"][1]
    assert feb["classes"] == {
        "0": {"listed": 3, "checked": 3, "available": 3},
        "1": {"listed": 3, "checked": 3, "available": 1},
    }
    d = health["decay"]
    assert (d["obtained"], d["died"], d["census"], d["most_affected"]) == (6, 2, "2026-02-01", [1])
    assert d["classes"][0] == {
        "label": 1,
        "name": "class 1",
        "obtained": 3,
        "died": 2,
        "expected": 1.0,
        "residual": 1.0,
    }
    assert d["test"]["reliable"] is False and "too small" in d["test"]["note"]  # 6 videos: say so

    report = status_report(tmp_path, "dltest")
    assert report.health["decay"]["died"] == 2
    text = report.text()
    assert "2026-02-01        6         4           2       0       0" in text
    assert "died since the first download" in text and "too small for the chi-square" in text


def test_bias_test_finds_uneven_loss_and_knows_when_counts_are_too_small():
    uneven = loss_bias([(c, f"c{c}", 100, 40 if c == 3 else 10) for c in range(10)])
    assert uneven["test"]["p"] < 1e-6 and uneven["test"]["reliable"] and uneven["most_affected"][0] == 3
    even = loss_bias([(c, f"c{c}", 40, 8) for c in range(10)])
    assert even["test"]["p"] == pytest.approx(1.0) and even["test"]["reliable"] and even["died"] == 80
    small = loss_bias([(0, "a", 3, 0), (1, "b", 3, 2)])
    assert small["test"]["reliable"] is False and "too small" in small["test"]["note"]
    assert loss_bias([(0, "a", 5, 0), (1, "b", 5, 0)])["note"] == "no bias test: no obtained video died"
    assert loss_bias([(0, "a", 5, 1), (1, "b", 0, 0)])["note"] == "no bias test: one class only"


def test_census_command_and_its_breaker(tmp_path: Path, dl_card, clips):
    ids = make_ids(5, "k")
    layout = make_dataset(tmp_path, dict.fromkeys(ids, clips["ok"]))
    args = ["download", "dltest", "--root", str(tmp_path), "--retries", "0", "--timeout", "5"]
    with FaultServer(layout.mirror_dir) as srv:
        res = CliRunner().invoke(main, [*args, "--source", srv.mp4, "--recheck", "--json"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["totals"] == {"available": 5} and out["decay"]["obtained"] == 0  # nothing downloaded yet
        again = CliRunner().invoke(main, [*args, "--source", srv.mp4, "--recheck"])
        assert "0 asked" in again.stdout and "5 answered earlier today" in again.stdout  # today's census is done
        make_dataset(tmp_path / "other", dict.fromkeys(ids, clips["ok"]))
        for vid in ids:
            srv.faults[vid] = ("status", 429)
        other = ["--root", str(tmp_path / "other"), "--breaker", "2", "--jobs", "1"]
        res = CliRunner().invoke(main, [*args, "--source", srv.mp4, "--recheck", *other])
        assert len(srv.log) == 5 + 2  # the first census, then two refusals and nothing more
    assert res.exit_code == 3 and "--recheck" in res.stderr.splitlines()[-1]
    assert "the circuit breaker stopped the census" in res.stderr
    with pytest.raises(YtfgvcError, match="a folder has nothing to say"):
        recheck(tmp_path, cfg(str(tmp_path)), progress=False)
