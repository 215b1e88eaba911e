"""Which frames the protocol looks at: test indices, the training segment sampler, I3D clips."""

import numpy as np
import pytest

from ytfgvc.data.sampling import sample_clip_indices, sample_test_indices, sample_train_indices


@pytest.mark.parametrize(
    ("num_frames", "segments", "expected"),
    [
        (10, 4, [1, 3, 6, 8]),
        (100, 25, list(range(2, 100, 4))),
        (3, 5, [0, 0, 1, 2, 2]),  # fewer frames than segments: segments share frames, in order
        (1, 25, [0] * 25),
        (7, 1, [3]),  # BN-Inception: the middle frame
        (8, 1, [4]),
        (25, 25, list(range(25))),
    ],
)
def test_test_indices_are_the_middle_of_each_segment(num_frames, segments, expected):
    assert sample_test_indices(num_frames, segments).tolist() == expected


def test_test_indices_reject_empty_videos():
    with pytest.raises(ValueError, match="at least one frame"):
        sample_test_indices(0, 25)


def test_train_sampler_draws_one_frame_in_each_segment_and_covers_them():
    # 10 frames in 4 segments: [0, 2), [2, 5), [5, 7), [7, 10)
    segments = [range(0, 2), range(2, 5), range(5, 7), range(7, 10)]
    rng = np.random.default_rng(0)
    seen = [set() for _ in segments]
    for _ in range(300):
        idx = sample_train_indices(10, 4, rng)
        assert len(idx) == 4
        for k, i in enumerate(idx):
            assert i in segments[k]
            seen[k].add(int(i))
    assert [sorted(s) for s in seen] == [list(r) for r in segments]  # every frame of every segment is drawn


def test_train_sampler_with_fewer_frames_than_segments_repeats_frames_in_order():
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert sample_train_indices(3, 5, rng).tolist() == [0, 0, 1, 1, 2]
    assert sample_train_indices(1, 4, rng).tolist() == [0, 0, 0, 0]


def test_single_frame_training_draws_any_frame():
    rng = np.random.default_rng(1)
    drawn = {int(sample_train_indices(7, 1, rng)[0]) for _ in range(300)}
    assert drawn == set(range(7))


def test_i3d_clip_is_consecutive_random_in_training_and_middle_in_testing():
    assert sample_clip_indices(100, 32).tolist() == list(range(34, 66))
    assert sample_clip_indices(32, 32).tolist() == list(range(32))
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(500):
        idx = sample_clip_indices(40, 32, rng)
        assert np.all(np.diff(idx) == 1)
        starts.add(int(idx[0]))
    assert starts == set(range(9))  # uniform over [0, n - L]


def test_short_videos_loop_to_fill_the_clip():
    assert sample_clip_indices(10, 32).tolist() == [i % 10 for i in range(32)]
    assert sample_clip_indices(10, 32, np.random.default_rng(0)).tolist() == [i % 10 for i in range(32)]
