"""`SceneSample`: one rendered scene with its ground-truth point tracks (numpy only, no Blender).

Conventions (see docs/datagen_scenes.md):
  * pixels: (x, y), x = 0 at the centre of the leftmost pixel, y = 0 at the centre of the top row.
  * camera space: OpenCV style, x right, y down, z forward (metres); ``tracks3d[..., 2]`` is the
    z-depth of the point (positive in front of the camera).
  * ``meta["extrinsics"]``: (T, 4, 4) WORLD-TO-CAMERA matrices in that camera space, so
    ``K @ (E[t] @ X_world)[:3]`` gives homogeneous pixels in the convention above.
  * ``meta["intrinsics"]``: 3x3 pixels, same convention (principal point (W-1)/2, (H-1)/2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CATEGORY_NAMES = ["background", "object", "human", "animal"]


@dataclass
class SceneSample:
    video: np.ndarray  # uint8 (T, H, W, 3)
    tracks: np.ndarray  # float32 (T, Q, 2) (x, y) pixels
    visibility: np.ndarray  # bool (T, Q): in frame and not occluded
    tracks3d: np.ndarray  # float32 (T, Q, 3) camera space (x right, y down, z forward)
    meta: dict = field(default_factory=dict)  # JSON-able

    def __post_init__(self) -> None:
        t, h, w, c = self.video.shape
        q = self.tracks.shape[1]
        if self.video.dtype != np.uint8 or c != 3:
            raise ValueError(f"video must be uint8 (T, H, W, 3), got {self.video.dtype} {self.video.shape}")
        if self.tracks.shape != (t, q, 2) or self.visibility.shape != (t, q) \
                or self.tracks3d.shape != (t, q, 3):
            raise ValueError("tracks/visibility/tracks3d shapes disagree with video: "
                             f"{self.tracks.shape} {self.visibility.shape} {self.tracks3d.shape}")
        self.tracks = self.tracks.astype(np.float32, copy=False)
        self.tracks3d = self.tracks3d.astype(np.float32, copy=False)
        self.visibility = self.visibility.astype(bool, copy=False)

    @property
    def num_frames(self) -> int:
        return int(self.video.shape[0])

    @property
    def num_tracks(self) -> int:
        return int(self.tracks.shape[1])

    @property
    def query_points(self) -> np.ndarray:
        """(Q, 3) float32 (t, x, y): the frame each track was sampled in and its pixel there."""
        t = np.asarray(self.meta["query_frames"], dtype=np.int64)
        xy = self.tracks[t, np.arange(self.num_tracks)]
        return np.concatenate([t[:, None].astype(np.float32), xy], axis=1)
