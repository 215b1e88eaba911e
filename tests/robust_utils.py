"""Real processes for the robustness tests: start ytfgvc, find its process tree in /proc, wait for things."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ytfgvc.system.lifeline import is_alive, process_start

REPO = Path(__file__).resolve().parent.parent


def ytfgvc(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m ytfgvc ARGS`` of this checkout in a process of its own (stdout and stderr piped, as text)."""
    cmd = [sys.executable, "-m", "ytfgvc", *map(str, args)]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                ppid = next(int(line.split()[1]) for line in f if line.startswith("PPid:"))
        except (OSError, StopIteration, ValueError):
            continue
        if ppid == pid:
            out.append(int(name))
    return out


def descendants(pid: int) -> dict[int, int | None]:
    """Every process below ``pid``, with its start time (so a reused pid is not taken for it later)."""
    found, todo = {}, [pid]
    while todo:
        for child in _children(todo.pop()):
            found[child] = process_start(child)
            todo.append(child)
    return found


def alive(procs: dict[int, int | None]) -> list[int]:
    return [pid for pid, start in procs.items() if is_alive(pid, start)]


@contextlib.contextmanager
def small_tmpfs(path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``path`` for the block (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True)
    try:
        res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    except FileNotFoundError:
        pytest.skip("no mount command here to make a small full filesystem")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow_tmpfs(path: Path, size: str = "64m") -> None:
    """Free space: the tmpfs at ``path`` gets bigger."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def json_error_line(stdout: str, stderr: str) -> str:
    """A ``--json`` run's error (a JSON object on stdout, nothing on stderr but notes) as the line a person sees."""
    import json

    assert not [ln for ln in stderr.splitlines() if not ln.startswith("note: ")], stderr
    error = json.loads(stdout)
    assert error["exit_status"] == 2 and "Traceback" not in stdout
    return f"error: {error['error']}" + (f"; {error['hint']}" if error.get("hint") else "") + "\n"
