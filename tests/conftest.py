"""Shared fixtures. No network but 127.0.0.1; every video is made here, in the test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from ytfgvc.synth import SynthConfig, generate

from .loopback import clips, dl_card  # noqa: F401 - fixtures of the download tests

# Small enough for seconds on 2 cores, big enough to have one too-long and one too-small video.
TINY_SYNTH = SynthConfig(classes=3, videos_per_class=4, seed=1, min_duration_s=2.0, max_duration_s=4.0)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding a tiny synthetic dataset (generated once per test session; treat as read-only)."""
    root = tmp_path_factory.mktemp("synth-root")
    generate(root, TINY_SYNTH, jobs=2)
    return root


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("YTFGVC_ROOT", raising=False)
    monkeypatch.delenv("YTFGVC_CARDS", raising=False)
