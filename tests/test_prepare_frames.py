"""Frames: exact sampling by timestamp, size, orientation, codecs, and bad files."""

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ytfgvc.prepare.resample import select_frames, target_size

from .prepare_utils import encode, index_frames, level, read_jpeg, run_video


def expected_constant(n: int, fps: Fraction, sample: int) -> list[int]:
    """Written independently of the code: frame i is at i / fps; keep floor(k / sample * fps)."""
    last = Fraction(n - 1) / fps
    count = math.floor(last * sample) + 1
    return [math.floor(Fraction(k, sample) * fps) for k in range(count)]


@pytest.mark.parametrize(
    "fps, sample, n",
    [(Fraction(24000, 1001), 2, 60), (Fraction(25), 4, 53), (Fraction(30000, 1001), 4, 75), (Fraction(60), 2, 130)],
)
def test_constant_rate_keeps_exactly_the_frames_at_the_requested_times(tmp_path: Path, fps, sample, n):
    src = encode(tmp_path / "v0000000000.mp4", index_frames(n), fps)
    res, frames, _ = run_video(tmp_path, src, sample_fps=float(sample))
    assert res.error is None, res.error
    meta = json.loads((frames / "meta.json").read_text())
    want = expected_constant(n, fps, sample)
    assert meta["native_index"] == want
    assert meta["timestamps"] == [round(float(i / fps), 6) for i in want]
    assert meta["num_frames"] == len(want) == len(list(frames.glob("img_*.jpg")))
    assert meta["source"]["native_frames"] == n and meta["source"]["fps"] == str(fps)
    for k, i in enumerate(want):  # the pixels are those of the chosen native frame
        assert abs(read_jpeg(frames / f"img_{k + 1:05d}.jpg").mean() - level(i)) < 8  # neighbours differ by 23


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path: Path):
    times = [0, 40, 80, 200, 210, 220, 500, 1000, 1033, 1066]
    src = encode(tmp_path / "vfr00000000.mp4", index_frames(len(times)), times_ms=times)
    res, frames, _ = run_video(tmp_path, src, sample_fps=4.0)
    assert res.error is None, res.error
    meta = json.loads((frames / "meta.json").read_text())
    # targets 0, .25, .5, .75, 1.0 s: latest frame at or before each; 0.5 and 1.0 hit frames exactly
    assert meta["native_index"] == [0, 5, 6, 6, 7]
    assert meta["timestamps"] == [0.0, 0.22, 0.5, 0.5, 1.0]
    assert all(
        abs(read_jpeg(frames / f"img_{k:05d}.jpg").mean() - level(i)) < 8 for k, i in ((2, 5), (3, 6), (4, 6), (5, 7))
    )


def test_select_frames_rule_on_its_own():
    assert select_frames([Fraction(i, 10) for i in range(12)], 4) == [0, 2, 5, 7, 10]
    assert select_frames([Fraction(i, 2) for i in range(3)], 4) == [0, 0, 1, 1, 2]  # slower than asked: repeats
    assert select_frames([Fraction(0), Fraction(3, 10), Fraction(1, 10), Fraction(6, 10)], 2) == [0, 1]  # drops 0.1


def test_short_side_is_resized_keeping_aspect_and_never_upscaled(tmp_path: Path):
    assert target_size(1280, 720, 256) == (455, 256)
    assert target_size(720, 1280, 256) == (256, 455)
    assert target_size(480, 360, 256) == (341, 256)
    assert target_size(320, 240, 256) == (320, 240)  # never upscaled
    assert target_size(720, 576, 256, sar=Fraction(16, 15)) == (341, 256)  # square pixels first
    src = encode(tmp_path / "wide0000000.mp4", index_frames(10, h=90, w=160))
    _, frames, _ = run_video(tmp_path, src, short_side=45)
    assert read_jpeg(frames / "img_00001.jpg").shape == (45, 80, 3)
    meta = json.loads((frames / "meta.json").read_text())
    assert (meta["width"], meta["height"], meta["short_side"]) == (80, 45, 45)
    _, frames, _ = run_video(tmp_path / "big", src, short_side=256)
    assert read_jpeg(frames / "img_00001.jpg").shape == (90, 160, 3)


def test_portrait_video_keeps_its_shape(tmp_path: Path):
    src = encode(tmp_path / "portrait000.mp4", index_frames(10, h=160, w=90))
    _, frames, _ = run_video(tmp_path, src, short_side=45)
    assert read_jpeg(frames / "img_00001.jpg").shape == (80, 45, 3)


def _asymmetric(h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 4] = (0, 0, 255)  # red left band
    img[: h // 3, w // 2 :] = (255, 255, 255)  # white top-right block
    return img


@pytest.mark.parametrize(
    "rotation, hflip, expect",
    [
        (90, False, lambda a: np.rot90(a, 1)),  # what ffmpeg's CLI shows for these display matrices
        (270, False, lambda a: np.rot90(a, -1)),
        (180, False, lambda a: np.rot90(a, 2)),
        (0, True, lambda a: a[:, ::-1]),
    ],
)
def test_rotation_metadata_is_applied(tmp_path: Path, rotation, hflip, expect):
    src_img = _asymmetric()
    src = encode(tmp_path / "rotated0000.mp4", [src_img] * 5, pix_fmt="yuv444p", rotation=rotation, hflip=hflip)
    res, frames, _ = run_video(tmp_path, src)
    assert res.error is None, res.error
    got = read_jpeg(frames / "img_00001.jpg").astype(int)
    want = expect(src_img).astype(int)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 6
    meta = json.loads((frames / "meta.json").read_text())
    assert (meta["width"], meta["height"]) == (want.shape[1], want.shape[0])


def test_vp9_video(tmp_path: Path):
    src = encode(
        tmp_path / "vp9video000.webm",
        index_frames(20, h=48, w=64),
        fps=25,
        codec="libvpx-vp9",
        options={"lossless": "1", "deadline": "realtime", "cpu-used": "8"},
    )
    res, frames, _ = run_video(tmp_path, src, sample_fps=4.0)
    assert res.error is None, res.error
    meta = json.loads((frames / "meta.json").read_text())
    assert meta["source"]["codec"] == "vp9"
    assert meta["native_index"] == expected_constant(20, Fraction(25), 4)


def test_av1_video(tmp_path: Path):
    try:
        src = encode(tmp_path / "av1video000.mp4", index_frames(16, h=64, w=64), fps=16, codec="libsvtav1", options={})
    except Exception as e:  # the AV1 encoder is optional in FFmpeg builds
        pytest.skip(f"no AV1 encoder here: {e}")
    res, frames, _ = run_video(tmp_path, src, sample_fps=4.0)
    assert res.error is None, res.error
    assert json.loads((frames / "meta.json").read_text())["native_index"] == [0, 4, 8, 12]


def _assert_nothing_written(tmp: Path) -> None:
    left = [p for p in tmp.rglob("*") if p.is_dir() and p.parent.name in ("frames", "flow")]
    assert left == [], left


def test_corrupt_video_is_an_error_not_a_crash(tmp_path: Path):
    src = tmp_path / "corrupt0000.mp4"
    src.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    res, _, _ = run_video(tmp_path, src)
    assert res.error and res.error.startswith("corrupt")
    _assert_nothing_written(tmp_path)


def test_truncated_video_is_reported(tmp_path: Path):
    full = encode(
        tmp_path / "full.mp4",
        index_frames(100, h=48, w=64),
        options={"preset": "ultrafast"},
        container_options={"movflags": "faststart"},
    )
    data = full.read_bytes()
    src = tmp_path / "truncated00.mp4"
    src.write_bytes(data[: len(data) // 2])
    res, _, _ = run_video(tmp_path, src)
    assert res.error and "truncated" in res.error, res.error
    _assert_nothing_written(tmp_path)


def test_file_without_video_stream(tmp_path: Path):
    import av

    src = tmp_path / "audioonly00.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    res, _, _ = run_video(tmp_path, src)
    assert res.error == "no video stream"
    _assert_nothing_written(tmp_path)
