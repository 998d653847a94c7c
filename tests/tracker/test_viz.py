"""Track overlay drawing: pixels actually painted where and how the tracks say."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.viz import draw_tracks, rainbow

RED = np.array([255, 0, 0], np.uint8)
GREEN = np.array([0, 255, 0], np.uint8)


def _gray(num_frames=3, height=40, width=60, value=100):
    return np.full((num_frames, height, width, 3), value, np.uint8)


def test_visible_point_is_a_filled_disc():
    frames = _gray()
    tracks = np.tile(np.array([[20.0, 15.0]]), (3, 1, 1))  # (T, N=1, 2) x=20, y=15
    vis = np.ones((3, 1), bool)
    out = draw_tracks(frames, tracks, vis, tail=0, radius=3, colors=RED[None])
    assert out.shape == frames.shape and out.dtype == np.uint8
    for t in range(3):
        np.testing.assert_array_equal(out[t, 15, 20], RED)  # centre (row y, column x)
        np.testing.assert_array_equal(out[t, 15, 23], RED)  # on the radius
        np.testing.assert_array_equal(out[t, 18, 20], RED)
        np.testing.assert_array_equal(out[t, 5, 5], [100, 100, 100])  # far away untouched
        assert out[t, 15, 24].sum() < 300  # dark outline just outside the disc
    np.testing.assert_array_equal(frames, _gray())  # the input is not modified


def test_occluded_point_is_a_hollow_ring():
    frames = _gray()
    tracks = np.tile(np.array([[30.0, 20.0]]), (3, 1, 1))
    vis = np.zeros((3, 1), bool)
    out = draw_tracks(frames, tracks, vis, tail=8, radius=4, colors=GREEN[None])
    for t in range(3):
        np.testing.assert_array_equal(out[t, 20, 30], [100, 100, 100])  # centre not overwritten
        np.testing.assert_array_equal(out[t, 20, 31], [100, 100, 100])
        np.testing.assert_array_equal(out[t, 20, 34], GREEN)  # ring at the radius
        np.testing.assert_array_equal(out[t, 16, 30], GREEN)


def test_tail_follows_previous_positions_and_fades():
    num_frames = 6
    frames = _gray(num_frames, 40, 80)
    xs = 10.0 + 10.0 * np.arange(num_frames)  # moves 10 px right per frame along y = 20
    tracks = np.stack([xs, np.full(num_frames, 20.0)], -1)[:, None]
    vis = np.ones((num_frames, 1), bool)
    out = draw_tracks(frames, tracks, vis, tail=3, radius=2, colors=RED[None])
    last = out[-1].astype(int)
    redness = last[20, :, 0] - last[20, :, 1]  # (W,) along the track's row
    # Tail covers the last 3 segments (x from 30 to 60) but not the older ones.
    assert redness[35] > 0 and redness[45] > 0 and redness[55] > 0
    assert redness[15] == 0 and redness[25] == 0
    # Older segments are fainter than newer ones.
    assert redness[35] < redness[45] < redness[55]
    # With tail=0 only the dot is drawn.
    no_tail = draw_tracks(frames, tracks, vis, tail=0, radius=2, colors=RED[None])
    assert (no_tail[-1, 20, 30:55] == 100).all()


def test_many_points_default_colours_and_edge_cases():
    rng = np.random.default_rng(0)
    T, N, H, W = 4, 300, 64, 96
    frames = rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8)
    tracks = rng.uniform(-20, 110, (T, N, 2))  # some outside the frame
    tracks[1, :5] = np.nan  # non-finite positions are skipped
    vis = rng.random((T, N)) < 0.7
    out = draw_tracks(frames, tracks, vis)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert (out != frames).any(axis=-1).mean() > 0.2  # plenty drawn
    # Default colours: a rainbow over x, so a visible point at the left is red-ish, at the right violet-ish.
    left = draw_tracks(_gray(1, 20, 100), np.array([[[2.0, 10.0], [97.0, 10.0]]]), np.ones((1, 2), bool), radius=1)
    assert left[0, 10, 2, 0] > 200 and left[0, 10, 2, 2] < 50
    assert left[0, 10, 97, 2] > 200
    with pytest.raises(ValueError, match="tracks"):
        draw_tracks(frames, tracks[:2], vis[:2])


def test_rainbow_endpoints():
    c = rainbow(np.array([0.0, 0.5, 1.0]))
    np.testing.assert_array_equal(c[0], [255, 0, 0])
    assert c.dtype == np.uint8 and len({tuple(x) for x in c}) == 3
