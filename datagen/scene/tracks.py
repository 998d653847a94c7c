"""Ground-truth point tracks from rendered depth + segmentation and the scene's surfaces per frame.

Every segmentation id is a surface (datagen.scene.surfaces): rigid (a world pose per frame: simulated objects,
the static floor and dome) or deforming (a mesh whose vertices Blender moves per frame: skinned humans and
animals). A query pixel sampled at frame ``t_q`` is assigned to the surface hit there (segmentation) and anchored
on it: rigid - unprojected with the rendered z-depth into the surface's local frame; deforming - the triangle and
barycentric weights of the nearest hit of the pixel-centre ray (the triangle that was rendered there). The anchor
is moved with the surface to every frame and projected with that frame's camera. Pure numpy, vectorised over
points (loops over frames and surfaces only).

Conventions (as in datagen.formats.sample): pixels (x, y) with x = 0 at the centre of the leftmost pixel;
camera space x right, y down, z forward; ``world_to_cam`` (T, 4, 4); ``SurfaceSet.poses`` (T, S, 4, 4)
world-from-local for each segmentation id s (0 = nothing hit).

Visibility: a point is visible at frame t iff it projects inside the image (x in [-0.5, W-0.5),
y in [-0.5, H-0.5)), lies in front of the camera, is not behind the rendered surface at its
nearest pixel: ``z_track <= z_rendered * (1 + depth_tolerance) + depth_tolerance_abs``, and (deforming
surfaces) is not behind another triangle of its own surface (exact self-occlusion: a leg behind the other
leg is closer than the depth tolerance).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.scene import surfaces as surf

# Blender cameras look down -z with +y up; OpenCV-style cameras look down +z with +y down.
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
NO_HIT_DEPTH = 1e9  # Blender writes 1e10 where a ray hits nothing


def intrinsics(focal_mm: float, sensor_width_mm: float, height: int, width: int) -> np.ndarray:
    """(3, 3) pinhole matrix in pixels for a Blender camera with horizontal sensor fit."""
    f = focal_mm / sensor_width_mm * width
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def world_to_opencv_camera(cam_to_world_blender: np.ndarray) -> np.ndarray:
    """(T, 4, 4) Blender camera matrix_world -> (T, 4, 4) world-to-camera (OpenCV axes)."""
    return BLENDER_TO_OPENCV @ np.linalg.inv(cam_to_world_blender)


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera points -> (..., 2) pixels (x, y); points at z ~ 0 get huge but finite values."""
    z = points_cam[..., 2:3]
    z = np.where(np.abs(z) < 1e-6, 1e-6, z)
    uv = points_cam[..., :2] / z
    return uv * K[[0, 1], [0, 1]] + K[:2, 2]


@dataclass
class Queries:
    frame: np.ndarray  # (Q,) int64 query frame
    pixel: np.ndarray  # (Q, 2) int64 (x, y) pixel centre in that frame


def sample_queries(z: np.ndarray, seg: np.ndarray, foreground_ids: np.ndarray, num: int,
                   foreground_fraction: float, rng: np.random.Generator,
                   priority: list[tuple[np.ndarray, float]] = ()) -> Queries:
    """Spread `num` query pixels evenly over frames; a `foreground_fraction` share of each frame's
    queries is drawn on foreground segments (objects/humans/animals) when any are visible, the rest
    uniformly over all pixels that hit something.

    z, seg: (T, H, W) rendered z-depth and segmentation ids; foreground_ids: (S,) bool per id.
    priority: optional [(ids (S,) bool, fraction), ...]: that fraction of each frame's queries is drawn on
    those ids first (when visible in the frame), e.g. actors; it counts towards the foreground share.
    """
    T, H, W = z.shape
    counts = np.full(T, num // T) + (np.arange(T) < num % T)
    frames, pixels = [], []
    for t in range(T):  # loop over frames only; pixels are drawn vectorised
        valid = (seg[t] > 0) & (z[t] < NO_HIT_DEPTH)
        fg = valid & foreground_ids[seg[t]]
        all_idx, fg_idx = np.flatnonzero(valid), np.flatnonzero(fg)
        if len(all_idx) == 0:
            raise ValueError(f"frame {t}: no pixel hits any surface")
        picks, taken = [], 0
        for ids, fraction in priority:
            idx = np.flatnonzero(valid & ids[seg[t]])
            n = min(int(round(counts[t] * fraction)), counts[t] - taken) if len(idx) else 0
            if n > 0:
                picks.append(rng.choice(idx, n, replace=n > len(idx)))
                taken += n
        n_fg = max(0, int(round(counts[t] * foreground_fraction)) - taken) if len(fg_idx) else 0
        n_fg = min(n_fg, counts[t] - taken)
        pick = np.concatenate(picks + [
            rng.choice(fg_idx, n_fg, replace=n_fg > len(fg_idx)) if n_fg else np.zeros(0, np.int64),
            rng.choice(all_idx, counts[t] - taken - n_fg, replace=counts[t] - taken - n_fg > len(all_idx)),
        ]).astype(np.int64)
        frames.append(np.full(len(pick), t))
        pixels.append(np.stack([pick % W, pick // W], 1))
    order = rng.permutation(num)  # so no consumer can rely on query order
    return Queries(np.concatenate(frames)[order].astype(np.int64),
                   np.concatenate(pixels)[order].astype(np.int64))


@dataclass
class TrackResult:
    tracks: np.ndarray  # (T, Q, 2) float32 pixels
    visibility: np.ndarray  # (T, Q) bool
    tracks3d: np.ndarray  # (T, Q, 3) float32 camera space
    segment: np.ndarray  # (Q,) int64 segmentation id each track belongs to
    region: np.ndarray | None = None  # (Q,) int64 index into SurfaceSet.region_names (0 = "none")
    anchor_gap: np.ndarray | None = None  # (Q,) m between a deforming anchor and the unprojected pixel (0: rigid)


def compute_tracks(z: np.ndarray, seg: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
                   surfaces, queries: Queries, depth_tolerance: float = 0.03,
                   depth_tolerance_abs: float = 0.02) -> TrackResult:
    """Track every query through all frames.

    z, seg: (T, H, W) rendered z-depth (metres along the optical axis) and segmentation ids;
    K: (3, 3); world_to_cam: (T, 4, 4); surfaces: a datagen.scene.surfaces.SurfaceSet, or just the (T, S, 4, 4)
    world-from-local poses when every surface is rigid.
    """
    if not isinstance(surfaces, surf.SurfaceSet):
        surfaces = surf.SurfaceSet(poses=surfaces)
    poses = surfaces.poses
    T, H, W = z.shape
    Q = len(queries.frame)
    tq, (px, py) = queries.frame, queries.pixel.T
    s = seg[tq, py, px].astype(np.int64)
    depth = z[tq, py, px]
    region = np.zeros(Q, np.int64)  # rigid surfaces have no region; deforming ones set theirs below
    gap = np.zeros(Q)
    # rigid: unproject the pixel centre at its query frame (camera -> world -> body-local), move with the body
    ray = np.stack([(px - K[0, 2]) / K[0, 0], (py - K[1, 2]) / K[1, 1], np.ones_like(depth)], -1)
    p_cam = np.concatenate([ray * depth[:, None], np.ones((Q, 1))], -1)  # (Q, 4)
    cam_to_world = np.linalg.inv(world_to_cam)
    p_world = np.einsum("qij,qj->qi", cam_to_world[tq], p_cam)
    p_local = np.einsum("qij,qj->qi", np.linalg.inv(poses[tq, s]), p_world)
    p_world_t = np.einsum("tqij,qj->tqi", poses[:, s], p_local)[..., :3]  # (T, Q, 3)
    # deforming: triangle + barycentric weights at the query frame, followed through the per-frame vertices
    for sid, mesh in surfaces.deforming.items():  # loop over surfaces only
        on = np.flatnonzero(s == sid)
        if len(on) == 0:
            continue
        anchors = surf.anchor_points(mesh, tq[on], queries.pixel[on].astype(np.float64), depth[on],
                                     world_to_cam, K)
        p_world_t[:, on] = surf.barycentric_points(mesh.vertices, mesh.faces, anchors.triangle, anchors.bary)
        region[on] = mesh.face_region[anchors.triangle]
        gap[on] = anchors.gap
    p_cam_t = np.einsum("tij,tqj->tqi", world_to_cam[:, :3, :3], p_world_t) + world_to_cam[:, None, :3, 3]
    uv = project(p_cam_t, K)
    # visibility: in the image, in front of the camera, and not behind the rendered surface
    inside = (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < H - 0.5)
    col = np.clip(np.rint(uv[..., 0]), 0, W - 1).astype(np.int64)
    row = np.clip(np.rint(uv[..., 1]), 0, H - 1).astype(np.int64)
    z_rendered = z[np.arange(T)[:, None], row, col]
    z_track = p_cam_t[..., 2]
    unoccluded = z_track <= z_rendered * (1 + depth_tolerance) + depth_tolerance_abs
    visible = inside & (z_track > 0) & unoccluded
    for sid, mesh in surfaces.deforming.items():  # exact self-occlusion of deforming surfaces
        on = np.flatnonzero(s == sid)
        if len(on):
            visible[:, on] &= ~surf.occluded_by_own_surface(mesh, p_cam_t[:, on], uv[:, on], world_to_cam, K,
                                                            (H, W))
    visible[tq, np.arange(Q)] = True  # the query pixel itself: visible by construction
    return TrackResult(uv.astype(np.float32), visible, p_cam_t.astype(np.float32), s, region, gap)
