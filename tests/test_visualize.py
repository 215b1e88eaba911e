"""Attention visualisation (eq. 7, Fig. 4) of a toy RRA trained here, and ``ytfgvc visualize``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from ytfgvc.benchmark.visualize import normalise, visualize_run
from ytfgvc.cli import main
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.models import create_model

from .torch_threads import one_torch_thread  # noqa: F401 - autouse

SIZE, SEGMENTS, BOX = 48, 2, 10
COLOURS = [(230, 30, 30), (30, 230, 30)]  # the class is the colour of a small box in one frame
VIDEO_ID, BOX_AT = "toyvideo001", (4, 20, 26)  # frame index 4 is the second test frame of 6; box row, col


def toy_clip(rng: np.random.Generator, label: int, frames: int, box_at: tuple[int, int, int]) -> np.ndarray:
    clip = rng.integers(90, 165, size=(frames, SIZE, SIZE, 3), dtype=np.uint8)
    t, r, c = box_at
    clip[t, r : r + BOX, c : c + BOX] = COLOURS[label]
    return clip


def train_toy_rra(steps: int = 60) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("rra", 2, backbone="tiny", glimpses=2, num_segments=SEGMENTS, dropout=0.0)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    model.train()
    for _ in range(steps):
        labels = rng.integers(0, 2, size=16)
        clips = []
        for y in labels:
            at = (int(rng.integers(SEGMENTS)), *rng.integers(0, SIZE - BOX, size=2).tolist())
            clips.append(normalise(toy_clip(rng, int(y), SEGMENTS, at), model.input_mean, model.input_std))
        loss = model.compute_loss(model(torch.stack(clips)), torch.as_tensor(labels))
        optim.zero_grad()
        loss.backward()
        optim.step()
    return model.eval()


def write_run(tmp: Path, model: torch.nn.Module, name: str, kwargs: dict) -> Path:
    run, root = tmp / "runs" / name, tmp / "data"
    run.mkdir(parents=True)
    config = {"dataset": "synthetic", "root": str(root), "model": {"name": name, "kwargs": kwargs},
              "num_classes": 2, "num_segments": SEGMENTS, "input_size": SIZE}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({"model": model.state_dict(), "epoch": 3}, run / "checkpoint.pt")
    folder = DatasetLayout(root, "synthetic").frames_dir(VIDEO_ID)
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(toy_clip(np.random.default_rng(7), 1, 6, BOX_AT)):
        cv2.imwrite(str(folder / DatasetLayout.frame_name(i + 1)), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return run


@pytest.fixture(scope="module")
def rra_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures start before the autouse one
    try:
        model = train_toy_rra()
    finally:
        torch.set_num_threads(before)
    return write_run(tmp_path_factory.mktemp("vis"), model, "rra", {"backbone": "tiny", "glimpses": 2})


def test_heat_maps_of_a_trained_toy_model_point_at_the_discriminative_box(rra_run: Path, tmp_path: Path):
    v = visualize_run(rra_run, VIDEO_ID, out=tmp_path / "vis.png")
    assert v.frame_numbers == [2, 5]  # file numbers: img_00002.jpg, img_00005.jpg
    assert set(v.heat) == {"I1vis", "I2vis", "suppressed 1"}
    assert v.predictions["ensemble"] == 1  # the box is green: class 1
    t, r, c = BOX_AT
    for name in ("I1vis", "I2vis"):
        heat = v.heat[name]  # (frames, H, W), smoothed and scaled to [0, 1]
        assert heat.std() > 0.05, name  # not uniform
        near_box = heat[1, max(r - 4, 0) : r + BOX + 4, max(c - 4, 0) : c + BOX + 4].sum() / heat.sum()
        area = (BOX + 8) ** 2 / heat.size
        assert near_box > 4 * area, (name, near_box, area)  # the empty frame and the background stay cold
    assert len(v.suppressed_channels) == 1 and len(v.suppressed_channels[0]) == 4
    png = cv2.imread(str(v.path))
    assert png is not None and png.shape[0] > 2 * SIZE and png.std() > 10


def test_visualize_command_writes_the_grid(rra_run: Path, tmp_path: Path):
    out = tmp_path / "grid.png"
    res = CliRunner().invoke(main, ["visualize", str(rra_run), VIDEO_ID, "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["path"] == str(out) and out.is_file() and summary["frame_numbers"] == [2, 5]
    assert set(summary["predictions"]) == {"ensemble", "glimpse 1", "glimpse 2"}
    res = CliRunner().invoke(main, ["visualize", str(rra_run), VIDEO_ID, "--no-suppressed", "--frames", "3"])
    assert res.exit_code == 0, res.output
    assert "3 frames x 2 maps" in res.output and (rra_run / "visualize" / f"{VIDEO_ID}.png").is_file()


def test_visualize_explains_what_is_wrong(rra_run: Path, tmp_path: Path):
    runner = CliRunner()
    res = runner.invoke(main, ["visualize", str(rra_run), "../../etc"])
    assert res.exit_code == 2 and "invalid video id" in res.output
    res = runner.invoke(main, ["visualize", str(rra_run), "missingvid1"])
    assert res.exit_code == 2 and "ytfgvc prepare synthetic" in res.output
    res = runner.invoke(main, ["visualize", str(tmp_path), VIDEO_ID])
    assert res.exit_code == 2 and "not a run folder" in res.output
    tsn = write_run(tmp_path, create_model("tsn", 2, backbone="tiny"), "tsn", {"backbone": "tiny"})
    res = runner.invoke(main, ["visualize", str(tsn), VIDEO_ID])
    assert res.exit_code == 2 and "no attention to visualise" in res.output
    with pytest.raises(YtfgvcError, match="averages instead of attending"):
        avg = create_model("rra", 2, backbone="tiny", variant="avgpool")
        kwargs = {"backbone": "tiny", "variant": "avgpool"}
        visualize_run(write_run(tmp_path / "avg", avg, "rra", kwargs), VIDEO_ID)


def test_visualize_reads_the_packed_store_and_flow_runs(rra_run: Path, tmp_path: Path):
    from ytfgvc.store.repack import repack_folder

    from .rawframes_utils import write_flow

    root = Path(yaml.safe_load((rra_run / "config.yaml").read_text())["root"])
    packed = tmp_path / "packed"
    shutil.copytree(root, packed)
    layout = DatasetLayout(packed, "synthetic")
    (layout.frames_dir(VIDEO_ID) / "meta.json").write_text("{}")
    repack_folder(layout.frames_dir(VIDEO_ID), layout.frames_archive(VIDEO_ID))
    folder_v = visualize_run(rra_run, VIDEO_ID, out=tmp_path / "a.png")
    packed_v = visualize_run(rra_run, VIDEO_ID, out=tmp_path / "b.png", root=packed)
    assert packed_v.frame_numbers == folder_v.frame_numbers and packed_v.predictions == folder_v.predictions
    assert all(np.array_equal(packed_v.heat[k], folder_v.heat[k]) for k in folder_v.heat)
    write_flow(layout.flow_dir(VIDEO_ID), 6, 2, (SIZE, SIZE), np.random.default_rng(1))
    flow_model = create_model("rra", 2, backbone="tiny", glimpses=2, modality="flow", flow_stack=2)
    run = write_run(tmp_path / "flow", flow_model, "rra", {"backbone": "tiny", "glimpses": 2, "modality": "flow",
                                                            "flow_stack": 2})  # fmt: skip
    cfg = yaml.safe_load((run / "config.yaml").read_text()) | {"modality": "flow", "flow_stack": 2}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    v = visualize_run(run, VIDEO_ID, out=tmp_path / "flow.png", root=packed)
    assert v.frame_numbers == [2, 5] and v.path.is_file() and set(v.heat) >= {"I1vis", "I2vis"}
