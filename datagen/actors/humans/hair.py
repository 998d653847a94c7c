"""Hair as geometry on an anny body: a shell over the scalp, a curtain for long hair, a bun.

``grow_hair(rest, slot, style, rng) -> Hair`` builds the hair of one person at REST (numpy only, no Blender):

* **shell**: every hair-slot polygon of the head (regions.label_body) copied and lifted off the scalp along
  the vertex normals by the style's volume (1-3.5 cm, uneven), tapering towards the hairline; its rim (the
  hair-slot polygons' outline: a staircase of polygon edges) sinks 3 mm into the scalp, so the shell rises out of
  the hair-coloured scalp polygons inside that outline instead of hanging above it (a 2 mm gap drew the
  staircase as a dark line of shadow); elsewhere the lift never goes below 2 mm (two coincident surfaces would
  make the nearest hit, hence the picture and the depth, flicker between them).
* **curtain** (long hair): a sheet of strands hanging from the back and the sides of the head, draped over the
  neck, shoulders and upper back (each vertex pushed out of the body to 1 cm above its surface), with ragged ends
  (every column its own length).
* **bun**: an ellipsoid at the back of the crown.

Every hair vertex is skinned like the body vertices near it (inverse-distance blend of the skin weights of its
4 nearest body vertices at rest): the shell and the bun move with the head, the curtain's top with the head and
its lower part with the neck and the back it lies on, so the hair deforms with the body and its ground truth
comes from the same evaluated mesh as the rest of the person (regions ``hair``).
Rest coordinates of anny: x to the person's left, y backwards, z up, metres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# per style: shell volume range (m), curtain length below the ears (m; 0 = none), bun radius range (m)
STYLES = {
    "short": {"volume": (0.008, 0.016), "curtain": (0.0, 0.0), "bun": (0.0, 0.0)},
    "long": {"volume": (0.015, 0.03), "curtain": (0.06, 0.36), "bun": (0.0, 0.0)},
    "bun": {"volume": (0.006, 0.012), "curtain": (0.0, 0.0), "bun": (0.035, 0.05)},
}
MIN_LIFT = 0.002  # m: the shell (but its rim) stays this far above the scalp
SINK = 0.003  # m: the shell's rim lies this far under the scalp
TAPER = 0.025  # m from the hairline over which the shell reaches its full volume
DRAPE_GAP = 0.01  # m: the curtain rests this far above the body's surface
CURTAIN_COLUMNS, CURTAIN_ROWS = 28, 14
CURTAIN_HALF_ANGLE = np.deg2rad(120.0)  # around the back of the head (0 = straight back)
SKIN_NEIGHBOURS = 4
CROWN_BEHIND_EYES = 1.6  # eye distances: the crown's vertical axis lies this far behind the eyes (the head's middle)


@dataclass
class Hair:
    """Hair geometry of one person at rest: vertices (H, 3) float64, faces (F, 3) int64 into ``vertices``,
    weights (H, J) skin weights (rows sum to 1), parts (F,) 0 shell / 1 curtain / 2 bun."""

    vertices: np.ndarray
    faces: np.ndarray
    weights: np.ndarray
    parts: np.ndarray

    @staticmethod
    def empty(num_bones: int) -> "Hair":
        return Hair(np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, num_bones)), np.zeros(0, np.int64))


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals of a triangle mesh."""
    tri = vertices[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 x area
    n = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def _smooth_field(rng: np.random.Generator, points: np.ndarray, wavelength: float, octaves: int = 3) -> np.ndarray:
    """(N,) a smooth random field in [-1, 1] over 3-D points: a sum of random plane waves (seeded)."""
    out = np.zeros(len(points))
    amp_sum = 0.0
    for o in range(octaves):
        k = rng.normal(size=(4, 3))
        k *= (2 * np.pi * 2 ** o / wavelength) / np.linalg.norm(k, axis=1, keepdims=True)
        phase = rng.uniform(0, 2 * np.pi, 4)
        out += 0.5 ** o * np.sin(points @ k.T + phase).mean(1)
        amp_sum += 0.5 ** o
    return np.clip(out / amp_sum * 1.6, -1.0, 1.0)


def _shell(rest, hair_mask: np.ndarray, normals: np.ndarray, volume: float, rng) -> tuple[np.ndarray, ...]:
    """Shell vertices (S, 3), faces (F, 3) into them, and the body vertex each one was lifted from (S,)."""
    hair_faces = rest.faces[hair_mask]
    used = np.unique(hair_faces)
    remap = np.full(len(rest.vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    # the hairline: hair vertices that also belong to a polygon that is not hair
    elsewhere = np.zeros(len(rest.vertices), bool)
    elsewhere[np.unique(rest.faces[~hair_mask])] = True
    on_rim = elsewhere[used]  # (S,) the shell's vertices on the hairline
    edge = used[on_rim]
    p = rest.vertices[used]
    if len(edge):
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(rest.vertices[edge]).query(p)
    else:
        dist = np.full(len(used), TAPER)
    ramp = np.clip(dist / TAPER, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no crease where the volume starts
    wobble = 1.0 + 0.3 * _smooth_field(rng, p, 0.12)
    lift = np.where(on_rim, -SINK, np.maximum(MIN_LIFT, volume * ramp * wobble))
    return p + normals[used] * lift[:, None], remap[hair_faces], used


def _head_frame(rest) -> tuple[np.ndarray, float]:
    """Centre between the eyes (3,) and the eye distance d (m): the head's own units (as regions.label_body)."""
    eye_l, eye_r = rest.head("eye.L"), rest.head("eye.R")
    return 0.5 * (eye_l + eye_r), float(np.linalg.norm(eye_l - eye_r))


def strand_coordinates(rest, points: np.ndarray) -> np.ndarray:
    """(N, 3) coordinates of the strands' texture at rest ``points`` (N, 3): cos and sin of the azimuth about a
    vertical axis through the crown, and the height z (m). Hair grows from the crown outwards and down, so along a
    strand the azimuth stays the same: a noise fast in the first two coordinates and slow in the third draws
    streaks along the strands all round the head and down a long curtain. (Stretched along rest y and z instead,
    the streaks ran right over the crown and the back but across the strands on the sides of the head.) Cosine
    and sine rather than the angle: no seam where the angle wraps."""
    eye_c, d = _head_frame(rest)
    rel = points[:, :2] - (eye_c[:2] + np.array([0.0, CROWN_BEHIND_EYES * d]))
    azimuth = np.arctan2(rel[:, 0], rel[:, 1])
    return np.stack([np.cos(azimuth), np.sin(azimuth), points[:, 2]], -1)


def _push_out(points: np.ndarray, body_tree, body_v: np.ndarray, body_n: np.ndarray, gap: float) -> np.ndarray:
    """Move every point that is closer than ``gap`` to the body's surface (or inside it) out along the nearest
    body vertex's normal, to ``gap`` above it."""
    _, nearest = body_tree.query(points)
    n = body_n[nearest]
    depth = ((points - body_v[nearest]) * n).sum(1)
    return points + n * np.maximum(gap - depth, 0.0)[:, None]


def _curtain(rest, shell_v: np.ndarray, length: float, body_tree, body_n, rng) -> tuple[np.ndarray, np.ndarray]:
    """Curtain vertices (C * R, 3) and triangles (column-major grid) hanging from the back and sides of the head."""
    eye_c, d = _head_frame(rest)
    z0 = eye_c[2] + 0.5 * d
    ring = shell_v[np.abs(shell_v[:, 2] - z0) < 0.015]
    if len(ring) < 8:
        ring = shell_v
    centre = np.array([ring[:, 0].mean(), ring[:, 1].mean(), z0])
    theta = np.linspace(-CURTAIN_HALF_ANGLE, CURTAIN_HALF_ANGLE, CURTAIN_COLUMNS)  # 0: straight back (+y)
    u = np.stack([np.sin(theta), np.cos(theta), np.zeros_like(theta)], 1)  # (C, 3)
    rel = ring[:, :2] - centre[:2]
    ang = np.arctan2(rel[:, 0], rel[:, 1])
    rad = np.linalg.norm(rel, axis=1)
    near = np.abs((ang[None, :] - theta[:, None] + np.pi) % (2 * np.pi) - np.pi) < np.deg2rad(15.0)  # (C, ring)
    radius = np.where(near.any(1), np.where(near, rad[None], 0.0).max(1), rad.max()) + 0.004
    column_len = length * (1.0 + 0.15 * _smooth_field(rng, u, 1.0)) * rng.uniform(0.9, 1.1, CURTAIN_COLUMNS)
    s = np.linspace(0.0, 1.0, CURTAIN_ROWS)[None, :] * column_len[:, None]  # (C, R) metres down the strand
    flare = 0.12 * s  # strands spread a little as they fall
    pts = (centre[None, None, :] + u[:, None, :] * (radius[:, None, None] + flare[..., None])
           - np.array([0.0, 0.0, 1.0]) * s[..., None])
    body_v = rest.vertices
    flat = pts.reshape(-1, 3)
    for _ in range(3):  # drape: out of the body, then even out the dents the push made, then out again
        flat = _push_out(flat, body_tree, body_v, body_n, DRAPE_GAP)
        grid = flat.reshape(CURTAIN_COLUMNS, CURTAIN_ROWS, 3)
        smooth = grid.copy()
        smooth[1:-1, 1:-1] = 0.5 * grid[1:-1, 1:-1] + 0.125 * (grid[:-2, 1:-1] + grid[2:, 1:-1]
                                                               + grid[1:-1, :-2] + grid[1:-1, 2:])
        flat = smooth.reshape(-1, 3)
    flat = _push_out(flat, body_tree, body_v, body_n, DRAPE_GAP)
    c, r = np.meshgrid(np.arange(CURTAIN_COLUMNS - 1), np.arange(CURTAIN_ROWS - 1), indexing="ij")
    a = (c * CURTAIN_ROWS + r).ravel()
    b, cc, dd = a + CURTAIN_ROWS, a + 1, a + CURTAIN_ROWS + 1
    faces = np.concatenate([np.stack([a, b, cc], 1), np.stack([cc, b, dd], 1)])
    return flat, faces.astype(np.int64)


def _bun(rest, shell_v: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid (latitude-longitude mesh) sitting on the back of the crown."""
    eye_c, d = _head_frame(rest)
    crown = shell_v[shell_v[:, 2] > eye_c[2] + 0.6 * d]
    crown = crown if len(crown) else shell_v
    back = crown[np.argmax(crown[:, 1])]
    centre = back + np.array([0.0, 0.55 * radius, 0.2 * radius])
    lat = np.linspace(0.0, np.pi, 9)[1:-1]
    lon = np.linspace(0.0, 2 * np.pi, 16, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")  # (7, 16)
    ring = np.stack([np.sin(la) * np.cos(lo), 0.8 * np.sin(la) * np.sin(lo), 0.85 * np.cos(la)], -1) * radius
    verts = np.concatenate([centre + ring.reshape(-1, 3), centre + np.array([[0, 0, 0.85 * radius],
                                                                             [0, 0, -0.85 * radius]])])
    n_lat, n_lon = la.shape
    idx = np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    quads_a, quads_b, quads_c, quads_d = idx[:-1], nxt[:-1], idx[1:], nxt[1:]
    faces = [np.stack([quads_a.ravel(), quads_c.ravel(), quads_b.ravel()], 1),
             np.stack([quads_b.ravel(), quads_c.ravel(), quads_d.ravel()], 1)]
    top, bottom = n_lat * n_lon, n_lat * n_lon + 1
    faces.append(np.stack([np.full(n_lon, top), idx[0], nxt[0]], 1))
    faces.append(np.stack([np.full(n_lon, bottom), nxt[-1], idx[-1]], 1))
    return verts, np.concatenate(faces).astype(np.int64)


def _blend_weights(points: np.ndarray, body_tree, body_weights: np.ndarray) -> np.ndarray:
    """(N, J) skin weights at ``points``: inverse-distance blend of the 4 nearest body vertices' weights."""
    dist, idx = body_tree.query(points, k=SKIN_NEIGHBOURS)
    w = 1.0 / np.maximum(dist, 1e-4)
    w /= w.sum(1, keepdims=True)
    out = np.einsum("nk,nkj->nj", w, body_weights[idx])
    return out / out.sum(1, keepdims=True)


def grow_hair(rest, hair_mask: np.ndarray, style: str, rng: np.random.Generator) -> Hair:
    """The hair of one person at rest (see the module doc).

    rest: ``datagen.actors.humans.body.RestBody``; hair_mask: (F,) bool, the body polygons painted as hair
    (regions.label_body); style: regions.HAIR_STYLES (styles without geometry, e.g. buzz and bald: no hair).
    Draws from ``rng`` in a fixed order (same seed, same hair).
    """
    num_bones = rest.weights.shape[1]
    spec = STYLES.get(style)
    if spec is None or not hair_mask.any():
        return Hair.empty(num_bones)
    from scipy.spatial import cKDTree

    volume = float(rng.uniform(*spec["volume"]))
    curtain_len = float(rng.uniform(*spec["curtain"]))
    bun_radius = float(rng.uniform(*spec["bun"]))
    normals = vertex_normals(rest.vertices, rest.faces)
    # the shell covers the head's hair only (long styles also paint the nape and upper back: the curtain covers
    # those)
    eye_c, d = _head_frame(rest)
    centroid_z = rest.vertices[rest.faces].mean(1)[:, 2]
    shell_mask = hair_mask & (centroid_z > eye_c[2] - 1.6 * d)
    shell_v, shell_f, lifted_from = _shell(rest, shell_mask, normals, volume, rng)
    parts_v = [shell_v]
    parts_f = [shell_f]
    part_ids = [np.zeros(len(shell_f), np.int64)]
    weights = [rest.weights[lifted_from]]
    tree = cKDTree(rest.vertices)
    offset = len(shell_v)
    extra = []
    if curtain_len > 0:
        extra.append((1,) + _curtain(rest, shell_v, curtain_len, tree, normals, rng))
    if bun_radius > 0:
        extra.append((2,) + _bun(rest, shell_v, bun_radius))
    for pid, v, f in extra:
        parts_v.append(v)
        parts_f.append(f + offset)
        part_ids.append(np.full(len(f), pid, np.int64))
        weights.append(_blend_weights(v, tree, rest.weights))
        offset += len(v)
    return Hair(vertices=np.concatenate(parts_v), faces=np.concatenate(parts_f), weights=np.concatenate(weights),
                parts=np.concatenate(part_ids))
