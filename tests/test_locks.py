"""One process per dataset or run folder (system/locks.py): refusals that name the holder, dead holders taken over."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from ytfgvc.cli import main
from ytfgvc.system import locks
from ytfgvc.system.locks import Holder, LockHeld, exclusive

from .rawframes_utils import make_prepared
from .robust_utils import REPO, wait_for, ytfgvc


def hold(path: Path, record: Holder | None = None) -> subprocess.Popen:
    """Another process holding ``path``: through :func:`exclusive`, or by hand with a record of our making
    (what a process that died on another host leaves on a network filesystem until its lease runs out)."""
    if record is None:
        code = f"from ytfgvc.system.locks import exclusive\nwith exclusive({str(path)!r}, 'job'):\n"
    else:
        code = textwrap.dedent(f"""
            import fcntl, json, os
            fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)
            fcntl.lockf(fd, fcntl.LOCK_EX, 1, 0)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({dataclasses.asdict(record)!r}).encode(), 0)
            if True:
        """)
    code += "    print('held', flush=True); __import__('time').sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def iso(seconds_ago: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds_ago)).isoformat(timespec="seconds")


def test_a_held_lock_is_refused_in_one_line_naming_the_holder_and_freed_when_it_dies(tmp_path: Path):
    path = tmp_path / ".download.lock"
    holder = hold(path)
    try:
        with pytest.raises(LockHeld) as e, exclusive(path, "`ytfgvc download birds` on /data"):
            pass
        text = str(e.value)
        assert "\n" not in text and text.startswith("`ytfgvc download birds` on /data is already running (")
        who = rf"\(pid {holder.pid} on {re.escape(socket.gethostname())}, since 20[-0-9T:+]+, last heartbeat \d+ s ago;"
        assert re.search(who, text), text
        assert text.endswith("wait for it to end, or stop it (its finished work is kept); then run this command again")
        assert e.value.holder.pid == holder.pid
    finally:
        stop(holder)  # SIGKILL: the kernel drops its lock
    with exclusive(path, "job") as lock:
        assert lock.took_over is None
        record = json.loads(path.read_text())
        assert (record["pid"], record["host"], record["schema"]) == (os.getpid(), socket.gethostname(), locks.SCHEMA)
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"), exclusive(path, "job"):
            pass  # POSIX locks never refuse their own process: the registry does


def test_a_dead_holder_whose_lock_the_filesystem_keeps_is_taken_over(tmp_path: Path):
    path = tmp_path / ".lock"
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_here = Holder(pid=int(gone.stdout), host=socket.gethostname(), started=iso(100), heartbeat=iso(1))
    silent_there = Holder(pid=1, host="node-17", started=iso(900), heartbeat=iso(locks.STALE_AFTER_S + 5))
    for record in (dead_here, silent_there):
        stale = hold(path, record)
        try:
            with exclusive(path, "job") as lock:
                assert lock.took_over == record
                code = f"from ytfgvc.system.locks import exclusive\nwith exclusive({str(path)!r}, 'job'): pass"
                third = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
                assert "LockHeld" in third.stderr and f"pid {os.getpid()} on {socket.gethostname()}" in third.stderr
        finally:
            stop(stale)
        assert not [p for p in tmp_path.iterdir() if p.name != ".lock"]  # no temporary left behind


def test_a_live_holder_on_another_host_is_not_taken_over(tmp_path: Path):
    path = tmp_path / ".lock"
    there = Holder(pid=4242, host="node-3", started=iso(3600), heartbeat=iso(2))
    stale = hold(path, there)
    try:
        match = r"pid 4242 on node-3, since .*, last heartbeat \d+ s ago"
        with pytest.raises(LockHeld, match=match), exclusive(path, "job"):
            pass
    finally:
        stop(stale)


def test_a_holder_that_stalled_while_it_was_taken_over_knows_it_lost(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(locks, "HEARTBEAT_S", 0.05)
    path = tmp_path / ".lock"
    with exclusive(path, "`ytfgvc download birds`") as lock:
        lock.check()
        os.replace(path, tmp_path / "taken")  # what a takeover by another host does
        wait_for(lambda: lock.lost, timeout=5, what="the heartbeat to notice")
        with pytest.raises(Exception, match="another process took over"):
            lock.check()


def test_the_same_benchmark_run_started_twice_is_refused(tmp_path: Path):
    root = tmp_path / "data"
    make_prepared(root)
    args = [
        "benchmark", "synthetic", "--root", root, "--out", tmp_path / "runs", "--model", "tsn", "--preset", "smoke",
        "--import", "tests.tiny_models", "--set", "model.name=test_tiny_frames", "--input-size", "24",
        "--workers", "0", "--batch-size", "4", "--epochs", "200", "--no-progress", "--resume",
    ]  # fmt: skip
    first = ytfgvc(*args, env={"OMP_NUM_THREADS": "1"})
    lock = tmp_path / "runs/synthetic/tsn/smoke-seed0/.lock"
    try:
        wait_for(lambda: lock.is_file() and f'"pid": {first.pid},' in lock.read_text(), what="the first run to start")
        second = CliRunner().invoke(main, [str(a) for a in args])
        assert second.exit_code == 2 and second.stderr.count("\n") == 1, second.output
        assert second.stderr.startswith(f"error: `ytfgvc benchmark` of {lock.parent} is already running (pid ")
        assert f"(pid {first.pid} on {socket.gethostname()}, since " in second.stderr
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=60)
        assert first.returncode == 143, err
        assert "interrupted (SIGTERM): finished work is kept; resume with:" in err
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
