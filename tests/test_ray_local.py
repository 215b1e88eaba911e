"""``--executor ray`` on a Ray started in this process (``ray.init(num_cpus=2)``): same records as local runs.

Slow (Ray takes seconds to start): run with ``python -m pytest -m slow tests/test_ray_local.py``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from ytfgvc.distributed import ClusterConfig
from ytfgvc.download import DownloadConfig, download
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare import PrepareConfig, prepare_dataset
from ytfgvc.snapshot import ok_video_ids

from .loopback import FaultServer
from .ray_utils import (
    FLOW,
    FRAMES,
    RAY_ENV,
    copy_root,
    ledger_rows,
    prepare_both,
    prepared_files,
    task_pids,
    video_hashes,
    wait_for,
)

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

RAY = ClusterConfig("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One Ray (2 CPUs) for the module: starting one costs seconds."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in RAY_ENV.items():
            mp.setenv(k, v)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def reference(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic dataset downloaded by the local executor."""
    root = copy_root(synth_root, tmp_path_factory.mktemp("local") / "root")
    download(root, DownloadConfig(dataset="synthetic"), progress=False)
    return root


def _run(root: Path, cluster: ClusterConfig = RAY, **kw):
    return download(root, DownloadConfig(dataset="synthetic", cluster=cluster, **kw), progress=False)


@pytest.mark.parametrize("shared", [None, False], ids=["root-seen-by-nodes", "files-through-driver"])
def test_ray_download_records_what_local_records(local_ray, reference, synth_root, tmp_path, shared):
    root = copy_root(synth_root, tmp_path / "root")
    r = _run(root, ClusterConfig("ray", shared_root=shared))

    assert ledger_rows(root) == ledger_rows(reference)  # every column but the times
    assert video_hashes(root) == video_hashes(reference)  # same bytes, no temporaries left
    layout, ref = DatasetLayout(root, "synthetic"), DatasetLayout(reference, "synthetic")
    assert r.manifest_hash == json.loads(ref.manifest_path.read_text())["hash"]
    ok = len(ok_video_ids(layout))
    assert ok == 10 and r.totals == {"ok": 10, "filtered_duration": 1, "filtered_resolution": 1}
    # detected: this machine's node sees the root; forced off: every file came back through the driver
    assert r.cluster["returned"] == (0 if shared is None else ok)
    assert not list(layout.base.glob(".ytfgvc-shared-*"))  # the run's marker is gone

    again = _run(root)  # resumes like a local run: nothing left to do
    assert again.attempted == 0 and again.done_before == ok and again.manifest_hash == r.manifest_hash


def test_per_node_jobs_and_sleep(local_ray, synth_root, tmp_path):
    root = copy_root(synth_root, tmp_path / "root")
    with FaultServer(DatasetLayout(root, "synthetic").mirror_dir) as srv:
        r = _run(root, source=srv.mp4, jobs=1, sleep="0.3")
        starts = sorted(srv.first_requests().values())
    assert r.totals["ok"] == 10
    # Two CPUs run two tasks at once, but this node's pacer lets one video start every 0.3 s: 12 videos
    # span at least 3.3 s at the pacer, seen at the server give or take how long one request takes to
    # get there (unpaced, these tiny files take a second or two here).
    assert len(starts) == 12
    assert starts[-1] - starts[0] >= 11 * 0.3 - 0.6
    assert r.cluster["nodes"] == 1 and r.cluster["max_parallel"] == 1


def test_ray_slots_rotate_proxies_and_nodes_get_the_browser_cookies(local_ray, synth_root, tmp_path):
    from .test_download_passthrough import dead_origin, firefox_profile

    root = copy_root(synth_root, tmp_path / "root")
    profile = firefox_profile(tmp_path / "firefox", "127.0.0.1", "sid", "from-the-driver")
    mirror = DatasetLayout(root, "synthetic").mirror_dir
    with FaultServer(mirror) as p0, FaultServer(mirror) as p1:
        proxies = (f"http://127.0.0.1:{p0.port}", f"http://127.0.0.1:{p1.port}")
        r = _run(root, source=dead_origin(), jobs=2, proxy=proxies, cookies_from_browser=f"firefox:{profile}")
        assert r.totals["ok"] == 10  # the origin is dead: everything came through the two proxies
        assert p0.proxied and p1.proxied  # the node's two slots, one proxy each
        assert {c for srv in (p0, p1) for c in srv.cookies} == {"sid=from-the-driver"}


def test_node_breaker_stops_that_node_and_keeps_the_rest_pending(local_ray, synth_root, tmp_path):
    root = copy_root(synth_root, tmp_path / "root")
    mirror = DatasetLayout(root, "synthetic").mirror_dir
    with FaultServer(mirror) as srv:
        for p in mirror.glob("*.mp4"):
            srv.faults[p.stem] = ("status", 429)
        r = _run(root, source=srv.mp4, jobs=1, breaker=2, retries=0)
    assert r.stopped == "breaker" and "1 of 1 nodes stopped asking" in r.message
    assert "--executor ray" in r.message.splitlines()[-1]  # the command that resumes it
    assert r.totals["rate_limited"] >= 2 and r.totals["pending"] >= 12 - 3  # the node stopped asking
    assert r.totals["rate_limited"] + r.totals["pending"] == 12


def test_worker_killed_mid_download_is_retried_and_recorded_once(local_ray, reference, synth_root, tmp_path):
    root = copy_root(synth_root, tmp_path / "root")
    layout = DatasetLayout(root, "synthetic")
    victim = sorted(ok_video_ids(DatasetLayout(reference, "synthetic")))[0]
    results: list = []
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[victim] = ("hang", 2000)  # sends 2000 bytes, then waits

        def run() -> None:
            results.append(_run(root, source=srv.mp4, jobs=1))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        wait_for(lambda: any(m == "GET" for m, _, _ in srv.requested(victim)), 60, "the download to start")
        wait_for(lambda: any(layout.videos_dir.glob(f".tmp-{victim}/*")), 30, "the partial file")
        pids = task_pids("ray::download_task")
        assert pids
        del srv.faults[victim]  # the retry is served in full
        for pid in pids:  # the hung task's worker, and any other mid-task
            os.kill(pid, signal.SIGKILL)
        srv.release()
        t.join(120)
        assert not t.is_alive(), "the run did not finish after its worker was killed"
        gets = [m for m, _, _ in srv.requested(victim) if m == "GET"]
    assert len(gets) >= 4  # extraction and download, before and after the kill
    (r,) = results
    assert r.attempted == 12  # each video recorded once
    rows, ref = ledger_rows(root), ledger_rows(reference)
    assert {v: x["status"] for v, x in rows.items()} == {v: x["status"] for v, x in ref.items()}
    assert all(x["attempts"] == 1 for x in rows.values() if x["status"] == "ok")
    assert rows[victim]["sha256"] == ref[victim]["sha256"]  # the retry resumed into the same bytes
    assert video_hashes(root) == video_hashes(reference)


@pytest.fixture(scope="module")
def prepared_reference(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_root(reference, tmp_path_factory.mktemp("prepared") / "root")
    prepare_both(root, jobs=2)
    return root


@pytest.mark.parametrize("shared", [None, False], ids=["root-seen-by-nodes", "files-through-driver"])
def test_ray_prepare_writes_what_local_writes(local_ray, reference, prepared_reference, tmp_path, shared):
    root = copy_root(reference, tmp_path / "root")
    frames, flow = prepare_both(root, ClusterConfig("ray", shared_root=shared))
    assert frames.executor == "ray" and not frames.errors and frames.made_frames == 10
    assert not flow.errors and flow.made_flow == 2 and flow.flow_pairs > 0
    assert prepared_files(root) == prepared_files(prepared_reference)  # frames, flow, lists: same bytes
    again = prepare_dataset(root, "synthetic", PrepareConfig(cluster=RAY, **FRAMES))
    assert again.already == 10 and again.made_frames == 0


def test_prepare_worker_killed_mid_video_is_retried_and_reported_once(
    local_ray, reference, prepared_reference, tmp_path
):
    root = copy_root(reference, tmp_path / "root")
    prepare_dataset(root, "synthetic", PrepareConfig(cluster=RAY, **FRAMES))
    results: list = []
    t = threading.Thread(
        target=lambda: results.append(prepare_dataset(root, "synthetic", PrepareConfig(cluster=RAY, **FLOW))),
        daemon=True,
    )
    t.start()
    wait_for(lambda: bool(task_pids("ray::prepare_task")), 60, "a prepare task")
    killed = task_pids("ray::prepare_task")
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    t.join(300)
    assert not t.is_alive()
    (r,) = results
    assert not r.errors and r.made_flow == 10 and r.prepared == 10  # each video once, none lost
    layout = DatasetLayout(root, "synthetic")
    assert not [p for p in layout.flow_root.iterdir() if p.name.startswith(".")]  # the dead attempt's folder swept
    ref = prepared_files(prepared_reference)
    got = prepared_files(root)
    # Flow for all 10 here, for 2 in the reference: the flow lists and their counts in lists/meta.json differ
    flowless = {k: v for k, v in ref.items() if not k.startswith(("flow/", "lists/flow_", "lists/meta.json"))}
    assert {k: v for k, v in got.items() if not k.startswith(("flow/", "lists/flow_", "lists/meta.json"))} == flowless
    meta, ref_meta = dict(got["lists/meta.json"]), dict(ref["lists/meta.json"])
    assert meta.pop("flow") == {"train": 7, "test": 3} and ref_meta.pop("flow") == {"train": 2, "test": 0}
    assert meta == ref_meta
    assert got["lists/flow_test.txt"].count(b"\n") == 3  # every video with flow is listed
    assert all(got[k] == v for k, v in ref.items() if k.startswith("flow/"))  # the two the reference has
