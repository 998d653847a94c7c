"""Mask consistency: do points queried inside an object stay inside that object's mask? (docs/evaluation.md)

For real video with object masks and no point tracks (DAVIS). Queries come from lightning_modules.evaluation.
mask_queries (one object id each). Scoring happens in the masks' own pixels: predictions (raster pixels) are taken
back with tracker.common.pixels.rescale_xy, the one rescaling helper, so the masks are never resampled.

  * scored entries (t, q): frames t after the query's frame (t > q) in which the query's object is present (its
    mask is non-empty); frames where the object is absent (fully occluded, out of view) say nothing about a point;
  * hit: the predicted position rounded to the nearest pixel (halves up) is inside the frame and the mask there
    holds the query's object id; a position outside the frame, a non-finite one, or one on another object, the
    background or a void pixel is a miss;
  * the predicted visibility is ignored: a DAVIS mask covers the whole visible silhouette, including parts that
    hide other parts of the same object, so a self-occluded point predicted as occluded still belongs inside the
    mask; and a correct "occluded" flag cannot be rewarded without knowing where the point is.
Score of a video: hits / scored entries (a fraction; reports print x100); NaN when nothing is scored.
"""
from __future__ import annotations

import numpy as np

from tracker.common.pixels import rescale_xy

from .mask_queries import object_presence

METRIC = "mask_consistency"


def mask_hits(masks: np.ndarray, query_frames: np.ndarray, query_objects: np.ndarray, xy: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """(hit bool (T, Q), scored bool (T, Q)) of predicted positions `xy` float (T, Q, 2) (x, y) in the pixels of
    `masks` uint8 (T, H, W) ids, for queries at frames int (Q,) placed on objects int (Q,)."""
    T, H, W = masks.shape
    present = object_presence(masks)[:, query_objects]  # (T, Q)
    scored = (np.arange(T)[:, None] > np.asarray(query_frames)[None, :]) & present
    finite = np.isfinite(xy).all(axis=-1)
    pix = np.floor(np.where(finite[..., None], xy, -1.0) + 0.5).astype(np.int64)  # nearest pixel, halves up
    x, y = pix[..., 0], pix[..., 1]
    inside = finite & (x >= 0) & (x < W) & (y >= 0) & (y < H)
    ids = masks[np.arange(T)[:, None], np.clip(y, 0, H - 1), np.clip(x, 0, W - 1)]  # (T, Q)
    return inside & (ids == np.asarray(query_objects)[None, :]), scored


def mask_consistency(masks: np.ndarray, query_frames: np.ndarray, query_objects: np.ndarray, xy: np.ndarray
                     ) -> float:
    """Fraction of scored entries that are hits (mask_hits' arguments); NaN when no entry is scored."""
    hit, scored = mask_hits(masks, query_frames, query_objects, xy)
    return float(hit[scored].mean()) if scored.any() else float("nan")


def score_masks(ex, pred) -> dict[str, float]:
    """{"mask_consistency": fraction} of a Prediction (raster pixels) on a mask EvalExample (ex.masks set)."""
    xy = rescale_xy(pred.tracks, ex.raster_hw, ex.source_hw)
    return {METRIC: mask_consistency(ex.masks, np.round(ex.queries[:, 0]).astype(np.int64), ex.query_objects, xy)}
