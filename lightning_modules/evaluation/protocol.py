"""TAP-Vid protocol (spec section 17): a TrackSample becomes an EvalExample in the 256x256 evaluation raster.

Frames are resized with PIL's Lanczos filter (what TAP-Vid's mediapy does) and kept uint8; positions are rescaled
with the align-corners rule (tracker.common.pixels: x * 255 / (W - 1)). Queries:
  * "first":   each track at its first visible frame; never-visible tracks are dropped; scored at frames t > q.
  * "strided": at frames 0, 5, 10, ... every track visible there yields a query row (its own copy of the track);
               scored at every frame t != q.
  * "given":   each track at the sample's own query frame (`TrackSample.query_frames`, e.g. a sparse annotation's
               `query_frame`), if visible there; scored at every frame t != q.
Unlabelled entries (NaN in the sample) are never query frames and never scored (EvalExample.labelled).

Samples with object masks and no point tracks (DAVIS) are queried from their masks instead (mask_queries: points
on a grid over each object's eroded mask, at the first frame the object appears in; "first" mode only) and scored
for mask consistency (mask_scoring); their ground-truth tracks are NaN placeholders (nothing is labelled).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from datagen.formats.sample import TrackSample
from tracker.common.pixels import rescale_xy

TAPVID_SIZE = 256
STRIDE = 5
QUERY_MODES = ("first", "strided", "given")


@dataclass
class EvalExample:
    """One video prepared for scoring; Q query rows (a track may give several rows in "strided" mode).

    video:       uint8 (T, S, S, 3), the S x S evaluation raster
    queries:     float64 (Q, 3) (t, x, y) raster pixels
    tracks:      float64 (T, Q, 2) ground truth (x, y) raster pixels; NaN where unlabelled
    visible:     bool (T, Q) ground-truth visibility (False where unlabelled)
    labelled:    bool (T, Q) the entry has a ground-truth position
    query_mode:  how the queries were chosen (decides the scored frames, see module docstring)
    source_hw:   (H, W) of the sample's own frames (PCK distances are measured there)
    area:        float64 (T,) object area in source pixels^2 (NaN: unknown at that frame), or None
    track_index: int64 (Q,) the sample track of each query row
    masks:       uint8 (T, H, W) object ids in the sample's own pixels (H, W = source_hw), or None: a mask example,
                 scored for mask consistency instead of TAP-Vid metrics
    query_objects: int64 (Q,) the object id each query was placed on (mask examples), or None
    """

    key: str
    video: np.ndarray
    queries: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    labelled: np.ndarray
    query_mode: str
    source_hw: tuple[int, int]
    area: Optional[np.ndarray] = None
    track_index: Optional[np.ndarray] = None
    masks: Optional[np.ndarray] = None
    query_objects: Optional[np.ndarray] = None

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def raster_hw(self) -> tuple[int, int]:
        return int(self.video.shape[1]), int(self.video.shape[2])

    @property
    def scored_mode(self) -> str:
        """The metrics' frame rule: "first" (t > q) or "strided" (t != q)."""
        return "first" if self.query_mode == "first" else "strided"


def resize_lanczos(video: np.ndarray, size: int = TAPVID_SIZE) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3) with PIL's Lanczos filter (a no-op at that size already)."""
    from PIL import Image

    if video.shape[1:3] == (size, size):
        return video
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS)) for f in video])


def _query_rows(visible: np.ndarray, query_frames: Optional[np.ndarray], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(track index (Q,), query frame (Q,)) for visible (T, N) under the query mode."""
    T, N = visible.shape
    if mode == "first":
        idx = np.flatnonzero(visible.any(axis=0))
        return idx, visible[:, idx].argmax(axis=0)
    if mode == "strided":
        frames = np.arange(0, T, STRIDE)
        t_idx, n_idx = np.nonzero(visible[frames])  # row-major: frame 0's tracks first, then frame 5's, ...
        return n_idx, frames[t_idx]
    if mode == "given":
        if query_frames is None:
            raise ValueError("query mode 'given' needs samples with query frames (TrackSample.query_frames)")
        q = np.asarray(query_frames, dtype=np.int64)
        idx = np.flatnonzero((q < T) & visible[np.minimum(q, T - 1), np.arange(N)])
        return idx, q[idx]
    raise ValueError(f"query mode must be one of {QUERY_MODES}, got {mode!r}")


def make_example(sample: TrackSample, query_mode: str, *, max_frames: Optional[int] = None,
                 raster: int = TAPVID_SIZE) -> Optional[EvalExample]:
    """TrackSample -> EvalExample in the raster x raster frame (None when no track can be queried).

    The sample's meta["seg_area"] (T,) (object area in source pixels^2, None/NaN where unknown) is carried along.
    A sample with masks and no tracks becomes a mask example (make_mask_example).
    """
    if sample.masks is not None and sample.num_tracks == 0:
        return make_mask_example(sample, query_mode, max_frames=max_frames, raster=raster)
    video, tracks, visible = sample.video, sample.tracks.astype(np.float64), sample.visibility
    labelled = np.isfinite(tracks).all(axis=-1)
    area = sample.meta.get("seg_area")
    area = None if area is None else np.array([np.nan if a is None else a for a in area], dtype=np.float64)
    if max_frames:
        video, tracks, visible, labelled = video[:max_frames], tracks[:max_frames], visible[:max_frames], \
            labelled[:max_frames]
        area = None if area is None else area[:max_frames]
    track_idx, q_frames = _query_rows(visible, sample.query_frames, query_mode)
    if len(track_idx) == 0:
        return None
    hw = (sample.height, sample.width)
    tracks = rescale_xy(tracks[:, track_idx], hw, (raster, raster))
    queries = np.concatenate([q_frames[:, None].astype(np.float64), tracks[q_frames, np.arange(len(track_idx))]],
                             axis=1)
    return EvalExample(key=sample.key, video=resize_lanczos(video, raster), queries=queries, tracks=tracks,
                       visible=visible[:, track_idx], labelled=labelled[:, track_idx], query_mode=query_mode,
                       source_hw=hw, area=area, track_index=track_idx.astype(np.int64))


def make_mask_example(sample: TrackSample, query_mode: str, *, max_frames: Optional[int] = None,
                      raster: int = TAPVID_SIZE) -> Optional[EvalExample]:
    """A sample with object masks -> EvalExample with mask queries (mask_queries.place_mask_queries, rescaled to
    the raster) and the masks kept at the source resolution (None when no object can be queried)."""
    from .mask_queries import place_mask_queries

    if query_mode != "first":
        raise ValueError(f"query mode {query_mode!r} needs point tracks; videos with object masks only (DAVIS) are "
                         "queried in 'first' mode (each object at the first frame it appears in)")
    video, masks = sample.video[:max_frames or None], sample.masks[:max_frames or None]
    frames, xy, objects = place_mask_queries(masks)
    if len(frames) == 0:
        return None
    hw = (sample.height, sample.width)
    T, Q = len(video), len(frames)
    queries = np.concatenate([frames[:, None].astype(np.float64), rescale_xy(xy, hw, (raster, raster))], axis=1)
    return EvalExample(key=sample.key, video=resize_lanczos(video, raster), queries=queries,
                       tracks=np.full((T, Q, 2), np.nan), visible=np.zeros((T, Q), bool),
                       labelled=np.zeros((T, Q), bool), query_mode=query_mode, source_hw=hw, masks=masks,
                       query_objects=objects)
