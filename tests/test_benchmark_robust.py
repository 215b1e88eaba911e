"""``ytfgvc benchmark`` when the disk fills up: one line, the last checkpoint intact, --resume finishes."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import torch
from click.testing import CliRunner

from ytfgvc.cli import main

from . import tiny_models  # noqa: F401  (registers test_tiny_frames)
from .rawframes_utils import make_prepared


def test_a_full_disk_at_a_checkpoint_gives_one_line_and_resume_finishes(tmp_path: Path, monkeypatch):
    make_prepared(tmp_path / "data")
    out = tmp_path / "runs"
    args = [
        "benchmark", "synthetic", "--root", str(tmp_path / "data"), "--out", str(out), "--model", "tsn",
        "--preset", "smoke", "--set", "model.name=test_tiny_frames", "--input-size", "24", "--workers", "0",
        "--batch-size", "4", "--epochs", "3", "--no-progress", "--json", "--resume",
    ]  # fmt: skip
    real, saves = torch.save, []

    def full_at_second_epoch(obj, f, *a, **kw):
        saves.append(obj.get("epoch") if isinstance(obj, dict) else None)
        if len(saves) == 2:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(torch, "save", full_at_second_epoch)
        res = CliRunner().invoke(main, args)
    assert res.exit_code == 2, res.output
    run = out / "synthetic/tsn/smoke-seed0"
    assert json.loads(res.stdout)["error"].startswith(f"no space left on / (writing {run}")  # --json: on stdout
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1  # the last good one, whole
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]

    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["runs"][0]["status"] == "finished"
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3]
