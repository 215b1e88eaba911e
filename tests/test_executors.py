"""``--executor``: its options, the message without Ray, the node pacer, shared-root detection, returned files.

No Ray cluster here (those tests are ``slow``: tests/test_ray_*.py); the pacer's logic runs on asyncio.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.distributed import ClusterConfig
from ytfgvc.distributed import cluster as cl
from ytfgvc.download import DownloadConfig
from ytfgvc.download.pacing import NodePacer
from ytfgvc.download.remote import keep_returned
from ytfgvc.download.worker import Outcome
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.system.fsutil import sha256_bytes


def test_cluster_options_are_checked_and_resumed():
    with pytest.raises(YtfgvcError, match="--executor 'spark'"):
        ClusterConfig("spark")
    with pytest.raises(YtfgvcError, match="go with --executor ray"):
        ClusterConfig("local", ray_address="auto")
    cfg = DownloadConfig(dataset="birds", cluster=ClusterConfig("ray", "auto", False))
    assert cfg.command(Path("/data")).endswith("--executor ray --ray-address auto --no-ray-shared-root")
    assert DownloadConfig.from_dict(cfg.to_dict()) == cfg  # recorded in the ledger's runs, read back
    assert "--executor" not in DownloadConfig(dataset="birds").command(Path("/data"))


@pytest.mark.parametrize("command", ["download", "prepare"])
def test_executor_ray_without_ray_says_how_to_install(tmp_path, monkeypatch, command):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    r = CliRunner().invoke(main, [command, "synthetic", "--root", str(tmp_path), "--executor", "ray"])
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: --executor ray needs Ray, which is not installed: pip install 'ytfgvc[ray]'"
    ]
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("command", ["download", "prepare"])
def test_ray_options_need_executor_ray(tmp_path, command):
    r = CliRunner().invoke(main, [command, "synthetic", "--root", str(tmp_path), "--ray-address", "auto"])
    assert r.exit_code == 2 and "add --executor ray" in r.output


# --------------------------------------------------------------------------- the node pacer


def test_pacer_gives_jobs_slots_and_spaces_starts():
    async def scenario() -> tuple[list[float], int | None]:
        pacer = NodePacer(jobs=2, lo=0.1, hi=0.1, breaker_limit=3)
        me = __import__("os").getpid()
        t0 = time.monotonic()
        a, b = await pacer.acquire(me), await pacer.acquire(me)
        starts = [time.monotonic() - t0]
        third = asyncio.ensure_future(pacer.acquire(me))
        await asyncio.sleep(0.3)
        assert not third.done()  # two slots, both held
        pacer.release(a)
        c = await asyncio.wait_for(third, 2)
        starts.append(time.monotonic() - t0)
        pacer.release(b), pacer.release(c), pacer.release(c)  # giving back twice is harmless
        return starts, pacer.state()["held"]

    starts, held = asyncio.run(scenario())
    assert starts[0] >= 0.1 - 0.01  # the second start waited for the first's spacing
    assert starts[1] >= 0.3 and held == 0


def test_pacer_takes_back_slots_of_dead_workers():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    async def scenario() -> int | None:
        pacer = NodePacer(jobs=1, lo=0, hi=0, breaker_limit=3)
        assert await pacer.acquire(dead.pid) is not None  # then its worker is killed, holding the slot
        return await asyncio.wait_for(pacer.acquire(__import__("os").getpid()), 2)

    assert asyncio.run(scenario()) is not None


def test_pacer_breaker_stops_the_node():
    async def scenario() -> tuple:
        pacer = NodePacer(jobs=4, lo=0, hi=0, breaker_limit=2)
        pid = __import__("os").getpid()
        slot = await pacer.acquire(pid)
        pacer.observe("ok", None)
        pacer.observe("rate_limited", "HTTP 429")
        still = await pacer.acquire(pid)
        pacer.observe("rate_limited", "HTTP 429")
        return slot, still, await pacer.acquire(pid), pacer.state()

    slot, still, after, state = asyncio.run(scenario())
    assert slot is not None and still is not None and after is None
    assert state["tripped"] == "rate_limited" and state["last_reason"] == "HTTP 429"


# --------------------------------------------------------------------------- shared root and returned files


def test_shared_root_marker_is_seen_where_the_root_is(tmp_path, monkeypatch):
    layout = DatasetLayout(tmp_path / "root", "synthetic")
    elsewhere = DatasetLayout(tmp_path / "other", "synthetic")
    with cl.shared_root_marker(layout) as token:
        assert cl.resolve_shared(layout, token, None, "node-a") is True
        assert cl.resolve_shared(layout, token, False, "node-a") is False  # --no-ray-shared-root
        assert cl.resolve_shared(elsewhere, token, None, "node-b") is False  # not seen: files come back
        assert cl.resolve_shared(layout, "0" * 32, None, "node-a") is False  # another run's token
        monkeypatch.setattr(cl, "MARKER_WAIT_S", 0.1)
        with pytest.raises(YtfgvcError, match="node node-b does not see"):
            cl.resolve_shared(elsewhere, token, True, "node-b")
    assert not list(layout.base.iterdir())  # the marker is removed at the end


def test_returned_files_are_written_whole_or_not_at_all(tmp_path):
    layout = DatasetLayout(tmp_path, "synthetic")
    vid, data = "abcdefghijk", b"\x00\x01video bytes"
    out = Outcome(vid, "ok", sha256=sha256_bytes(data), bytes=len(data))
    damaged = keep_returned(layout, out, {"video": data[:-1], "info": b"{}"})
    assert damaged.status == "error" and "damaged" in damaged.reason
    assert not layout.video_path(vid).exists() and not layout.info_path(vid).exists()
    kept = keep_returned(layout, out, {"video": data, "info": b"{}\n"})
    assert kept.status == "ok" and layout.video_path(vid).read_bytes() == data
    assert [p.name for p in layout.videos_dir.iterdir() if p.name.startswith(".")] == []


def test_returned_folders_round_trip_and_stay_inside(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "img_00001.jpg").write_bytes(b"a")
    (src / "sub" / "meta.json").write_bytes(b"{}")
    files = cl.read_tree(src)
    assert files == {"img_00001.jpg": b"a", "sub/meta.json": b"{}"}
    cl.write_tree(tmp_path / "dest", files)
    assert cl.read_tree(tmp_path / "dest") == files
    with pytest.raises(ValueError, match="outside"):
        cl.write_tree(tmp_path / "evil", {"../escape": b"x"})
    assert not (tmp_path / "escape").exists() and not (tmp_path / "evil").exists()


def test_prepare_tasks_ask_for_a_gpu_only_for_torch_flow_on_a_gpu_cluster():
    from ytfgvc.prepare.config import VideoSettings
    from ytfgvc.prepare.remote import gpus_per_task
    from ytfgvc.prepare.video import VideoJob

    def jobs(backend: str, write_flow: bool = True, **params) -> list[VideoJob]:
        settings = VideoSettings(4.0, 256, 95, backend, flow_format="jpg", flow_stack=5, flow_params=params)
        return [VideoJob("abcdefghijk", "a.mp4", "f", "w", settings, write_flow=write_flow)]

    assert gpus_per_task(jobs("torch"), cluster_gpus=8) == 1
    assert gpus_per_task(jobs("torch"), cluster_gpus=0) == 0  # runs on the CPUs
    assert gpus_per_task(jobs("torch", device="cpu"), cluster_gpus=8) == 0
    assert gpus_per_task(jobs("opencv"), cluster_gpus=8) == 0
    assert gpus_per_task(jobs("torch", write_flow=False), cluster_gpus=8) == 0  # frames only
