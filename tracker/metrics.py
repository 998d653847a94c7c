"""TAP-Vid point-tracking metrics (spec section 17), vectorised NumPy.

All arrays are per video (batch axis B first); positions are in whatever pixel frame the caller uses (TAP-Vid uses
the 256x256 frame, so the thresholds 1..16 are pixels of that frame).
"""
from __future__ import annotations

import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)
QUERY_MODES = ("first", "strided")


def _evaluation_mask(query_frames: np.ndarray, num_frames: int, query_mode: str) -> np.ndarray:
    """Which (track, frame) entries are scored.

    query_frames: (B, N) float frame indices -> (B, N, T) bool.
    "first": frames strictly after the query frame; "strided": every frame except the query frame.
    """
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode must be one of {QUERY_MODES}, got {query_mode!r}")
    # np.round rounds half to even, like the official evaluator.
    q = np.round(query_frames).astype(np.int64)[..., None]  # (B, N, 1)
    t = np.arange(num_frames)[None, None, :]  # (1, 1, T)
    return t > q if query_mode == "first" else t != q


def compute_tapvid_metrics(
    query_points: np.ndarray,
    gt_occluded: np.ndarray,
    gt_tracks: np.ndarray,
    pred_occluded: np.ndarray,
    pred_tracks: np.ndarray,
    query_mode: str,
    gt_labelled: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """TAP-Vid metrics per video.

    query_points: (B, N, 3) as (t, y, x) (only t is used); gt_occluded, pred_occluded: (B, N, T) bool;
    gt_tracks, pred_tracks: (B, N, T, 2) as (x, y); query_mode: "first" (score t > q) or "strided" (score t != q).
    gt_labelled: (B, N, T) bool or None (all): entries without a ground-truth label (sparse annotations; their
    position may be NaN) are not scored at all, neither as visible nor as occluded.
    Returns {"occlusion_accuracy", "pts_within_{1,2,4,8,16}", "jaccard_{1,2,4,8,16}", "average_jaccard",
    "average_pts_within_thresh"}, each a float64 array of shape (B,). A video with nothing to score gets NaN.
    """
    gt_occluded = np.asarray(gt_occluded, dtype=bool)
    pred_occluded = np.asarray(pred_occluded, dtype=bool)
    gt_tracks = np.asarray(gt_tracks, dtype=np.float64)
    pred_tracks = np.asarray(pred_tracks, dtype=np.float64)
    query_points = np.asarray(query_points, dtype=np.float64)
    if gt_tracks.shape != pred_tracks.shape or gt_tracks.ndim != 4 or gt_tracks.shape[-1] != 2:
        raise ValueError(f"tracks must both be (B, N, T, 2), got {gt_tracks.shape} and {pred_tracks.shape}")
    if gt_occluded.shape != gt_tracks.shape[:3] or pred_occluded.shape != gt_tracks.shape[:3]:
        raise ValueError(
            f"occlusion flags must be (B, N, T) = {gt_tracks.shape[:3]}, "
            f"got {gt_occluded.shape} and {pred_occluded.shape}"
        )
    if query_points.shape != gt_tracks.shape[:2] + (3,):
        raise ValueError(f"query_points must be (B, N, 3) = {gt_tracks.shape[:2] + (3,)}, got {query_points.shape}")

    evaluated = _evaluation_mask(query_points[..., 0], gt_tracks.shape[2], query_mode)  # (B, N, T)
    if gt_labelled is not None:
        gt_labelled = np.asarray(gt_labelled, dtype=bool)
        if gt_labelled.shape != gt_occluded.shape:
            raise ValueError(f"gt_labelled must be (B, N, T) = {gt_occluded.shape}, got {gt_labelled.shape}")
        evaluated = evaluated & gt_labelled
        gt_tracks = np.where(gt_labelled[..., None], gt_tracks, 0.0)  # unscored; keeps NaN out of the arithmetic
    visible = ~gt_occluded
    pred_visible = ~pred_occluded

    def count(mask: np.ndarray) -> np.ndarray:
        return np.sum(mask & evaluated, axis=(1, 2)).astype(np.float64)

    # Division by zero (no scored entries) yields NaN, as the official code does; silence the warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        out: dict[str, np.ndarray] = {
            "occlusion_accuracy": count(pred_occluded == gt_occluded) / count(np.ones_like(evaluated)),
        }
        sq_dist = np.sum(np.square(pred_tracks - gt_tracks), axis=-1)  # (B, N, T)
        num_visible = count(visible)
        for thresh in THRESHOLDS:
            within = sq_dist < thresh**2  # strict, as in the official metric
            correct = within & visible
            true_pos = count(correct & pred_visible)
            # A predicted-visible entry is a false positive if the point is occluded or predicted too far away.
            false_pos = count(pred_visible & ~correct)
            out[f"pts_within_{thresh}"] = count(correct) / num_visible
            out[f"jaccard_{thresh}"] = true_pos / (num_visible + false_pos)
    out["average_jaccard"] = np.mean([out[f"jaccard_{t}"] for t in THRESHOLDS], axis=0)
    out["average_pts_within_thresh"] = np.mean([out[f"pts_within_{t}"] for t in THRESHOLDS], axis=0)
    return out
