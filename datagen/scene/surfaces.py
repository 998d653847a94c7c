"""Surfaces the ground truth follows: rigid (one pose per frame) or deforming (vertices per frame).

The annotator (datagen.scene.tracks) sees surfaces, never actor kinds. Each segmentation id of a rendered scene is
one surface:

* **rigid**: a Kubric object with a world pose per frame (``SurfaceSet.poses[t, s]``); a point is stored in the
  object's local frame and moved with the pose.
* **deforming**: a Blender mesh whose vertices move (armature, shape keys, any modifier Blender evaluates) with
  one fixed triangulation over all frames (``DeformingSurface``). A point is stored as a triangle + barycentric
  weights and followed through the per-frame vertices read back from Blender's evaluated mesh (what was drawn).

Pure numpy, vectorised over points and triangles (loops run over frames and surfaces only).

Conventions: pixels (x, y) with x = 0 at the centre of the leftmost pixel (datagen.formats.sample); camera space OpenCV
(x right, y down, z forward, metres); ``world_to_cam`` (4, 4); triangles (F, 3) int vertex indices.

Anchoring (``anchor_points``) casts the query pixel's centre ray against the surface's triangles at the query
frame and keeps the nearest hit: the same triangle Cycles shaded at that pixel centre (the GT pass renders
exactly the pixel centre), so the anchor agrees with the rendered depth and an arm in front of the chest
anchors on the arm. ``first_hits`` does the ray casting for many pixels at once: triangles are projected,
binned into screen tiles, and each pixel is tested against the triangles of its tile only (perspective-correct
barycentrics, depth from 1/z interpolation, exact for planar triangles).

Self-occlusion (``occluded_by_own_surface``): a tracked point is hidden at frame t when its own surface has a
triangle strictly in front of it along its camera ray. This is decided exactly from the triangles, so a leg
behind the other leg (a few centimetres apart) is occluded even where the rendered-depth test's tolerance
(3 % + 2 cm, needed at object edges) would let it through.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

NEAR_Z = 1e-4  # metres: triangles with a vertex closer than this to the camera plane are not ray-cast
NONE_REGION = "none"


@dataclass
class DeformingSurface:
    """A mesh whose vertices move per frame, with one fixed triangulation.

    vertices: (T, V, 3) world positions at the scene's frames (frame_start + t); faces: (F, 3) int64;
    face_region: (F,) int64 index into ``SurfaceSet.region_names`` (0 = "none").
    """

    vertices: np.ndarray
    faces: np.ndarray
    face_region: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        if self.vertices.ndim != 3 or self.vertices.shape[-1] != 3:
            raise ValueError(f"vertices must be (T, V, 3), got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3) triangles, got {self.faces.shape}")
        if self.face_region is None:
            self.face_region = np.zeros(len(self.faces), dtype=np.int64)
        self.face_region = np.asarray(self.face_region, dtype=np.int64)
        if self.face_region.shape != (len(self.faces),):
            raise ValueError(f"face_region must be ({len(self.faces)},), got {self.face_region.shape}")


@dataclass
class SurfaceSet:
    """Every surface of a scene, indexed by segmentation id s (0 = nothing hit).

    poses: (T, S, 4, 4) world-from-local of rigid surfaces (identity for ids that are not rigid);
    deforming: segmentation id -> DeformingSurface; region_names: names of the regions, region_names[0] == "none"
    (rigid surfaces have no region: region 0).
    """

    poses: np.ndarray
    deforming: dict[int, DeformingSurface] = field(default_factory=dict)
    region_names: list[str] = field(default_factory=lambda: [NONE_REGION])

    def __post_init__(self) -> None:
        self.poses = np.asarray(self.poses, dtype=np.float64)
        if not self.region_names or self.region_names[0] != NONE_REGION:
            raise ValueError(f'region_names must start with "{NONE_REGION}", got {self.region_names}')
        bad = [s for s in self.deforming if not 0 < s < self.poses.shape[1]]
        if bad:
            raise ValueError(f"deforming surface ids {bad} outside [1, {self.poses.shape[1]})")


# ------------------------------------------------------------------------------------------------ projection
def to_camera(points_world: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> (..., 3) camera points (OpenCV axes) for one (4, 4) world_to_cam."""
    return points_world @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]


def project_camera(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(..., 3) camera points (z > 0) -> (..., 2) pixels (x, y)."""
    z = np.where(np.abs(points_cam[..., 2:3]) < 1e-9, 1e-9, points_cam[..., 2:3])
    return points_cam[..., :2] / z * K[[0, 1], [0, 1]] + K[:2, 2]


def pixel_rays(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 2) pixels -> (N, 3) camera-space ray directions with z = 1."""
    return np.stack([(pixels[:, 0] - K[0, 2]) / K[0, 0], (pixels[:, 1] - K[1, 2]) / K[1, 1],
                     np.ones(len(pixels))], -1)


# ------------------------------------------------------------------------------------------------ ray casting
@dataclass
class Hits:
    """First hits of N pixel rays: triangle index (-1: none), camera z of the hit (inf: none) and the hit's
    3-D barycentric weights (N, 3) on that triangle (rows sum to 1)."""

    triangle: np.ndarray
    z: np.ndarray
    bary: np.ndarray


def _tile_pairs(lo_px: np.ndarray, hi_px: np.ndarray, valid: np.ndarray, point_tiles: np.ndarray, tile: float):
    """Sorted (tile key, triangle) pairs for triangles (screen bounding boxes lo_px/hi_px (F, 2)) overlapping
    the tiles that hold points."""
    tmin, tmax = point_tiles.min(0), point_tiles.max(0)
    tri = np.flatnonzero(valid)
    lo = np.maximum(np.floor(lo_px[tri] / tile), tmin).astype(np.int64)  # (F', 2), clipped to the points
    hi = np.minimum(np.floor(hi_px[tri] / tile), tmax).astype(np.int64)
    keep = (hi[:, 0] >= lo[:, 0]) & (hi[:, 1] >= lo[:, 1])
    tri, lo, hi = tri[keep], lo[keep], hi[keep]
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    count = nx * ny
    pair_tri = np.repeat(tri, count)
    # position of each pair within its triangle's tile rectangle
    start = np.repeat(np.cumsum(count) - count, count)
    k = np.arange(int(count.sum())) - start
    rnx = np.repeat(nx, count)
    tx = np.repeat(lo[:, 0], count) + k % rnx
    ty = np.repeat(lo[:, 1], count) + k // rnx
    width = int(tmax[0] - tmin[0] + 1)
    key = (ty - tmin[1]) * width + (tx - tmin[0])
    order = np.argsort(key, kind="stable")
    return key[order], pair_tri[order], tmin, width


def first_hits(pixels: np.ndarray, tri_uv: np.ndarray, tri_z: np.ndarray, tile: float | None = None) -> Hits:
    """Nearest triangle along each pixel's camera ray.

    pixels: (N, 2) float (x, y); tri_uv: (F, 3, 2) projected triangle corners (pixels); tri_z: (F, 3) their
    camera z. Triangles with a corner behind NEAR_Z or no area on screen are ignored. A pixel on a shared
    edge may match both triangles (same depth); ties go to the lower triangle index. `tile`: bin size in
    pixels (default: twice the median on-screen triangle size, 1-16 px, so a tile holds few triangles whether
    the mesh is a distant 27k-triangle body or a close-up).
    """
    n = len(pixels)
    out = Hits(np.full(n, -1, np.int64), np.full(n, np.inf), np.zeros((n, 3)))
    if n == 0 or len(tri_uv) == 0:
        return out
    # corners as contiguous (F, 2) arrays: elementwise min/max beat reductions over the corner axis
    a, b, c = (np.ascontiguousarray(tri_uv[:, k]) for k in range(3))
    area2 = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    zmin = np.minimum(np.minimum(tri_z[:, 0], tri_z[:, 1]), tri_z[:, 2])
    lo_px, hi_px = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    valid = (zmin > NEAR_Z) & (np.abs(area2) > 1e-12) & np.isfinite(area2) & np.isfinite(lo_px).all(1) \
        & np.isfinite(hi_px).all(1)
    if tile is None:
        size = (hi_px - lo_px)[valid].max(-1) if valid.any() else np.ones(1)
        tile = float(np.clip(2 * np.median(size), 1, 16))
    point_tiles = np.floor(pixels / tile).astype(np.int64)
    keys, pair_tri, tmin, width = _tile_pairs(lo_px, hi_px, valid, point_tiles, tile)
    pkey = (point_tiles[:, 1] - tmin[1]) * width + (point_tiles[:, 0] - tmin[0])
    start, stop = np.searchsorted(keys, pkey, "left"), np.searchsorted(keys, pkey, "right")
    count = stop - start
    if count.sum() == 0:
        return out
    # candidate (point, triangle) pairs
    cp = np.repeat(np.arange(n), count)
    offset = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    ct = pair_tri[np.repeat(start, count) + offset]
    p = pixels[cp]
    ta, tb, tc = a[ct], b[ct], c[ct]
    inv = 1.0 / area2[ct]
    # 2-D barycentrics of p (signed-area ratios): w_a for corner a, etc.
    wa = ((tb[:, 0] - p[:, 0]) * (tc[:, 1] - p[:, 1]) - (tb[:, 1] - p[:, 1]) * (tc[:, 0] - p[:, 0])) * inv
    wb = ((tc[:, 0] - p[:, 0]) * (ta[:, 1] - p[:, 1]) - (tc[:, 1] - p[:, 1]) * (ta[:, 0] - p[:, 0])) * inv
    wc = 1.0 - wa - wb
    eps = 1e-9
    inside = (wa >= -eps) & (wb >= -eps) & (wc >= -eps)
    if not inside.any():
        return out
    cp, ct = cp[inside], ct[inside]
    w2 = np.stack([wa[inside], wb[inside], wc[inside]], -1).clip(0.0, None)
    w2 /= w2.sum(1, keepdims=True)
    # perspective-correct: 1/z is affine in screen space
    inv_z = (w2 / tri_z[ct]).sum(1)
    zhit = 1.0 / inv_z
    w3 = w2 / tri_z[ct] * zhit[:, None]
    k = _nearest_pair(cp, ct, zhit)
    out.triangle[cp[k]], out.z[cp[k]], out.bary[cp[k]] = ct[k], zhit[k], w3[k]
    return out


def _nearest_pair(point: np.ndarray, triangle: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Candidate (point, triangle) pairs with a distance `key` -> the index of each point's nearest pair (the
    lowest key; ties go to the lower triangle index), one per point that has a candidate."""
    order = np.lexsort((triangle, key, point))
    first = np.ones(len(order), bool)
    first[1:] = point[order[1:]] != point[order[:-1]]
    return order[first]


def project_mesh(vertices_world: np.ndarray, faces: np.ndarray, world_to_cam: np.ndarray,
                 K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3) world vertices + (F, 3) faces -> tri_uv (F, 3, 2) pixels and tri_z (F, 3) camera z."""
    cam = to_camera(vertices_world, world_to_cam)
    uv = project_camera(cam, K)
    return uv[faces], cam[faces, 2]


def closest_triangle(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray,
                     chunk: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (N, 3) points: the nearest triangle of the mesh, the barycentric weights (N, 3) of the closest point
    on it and the distance (N,) (used as the anchoring fallback). Exact, and no brute force over every triangle:
    a point's nearest vertex bounds its distance to the mesh from above, so only triangles whose bounding sphere
    reaches that close can hold the nearest point (found through k-d trees); those few are tested exactly.
    Ties go to the lower triangle index. Points go `chunk` at a time: a point far from the mesh reaches most of
    its triangles (~0.5 kB of temporaries each), and the chunk bounds that memory."""
    from scipy.spatial import cKDTree

    n = len(points)
    tri, bary, dist = np.zeros(n, np.int64), np.zeros((n, 3)), np.full(n, np.inf)
    if n == 0 or len(faces) == 0:
        return tri, bary, dist
    A, B, C = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    centre = (A + B + C) / 3.0
    radius = np.sqrt(np.maximum(np.maximum(((A - centre) ** 2).sum(1), ((B - centre) ** 2).sum(1)),
                                ((C - centre) ** 2).sum(1)))
    bound, _ = cKDTree(vertices[np.unique(faces)]).query(points)  # >= the distance to the mesh
    slack = 1e-9 * (1.0 + bound.max() + radius.max())  # float rounding of the bounds below
    reach = bound + radius.max() + slack  # a triangle centre further than this cannot hold the nearest point
    centres = cKDTree(centre)
    for s in range(0, n, chunk):  # loop over point chunks (few: fallback points only), candidates vectorised
        rows = np.arange(s, min(s + chunk, n))
        near = centres.query_ball_point(points[rows], reach[rows], return_sorted=False)
        count = np.fromiter(map(len, near), np.int64, len(rows))  # >= 1: the nearest vertex's triangles
        cp = np.repeat(rows, count)
        ct = np.fromiter(itertools.chain.from_iterable(near), np.int64, int(count.sum()))
        p = points[cp]
        keep = np.linalg.norm(p - centre[ct], axis=-1) - radius[ct] <= bound[cp] + slack
        cp, ct, p = cp[keep], ct[keep], p[keep]
        w = _closest_point_bary(p, A[ct], B[ct], C[ct])  # (M, 3)
        d = np.linalg.norm(w[:, :1] * A[ct] + w[:, 1:2] * B[ct] + w[:, 2:3] * C[ct] - p, axis=-1)
        k = _nearest_pair(cp, ct, d)
        tri[cp[k]], bary[cp[k]], dist[cp[k]] = ct[k], w[k], d[k]
    return tri, bary, dist


def _closest_point_bary(p, a, b, c) -> np.ndarray:
    """Barycentric weights of the point of triangle abc closest to p (Ericson, Real-Time Collision Detection,
    5.1.5), vectorised over broadcast shapes (..., 3) -> (..., 3)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    shape = np.broadcast_shapes(va.shape)
    u = 1.0 - np.nan_to_num(v_in) - np.nan_to_num(w_in)
    w = np.stack([u, np.nan_to_num(v_in), np.nan_to_num(w_in)], -1)
    # regions, from the least to the most specific (later assignments win)
    def put(mask, wa, wb, wc):
        w[mask] = np.stack([np.broadcast_to(wa, shape)[mask], np.broadcast_to(wb, shape)[mask],
                            np.broadcast_to(wc, shape)[mask]], -1)

    zero, one = np.zeros(shape), np.ones(shape)
    put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), zero, 1 - np.nan_to_num(t_bc), np.nan_to_num(t_bc))
    put((vb <= 0) & (d2 >= 0) & (d6 <= 0), 1 - np.nan_to_num(t_ac), zero, np.nan_to_num(t_ac))
    put((vc <= 0) & (d1 >= 0) & (d3 <= 0), 1 - np.nan_to_num(t_ab), np.nan_to_num(t_ab), zero)
    put((d6 >= 0) & (d5 <= d6), zero, zero, one)
    put((d3 >= 0) & (d4 <= d3), zero, one, zero)
    put((d1 <= 0) & (d2 <= 0), one, zero, zero)
    return w


# ------------------------------------------------------------------------------------------------ anchoring
@dataclass
class Anchors:
    """Points anchored on a deforming surface: triangle (N,), barycentric weights (N, 3), and how far (m) the
    anchor lies from the unprojected rendered point (a consistency measure; ~0 when the ray hit the mesh)."""

    triangle: np.ndarray
    bary: np.ndarray
    gap: np.ndarray


def anchor_points(surface: DeformingSurface, frames: np.ndarray, pixels: np.ndarray, depth: np.ndarray,
                  world_to_cam: np.ndarray, K: np.ndarray) -> Anchors:
    """Anchor N query pixels on ``surface``: the nearest triangle along each pixel-centre ray at its frame.

    frames: (N,) frame index; pixels: (N, 2) pixel centres (x, y); depth: (N,) rendered z-depth there (used for
    the fallback and the consistency gap); world_to_cam: (T, 4, 4). Where the ray misses the mesh or its hit
    disagrees with the rendered depth by more than 1 % (float noise on a silhouette edge), the anchor falls
    back to the triangle nearest to the unprojected rendered point.
    """
    n = len(frames)
    tri, bary, gap = np.zeros(n, np.int64), np.zeros((n, 3)), np.zeros(n)
    rays = pixel_rays(pixels.astype(np.float64), K)
    for t in np.unique(frames):  # loop over query frames only
        idx = np.flatnonzero(frames == t)
        verts = surface.vertices[t]
        tri_uv, tri_z = project_mesh(verts, surface.faces, world_to_cam[t], K)
        hits = first_hits(pixels[idx].astype(np.float64), tri_uv, tri_z)
        p_cam = rays[idx] * depth[idx, None]
        cam_to_world = np.linalg.inv(world_to_cam[t])
        p_world = p_cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
        ok = (hits.triangle >= 0) & (np.abs(hits.z - depth[idx]) <= 0.01 * depth[idx] + 1e-3)
        tri[idx[ok]], bary[idx[ok]] = hits.triangle[ok], hits.bary[ok]
        if (~ok).any():
            k, w, _ = closest_triangle(p_world[~ok], verts, surface.faces)
            tri[idx[~ok]], bary[idx[~ok]] = k, w
        on_mesh = barycentric_points(verts[None], surface.faces, tri[idx], bary[idx])[0]
        gap[idx] = np.linalg.norm(on_mesh - p_world, axis=-1)
    return Anchors(tri, bary, gap)


def barycentric_points(vertices: np.ndarray, faces: np.ndarray, triangle: np.ndarray,
                       bary: np.ndarray) -> np.ndarray:
    """(T, V, 3) vertices, (F, 3) faces, (N,) triangles, (N, 3) weights -> (T, N, 3) anchored points."""
    corners = vertices[:, faces[triangle]]  # (T, N, 3 corners, 3)
    return np.einsum("tnkc,nk->tnc", corners, bary)


def occluded_by_own_surface(surface: DeformingSurface, points_cam: np.ndarray, pixels: np.ndarray,
                            world_to_cam: np.ndarray, K: np.ndarray, image_size: tuple[int, int],
                            rel_eps: float = 1e-4, abs_eps: float = 1e-4) -> np.ndarray:
    """(T, N) bool: point n is behind another triangle of its own surface at frame t.

    points_cam: (T, N, 3) the anchored points in camera space; pixels: (T, N, 2) their projections;
    image_size: (H, W) (points outside the image are not tested: they are invisible anyway). A point is
    occluded when the nearest triangle along its ray is closer than z_point * (1 - rel_eps) - abs_eps (the
    point's own triangle is at its own depth, so it never occludes it).
    """
    T, N = points_cam.shape[:2]
    H, W = image_size
    occ = np.zeros((T, N), bool)
    for t in range(T):  # loop over frames only
        x, y = pixels[t, :, 0], pixels[t, :, 1]
        front = (points_cam[t, :, 2] > NEAR_Z) & (x > -1) & (x < W) & (y > -1) & (y < H)
        if not front.any():
            continue
        tri_uv, tri_z = project_mesh(surface.vertices[t], surface.faces, world_to_cam[t], K)
        idx = np.flatnonzero(front)
        hits = first_hits(pixels[t, idx], tri_uv, tri_z)
        z = points_cam[t, idx, 2]
        occ[t, idx] = hits.z < z * (1 - rel_eps) - abs_eps
    return occ
