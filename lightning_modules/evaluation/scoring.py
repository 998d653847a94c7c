"""Scores of one prediction on one video, and their means: the one scoring path of `make eval`, benchmark
validation and the synthetic validation clips.

* TAP-Vid (tracker.metrics): occlusion accuracy, pts_within_{1..16} / delta_avg (position accuracy over labelled
  visible points), jaccard_{1..16} / AJ; entries without a label are not scored at all. Positions are compared in
  the 256x256 evaluation raster: an EvalExample is prepared there (protocol), a synthetic validation clip is scored
  at the model's input size and its positions rescaled to the raster (`clip_scores`).
* PCK (sparse keypoint benchmarks that give an object area): a labelled visible point is correct when the
  predicted position is within 0.2 * sqrt(area) pixels of the truth, in the sample's own pixels (as BADJA scores).
* Mask consistency (videos with object masks and no tracks, e.g. DAVIS): mask_scoring, instead of the above.
* The zero-motion baseline: every frame at the query position, always visible.
Per-benchmark scores are means over videos (NaN videos, i.e. nothing to score, left out): `mean_scores` for the
rows of one process (evaluation), `metric_totals` + `means_of_totals` where DDP ranks add up their partial sums
(validation during training).
"""
from __future__ import annotations

import numpy as np

# The one prediction type (tracker's and evaluation's); scored here as numpy arrays of one video: tracks float64
# (T, Q, 2) (x, y), visible bool (T, Q).
from tracker.common.prediction import Prediction
from tracker.common.pixels import rescale_xy
from tracker.metrics import THRESHOLDS, compute_tapvid_metrics

from .protocol import TAPVID_SIZE, EvalExample

VIS_THRESHOLD = 0.6  # TAP-Vid evaluation: predicted visible iff visibility x confidence > 0.6
PCK_ALPHA = 0.2
METRIC_KEYS = ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
               *(f"jaccard_{t}" for t in THRESHOLDS), *(f"pts_within_{t}" for t in THRESHOLDS))
# Names a validation metric may be monitored by (delta_avg is logged as an alias of average_pts_within_thresh).
MONITOR_NAMES = (*METRIC_KEYS, "delta_avg", "pck")
SUMMARY = (("average_jaccard", "AJ"), ("average_pts_within_thresh", "delta_avg"), ("occlusion_accuracy", "OA"))


def stay_at_queries(queries: np.ndarray, num_frames: int) -> Prediction:
    """The zero-motion prediction: queries float64 (Q, 3) (t, x, y) -> every frame at the query position (in the
    queries' pixels), always visible."""
    Q = len(queries)
    return Prediction(np.broadcast_to(queries[None, :, 1:], (num_frames, Q, 2)).copy(),
                      np.ones((num_frames, Q), dtype=bool))


def zero_motion(ex: EvalExample) -> Prediction:
    """Every frame at the query position, always visible."""
    return stay_at_queries(ex.queries, ex.visible.shape[0])


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


def tapvid_scores(queries: np.ndarray, tracks: np.ndarray, visible: np.ndarray, pred: Prediction,
                  scored_mode: str, labelled: np.ndarray | None = None) -> dict[str, float]:
    """TAP-Vid metrics (METRIC_KEYS) of one video, positions in one pixel frame (the raster: the thresholds are its
    pixels). queries float64 (Q, 3) (t, x, y); tracks float64 (T, Q, 2) (x, y); visible bool (T, Q); pred in the
    same pixels; scored_mode "first" (t > q) or "strided" (t != q); labelled bool (T, Q), None: every entry."""
    out = compute_tapvid_metrics(
        np.stack([queries[:, 0], queries[:, 2], queries[:, 1]], axis=-1)[None],  # (t, y, x): TAP-Vid's order
        ~visible.T[None], tracks.transpose(1, 0, 2)[None],
        ~pred.visible.T[None], pred.tracks.transpose(1, 0, 2)[None],
        scored_mode, gt_labelled=None if labelled is None else labelled.T[None])
    return {k: float(out[k][0]) for k in METRIC_KEYS}


def clip_scores(queries: np.ndarray, tracks: np.ndarray, visible: np.ndarray, pred: Prediction,
                clip_hw: tuple[int, int]) -> dict[str, float]:
    """TAP-Vid metrics of a clip scored at its own size (a synthetic validation clip at the model's input size):
    queries float64 (Q, 3) (t, x, y), tracks float64 (T, Q, 2), visible bool (T, Q) and pred, all in the clip's
    (H, W) = clip_hw pixels, every entry labelled, "first" queries. Positions are taken to the 256x256 raster
    first, so the thresholds mean what they mean in evaluation."""
    def to_raster(xy: np.ndarray) -> np.ndarray:
        return rescale_xy(xy, clip_hw, (TAPVID_SIZE, TAPVID_SIZE))

    raster_queries = np.concatenate([queries[:, :1], to_raster(queries[:, 1:])], axis=-1)
    return tapvid_scores(raster_queries, to_raster(tracks), visible,
                         Prediction(to_raster(pred.tracks), pred.visible), "first")


def score(ex: EvalExample, pred: Prediction) -> dict[str, float]:
    """TAP-Vid metrics (METRIC_KEYS) of one video, plus "pck" when the example has an object area; a mask example
    (ex.masks set) gets {"mask_consistency"} only."""
    if ex.masks is not None:
        from .mask_scoring import score_masks

        return score_masks(ex, pred)
    result = tapvid_scores(ex.queries, ex.tracks, ex.visible, pred, ex.scored_mode, ex.labelled)
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


def metric_totals(rows: list[dict[str, float]], keys: tuple[str, ...]):
    """Partial sums for a mean over several processes: float64 tensor (2, K) = per key of `keys` (in that order,
    the same on every DDP rank), the sum of the rows' finite values and their count. A row without a key counts
    as NaN. Ranks add their totals up; `means_of_totals` divides."""
    import torch  # here, not at the top: the evaluation reports read this module without needing torch

    vals = torch.tensor([[r.get(k, float("nan")) for k in keys] for r in rows],
                        dtype=torch.float64).reshape(-1, len(keys))
    finite = torch.isfinite(vals)
    sums = torch.where(finite, vals, torch.zeros_like(vals)).sum(0)
    counts = finite.sum(0).to(torch.float64)
    return torch.stack([sums, counts])


def means_of_totals(totals, keys: tuple[str, ...], always: tuple[str, ...]) -> dict[str, float]:
    """Means from (summed) `metric_totals` (2, K), on any device. A key no row had is left out, unless it is in
    `always` (e.g. a monitored metric, which must exist at every validation): then it is 0.0.

    The same means as mean_scores, summed in another order (torch's per-key reduction, then the ranks' sums); the
    two may differ in the last bits, so each keeps the arithmetic its numbers (logged metrics, eval.json) have
    always had."""
    means = (totals[0] / totals[1].clamp(min=1)).cpu()
    return {k: float(v) for k, v, n in zip(keys, means, totals[1].cpu()) if n > 0 or k in always}
