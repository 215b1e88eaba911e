"""The study: attention mass on the planted detail (exact, hand-made) and the micro profile end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from ytfgvc.study.attention import attention_on_detail, attention_on_visible_frames, crest_mask


def _hand_made() -> tuple[np.ndarray, np.ndarray]:
    # 2 frames of 4x4 pixels, 2x2 cells. Frame 0: the detail fills cell (0, 0) and half of cell (0, 1).
    masks = np.zeros((2, 4, 4), bool)
    masks[0, 0:2, 0:2] = True
    masks[0, 0:2, 2] = True
    att = np.zeros((2, 2, 2, 2))
    att[0, 0, 0, 0] = 1.0  # glimpse 1: all on the detail's full cell
    att[1, 0, 0, 1] = 0.5  # glimpse 2: half on the half-covered cell ...
    att[1, 1, 0, 0] = 0.5  # ... half on the frame without the detail
    return att, masks


def test_attention_mass_on_detail_is_exact():
    att, masks = _hand_made()
    on, chance = attention_on_detail(att, masks)
    assert on.tolist() == [1.0, 0.25]
    assert chance == (1 + 0.5) / 8  # the detail's area share: 6 of 32 pixels


def test_attention_mass_on_frames_showing_the_detail():
    att, masks = _hand_made()
    on, share = attention_on_visible_frames(att, masks)
    assert on.tolist() == [1.0, 0.5]
    assert share == 0.5


def test_crest_mask_maps_source_pixels_to_the_centre_crop():
    # A 200x100 source written as 128x64 frames, centre-cropped to 64x64: x -> 0.64 x - 32.
    mask = crest_mask([1, 100, 50, 10], (200, 100), (128, 64), 64)
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() + 0.5 - 32) < 0.01 and abs(ys.mean() + 0.5 - 32) < 0.01
    assert abs(mask.sum() - np.pi * 6.4**2) < 8
    assert not crest_mask([0, 100, 50, 10], (200, 100), (128, 64), 64).any()
    assert not crest_mask([1, 10, 50, 10], (200, 100), (128, 64), 64).any()  # outside the crop


def test_micro_study_end_to_end(synth_root: Path, tmp_path: Path):
    from ytfgvc.cli import main

    root = tmp_path / "data"
    shutil.copytree(synth_root / "synthetic", root / "study-micro" / "synthetic")  # same config as the profile
    runs = tmp_path / "runs"
    args = ["study", "rra-vs-tsn", "--profile", "micro", "--root", str(root), "--out", str(runs), "--no-progress"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = runs / "study-micro" / "README.md"
    text = report.read_text()
    assert "| tsn | tsn |" in text and "| rra | rra |" in text
    assert "pooled over seeds" in text and "pp [" in text
    assert "RRA beats TSN" in text or "RRA does NOT beat TSN" in text
    assert "### Table 4 (right)" in text and "| 1 | spatio-temporal average pooling" in text
    assert "80.20" in text and "83.42" in text  # the paper's numbers beside ours
    assert "glimpse 4 on crest" in text
    assert list((runs / "study-micro" / "figures").glob("micro-*.png"))
    # Rebuilding from the run folders gives the same tables.
    report.unlink()
    res = CliRunner().invoke(main, [*args, "--results-only", "--no-figures"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "| rra | rra |" in report.read_text()
    # Exported records (no checkpoints, no data) are enough to rebuild the same report.
    export = tmp_path / "export"
    res = CliRunner().invoke(main, [*args, "--results-only", "--no-figures", "--export", str(export)])
    assert res.exit_code == 0, res.output
    assert not list(export.rglob("checkpoint.pt"))
    again = export / "study-micro" / "README-again.md"  # beside the exported figures
    args2 = ["study", "rra-vs-tsn", "--profile", "micro", "--root", str(tmp_path / "none"), "--out", str(export)]
    res = CliRunner().invoke(main, [*args2, "--results-only", "--report", str(again)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert again.read_text() == report.read_text()
