"""Where the mask-consistency score queries points: the one definition (docs/evaluation.md, "Mask consistency").

For each object id k of a video's masks (ids 1..254, ascending; 0 background and 255 void are no objects):
  * erode the object's mask by `erosion` pixels: a pixel stays when the (2r+1) x (2r+1) square around it lies
    inside the object (pixels beyond the frame count as outside), so no query sits on or next to a boundary, where
    a mask's own error and a prediction's sub-pixel error would decide the score;
  * the query frame is the first frame whose eroded mask is non-empty (frame 0 for an object visible from the
    start; an object too thin to survive the erosion in any frame is not queried);
  * queries are the eroded pixels on a regular grid of spacing s, at x, y = s // 2 + i * s (pixel centres, the
    TrackSample convention), with s the smallest spacing >= floor(sqrt(area / max_points)) that gives at most
    `max_points` points: about `max_points` points spread evenly over the object.
All positions are in the masks' own pixels (the source resolution).
"""
from __future__ import annotations

import numpy as np

from datagen.formats.sample import MASK_VOID

MAX_POINTS = 256  # queries per object at most
EROSION = 4  # pixels of the source resolution (DAVIS 480p: about 1.2 pixels of the 256x256 evaluation raster)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """bool (H, W) -> bool (H, W): True where the (2r+1)^2 square centred on the pixel is all True (outside the
    frame counts as False). A window sum over a summed-area table: O(H W) whatever the radius."""
    if radius <= 0:
        return mask.astype(bool, copy=True)
    k = 2 * radius + 1
    # r zeros around the frame (outside = False) plus one leading zero row/column: table[i, j] = sum of padded[:i, :j]
    padded = np.pad(mask.astype(np.int32), radius + 1)[:-1, :-1]
    table = padded.cumsum(0).cumsum(1)
    window = table[k:, k:] - table[:-k, k:] - table[k:, :-k] + table[:-k, :-k]
    return window == k * k


def grid_points(region: np.ndarray, max_points: int) -> np.ndarray:
    """bool (H, W) -> int64 (P, 2) (x, y) pixels of `region` on the regular grid described in the module docstring
    (P <= max_points; P = 0 for an empty region)."""
    area = int(region.sum())
    if area == 0:
        return np.zeros((0, 2), np.int64)
    spacing = max(1, int(np.sqrt(area / max_points)))
    while int(region[spacing // 2::spacing, spacing // 2::spacing].sum()) > max_points:
        spacing += 1
    off = spacing // 2
    iy, ix = np.nonzero(region[off::spacing, off::spacing])
    return np.stack([off + ix * spacing, off + iy * spacing], axis=1).astype(np.int64)


def object_presence(masks: np.ndarray) -> np.ndarray:
    """uint8 (T, H, W) ids -> bool (T, 256): [t, k] the mask of id k is non-empty at frame t."""
    return np.stack([np.bincount(m.ravel(), minlength=256) > 0 for m in masks])  # per frame: O(H W) each


def place_mask_queries(masks: np.ndarray, *, max_points: int = MAX_POINTS, erosion: int = EROSION
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (T, H, W) object ids -> (frames int64 (Q,), xy float64 (Q, 2) (x, y) source pixels, objects int64 (Q,)),
    the queries of every object, objects in ascending id order (rules in the module docstring)."""
    present = object_presence(masks)
    frames, points, objects = [], [], []
    for k in np.flatnonzero(present.any(axis=0)):
        if k == 0 or k == MASK_VOID:
            continue
        for t in np.flatnonzero(present[:, k]):  # usually ends at the first frame the object appears in
            xy = grid_points(erode(masks[t] == k, erosion), max_points)
            if len(xy):
                frames.append(np.full(len(xy), t, np.int64))
                points.append(xy.astype(np.float64))
                objects.append(np.full(len(xy), k, np.int64))
                break
    if not points:
        return np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0, np.int64)
    return np.concatenate(frames), np.concatenate(points), np.concatenate(objects)
