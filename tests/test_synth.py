"""The synthetic task's properties, measured from the decoded videos (not from the generator's settings)."""

import json
from pathlib import Path

import av
import numpy as np
import pytest

from ytfgvc.datasets import get_card
from ytfgvc.datasets.official import load_official
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout
from ytfgvc.synth import BODY_BGR, PALETTE, SCHEMA, SynthConfig, class_detail, generate

from .conftest import TINY_SYNTH
from .utils import decode_bgr


def _mask(frame: np.ndarray, bgr, tol: float) -> np.ndarray:
    return np.linalg.norm(frame.astype(np.float32) - np.array(bgr, np.float32), axis=-1) < tol


def test_same_seed_gives_identical_lists_and_frames(tmp_path: Path):
    cfg = SynthConfig(
        classes=2,
        videos_per_class=3,
        seed=5,
        min_duration_s=1,
        max_duration_s=2,
        too_long_fraction=0,
        too_small_fraction=0,
    )
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, cfg, jobs=2)
    generate(b, cfg, jobs=1)
    la, lb = load_official(a, "synthetic"), load_official(b, "synthetic")
    assert la == lb and len(la.train) + len(la.test) == 6
    for vid, _, _ in la.all_items():
        fa = decode_bgr(DatasetLayout(a, "synthetic").mirror_video(vid))
        fb = decode_bgr(DatasetLayout(b, "synthetic").mirror_video(vid))
        assert len(fa) == len(fb) and all(np.array_equal(x, y) for x, y in zip(fa, fb, strict=True))
    other = tmp_path / "c"
    generate(other, cfg.replace(seed=6), jobs=2)
    assert load_official(other, "synthetic").train != la.train


def test_rerun_is_a_noop_and_other_settings_need_force(synth_root: Path, tmp_path: Path):
    r = generate(synth_root, TINY_SYNTH, jobs=2)
    assert r.generated == 0 and r.skipped == 12 and r.imported["status"] == "unchanged"
    with pytest.raises(YtfgvcError, match="--force"):
        generate(synth_root, TINY_SYNTH.replace(seed=2))


def test_a_dataset_made_by_another_generator_version_needs_force(tmp_path: Path):
    base = DatasetLayout(tmp_path, "synthetic").base
    base.mkdir(parents=True)
    (base / "synth.json").write_text(json.dumps({"schema": "ytfgvc-synth-1", "config": TINY_SYNTH.to_dict()}))
    with pytest.raises(YtfgvcError, match=f"ytfgvc-synth-1.*{SCHEMA}") as err:
        generate(tmp_path, TINY_SYNTH)
    assert "--force" in err.value.hint and (base / "synth.json").is_file()


def test_videos_without_a_record_of_their_generator_are_not_resumed(tmp_path: Path):
    """A run killed before the config was recorded (an older version wrote it last) is not mixed with this one's."""
    layout = DatasetLayout(tmp_path, "synthetic")
    layout.mirror_dir.mkdir(parents=True)
    (layout.mirror_dir / "AAAAAAAAAAA.mp4").write_bytes(b"made by someone else")
    with pytest.raises(YtfgvcError, match="no record of the generator") as err:
        generate(tmp_path, TINY_SYNTH)
    assert "--force" in err.value.hint and (layout.mirror_dir / "AAAAAAAAAAA.mp4").is_file()


def test_lists_follow_the_official_format_and_split_ratio(synth_root: Path):
    layout = DatasetLayout(synth_root, "synthetic")
    train = json.loads(layout.official_file("train_list.json").read_text())
    labels = json.loads(layout.official_file("label2name.json").read_text())
    assert all(isinstance(v, str) and len(v) == 11 and isinstance(y, int) for v, y in train)
    assert set(labels) == {"0", "1", "2"}
    lists = load_official(synth_root, "synthetic")
    assert len(lists.test) == 3 and len(lists.train) == 9  # round(0.31 * 4) = 1 test video per class


def _probe(path: Path) -> tuple[float, int, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return float(c.duration / av.time_base), s.codec_context.width, s.codec_context.height


def test_some_videos_are_too_long_or_too_small_and_the_rest_pass(synth_root: Path):
    card = get_card("synthetic")
    layout = DatasetLayout(synth_root, "synthetic")
    long = small = ok = 0
    for vid, _, _ in load_official(synth_root, "synthetic").all_items():
        duration, w, h = _probe(layout.mirror_video(vid))
        with av.open(str(layout.mirror_video(vid))) as c:
            assert c.streams.video[0].codec_context.name == "h264"
        long += duration > card.filters.max_duration_s
        small += min(w, h) < card.filters.min_resolution
        ok += duration <= card.filters.max_duration_s and min(w, h) >= card.filters.min_resolution
    assert long >= 1 and small >= 1 and ok >= 9


def test_subject_is_visible_in_about_30_percent_of_frames_and_the_detail_is_small(synth_root: Path):
    layout = DatasetLayout(synth_root, "synthetic")
    lists = load_official(synth_root, "synthetic")
    fractions, detail_areas = [], []
    for vid, label, _ in lists.all_items():
        frames = decode_bgr(layout.mirror_video(vid))
        h, w = frames[0].shape[:2]
        if len(frames) > 200:  # the deliberately too-long video: skip for speed
            continue
        s = min(h, w)
        visible = []
        for f in frames:
            body = _mask(f, BODY_BGR, 40)
            is_visible = body.sum() > 0.01 * s * s
            visible.append(is_visible)
            if is_visible:
                ys, xs = np.nonzero(body)
                y0, y1 = max(0, ys.min() - int(0.3 * s)), ys.max()
                x0, x1 = max(0, xs.min() - int(0.1 * s)), xs.max() + int(0.1 * s)
                crest = _mask(f[y0:y1, x0:x1], PALETTE[label % len(PALETTE)], 70)
                detail_areas.append(crest.sum() / (h * w))
        fractions.append(np.mean(visible))
    assert 0.2 <= np.mean(fractions) <= 0.4, fractions
    assert all(0.1 <= fr <= 0.5 for fr in fractions), fractions
    assert 0.001 < np.median(detail_areas) <= 0.03, np.median(detail_areas)


def test_the_crest_keeps_its_class_colour_through_encoding(synth_root: Path):
    """In the decoded frames, the crest (per truth/) is nearest its own class colour, though distractors share them."""
    import cv2

    layout = DatasetLayout(synth_root, "synthetic")
    palette = np.array(PALETTE, np.float32)
    errors, right = [], 0
    for vid, label, _ in load_official(synth_root, "synthetic").all_items():
        assert class_detail(label)[1] == "solid"  # 3 classes: a filled disc, so its inside is all crest
        rows = json.loads(layout.truth_path(vid).read_text())["frames"]
        with av.open(str(layout.mirror_video(vid))) as c:
            for frame, (visible, cx, cy, r) in zip(c.decode(video=0), rows, strict=True):
                if not visible:
                    continue
                img = frame.to_ndarray(format="bgr24")
                inside = np.zeros(img.shape[:2], np.uint8)
                cv2.circle(inside, (cx, cy), max(1, int(0.7 * r)), 1, -1)  # away from the anti-aliased rim
                mean = img[inside.astype(bool)].astype(np.float32).mean(axis=0)
                dist = np.linalg.norm(palette - mean, axis=1)
                right += int(dist.argmin() == label % len(PALETTE))
                errors.append(dist[label % len(PALETTE)])
    assert len(errors) > 200
    assert right / len(errors) >= 0.99, right / len(errors)
    assert np.mean(errors) < 15, np.mean(errors)  # the palette's colours are >= 80 apart


# The truth files, the official lists and synth.json of TINY_SYNTH, hashed with the generator as it
# was before `visible_fraction` existed (commit baa7d61): the default output must not move.
DEFAULT_OUTPUT_SHA256 = "d634422a8218bbfeed84d3117494dfbb698fa5b8e527e63018bd3098a2251fe6"


def _output_digest(root: Path) -> str:
    import hashlib

    base = DatasetLayout(root, "synthetic").base
    h = hashlib.sha256()
    files = sorted((base / "truth").glob("*.json")) + sorted((base / "official").glob("*.json"))
    for p in [*files, base / "synth.json"]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_default_output_is_what_it_was_before_the_redundancy_knob(synth_root: Path):
    assert TINY_SYNTH.visible_fraction is None and "visible_fraction" not in TINY_SYNTH.to_dict()
    assert _output_digest(synth_root) == DEFAULT_OUTPUT_SHA256


def test_visible_span_is_centred_on_the_default_stretch_and_stays_inside():
    from ytfgvc.synth import visible_span

    assert visible_span(100, (40, 70), None) == (40, 70)
    assert visible_span(100, (40, 70), 0.1) == (50, 60)
    assert visible_span(100, (40, 70), 1.0) == (0, 100)
    assert visible_span(100, (0, 30), 0.6) == (0, 60)  # shifted inside the video, same length
    assert visible_span(100, (80, 100), 0.6) == (40, 100)
    assert visible_span(10, (3, 6), 0.01) == (3, 5)  # at least 2 frames
    with pytest.raises(YtfgvcError, match="visible-fraction"):
        SynthConfig(visible_fraction=0.0)


def test_visible_fraction_sets_the_share_of_frames_showing_the_bird(tmp_path: Path):
    """Measured from the truth files and the decoded videos; nothing else about a video changes."""
    cfg = SynthConfig(
        classes=2,
        videos_per_class=2,
        seed=3,
        min_duration_s=2.0,
        max_duration_s=3.0,
        too_long_fraction=0,
        too_small_fraction=0,
    )
    truths = {}
    for name, fraction in (("default", None), ("f010", 0.1), ("f100", 1.0)):
        root = tmp_path / name
        generate(root, cfg.replace(visible_fraction=fraction), jobs=1)
        layout = DatasetLayout(root, "synthetic")
        lists = load_official(root, "synthetic")
        truths[name] = {vid: json.loads(layout.truth_path(vid).read_text()) for vid, _, _ in lists.all_items()}
        if fraction is not None:
            assert json.loads((layout.base / "synth.json").read_text())["config"]["visible_fraction"] == fraction
        if name == "f010":  # decoded: the bird's body colour is on screen in the truth's frames only
            vid = sorted(truths[name])[0]
            rows = truths[name][vid]["frames"]
            frames = decode_bgr(layout.mirror_video(vid))
            s = min(frames[0].shape[:2])
            seen = [_mask(f, BODY_BGR, 40).sum() > 0.01 * s * s for f in frames]
            assert seen == [bool(r[0]) for r in rows]
    assert truths["default"].keys() == truths["f010"].keys() == truths["f100"].keys()
    for vid, t in truths["default"].items():
        n = t["num_frames"]
        start, end = t["visible_frames"]
        assert 0.2 <= (end - start) / n <= 0.4
        for name, fraction in (("f010", 0.1), ("f100", 1.0)):
            other = truths[name][vid]
            assert other["num_frames"] == n and other["label"] == t["label"]
            a, b = other["visible_frames"]
            assert b - a == min(n, max(2, round(fraction * n)))
            assert sum(r[0] for r in other["frames"]) == b - a
            assert abs((a + b) / 2 - (start + end) / 2) <= 1 or a == 0 or b == n  # same centre unless clipped
    assert all(all(r[0] for r in t["frames"]) for t in truths["f100"].values())
