"""``pip install .`` (not editable) gives a working ytfgvc outside the clone: cards, baselines and study files ship."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _tracked_copy(dest: Path) -> Path:
    """The files git tracks (and new files it does not ignore), copied to ``dest``: no stale build/ folder."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    for rel in filter(None, out.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the ytfgvc wheel built from this tree (torch & co. from this Python)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git clone to build the wheel from its tracked files")
    base = tmp_path_factory.mktemp("pkg")
    src = _tracked_copy(base / "src")
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
        check=True, capture_output=True,
    )  # fmt: skip
    env_dir = base / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    pip = env_dir / "bin" / "pip"
    wheel = next(wheels.glob("ytfgvc-*.whl"))
    subprocess.run([str(pip), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True)
    return env_dir


def _run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "YTFGVC_ROOT", "YTFGVC_CARDS")}
    return subprocess.run(
        [str(env_dir / "bin" / "ytfgvc"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_works_outside_the_clone(installed: Path, tmp_path: Path):
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import ytfgvc; print(ytfgvc.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(installed) in where and str(REPO) not in where  # the wheel's copy, not this checkout
    res = _run(installed, "benchmark", "--help", cwd=tmp_path)
    assert res.returncode == 0 and "--allow-scratch" in res.stdout
    res = _run(installed, "datasets", "--root", str(tmp_path / "data"), cwd=tmp_path)
    assert res.returncode == 0 and "birds" in res.stdout and "cars" in res.stdout  # the cards shipped
    args = ["study", "rra-vs-tsn", "--profile", "micro", "--root", str(tmp_path / "data"), "--no-figures"]
    res = _run(installed, *args, "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    report = tmp_path / "data" / "runs" / "study-micro" / "README.md"
    assert report.is_file() and "RRA" in report.read_text()
    assert not (tmp_path / "runs").exists()  # outputs under --root, not the working directory
