"""datagen.formats.sample.TrackSample: validation, unlabelled points, query points, and the shard round trip without 3-D."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import CorruptSampleError, decode_sample, encode_sample


def _sample(T: int = 5, H: int = 8, W: int = 10, N: int = 4, **kw) -> TrackSample:
    rng = np.random.default_rng(0)
    args = dict(video=rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8),
                tracks=rng.uniform(0, 7, (T, N, 2)).astype(np.float32),
                visibility=np.ones((T, N), bool), key="s0")
    args.update(kw)
    return TrackSample(**args)


def test_properties_and_dtypes():
    s = _sample(tracks=np.zeros((5, 4, 2), np.float64))
    assert (s.num_frames, s.num_tracks, s.height, s.width) == (5, 4, 8, 10)
    assert s.tracks.dtype == np.float32 and s.tracks3d is None and s.query_frames is None
    assert s.labelled.all() and s.labelled.shape == (5, 4)


@pytest.mark.parametrize("kw, message", [
    (dict(video=np.zeros((5, 8, 10, 3), np.float32)), "video must be uint8"),
    (dict(video=np.zeros((5, 8, 10), np.uint8)), "video must be uint8"),
    (dict(tracks=np.zeros((4, 4, 2), np.float32)), "tracks must be (T, N, 2) with T = 5"),
    (dict(tracks=np.zeros((5, 4, 2), np.int32)), "floating point"),
    (dict(visibility=np.ones((5, 3), bool)), "visibility must be (T, N)"),
    (dict(visibility=np.ones((5, 4), np.uint8)), "visibility must be bool"),
    (dict(tracks3d=np.zeros((5, 4, 2), np.float32)), "tracks3d must be float (T, N, 3)"),
    (dict(query_frames=np.array([0, 1, 5, 0])), "query_frames must be (N,)"),
    (dict(query_frames=np.array([0, 1, 2])), "query_frames must be (N,)"),
    (dict(meta=[1, 2]), "meta must be a dict"),
])
def test_bad_shapes_and_dtypes_are_clear_errors(kw, message):
    with pytest.raises(ValueError) as info:
        _sample(**kw)
    assert message in str(info.value)


def test_unlabelled_points_are_invisible_and_query_points_fall_back():
    tracks = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
    tracks[:2, 0] = np.nan  # track 0 labelled from frame 2 on
    tracks[:, 2] = np.nan  # track 2 never labelled
    vis = np.ones((5, 3), bool)
    vis[:4, 1] = False  # track 1 visible only in frame 4
    s = _sample(N=3, tracks=tracks, visibility=vis)
    assert not s.visibility[:2, 0].any() and s.visibility[2:, 0].all()
    assert not s.visibility[:, 2].any()
    np.testing.assert_array_equal(s.labelled[:, 0], [False, False, True, True, True])
    q = s.query_points
    assert q.dtype == np.float32 and q.shape == (3, 3)
    np.testing.assert_array_equal(q[0], [2, *tracks[2, 0]])  # first visible labelled frame
    np.testing.assert_array_equal(q[1], [4, *tracks[4, 1]])
    assert q[2, 0] == 0 and np.isnan(q[2, 1:]).all()  # never labelled: frame 0, no position


def test_query_frames_from_meta_win_over_first_visible():
    s = _sample(meta={"query_frames": [3, 0, 1, 4]})
    assert s.query_frames.dtype == np.int64
    np.testing.assert_array_equal(s.query_points[:, 0], [3, 0, 1, 4])
    np.testing.assert_array_equal(s.query_points[0, 1:], s.tracks[3, 0])


def test_shard_round_trip_without_tracks3d_and_with_nan():
    tracks = np.random.default_rng(1).uniform(0, 7, (5, 4, 2)).astype(np.float32)
    tracks[0, 1] = np.nan
    s = _sample(tracks=tracks, meta={"fps": 10, "query_frames": [1, 2, 3, 4]})
    raw = encode_sample(s, "k0")
    assert "tracks3d.npy" not in raw
    back = decode_sample(raw)
    assert back.key == "k0" and back.tracks3d is None
    np.testing.assert_array_equal(back.video, s.video)
    np.testing.assert_array_equal(back.tracks, s.tracks)  # NaN where unlabelled survives
    np.testing.assert_array_equal(back.visibility, s.visibility)
    np.testing.assert_array_equal(back.query_frames, [1, 2, 3, 4])
    bad = dict(raw, **{"meta.json": b'{"query_frames": [0, 1]}'})
    with pytest.raises(CorruptSampleError, match="k0.*query_frames"):
        decode_sample(bad)
