"""datagen.scene.tracks on an analytic scene (numpy only): a textured back wall and a moving square."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.scene import tracks as tl

H, W, T = 40, 48, 4
WALL_Z, SQUARE_Z, HALF = 10.0, 5.0, 0.6


def _scene():
    """Camera slides along +x and the square along -x; returns z, seg, K, world_to_cam, poses, truth."""
    K = tl.intrinsics(35.0, 32.0, H, W)
    cam_x = 0.15 * np.arange(T)
    sq_x = 0.4 - 0.35 * np.arange(T)
    w2c = np.tile(np.eye(4), (T, 1, 1))
    w2c[:, 0, 3] = -cam_x  # camera axes = world axes (OpenCV), camera at (cam_x, 0, 0)
    poses = np.tile(np.eye(4), (T, 3, 1, 1))  # ids: 0 nothing, 1 wall (static), 2 square
    poses[:, 2, 0, 3] = sq_x
    xs, ys = np.meshgrid(np.arange(W), np.arange(H))
    rx, ry = (xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1]
    z = np.full((T, H, W), WALL_Z)
    seg = np.ones((T, H, W), dtype=np.int64)
    for t in range(T):
        hit = (np.abs(cam_x[t] + SQUARE_Z * rx - sq_x[t]) < HALF) & (np.abs(SQUARE_Z * ry) < HALF)
        z[t][hit], seg[t][hit] = SQUARE_Z, 2
    return z, seg, K, w2c, poses, cam_x, sq_x


def _analytic(queries, K, cam_x, sq_x, z, seg):
    """Exact tracks and visibility (ray-square test at the exact projected position)."""
    tq, (px, py) = queries.frame, queries.pixel.T
    depth = z[tq, py, px]
    on_square = seg[tq, py, px] == 2
    X = cam_x[tq] + depth * (px - K[0, 2]) / K[0, 0] - np.where(on_square, sq_x[tq], 0)
    Y = depth * (py - K[1, 2]) / K[1, 1]
    Xw = X[None] + np.where(on_square, sq_x[:, None], 0)  # (T, Q)
    u = K[0, 0] * (Xw - cam_x[:, None]) / depth + K[0, 2]
    v = np.broadcast_to(K[1, 1] * Y / depth + K[1, 2], u.shape)
    # a wall point is hidden iff the ray to it crosses the square
    xr = cam_x[:, None] + (Xw - cam_x[:, None]) * SQUARE_Z / WALL_Z
    yr = Y * SQUARE_Z / WALL_Z
    hidden = ~on_square & (np.abs(xr - sq_x[:, None]) < HALF) & (np.abs(yr) < HALF)
    inside = (u >= -0.5) & (u < W - 0.5) & (v >= -0.5) & (v < H - 0.5)
    edge_dist = np.minimum(np.abs(np.abs(xr - sq_x[:, None]) - HALF), np.abs(np.abs(yr) - HALF))
    return np.stack([u, v], -1), inside & ~hidden, edge_dist * K[0, 0] / SQUARE_Z  # px


@pytest.fixture(scope="module")
def result():
    z, seg, K, w2c, poses, cam_x, sq_x = _scene()
    rng = np.random.default_rng(0)
    q = tl.sample_queries(z, seg, np.array([False, False, True]), 400, 0.5, rng)
    res = tl.compute_tracks(z, seg, K, w2c, poses, q, depth_tolerance=0.03, depth_tolerance_abs=0.02)
    return q, res, _analytic(q, K, cam_x, sq_x, z, seg), (z, seg, K, w2c)


def test_tracks_match_analytic_motion(result):
    q, res, (uv, _, _), _ = result
    assert res.tracks.shape == (T, 400, 2) and res.tracks.dtype == np.float32
    np.testing.assert_allclose(res.tracks, uv, atol=1e-3)
    # both the static wall (moving only through the camera) and the square are tracked
    assert set(np.unique(res.segment)) == {1, 2}


def test_query_frame_is_the_sampled_pixel(result):
    q, res, _, _ = result
    at_query = res.tracks[q.frame, np.arange(400)]
    np.testing.assert_allclose(at_query, q.pixel, atol=1e-4)
    assert res.visibility[q.frame, np.arange(400)].all()


def test_visibility_occlusion_and_out_of_frame(result):
    q, res, (uv, vis, edge_px), _ = result
    away = edge_px > 1.0  # the depth test uses the nearest pixel: ambiguous within a pixel of an edge
    assert (res.visibility[away] == vis[away]).all()
    assert (~vis).sum() > 20, "scene should produce occlusions / leaving points"
    # wall points hidden behind the square at some frame are reported occluded there
    assert (~res.visibility & (res.segment == 1)[None]).any()


def test_tracks3d_project_to_tracks(result):
    _, res, _, (z, seg, K, w2c) = result
    np.testing.assert_allclose(tl.project(res.tracks3d, K), res.tracks, atol=1e-3)
    assert (res.tracks3d[..., 2] > 0).all()


def test_sample_queries_balanced_over_frames_and_foreground():
    z, seg, *_ = _scene()
    q = tl.sample_queries(z, seg, np.array([False, False, True]), 101, 0.5, np.random.default_rng(1))
    counts = np.bincount(q.frame, minlength=T)
    assert counts.max() - counts.min() <= 1 and counts.sum() == 101
    fg = seg[q.frame, q.pixel[:, 1], q.pixel[:, 0]] == 2
    # the square covers a small part of the image, yet about half the queries land on it
    assert 0.4 < fg.mean() < 0.75
    assert ((q.pixel >= 0) & (q.pixel < [W, H])).all()


def test_world_to_opencv_camera_flips_blender_axes():
    cam = np.eye(4)
    cam[:3, 3] = (0, 0, 5)  # Blender camera at z=5 looking down -z
    e = tl.world_to_opencv_camera(cam[None])[0]
    p = e @ np.array([0.0, 1.0, 0.0, 1.0])  # a point below the camera, above in image? y up world
    assert p[2] == pytest.approx(5.0)  # in front
    assert p[1] == pytest.approx(-1.0)  # world +y is image up (OpenCV y down)
