"""``--executor ray`` on a cluster of two nodes, a head and a worker, each started by ``ray start`` in its own process.

Slow (a cluster takes seconds to start): ``python -m pytest -m slow tests/test_ray_cluster.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ytfgvc.distributed import ClusterConfig
from ytfgvc.download import DownloadConfig, download
from ytfgvc.layout import DatasetLayout
from ytfgvc.snapshot import ok_video_ids

from .loopback import FaultServer
from .ray_utils import (
    RAY_ENV,
    copy_root,
    ledger_rows,
    prepare_both,
    prepared_files,
    task_pids,
    two_node_cluster,
    video_hashes,
    wait_for,
)

pytest.importorskip("ray")
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    """The address of a two-node cluster on this machine (one CPU each), for the module."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in RAY_ENV.items():
            mp.setenv(k, v)
        with two_node_cluster() as address:
            yield address


@pytest.fixture(scope="module")
def reference(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_root(synth_root, tmp_path_factory.mktemp("local") / "root")
    download(root, DownloadConfig(dataset="synthetic"), progress=False)
    return root


@pytest.fixture(scope="module")
def prepared_reference(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_root(reference, tmp_path_factory.mktemp("prepared") / "root")
    prepare_both(root, jobs=2)
    return root


def test_two_nodes_prepare_what_local_prepares(cluster, reference, prepared_reference, tmp_path):
    root = copy_root(reference, tmp_path / "root")
    frames, flow = prepare_both(root, ClusterConfig("ray", ray_address=cluster))
    assert frames.made_frames == 10 and flow.made_flow == 2 and not frames.errors and not flow.errors
    assert prepared_files(root) == prepared_files(prepared_reference)


def test_two_nodes_download_what_local_downloads(cluster, reference, synth_root, tmp_path):
    root = copy_root(synth_root, tmp_path / "root")
    r = download(
        root, DownloadConfig(dataset="synthetic", cluster=ClusterConfig("ray", ray_address=cluster)), progress=False
    )
    assert r.cluster["nodes"] == 2 and len(r.cluster["videos_per_node"]) == 2  # both nodes did some
    assert ledger_rows(root) == ledger_rows(reference)
    assert video_hashes(root) == video_hashes(reference)
    ref_manifest = json.loads(DatasetLayout(reference, "synthetic").manifest_path.read_text())
    assert r.manifest_hash == ref_manifest["hash"]


def test_driver_killed_mid_run_resumes_from_the_ledger(cluster, reference, synth_root, tmp_path):
    root = copy_root(synth_root, tmp_path / "root")
    layout = DatasetLayout(root, "synthetic")
    ids = [vid for vid, _ in json.loads(layout.official_file("train_list.json").read_text())]
    victim = next(v for v in ids[4:] if v in ok_video_ids(DatasetLayout(reference, "synthetic")))
    with FaultServer(layout.mirror_dir) as srv:
        srv.faults[victim] = ("hang", 2000)
        args = ["download", "synthetic", "--root", str(root), "--source", srv.mp4, "--jobs", "1"]
        args += ["--executor", "ray", "--ray-address", cluster]
        driver = subprocess.Popen(
            [sys.executable, "-m", "ytfgvc", *args],
            cwd=REPO,
            env={**os.environ, **RAY_ENV},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: any(m == "GET" for m, _, _ in srv.requested(victim)), 90, "the hung download")
            wait_for(lambda: any(layout.videos_dir.glob(f".tmp-{victim}/*")), 30, "the partial file")
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(30)
        wait_for(lambda: not task_pids("ray::download_task"), 60, "Ray to end the dead driver's tasks")
        del srv.faults[victim]
        srv.release()
        r = download(
            root,
            DownloadConfig(dataset="synthetic", source=srv.mp4, cluster=ClusterConfig("ray", ray_address=cluster)),
            progress=False,
        )
    # Every id is accounted for once: recorded ok before the kill, recorded as a permanent failure
    # before the kill (not asked again), fetched now, or (a file renamed into videos/ in the last
    # second before the kill, whose ledger row was not committed yet) verified now without a
    # request. Which ids fall in which case depends on when the kill lands.
    assert r.done_before + sum(r.settled.values()) + sum(r.this_run.values()) == 12
    assert r.totals == {"ok": 10, "filtered_duration": 1, "filtered_resolution": 1}
    rows, ref = ledger_rows(root), ledger_rows(reference)
    assert {v: (x["status"], x["sha256"]) for v, x in rows.items()} == {
        v: (x["status"], x["sha256"]) for v, x in ref.items()
    }
    assert video_hashes(root) == video_hashes(reference)  # nothing half-written left, nothing missing
    assert r.manifest_hash == json.loads(DatasetLayout(reference, "synthetic").manifest_path.read_text())["hash"]
