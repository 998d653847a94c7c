"""Standing feet that stay where they stand: per-foot pinning with two-bone leg IK (numpy only).

The root correction (``datagen.actors.planting``) moves the whole body so that the feet on the floor do not slide *on
average*; an animal's clip has front and hind feet that disagree (their stance speeds differ by 15-30 %), so each
foot still slides by what it disagrees with the others. Here every foot is pinned on its own:

* ``stance_offsets``: a foot stands while its height is within ``tol`` of its lowest height in the clip (and that
  lowest height is near the floor, so a foot that never lands in the clip is left alone); over each stance run of
  MIN_RUN frames or more its horizontal position is held at the run's mean position, the offset fading out over the
  swing frames next to the run (half, then nothing), so the foot lands and lifts off smoothly.
* ``two_bone_ik``: the upper and lower leg bones rotated so that the leg's end reaches the pinned position, the knee
  kept in the plane of its own bend (the clip's knee direction), the reach clamped to the leg's length.

Shapes: K key frames, F feet; positions in one frame of reference (the animasim kind works in armature space).
"""
from __future__ import annotations

import numpy as np

FADE = (0.5,)  # offset kept on the swing frames next to a stance run, nearest first
MIN_RUN = 3  # shorter stances (a gallop's hoof touches for a frame or two) are left to the root correction


def stance_offsets(feet: np.ndarray, tol: float, floor_tol: float, max_offset: float = np.inf) -> np.ndarray:
    """(K, F, 2) horizontal offsets that hold each standing foot at its stance run's mean position.

    feet: (K, F, 3) world positions of the feet (z up, floor z = 0); tol: how far above its lowest height a foot
    still stands; floor_tol: a foot whose lowest height is more than this above the lowest foot's never stands;
    max_offset: a run that would need a larger offset is left alone (the clip's foot does not stand there: it
    glides along the floor, as the small canines' paws do, and holding it would bend the leg out of shape).
    """
    K, F, _ = feet.shape
    z = feet[..., 2]
    low = z.min(0)  # (F,)
    stands = (z <= low[None] + tol) & (low[None] <= low.min() + floor_tol)  # (K, F)
    out = np.zeros((K, F, 2))
    for f in range(F):  # four feet: a loop over runs, not over points
        frames = np.flatnonzero(stands[:, f])
        if not len(frames):
            continue
        runs = np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1)
        for run in runs:
            if len(run) < MIN_RUN:
                continue
            offset = feet[run, f, :2].mean(0) - feet[run, f, :2]  # (len(run), 2)
            if np.linalg.norm(offset, axis=-1).max() > max_offset:
                continue
            out[run, f] = offset
            for k, weight in enumerate(FADE, start=1):
                for t, edge in ((run[0] - k, offset[0]), (run[-1] + k, offset[-1])):
                    if 0 <= t < K and not stands[t, f]:
                        out[t, f] += weight * edge
    return out


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the smallest rotations taking directions a (..., 3) to b (..., 3) (Rodrigues)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)[..., None, None]
    vx = np.zeros(v.shape + (3,))
    vx[..., 0, 1], vx[..., 0, 2], vx[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    vx = vx - np.swapaxes(vx, -1, -2)
    return np.eye(3) + vx + vx @ vx / np.maximum(1.0 + c, 1e-9)


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, end: np.ndarray, target: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotations of a two-bone leg whose end should reach ``target``.

    hip, knee, end, target: (..., 3) the upper bone's head, the lower bone's head, the leg's end and where the end
    should go. Returns (r_upper (..., 3, 3) about the hip, r_lower (..., 3, 3) about the new knee, reached (..., 3)):
    the upper bone's pose is rotated by r_upper about ``hip``, then the lower bone's (which moves with it) by r_lower
    about the new knee; ``reached`` is where the end then is (``target``, pulled in to the leg's reach).
    """
    l1 = np.linalg.norm(knee - hip, axis=-1)
    l2 = np.linalg.norm(end - knee, axis=-1)
    to_target = target - hip
    dist = np.linalg.norm(to_target, axis=-1)
    reach = np.clip(dist, np.abs(l1 - l2) + 1e-6, l1 + l2 - 1e-6)
    u_new = to_target / np.maximum(dist, 1e-12)[..., None]
    reached = hip + u_new * reach[..., None]
    # the knee's bend direction: its offset from the hip-end line, kept perpendicular to the new line
    u_old = (end - hip) / np.linalg.norm(end - hip, axis=-1, keepdims=True)
    bend = (knee - hip) - np.sum((knee - hip) * u_old, axis=-1, keepdims=True) * u_old
    bend = bend - np.sum(bend * u_new, axis=-1, keepdims=True) * u_new
    bend = bend / np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-12)
    x = (l1**2 - l2**2 + reach**2) / (2 * reach)
    y = np.sqrt(np.maximum(l1**2 - x**2, 0.0))
    knee_new = hip + u_new * x[..., None] + bend * y[..., None]
    r_upper = _rotation_between(knee - hip, knee_new - hip)
    lower_dir = np.einsum("...ij,...j->...i", r_upper, end - knee)
    r_lower = _rotation_between(lower_dir, reached - knee_new)
    return r_upper, r_lower, reached
