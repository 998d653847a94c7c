"""Scores of one prediction on one EvalExample: TAP-Vid metrics in the evaluation raster, PCK in source pixels.

* TAP-Vid (tracker.metrics): occlusion accuracy, pts_within_{1..16} / delta_avg (position accuracy over labelled
  visible points), jaccard_{1..16} / AJ; entries without a label are not scored at all.
* PCK (sparse keypoint benchmarks that give an object area): a labelled visible point is correct when the
  predicted position is within 0.2 * sqrt(area) pixels of the truth, in the sample's own pixels (as BADJA scores).
* Mask consistency (videos with object masks and no tracks, e.g. DAVIS): mask_scoring, instead of the above.
* The zero-motion baseline: every frame at the query position, always visible.
Per-benchmark scores are means over videos (NaN videos, i.e. nothing to score, left out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tracker.metrics import THRESHOLDS, compute_tapvid_metrics
from tracker.pixels import rescale_xy

from .protocol import EvalExample

VIS_THRESHOLD = 0.6  # TAP-Vid evaluation: predicted visible iff visibility x confidence > 0.6
PCK_ALPHA = 0.2
METRIC_KEYS = ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
               *(f"jaccard_{t}" for t in THRESHOLDS), *(f"pts_within_{t}" for t in THRESHOLDS))
# Names a validation metric may be monitored by (delta_avg is logged as an alias of average_pts_within_thresh).
MONITOR_NAMES = (*METRIC_KEYS, "delta_avg", "pck")
SUMMARY = (("average_jaccard", "AJ"), ("average_pts_within_thresh", "delta_avg"), ("occlusion_accuracy", "OA"))


@dataclass
class Prediction:
    """tracks float64 (T, Q, 2) (x, y) raster pixels; visible bool (T, Q)."""

    tracks: np.ndarray
    visible: np.ndarray


def zero_motion(ex: EvalExample) -> Prediction:
    """Every frame at the query position, always visible."""
    T, Q = ex.visible.shape
    return Prediction(np.broadcast_to(ex.queries[None, :, 1:], (T, Q, 2)).copy(), np.ones((T, Q), dtype=bool))


def scored_mask(ex: EvalExample) -> np.ndarray:
    """bool (T, Q): the entries the metrics look at (frame rule of the query mode, labelled entries only)."""
    t = np.arange(ex.num_frames)[:, None]
    q = np.round(ex.queries[None, :, 0]).astype(np.int64)
    frames = t > q if ex.scored_mode == "first" else t != q
    return frames & ex.labelled


def pck(ex: EvalExample, pred: Prediction, alpha: float = PCK_ALPHA) -> float:
    """Fraction of scored, visible entries at frames with a known area whose error (source pixels) is below
    alpha * sqrt(area); NaN when there are none."""
    if ex.area is None:
        return float("nan")
    gt = rescale_xy(ex.tracks, ex.raster_hw, ex.source_hw)
    pr = rescale_xy(pred.tracks, ex.raster_hw, ex.source_hw)
    area = ex.area[:, None]
    use = scored_mask(ex) & ex.visible & np.isfinite(area)
    if not use.any():
        return float("nan")
    with np.errstate(invalid="ignore"):
        err = np.linalg.norm(np.where(use[..., None], pr - gt, 0.0), axis=-1)
        ok = err < alpha * np.sqrt(np.where(np.isfinite(area), area, 0.0))
    return float((ok & use).sum() / use.sum())


def score(ex: EvalExample, pred: Prediction) -> dict[str, float]:
    """TAP-Vid metrics (METRIC_KEYS) of one video, plus "pck" when the example has an object area; a mask example
    (ex.masks set) gets {"mask_consistency"} only."""
    if ex.masks is not None:
        from .mask_scoring import score_masks

        return score_masks(ex, pred)
    q = ex.queries
    out = compute_tapvid_metrics(
        np.stack([q[:, 0], q[:, 2], q[:, 1]], axis=-1)[None],  # (t, y, x): TAP-Vid's order
        ~ex.visible.T[None], ex.tracks.transpose(1, 0, 2)[None],
        ~pred.visible.T[None], pred.tracks.transpose(1, 0, 2)[None],
        ex.scored_mode, gt_labelled=ex.labelled.T[None])
    result = {k: float(out[k][0]) for k in METRIC_KEYS}
    if ex.area is not None:
        result["pck"] = pck(ex, pred)
    return result


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean over videos of each metric, NaN (nothing scored) left out; NaN when no video has it."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    means = {}
    for k in keys:
        vals = np.array([r.get(k, np.nan) for r in rows], dtype=np.float64)
        means[k] = float(vals[np.isfinite(vals)].mean()) if np.isfinite(vals).any() else float("nan")
    return means
