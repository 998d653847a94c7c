"""TAP-Vid metrics: official numbers from the fixtures plus small cases worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from tracker.metrics import THRESHOLDS, compute_tapvid_metrics

KEYS = ["occlusion_accuracy", "average_jaccard", "average_pts_within_thresh"] + [
    f"{name}_{t}" for name in ("pts_within", "jaccard") for t in THRESHOLDS
]


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_matches_official_metric_numbers(cotracker3_fixtures, mode):
    ref = load_file(str(cotracker3_fixtures / "ref_misc.safetensors"))
    out = compute_tapvid_metrics(
        ref[f"metrics_{mode}_query_points_tyx"],
        ref["metrics_gt_occluded"],
        ref["metrics_gt_tracks_xy"],
        ref["metrics_pred_occluded"],
        ref["metrics_pred_tracks_xy"],
        mode,
    )
    assert sorted(out) == sorted(KEYS)
    for key in KEYS:
        assert out[key].shape == (1,)
        np.testing.assert_allclose(out[key], ref[f"metrics_{mode}_out_{key}"], rtol=1e-12, atol=0, err_msg=key)


def _one_track_case(query_t: float = 1.0):
    """1 track, 4 frames, GT fixed at (10, 10), occluded at frame 3.

    Predictions: exact at frames 0, 1, 3; 3 px off in x at frame 2; predicted visible everywhere (so frame 3 is a
    false positive for every threshold).
    """
    query_points = np.array([[[query_t, 10.0, 10.0]]])  # (t, y, x)
    gt_tracks = np.full((1, 1, 4, 2), 10.0)
    gt_occluded = np.array([[[False, False, False, True]]])
    pred_tracks = gt_tracks.copy()
    pred_tracks[0, 0, 2] = (13.0, 10.0)
    pred_occluded = np.zeros((1, 1, 4), dtype=bool)
    return query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks


def test_hand_computed_first_mode():
    out = compute_tapvid_metrics(*_one_track_case(), "first")
    # Scored frames: 2 and 3. Occlusion right at 2, wrong at 3.
    assert out["occlusion_accuracy"][0] == pytest.approx(0.5)
    # One visible scored entry (frame 2, error 3 px; 3^2 < d^2 only for d >= 4).
    assert [out[f"pts_within_{d}"][0] for d in THRESHOLDS] == pytest.approx([0, 0, 1, 1, 1])
    # d < 4: TP 0, FP 2 (frame 2 too far, frame 3 occluded) -> 0 / (1 + 2); d >= 4: TP 1, FP 1 -> 1 / 2.
    assert [out[f"jaccard_{d}"][0] for d in THRESHOLDS] == pytest.approx([0, 0, 0.5, 0.5, 0.5])
    assert out["average_pts_within_thresh"][0] == pytest.approx(0.6)
    assert out["average_jaccard"][0] == pytest.approx(0.3)


def test_hand_computed_strided_mode():
    out = compute_tapvid_metrics(*_one_track_case(), "strided")
    # Scored frames: 0, 2, 3 (everything but the query frame).
    assert out["occlusion_accuracy"][0] == pytest.approx(2 / 3)
    # Visible scored entries: frames 0 (exact) and 2 (3 px off).
    assert [out[f"pts_within_{d}"][0] for d in THRESHOLDS] == pytest.approx([0.5, 0.5, 1, 1, 1])
    # d < 4: TP 1, FP 2 -> 1 / (2 + 2); d >= 4: TP 2, FP 1 -> 2 / 3.
    assert [out[f"jaccard_{d}"][0] for d in THRESHOLDS] == pytest.approx([0.25, 0.25, 2 / 3, 2 / 3, 2 / 3])
    assert out["average_pts_within_thresh"][0] == pytest.approx(0.8)
    assert out["average_jaccard"][0] == pytest.approx(0.5)


def test_query_frame_is_rounded():
    # t = 1.6 rounds to 2: in "first" mode only frame 3 is scored (occluded GT, predicted visible).
    out = compute_tapvid_metrics(*_one_track_case(1.6), "first")
    assert out["occlusion_accuracy"][0] == 0.0
    assert np.isnan(out["pts_within_1"][0])  # no visible scored entry
    assert out["jaccard_16"][0] == 0.0  # 0 TP / (0 + 1 FP)
    # t = 1.4 rounds to 1: same as the query at frame 1.
    a = compute_tapvid_metrics(*_one_track_case(1.4), "first")
    b = compute_tapvid_metrics(*_one_track_case(1.0), "first")
    assert all(np.array_equal(a[k], b[k]) for k in KEYS)


def test_batch_elements_are_independent():
    rng = np.random.default_rng(0)
    B, N, T = 3, 7, 12
    q = np.stack([rng.integers(0, T, (B, N)), rng.uniform(0, 255, (B, N)), rng.uniform(0, 255, (B, N))], -1)
    gt = rng.uniform(0, 255, (B, N, T, 2))
    pred = gt + rng.normal(0, 4, gt.shape)
    gt_occ = rng.random((B, N, T)) < 0.3
    pred_occ = rng.random((B, N, T)) < 0.3
    for mode in ("first", "strided"):
        batched = compute_tapvid_metrics(q, gt_occ, gt, pred_occ, pred, mode)
        for b in range(B):
            single = compute_tapvid_metrics(
                q[b : b + 1], gt_occ[b : b + 1], gt[b : b + 1], pred_occ[b : b + 1], pred[b : b + 1], mode
            )
            for k in KEYS:
                np.testing.assert_allclose(batched[k][b], single[k][0], rtol=1e-15, err_msg=f"{mode} {k}")


def test_perfect_prediction_scores_one_and_bad_mode_is_rejected():
    q, gt_occ, gt, _, _ = _one_track_case()
    out = compute_tapvid_metrics(q, gt_occ, gt, gt_occ, gt, "strided")
    assert all(out[k][0] == 1.0 for k in KEYS)
    with pytest.raises(ValueError, match="query_mode"):
        compute_tapvid_metrics(q, gt_occ, gt, gt_occ, gt, "last")


def test_unlabelled_entries_are_not_scored():
    """gt_labelled=False entries count neither as visible nor as occluded, whatever their (NaN) position."""
    q, gt_occ, gt, pred_occ, pred = _one_track_case()
    labelled = np.ones_like(gt_occ)
    labelled[0, 0, 2] = False  # the 3 px error of frame 2 is not labelled
    gt = gt.copy()
    gt[0, 0, 2] = np.nan
    out = compute_tapvid_metrics(q, gt_occ, gt, pred_occ, pred, "first", gt_labelled=labelled)
    # Only frame 3 (occluded, predicted visible) remains scored.
    assert out["occlusion_accuracy"][0] == 0.0
    assert np.isnan(out["average_pts_within_thresh"][0])  # no labelled visible entry to score
    assert out["average_jaccard"][0] == 0.0
    with pytest.raises(ValueError, match="gt_labelled must be"):
        compute_tapvid_metrics(q, gt_occ, gt, pred_occ, pred, "first", gt_labelled=labelled[..., :2])
