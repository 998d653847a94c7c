"""`TrackSample`: one video with ground-truth point tracks, the sample every data source yields (numpy only).

Rendered scenes (`datagen.scene.render.render_scene`), our shards (`datagen.formats.shard_io.decode_sample`) and every reader in
`datagen.formats` (CoTracker3 Kubric folders, TAP-Vid pickles, ...) return this one type, so training, evaluation
and the data tools never see a source's own layout.

Conventions (see docs/data_sources.md and docs/datagen_scenes.md):
  * pixels: (x, y), x = 0 at the centre of the leftmost pixel, y = 0 at the centre of the top row.
  * ``visibility`` means "in frame and not occluded" (True = visible). Sources that store occlusion flags
    (CoTracker3 Kubric's misnamed ``visibility`` field, TAP-Vid's ``occluded``) are inverted by their reader.
  * unlabelled points (sparse real annotations): ``tracks`` NaN, ``visibility`` False (enforced here).
  * camera space: OpenCV style, x right, y down, z forward (metres); ``tracks3d[..., 2]`` is the
    z-depth of the point (positive in front of the camera).
  * ``meta["extrinsics"]``: (T, 4, 4) WORLD-TO-CAMERA matrices in that camera space, so
    ``K @ (E[t] @ X_world)[:3]`` gives homogeneous pixels in the convention above.
  * ``meta["intrinsics"]``: 3x3 pixels, same convention (principal point (W-1)/2, (H-1)/2).
  * ``masks``: per-frame object ids at the frame's own pixels (row y, column x): 0 = background, 1..254 =
    objects, 255 = void (MASK_VOID: a label to ignore, e.g. DAVIS-2017 object boundaries). Real video without point
    tracks (DAVIS) carries these instead of tracks (N = 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

CATEGORY_NAMES = ["background", "object", "human", "animal"]
MASK_VOID = 255  # the object id of `masks` pixels that belong to no object and to no background either


@dataclass
class TrackSample:
    """One clip and its point tracks.

    video:        uint8 (T, H, W, 3) RGB
    tracks:       float32 (T, N, 2) (x, y) pixels, pixel-centre convention; NaN where a point is not labelled
    visibility:   bool (T, N) visible (in frame, not occluded); False wherever the point is not labelled
    tracks3d:     float32 (T, N, 3) camera space (x right, y down, z forward, metres), or None when unknown
    query_frames: int64 (N,) the frame each track was sampled in, or None (then `query_points` uses the first
                  visible frame). Our renders keep them in meta["query_frames"]; that is picked up when not given.
    key:          sample name (unique within its source), e.g. "scene-000013"
    meta:         JSON-able dict (seed, config, camera, categories, fps, ...)
    masks:        uint8 (T, H, W) object ids (0 background, 1..254 objects, 255 void), or None (no masks)
    """

    video: np.ndarray
    tracks: np.ndarray
    visibility: np.ndarray
    tracks3d: Optional[np.ndarray] = None
    query_frames: Optional[np.ndarray] = None
    key: str = ""
    meta: dict = field(default_factory=dict)
    masks: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        video = np.asarray(self.video)
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        t = video.shape[0]
        tracks = np.asarray(self.tracks)
        if tracks.ndim != 3 or tracks.shape[0] != t or tracks.shape[2] != 2:
            raise ValueError(f"tracks must be (T, N, 2) with T = {t} video frames, got {tracks.shape}")
        n = tracks.shape[1]
        if not np.issubdtype(tracks.dtype, np.floating):
            raise ValueError(f"tracks must be floating point pixels, got {tracks.dtype}")
        vis = np.asarray(self.visibility)
        if vis.shape != (t, n):
            raise ValueError(f"visibility must be (T, N) = {(t, n)}, got {vis.shape}")
        if vis.dtype != np.bool_:
            raise ValueError(f"visibility must be bool, got {vis.dtype}")
        if self.tracks3d is not None:
            t3 = np.asarray(self.tracks3d)
            if t3.shape != (t, n, 3) or not np.issubdtype(t3.dtype, np.floating):
                raise ValueError(f"tracks3d must be float (T, N, 3) = {(t, n, 3)}, got {t3.dtype} {t3.shape}")
            self.tracks3d = t3.astype(np.float32, copy=False)
        if self.masks is not None:
            masks = np.asarray(self.masks)
            if masks.dtype != np.uint8 or masks.shape != video.shape[:3]:
                raise ValueError(f"masks must be uint8 (T, H, W) = {video.shape[:3]}, got {masks.dtype} {masks.shape}")
            self.masks = masks
        if not isinstance(self.meta, dict):
            raise ValueError(f"meta must be a dict, got {type(self.meta).__name__}")
        if self.query_frames is None and "query_frames" in self.meta:
            self.query_frames = self.meta["query_frames"]
        if self.query_frames is not None:
            q = np.asarray(self.query_frames)
            if q.shape != (n,) or not np.issubdtype(q.dtype, np.integer) or (n and (q.min() < 0 or q.max() >= t)):
                raise ValueError(f"query_frames must be (N,) = ({n},) integers in [0, {t}), got "
                                 f"{q.dtype} {q.shape}")
            self.query_frames = q.astype(np.int64, copy=False)
        self.video = video
        self.tracks = tracks.astype(np.float32, copy=False)
        labelled = self.labelled
        # An unlabelled point is never visible: sources may leave garbage flags under a NaN position.
        self.visibility = vis if labelled.all() else vis & labelled
        self.key = str(self.key)

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.tracks.shape[1])

    @property
    def height(self) -> int:
        return int(self.video.shape[1])

    @property
    def width(self) -> int:
        return int(self.video.shape[2])

    @property
    def labelled(self) -> np.ndarray:
        """bool (T, N): the point has a position in that frame (finite x and y)."""
        return np.isfinite(self.tracks).all(axis=-1)

    @property
    def query_points(self) -> np.ndarray:
        """float32 (N, 3) (t, x, y): each track at its query frame (`query_frames`; else its first visible frame,
        else its first labelled frame, else frame 0 with NaN position)."""
        n = self.num_tracks
        if self.query_frames is not None:
            t = self.query_frames
        else:
            vis, lab = self.visibility, self.labelled
            t = np.where(vis.any(0), vis.argmax(0), lab.argmax(0)).astype(np.int64)
        xy = self.tracks[t, np.arange(n)]
        return np.concatenate([t[:, None].astype(np.float32), xy], axis=1)
