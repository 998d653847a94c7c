"""Evaluation protocol and scoring without a model: a sparse keypoint .npz scored against values worked out by
hand, query modes, unlabelled entries never scored, metrics means."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.formats.sample import TrackSample
from datagen.formats import open_source
from lightning_modules.evaluation.protocol import make_example
from lightning_modules.evaluation.scoring import Prediction, mean_scores, score, zero_motion


def _sparse_file(tmp_path):
    """2 points, 4 frames of 52x52 (so the 256 raster is exactly 5x the source pixels: 255 / 51).

    A: (10,10) (11,10) (12,10) unlabelled; visible, visible, occluded.
    B: (20,20) unlabelled (20,22) (20,26); visible at 0, 2, 3 (its flag at 1 is True but has no label).
    Object area 400, 400, unknown, 100 px^2 -> PCK radii 4, 4, -, 2 px.
    """
    nan = np.nan
    points = np.array([[[10, 10], [11, 10], [12, 10], [nan, nan]],
                       [[20, 20], [nan, nan], [20, 22], [20, 26]]], np.float32)
    visible = np.array([[True, True, False, False], [True, True, True, True]])
    path = tmp_path / "dog.npz"
    np.savez(path, video=np.zeros((4, 52, 52, 3), np.uint8), points=points, visible=visible,
             seg_area=np.array([400, 400, nan, 100], np.float32), query_frame=np.array([0, 2]))
    return path


def test_sparse_npz_zero_motion_by_hand(tmp_path):
    (sample,) = open_source(str(_sparse_file(tmp_path)))
    ex = make_example(sample, "first")
    np.testing.assert_allclose(ex.queries, [[0, 50, 50], [0, 100, 100]])  # raster = 5 x source pixels
    m = score(ex, zero_motion(ex))
    # Scored (t > query, labelled): A@1 visible (1 px = 5 raster px off), A@2 occluded, B@2 visible (2 px = 10),
    # B@3 visible (6 px = 30). Unlabelled A@3 and B@1 are not scored (before: (0, 0) and visible).
    assert m["pts_within_1"] == m["pts_within_2"] == m["pts_within_4"] == 0
    assert m["pts_within_8"] == pytest.approx(1 / 3) and m["pts_within_16"] == pytest.approx(2 / 3)
    assert m["average_pts_within_thresh"] == pytest.approx(0.2)
    assert m["occlusion_accuracy"] == pytest.approx(3 / 4)  # zero motion calls A@2 visible
    # Jaccard_d = TP / (visible + FP): d=8: 1 / (3 + 3); d=16: 2 / (3 + 2)
    assert m["jaccard_8"] == pytest.approx(1 / 6) and m["jaccard_16"] == pytest.approx(2 / 5)
    assert m["average_jaccard"] == pytest.approx((1 / 6 + 2 / 5) / 5)
    # PCK@0.2 in source pixels: A@1 (1 px < 4) right, B@2 (no area) not counted, B@3 (6 px >= 2) wrong.
    assert m["pck"] == pytest.approx(0.5)


def test_sparse_npz_exact_prediction_and_given_queries(tmp_path):
    (sample,) = open_source(str(_sparse_file(tmp_path)))
    ex = make_example(sample, "given")  # A at frame 0, B at frame 2 (its query_frame); scored at t != q
    np.testing.assert_allclose(ex.queries, [[0, 50, 50], [2, 100, 110]])
    perfect = Prediction(np.nan_to_num(ex.tracks), ex.visible.copy())  # unlabelled entries: anything
    m = score(ex, perfect)
    assert m["average_pts_within_thresh"] == 1 and m["average_jaccard"] == 1 and m["occlusion_accuracy"] == 1
    assert m["pck"] == 1
    # "first" mode never queries a frame where the point is not visible.
    sample.visibility[0, 0] = False  # A now first visible at frame 1
    assert make_example(sample, "first").queries[0, 0] == 1


def test_strided_rows_and_dropped_tracks():
    vis = np.zeros((12, 3), bool)
    vis[:, 0] = True  # visible throughout: queried at 0, 5, 10
    vis[5:7, 1] = True  # only around frame 5
    tracks = np.random.default_rng(0).uniform(0, 31, (12, 3, 2)).astype(np.float32)  # track 2 never visible
    s = TrackSample(video=np.zeros((12, 32, 32, 3), np.uint8), tracks=tracks, visibility=vis, key="v")
    strided = make_example(s, "strided")
    assert strided.queries[:, 0].tolist() == [0, 5, 5, 10] and strided.track_index.tolist() == [0, 0, 1, 0]
    first = make_example(s, "first")
    assert first.track_index.tolist() == [0, 1] and first.queries[:, 0].tolist() == [0, 5]
    assert make_example(s, "first", max_frames=4).track_index.tolist() == [0]
    s.visibility[:] = False
    assert make_example(s, "first") is None


def test_means_leave_out_videos_with_nothing_to_score():
    rows = [{"average_jaccard": 0.5, "pck": float("nan")}, {"average_jaccard": 0.25, "pck": 1.0}]
    assert mean_scores(rows) == {"average_jaccard": 0.375, "pck": 1.0}
