"""datagen.scene.surfaces and deforming surfaces in datagen.scene.tracks, on analytic meshes (numpy only, < 2 s).

The "renders" here are an independent brute-force ray caster (Moller-Trumbore over every triangle), so the
tiled ray casting, the barycentric anchoring and the self-occlusion test are checked against other code.
"""
from __future__ import annotations

import numpy as np
import pytest

from datagen.scene import surfaces as surf
from datagen.scene import tracks as tl

H, W, T = 48, 64, 5


def _camera():
    K = tl.intrinsics(35.0, 32.0, H, W)
    w2c = np.tile(np.eye(4), (T, 1, 1))  # OpenCV camera = world axes, camera moving along +x
    w2c[:, 0, 3] = -0.05 * np.arange(T)
    return K, w2c


def _brute_force_render(meshes, K, w2c):
    """z (T, H, W) and seg (T, H, W) by casting every pixel-centre ray against every triangle.

    meshes: {segment id: (T, V, 3) vertices, (F, 3) faces}; background: a wall at z = 20 with id 1.
    """
    xs, ys = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    d = surf.pixel_rays(np.stack([xs.ravel(), ys.ravel()], -1), K)  # (P, 3) camera rays, z = 1
    n = len(w2c)
    z = np.full((n, H * W), 20.0)
    seg = np.ones((n, H * W), np.int64)
    for t in range(n):
        for sid, (verts, faces) in meshes.items():
            v = surf.to_camera(verts[t], w2c[t])[faces]  # (F, 3, 3)
            e1, e2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
            pvec = np.cross(d[:, None], e2[None])  # (P, F, 3)
            det = (pvec * e1[None]).sum(-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                inv = 1.0 / det
                tvec = -v[None, :, 0]  # ray origin 0
                u = (tvec * pvec).sum(-1) * inv
                qvec = np.cross(tvec, e1[None])
                w = (d[:, None] * qvec).sum(-1) * inv
                s = (e2[None] * qvec).sum(-1) * inv  # ray parameter = camera z (d has z = 1)
            hit = (np.abs(det) > 1e-12) & (u >= 0) & (w >= 0) & (u + w <= 1) & (s > 0)
            s = np.where(hit, s, np.inf).min(1)
            closer = s < z[t]
            z[t, closer], seg[t, closer] = s[closer], sid
    return z.reshape(n, H, W), seg.reshape(n, H, W)


def _sheet(nu: int, nv: int, size: float):
    """Grid of (nu x nv) vertices in param space [-size/2, size/2]^2 and its triangles."""
    u, v = np.meshgrid(np.linspace(-size / 2, size / 2, nu), np.linspace(-size / 2, size / 2, nv), indexing="ij")
    uv = np.stack([u.ravel(), v.ravel()], -1)
    i, j = np.meshgrid(np.arange(nu - 1), np.arange(nv - 1), indexing="ij")
    a = (i * nv + j).ravel()
    faces = np.concatenate([np.stack([a, a + nv, a + nv + 1], 1), np.stack([a, a + nv + 1, a + 1], 1)])
    return uv, faces


def test_first_hits_match_brute_force():
    K, w2c = _camera()
    rng = np.random.default_rng(0)
    # a bumpy sphere in front of a second one: many overlapping layers along each ray
    lat, lon = np.meshgrid(np.linspace(0.1, np.pi - 0.1, 12), np.linspace(0, 2 * np.pi, 18, endpoint=False),
                           indexing="ij")
    dirs = np.stack([np.sin(lat) * np.cos(lon), np.sin(lat) * np.sin(lon), np.cos(lat)], -1).reshape(-1, 3)
    _, faces = _sheet(12, 18, 1.0)
    verts = np.concatenate([dirs * (1 + 0.1 * rng.normal(size=(len(dirs), 1))) + [0, 0, 3.5],
                            dirs * 1.5 + [0.7, 0.2, 5.5]])
    faces = np.concatenate([faces, faces + len(dirs)])
    tri_uv, tri_z = surf.project_mesh(verts, faces, w2c[0], K)
    pixels = rng.uniform([0, 0], [W - 1, H - 1], size=(400, 2))
    hits = surf.first_hits(pixels, tri_uv, tri_z, tile=5)
    z_ref, _ = _brute_force_render({2: (verts[None], faces)}, K, w2c[:1])
    # compare at pixel centres (the brute force renders those)
    centres = np.rint(pixels)
    hits_c = surf.first_hits(centres, tri_uv, tri_z, tile=5)
    ref = z_ref[0, centres[:, 1].astype(int), centres[:, 0].astype(int)]
    on = ref < 20
    assert on.sum() > 100 and (~on).sum() > 20
    np.testing.assert_allclose(hits_c.z[on], ref[on], rtol=1e-9)
    assert np.isinf(hits_c.z[~on]).all() and (hits_c.triangle[~on] == -1).all()
    # the hit point (barycentric weights on the 3-D triangle) lies on the pixel's ray at the hit depth
    got = hits.triangle >= 0
    p = np.einsum("nkc,nk->nc", surf.to_camera(verts, w2c[0])[faces[hits.triangle[got]]], hits.bary[got])
    np.testing.assert_allclose(surf.project_camera(p, K), pixels[got], atol=1e-7)
    np.testing.assert_allclose(p[:, 2], hits.z[got], rtol=1e-9)


def test_closest_triangle_finds_the_nearest_surface_point():
    rng = np.random.default_rng(1)
    verts = rng.normal(size=(30, 3))
    faces = rng.integers(0, 30, size=(20, 3))
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])]
    pts = rng.normal(size=(50, 3)) * 1.5
    tri, bary, dist = surf.closest_triangle(pts, verts, faces)
    assert (bary >= -1e-9).all() and np.allclose(bary.sum(1), 1)
    # dense samples of every triangle: none is closer than the reported distance
    n = 80  # a triangular lattice of barycentric weights, edges and corners included
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
    keep = i + j <= n
    w = np.stack([i[keep], j[keep], n - i[keep] - j[keep]], 1) / n
    samples = np.einsum("sk,fkc->fsc", w, verts[faces]).reshape(-1, 3)
    d_ref = np.linalg.norm(pts[:, None] - samples[None], axis=-1).min(1)
    assert (dist <= d_ref + 1e-9).all()
    assert np.allclose(dist, d_ref, atol=0.05)


def test_closest_triangle_prunes_nothing_it_needs_on_a_fine_mesh():
    """The k-d tree pruning against every triangle tested: a bumpy 40x40 sheet (3,042 triangles, some long and
    thin), points on it, just off it and far from it; the same triangles (ties aside) and distances."""
    rng = np.random.default_rng(3)
    uv, faces = _sheet(40, 40, 2.0)
    uv[:, 0] *= np.linspace(1.0, 6.0, len(uv))  # stretch one side: long thin triangles beside small ones
    verts = np.concatenate([uv, 0.1 * np.sin(3 * uv[:, :1]) * np.cos(2 * uv[:, 1:])], 1)
    k, w = rng.integers(0, len(faces), 200), rng.dirichlet([1, 1, 1], 200)
    on = np.einsum("nkc,nk->nc", verts[faces[k]], w)
    pts = np.concatenate([on, on[:80] + rng.normal(scale=0.02, size=(80, 3)),
                          on[:40] + rng.normal(scale=1.0, size=(40, 3))])
    tri, bary, dist = surf.closest_triangle(pts, verts, faces, chunk=37)  # several chunks, one partial
    A, B, C = (verts[faces[:, i]] for i in range(3))
    w_all = surf._closest_point_bary(pts[:, None], A[None], B[None], C[None])  # (N, F, 3): every triangle
    d_all = np.linalg.norm(np.einsum("nfk,fkc->nfc", w_all, verts[faces]) - pts[:, None], axis=-1)
    np.testing.assert_allclose(dist, d_all.min(1), rtol=0, atol=1e-12)
    assert np.abs(d_all[np.arange(len(pts)), tri] - dist).max() < 1e-12
    np.testing.assert_allclose(dist[:200], 0, atol=1e-9)  # points drawn on the mesh
    closest = np.einsum("nk,nkc->nc", bary, verts[faces[tri]])  # the weights give the point at that distance
    np.testing.assert_allclose(np.linalg.norm(closest - pts, axis=1), dist, atol=1e-12)


def _stretching_sheet():
    """A sheet in the plane z = Z0 that stretches and shears (affine in its parameters, non-rigid) over time."""
    uv, faces = _sheet(9, 7, 1.6)
    A = [np.array([[1 + 0.15 * t, 0.1 * t], [-0.05 * t, 1 - 0.08 * t]]) for t in range(T)]
    b = [np.array([-0.2 + 0.12 * t, 0.05 * t]) for t in range(T)]
    verts = np.stack([np.concatenate([uv @ A[t].T + b[t], np.full((len(uv), 1), 5.0)], 1) for t in range(T)])
    return verts, faces, A, b


def test_deforming_sheet_tracks_follow_the_material_point():
    """Affine stretching is reproduced exactly by barycentric interpolation: tracks must match the analytic
    motion of the material point under the query pixel."""
    K, w2c = _camera()
    verts, faces, A, b = _stretching_sheet()
    z, seg = _brute_force_render({2: (verts, faces)}, K, w2c)
    face_region = np.where(np.arange(len(faces)) % 2 == 0, 1, 2)
    surfaces = surf.SurfaceSet(poses=np.tile(np.eye(4), (T, 3, 1, 1)),
                               deforming={2: surf.DeformingSurface(verts, faces, face_region)},
                               region_names=["none", "even", "odd"])
    q = tl.sample_queries(z, seg, np.array([False, False, True]), 300, 0.8, np.random.default_rng(2))
    res = tl.compute_tracks(z, seg, K, w2c, surfaces, q)
    on = res.segment == 2
    assert on.sum() > 150
    # analytic: unproject the query pixel onto the plane z = 5, map back to sheet parameters, forward to t
    tq, px = q.frame[on], q.pixel[on].astype(float)
    ray = surf.pixel_rays(px, K) * 5.0
    cam_to_world = np.linalg.inv(w2c)
    world = np.einsum("qij,qj->qi", cam_to_world[tq, :3, :3], ray) + cam_to_world[tq, :3, 3]
    param = np.stack([np.linalg.solve(A[t], w[:2] - b[t]) for t, w in zip(tq, world)])
    truth_world = np.stack([np.concatenate([param @ A[t].T + b[t], np.full((len(param), 1), 5.0)], 1)
                            for t in range(T)])
    truth_uv = surf.project_camera(np.einsum("tij,tqj->tqi", w2c[:, :3, :3], truth_world) + w2c[:, None, :3, 3], K)
    np.testing.assert_allclose(res.tracks[:, on], truth_uv, atol=1e-3)
    np.testing.assert_allclose(res.anchor_gap[on], 0.0, atol=1e-6)
    # regions come from the anchored triangle
    assert set(res.region[on]) == {1, 2} and (res.region[~on] == 0).all()


def test_self_occlusion_within_one_surface():
    """A flap 8 cm in front of a back sheet (both one surface) slides across it. The rendered-depth test with
    its 3 % + 2 cm tolerance cannot see an 8 cm gap at 5 m; the own-surface test must."""
    K, w2c = _camera()
    w2c = np.tile(np.eye(4), (T, 1, 1))  # static camera: only the flap moves
    back_uv, back_f = _sheet(8, 8, 2.4)
    flap_uv, flap_f = _sheet(4, 4, 0.6)
    back = np.concatenate([back_uv, np.full((len(back_uv), 1), 5.0)], 1)
    verts = np.stack([np.concatenate([back, np.concatenate([flap_uv + [-0.7 + 0.35 * t, 0.0],
                                                            np.full((len(flap_uv), 1), 4.92)], 1)])
                      for t in range(T)])
    faces = np.concatenate([back_f, flap_f + len(back_uv)])
    z, seg = _brute_force_render({2: (verts, faces)}, K, w2c)
    surfaces = surf.SurfaceSet(poses=np.tile(np.eye(4), (T, 3, 1, 1)),
                               deforming={2: surf.DeformingSurface(verts, faces)})
    q = tl.sample_queries(z, seg, np.array([False, False, True]), 600, 1.0, np.random.default_rng(3))
    res = tl.compute_tracks(z, seg, K, w2c, surfaces, q)
    rigid_only = tl.compute_tracks(z, seg, K, w2c, np.tile(np.eye(4), (T, 3, 1, 1)), q)  # for comparison
    on_back = (res.segment == 2) & (np.abs(res.tracks3d[q.frame, np.arange(len(q.frame)), 2] - 5.0) < 1e-6)
    # truth: a back point is hidden iff the flap covers it (the flap is a square of side 0.6 at x0 + 0.35 t)
    xb, yb = res.tracks3d[0, on_back, 0], res.tracks3d[0, on_back, 1]
    x_at_flap, y_at_flap = xb * 4.92 / 5.0, yb * 4.92 / 5.0
    centre = -0.7 + 0.35 * np.arange(T)[:, None]
    covered = (np.abs(x_at_flap[None] - centre) < 0.3) & (np.abs(y_at_flap[None]) < 0.3)
    margin = np.minimum(np.abs(np.abs(x_at_flap[None] - centre) - 0.3), np.abs(np.abs(y_at_flap)[None] - 0.3))
    clear = margin * K[0, 0] / 4.92 > 0.05  # pixels away from the flap's edge
    assert (covered & clear).sum() > 50 and (~covered & clear).sum() > 50
    vis = res.visibility[:, on_back]
    assert not vis[covered & clear].any()
    assert vis[~covered & clear].all()
    assert rigid_only.visibility[:, on_back][covered & clear].all(), "depth tolerance alone misses it"
    # and the rendered depth confirms: where covered, the rendered z is the flap's (in front of the point)
    tt, qq = np.nonzero(covered & clear)
    x, y = np.rint(res.tracks[tt, np.flatnonzero(on_back)[qq]]).astype(int).T
    assert (z[tt, y, x] < 4.93).mean() > 0.95


def test_surface_set_validates():
    with pytest.raises(ValueError, match="region_names"):
        surf.SurfaceSet(poses=np.tile(np.eye(4), (2, 2, 1, 1)), region_names=["face"])
    with pytest.raises(ValueError, match="outside"):
        surf.SurfaceSet(poses=np.tile(np.eye(4), (2, 2, 1, 1)),
                        deforming={5: surf.DeformingSurface(np.zeros((2, 3, 3)), [[0, 1, 2]])})
    with pytest.raises(ValueError, match="triangles"):
        surf.DeformingSurface(np.zeros((2, 4, 3)), [[0, 1, 2, 3]])
