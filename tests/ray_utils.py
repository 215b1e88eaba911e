"""Helpers for the Ray tests: comparing a root with the local executor's, finding task processes, a cluster.

Ray maps 127.0.0.1 to the machine's own address: its processes talk over this host's
interface, never beyond it. Token authentication (Ray >= 2.5x) is turned off for these
clusters, which live only for the test and only on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ytfgvc.distributed import ClusterConfig
from ytfgvc.download.ledger import Ledger
from ytfgvc.layout import DatasetLayout
from ytfgvc.prepare import PrepareConfig, prepare_dataset
from ytfgvc.snapshot import ok_video_ids
from ytfgvc.system.fsutil import sha256_file

TIMES = ("first_attempt", "last_attempt")
# Small frames keep TV-L1 cheap on two shared cores; flow for the two shortest videos only.
FRAMES = {"short_side": 64}
FLOW = {"short_side": 64, "flow": True, "flow_stack": 1}
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def copy_root(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def ledger_rows(root: Path, dataset: str = "synthetic") -> dict[str, dict]:
    """Every ledger row without its times (which differ from run to run)."""
    with Ledger(DatasetLayout(root, dataset).ledger_path, dataset, readonly=True) as ledger:
        return {vid: {k: v for k, v in r.to_dict().items() if k not in TIMES} for vid, r in ledger.records().items()}


def video_hashes(root: Path, dataset: str = "synthetic") -> dict[str, str]:
    """sha256 of every finished file under videos/, and the names of any temporaries left there."""
    folder = DatasetLayout(root, dataset).videos_dir
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.suffix == ".mp4" or p.name.startswith(".")}


def prepared_files(root: Path, dataset: str = "synthetic") -> dict[str, object]:
    """Everything ``prepare`` wrote (frames, flow, lists), by path; JSON files without their ``created`` time.

    Temporaries (``.tmp-*``) are included by name, so a test sees any left behind.
    """
    base = DatasetLayout(root, dataset).base
    out: dict[str, object] = {}
    for top in ("frames", "flow", "lists"):
        for p in sorted((base / top).rglob("*")) if (base / top).is_dir() else []:
            rel = p.relative_to(base).as_posix()
            if p.is_dir():
                if p.name.startswith("."):
                    out[rel] = "temporary folder"
                continue
            if p.suffix == ".json":
                obj = json.loads(p.read_text())
                obj.pop("created", None)
                out[rel] = obj
            else:
                out[rel] = p.read_bytes()
    return out


def prepare_both(root: Path, cluster: ClusterConfig | None = None, jobs: int = 0):
    """Frames for every video, then flow for the two shortest: what the prepare tests compare."""
    cluster = cluster or ClusterConfig()
    frames = prepare_dataset(root, "synthetic", PrepareConfig(jobs=jobs, cluster=cluster, **FRAMES))
    layout = DatasetLayout(root, "synthetic")
    shortest = sorted(ok_video_ids(layout), key=lambda v: (layout.frames_dir(v) / "meta.json").stat().st_size)[:2]
    flow = prepare_dataset(root, "synthetic", PrepareConfig(jobs=jobs, cluster=cluster, **FLOW), video_ids=shortest)
    return frames, flow


def task_pids(title: str) -> list[int]:
    """Processes whose title is ``title`` (Ray names a worker ``ray::<function>`` while it runs one)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace").strip() == title:
                    pids.append(int(d.name))
    return pids


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_cli() -> list[str]:
    exe = Path(sys.executable).parent / "ray"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@contextlib.contextmanager
def two_node_cluster() -> Iterator[str]:
    """A head and a worker node, each ``ray start --block`` in its own process (1 CPU each); yields the address.

    Stopped by signalling those two processes (which stop what they started), not ``ray stop``,
    which would stop every Ray on the machine.
    """
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ytfgvc-ray-")
    env = {**os.environ, **RAY_ENV}
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus", "1", "--disable-usage-stats"]
    head_args = ["start", "--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false"]
    procs = [subprocess.Popen([*_ray_cli(), *head_args, *common], env=env, start_new_session=True)]
    try:
        wait_for(lambda: _accepts(port), 60, "the Ray head")
        procs.append(
            subprocess.Popen([*_ray_cli(), "start", "--address", address, *common], env=env, start_new_session=True)
        )
        _wait_for_nodes(address, 2)
        yield address
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # the group this test started
                p.wait(10)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_nodes(address: str, n: int) -> None:
    import ray

    ray.init(address=address, logging_level="WARNING")
    try:
        wait_for(lambda: sum(1 for x in ray.nodes() if x["Alive"]) >= n, 60, f"{n} Ray nodes")
    finally:
        ray.shutdown()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
