"""Where the protocol looks inside a frame: TSN's multi-scale crop and the 10 test crops."""

import numpy as np
import pytest
import torch

from ytfgvc.data.transforms import (
    MultiScaleCrop,
    OverSample,
    View,
    apply_views,
    apply_views_batch,
    crop_sizes,
    fixed_offsets,
    scale_pairs,
    scaled_size,
    ten_crop_views,
)


def test_thirteen_fixed_offsets_as_tsn():
    # 340x256 frame, 224 crop: steps (340-224)//4 = 29 and (256-224)//4 = 8
    assert fixed_offsets(340, 256, 224, 224) == [
        (0, 0), (116, 0), (0, 32), (116, 32), (58, 16),
        (0, 16), (116, 16), (58, 32), (58, 0), (29, 8), (87, 8), (29, 24), (87, 24),
    ]  # fmt: skip
    assert fixed_offsets(340, 256, 224, 224, more_fix_crop=False) == [(0, 0), (116, 0), (0, 32), (116, 32), (58, 16)]


def test_crop_sizes_and_scale_pairs():
    assert crop_sizes(340, 256, 224) == [256, 224, 192, 168]
    assert crop_sizes(256, 455, 299) == [256, 224, 192, 168]  # portrait: the short side is the width
    assert crop_sizes(256, 256, 222) == [256, 222, 192, 168]  # within 3 px of the input size: snapped
    assert scale_pairs(4, 1) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 2), (3, 3)]


def test_multiscale_crop_view_for_a_draw():
    crop = MultiScaleCrop(224)
    # pair 1 = (h: scale 0, w: scale 1) -> 224 wide, 256 high; offset 4 = centre
    assert crop.views((1, 4, True), 340, 256) == (None, [View(58, 0, 224, 256, True)])
    # pair 9 = (3, 3): 168 square; offset 12 = lower-right quarter: steps (340-168)//4 = 43, (256-168)//4 = 22
    assert crop.views((9, 12, False), 340, 256) == (None, [View(129, 66, 168, 168, False)])


def test_multiscale_draws_cover_every_pair_offset_and_flip():
    crop, rng = MultiScaleCrop(224), np.random.default_rng(0)
    draws = [crop.sample(rng) for _ in range(2000)]
    assert {d[0] for d in draws} == set(range(10))
    assert {d[1] for d in draws} == set(range(13))
    assert {d[2] for d in draws} == {False, True}
    assert {MultiScaleCrop(224, flip=False).sample(rng)[2] for _ in range(50)} == {False}


def test_ten_crops_are_corners_centre_and_their_flips():
    views = ten_crop_views(340, 256, 224)
    boxes = [(0, 0), (116, 0), (0, 32), (116, 32), (58, 16)]
    assert views == [View(x, y, 224, 224) for x, y in boxes] + [View(x, y, 224, 224, True) for x, y in boxes]
    assert ten_crop_views(340, 256, 224, crops=1) == [View(58, 16, 224, 224)]
    with pytest.raises(ValueError, match="does not fit"):
        ten_crop_views(200, 150, 224)


def test_test_crops_resize_the_short_side_first():
    assert OverSample(224).short_side == 256
    assert OverSample(299).short_side == 341  # TSN: input_size * 256 // 224
    assert scaled_size(340, 256, 341) == (452, 341)
    assert scaled_size(256, 455, 256) == (256, 455)
    short, views = OverSample(299).views(None, 340, 256)
    assert short == 341 and views[0] == View(0, 0, 299, 299) and views[4] == View(2 * ((452 - 299) // 4), 20, 299, 299)


def test_apply_views_cuts_the_same_box_from_every_frame_and_flips():
    t, h, w = 3, 6, 8
    frames = torch.arange(t * 3 * h * w, dtype=torch.int64).view(t, 3, h, w).remainder(251).to(torch.uint8)
    out = apply_views(frames, [View(2, 1, 4, 4), View(2, 1, 4, 4, flip=True)], out_size=4)
    assert out.shape == (2, t, 3, 4, 4)
    assert torch.equal(out[0], frames[:, :, 1:5, 2:6])
    assert torch.equal(out[1], frames[:, :, 1:5, 2:6].flip(-1))


def test_apply_views_resizes_crops_to_the_input_size():
    frames = torch.full((2, 3, 40, 48), 200, dtype=torch.uint8)
    out = apply_views(frames, [View(0, 0, 40, 40)], out_size=16)
    assert out.shape == (1, 2, 3, 16, 16) and out.dtype == torch.uint8 and int(out.min()) == int(out.max()) == 200
    with pytest.raises(ValueError, match="outside"):
        apply_views(frames, [View(40, 0, 16, 16)], out_size=16)


def test_batched_views_equal_the_views_of_each_clip():
    """Mixed frame sizes (landscape and portrait), crop sizes and flips: the batched path changes no pixel."""
    g = torch.Generator().manual_seed(0)
    sizes = [(40, 56), (40, 56), (56, 40), (40, 56), (48, 48)]
    clips = [torch.randint(0, 256, (3, 3, h, w), generator=g, dtype=torch.uint8) for h, w in sizes]
    rng = np.random.default_rng(1)
    for crop in (MultiScaleCrop(24), OverSample(24, 10), OverSample(24, 1)):
        draws = [crop.sample(rng) for _ in clips]
        views, short = [], None
        for c, d in zip(clips, draws, strict=True):
            short, v = crop.views(d, c.shape[-1], c.shape[-2])
            views.append(v)
        expected = torch.stack([apply_views(c, v, 24, short) for c, v in zip(clips, views, strict=True)])
        got = apply_views_batch(clips, views, 24, short)
        assert got.shape == expected.shape and torch.equal(got, expected), crop
    with pytest.raises(ValueError, match="outside"):
        apply_views_batch(clips[:1], [[View(50, 0, 16, 16)]], out_size=16)
