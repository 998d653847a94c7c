"""Motion retargeting: any skeleton's motion (DeepMimic clips, BVH files) -> anny bone rotations.

A motion source describes its skeleton by CANONICAL joints (``pelvis``, ``chest``, ``head``, ``hip.L``,
``knee.L``, ``ankle.L``, ``shoulder.L``, ``elbow.L``, ``wrist.L``, ... see ``CANONICAL``; some are
optional) and yields, at any clip time, each canonical joint's world position and world rotation (the
rotation of that joint's frame, which carries the bone from it to its child). Retargeting then
*swings each anny bone onto the source's bone direction*:

* ``Delta_s(t) = R_s(t) R_s(rest)^T`` is how much source joint s has turned from the source's rest pose.
* ``C_b`` (calibration, once per body) is the smallest rotation taking anny bone b's rest direction (its
  head -> the head of the bone it leads to) onto the source's rest direction of the segment that drives it.
  Bones whose rest orientation already matches (spine, head, feet without a toe joint) get ``C_b = I``.
* anny bone b then gets the world rotation ``G_b(t) = Delta_s(t) C_b`` relative to its rest orientation
  (anny's "world-orient" pose parameterisation: a bone's head follows its parent, only the root moves).
  So ``G_b(t) a_b = Delta_s(t) b_s``: the anny bone points exactly where the source's bone points, and
  the twist about it follows the source joint.

Spine and neck bones blend (slerp) between their neighbouring source joints; fingers and toes ride
with the hand and foot. Root motion is the source pelvis scaled by the leg-length ratio (anny / source),
which keeps foot sliding small.

Frames: sources are mapped into anny's frame (Z up, the rest body faces -y, left = +x) by the rotation
that takes the source's (left, up) axes onto anny's: left = the source's rest hip.L - hip.R, up = the
axis the source declares. ``mirror=True`` reflects the motion across the body's sagittal plane and swaps
left and right. All arrays are numpy float64.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

SIDES = ("L", "R")
# Canonical joints; the optional ones fall back as ``retarget`` describes.
REQUIRED = ["pelvis", "chest", "head"] + [f"{j}.{s}" for s in SIDES for j in
                                          ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")]
OPTIONAL = ["neck"] + [f"{j}.{s}" for s in SIDES for j in ("clavicle", "hand_end", "toe")]
CANONICAL = REQUIRED + OPTIONAL


@dataclass
class SourceMotion:
    """A motion in its own world frame, by canonical joint.

    ``sample(times (T,)) -> (positions (T, K, 3), rotations (T, K, 3, 3))`` for the K = len(joints)
    canonical joints in ``joints`` (world frame of the source, any length unit); ``rest_positions``
    (K, 3) and ``rest_rotations`` (K, 3, 3): the source's rest (zero) pose; ``up``: the source's
    world up axis (3,); duration in seconds; ``loop``: whether times past the end wrap (the sampler
    handles it).
    """

    name: str
    joints: list[str]
    rest_positions: np.ndarray
    rest_rotations: np.ndarray
    up: np.ndarray
    duration: float
    loop: bool
    sample: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        missing = [j for j in REQUIRED if j not in self.joints]
        if missing:
            raise ValueError(f"motion {self.name!r} lacks the canonical joints {missing}")

    def index(self, joint: str) -> int:
        return self.joints.index(joint)


# ----------------------------------------------------------------------------------------------------------
# rotation helpers (vectorised)


def smallest_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of smallest angle taking direction a onto direction b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        # opposite: half a turn about any axis perpendicular to a
        perp = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        return Rotation.from_rotvec(np.pi * perp / np.linalg.norm(perp)).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def slerp_matrices(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """(T, 3, 3) rotations a -> b at weight w (0: a, 1: b), the short way round."""
    if w == 0.0:
        return a.copy()
    if w == 1.0:
        return b.copy()
    ra, rb = Rotation.from_matrix(a), Rotation.from_matrix(b)
    return (ra * Rotation.from_rotvec(w * (ra.inv() * rb).as_rotvec())).as_matrix()


def frame_rotation(left: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking a source frame (left, up) onto anny's (left = +x, up = +z, forward = -y)."""
    up = up / np.linalg.norm(up)
    left = left - np.dot(left, up) * up
    left = left / np.linalg.norm(left)
    src = np.stack([left, up, np.cross(left, up)], 1)  # columns: left, up, forward (= left x up)
    dst = np.stack([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], 1)
    return dst @ src.T


MIRROR = np.diag([-1.0, 1.0, 1.0])  # reflection across anny's sagittal plane (x = 0)


def _swap_side(name: str) -> str:
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


# ----------------------------------------------------------------------------------------------------------
# retargeting


@dataclass
class Retargeted:
    """anny pose for T frames: rotations (T, J, 3, 3) world, relative to each bone's rest orientation;
    root (T, 3) world position of anny's root bone head (anny frame, before placement); scale: source ->
    anny length factor; lowest_joint (T,) the source skeleton's lowest joint height x scale (see
    Retargeter.lowest_joint)."""

    rotations: np.ndarray
    root: np.ndarray
    scale: float
    lowest_joint: np.ndarray


class Retargeter:
    """Calibrates one source skeleton against one anny rest body; ``__call__(times)`` poses it."""

    def __init__(self, source: SourceMotion, rest, mirror: bool = False):
        """rest: ``datagen.actors.humans.body.RestBody``."""
        self.source, self.rest, self.mirror = source, rest, mirror
        k = source.index
        left = source.rest_positions[k("hip.L")] - source.rest_positions[k("hip.R")]
        self.to_anny = frame_rotation(left, source.up)
        # source rest pose in the anny frame (mirrored if asked: reflect + swap sides)
        self.names = [(_swap_side(n) if mirror else n) for n in source.joints]
        self.rest_pos = self._map_pos(source.rest_positions[None])[0]
        self.rest_rot = self._map_rot(source.rest_rotations[None])[0]
        leg_src = sum(np.linalg.norm(self._p(a) - self._p(b)) for a, b in
                      (("hip.L", "knee.L"), ("knee.L", "ankle.L")))
        h = rest.head
        leg_anny = np.linalg.norm(h("upperleg01.L") - h("lowerleg01.L")) + \
            np.linalg.norm(h("lowerleg01.L") - h("foot.L"))
        self.scale = float(leg_anny / leg_src)
        self.plan = self._plan()

    # -- frames
    def _map_pos(self, p: np.ndarray) -> np.ndarray:
        q = p @ self.to_anny.T
        return q @ MIRROR if self.mirror else q  # MIRROR is symmetric

    def _map_rot(self, r: np.ndarray) -> np.ndarray:
        q = self.to_anny @ r @ self.to_anny.T
        return MIRROR @ q @ MIRROR if self.mirror else q

    def _has(self, joint: str) -> bool:
        return joint in self.names

    def _p(self, joint: str) -> np.ndarray:
        return self.rest_pos[self.names.index(joint)]

    # -- which source joint drives which anny bone, and how it is calibrated
    def _plan(self) -> list[tuple[list[tuple[str, float]], np.ndarray]]:
        """Per anny bone: ([(canonical joint, slerp weight)], C (3, 3)). One driver -> weight 1;
        two drivers (a, 1 - w), (b, w) -> slerp from a to b at w."""
        h = self.rest.head
        plan = []
        neck = "neck" if self._has("neck") else None

        def calib(anny_from: str, anny_to: str, src_from: str, src_to: str) -> np.ndarray:
            return smallest_rotation(h(anny_to) - h(anny_from), self._p(src_to) - self._p(src_from))

        for bone in self.rest.bone_labels:
            side = bone[-1] if bone[-2:] in (".L", ".R") else ""
            s = lambda j: f"{j}.{side}"  # noqa: E731
            C = np.eye(3)
            if bone in ("root",) or bone.startswith("pelvis"):
                drive = [("pelvis", 1.0)]
            elif bone.startswith("spine"):
                w = {"spine05": 0.25, "spine04": 0.5, "spine03": 0.75}.get(bone, 1.0)
                drive = [("pelvis", 1 - w), ("chest", w)]
            elif bone.startswith("neck"):
                w = {"neck01": 1 / 3, "neck02": 2 / 3}.get(bone, 1.0)
                drive = [(neck, 1 - w), ("head", w)] if neck else [("chest", 1 - w), ("head", w)]
                if neck and bone == "neck01":
                    drive = [(neck, 1.0)]
            elif bone in ("head",) or bone.startswith("eye"):
                drive = [("head", 1.0)]
            elif bone.startswith(("clavicle", "shoulder01")):
                if self._has(s("clavicle")):
                    drive = [(s("clavicle"), 1.0)]
                    C = calib(f"clavicle.{side}", f"upperarm01.{side}", s("clavicle"), s("shoulder"))
                else:
                    drive = [("chest", 1.0)]
            elif bone.startswith("upperarm"):
                drive = [(s("shoulder"), 1.0)]
                C = calib(f"upperarm01.{side}", f"lowerarm01.{side}", s("shoulder"), s("elbow"))
            elif bone.startswith("lowerarm"):
                drive = [(s("elbow"), 1.0)]
                C = calib(f"lowerarm01.{side}", f"wrist.{side}", s("elbow"), s("wrist"))
            elif bone.startswith(("wrist", "finger", "metacarpal")):
                drive = [(s("wrist"), 1.0)]
                if self._has(s("hand_end")):
                    C = calib(f"wrist.{side}", f"finger3-1.{side}", s("wrist"), s("hand_end"))
                else:  # no hand joint in the source: the hand continues the forearm
                    C = calib(f"wrist.{side}", f"finger3-1.{side}", s("elbow"), s("wrist"))
            elif bone.startswith("upperleg"):
                drive = [(s("hip"), 1.0)]
                C = calib(f"upperleg01.{side}", f"lowerleg01.{side}", s("hip"), s("knee"))
            elif bone.startswith("lowerleg"):
                drive = [(s("knee"), 1.0)]
                C = calib(f"lowerleg01.{side}", f"foot.{side}", s("knee"), s("ankle"))
            elif bone.startswith(("foot", "toe")):
                drive = [(s("ankle"), 1.0)]
                if self._has(s("toe")):
                    C = calib(f"foot.{side}", f"toe3-1.{side}", s("ankle"), s("toe"))
            else:
                raise ValueError(f"no retargeting rule for anny bone {bone!r}")
            plan.append(([(j, w) for j, w in drive if w > 0], C))
        return plan

    def __call__(self, times: np.ndarray) -> Retargeted:
        """Pose for clip times (T,) in seconds."""
        pos, rot = self.source.sample(np.asarray(times, dtype=np.float64))
        pos, rot = self._map_pos(pos), self._map_rot(rot)
        # Delta_s(t) = R_s(t) R_s(rest)^T for every canonical joint: (T, K, 3, 3)
        delta = rot @ np.swapaxes(self.rest_rot, -1, -2)[None]
        by_name = {n: delta[:, i] for i, n in enumerate(self.names)}
        T = len(times)
        out = np.empty((T, len(self.plan), 3, 3))
        cache: dict[tuple, np.ndarray] = {}
        for b, (drive, C) in enumerate(self.plan):  # ~100 bones, vectorised over frames
            key = tuple(drive)
            if key not in cache:
                if len(drive) == 1:
                    cache[key] = by_name[drive[0][0]]
                else:
                    (a, _), (c, w) = drive
                    cache[key] = slerp_matrices(by_name[a], by_name[c], w)
            out[:, b] = cache[key] @ C
        root = pos[:, self.names.index("pelvis")] * self.scale
        return Retargeted(rotations=out, root=root, scale=self.scale, lowest_joint=self._lowest(pos))

    def lowest_joint(self, times: np.ndarray) -> np.ndarray:
        """(T,) height of the source skeleton's lowest joint at clip times (T,), in anny metres (x scale): how high
        the source is off its ground, up to the joint's own clearance (ankle, knee, hand, hip...)."""
        pos, _ = self.source.sample(np.asarray(times, dtype=np.float64))
        return self._lowest(self._map_pos(pos))

    def _lowest(self, mapped_pos: np.ndarray) -> np.ndarray:
        return mapped_pos[..., 2].min(-1) * self.scale

    def source_directions(self, times: np.ndarray, segments: list[tuple[str, str]]) -> np.ndarray:
        """Unit directions (T, S, 3) of source segments (canonical from -> to) in the anny frame (tests)."""
        pos, _ = self.source.sample(np.asarray(times, dtype=np.float64))
        pos = self._map_pos(pos)
        d = np.stack([pos[:, self.names.index(b)] - pos[:, self.names.index(a)] for a, b in segments], 1)
        return d / np.linalg.norm(d, axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------------------
# DeepMimic clips (pybullet_data) as a source

_DEEPMIMIC_JOINTS = {"pelvis": "root", "chest": "chest", "head": "neck"}
for _s, _side in (("L", "left"), ("R", "right")):
    _DEEPMIMIC_JOINTS.update({f"hip.{_s}": f"{_side}_hip", f"knee.{_s}": f"{_side}_knee",
                              f"ankle.{_s}": f"{_side}_ankle", f"shoulder.{_s}": f"{_side}_shoulder",
                              f"elbow.{_s}": f"{_side}_elbow", f"wrist.{_s}": f"{_side}_wrist"})


def deepmimic_clips() -> list[str]:
    """The 15 DeepMimic humanoid clips of pybullet_data (walk, run, jump, dance_a, cartwheel, ...)."""
    from datagen.actors.humans import deepmimic

    return deepmimic.list_clips()


def _deepmimic_motion(name: str, state_at: Callable, duration: float, loop: bool, meta: dict) -> SourceMotion:
    """A SourceMotion posed by pybullet forward kinematics of the DeepMimic humanoid URDF
    (datagen.actors.humans.deepmimic); ``state_at(t) -> deepmimic.PoseState`` gives the pose at clip time t."""
    from datagen.actors.humans import deepmimic

    sk = deepmimic.get_skeleton()
    joints = list(_DEEPMIMIC_JOINTS)
    cols = [sk.links.index(_DEEPMIMIC_JOINTS[j]) for j in joints]

    def frames(states) -> tuple[np.ndarray, np.ndarray]:
        poses = np.stack([sk.link_poses(s) for s in states])[:, cols]  # (T, K, 4, 4)
        return poses[..., :3, 3], poses[..., :3, :3]

    rest_pos, rest_rot = frames([deepmimic.rest_state()])

    def sample(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return frames([state_at(float(t)) for t in times])

    return SourceMotion(name=name, joints=joints, rest_positions=rest_pos[0], rest_rotations=rest_rot[0],
                        up=np.array([0.0, 0.0, 1.0]), duration=duration, loop=loop, sample=sample, meta=meta)


def deepmimic_source(clip: str) -> SourceMotion:
    """A DeepMimic clip as a SourceMotion (world Z up; loops carry on with the clip's own displacement)."""
    from datagen.actors.humans import deepmimic

    motion = deepmimic.load_clip(clip)
    return _deepmimic_motion(f"deepmimic:{clip}", lambda t: deepmimic.clip_state(motion, t), motion.duration,
                             motion.loop, {"source": "deepmimic", "clip": clip})


# ----------------------------------------------------------------------------------------------------------
# "stand": a procedural idle clip on the DeepMimic skeleton (close-ups of calm people)

STAND_DURATION = 8.0  # seconds; loops seamlessly (every wave completes whole cycles)


def standing_source() -> SourceMotion:
    """Standing, breathing and swaying: weight shifts, a little chest roll and bend, arms hanging slightly
    away from the body with softly bent elbows (waves of 1/8 - 1/2 Hz). DeepMimic joint conventions (local
    rotations in the Y-up clip frame: x forward, z to the right), posed by the same pybullet forward
    kinematics as the clips."""
    from datagen.actors.humans import deepmimic as dm

    index = dm.get_skeleton().link_index
    to_world = dm.CLIP_TO_WORLD_XYZW

    def quat(axis, angle):
        axis = np.asarray(axis, float)
        return np.array([*(np.sin(angle / 2) * axis), np.cos(angle / 2)])

    def state(t: float):
        w = 2 * np.pi / STAND_DURATION
        sway = np.sin(w * t)
        root = dm.make_pose(np.array([0.0, 0.0, 0.015 * sway]) @ dm.quat_to_matrix(to_world).T
                            + np.array([0.0, 0.0, 0.0]),
                            dm.quat_mul(to_world, quat([1, 0, 0], 0.02 * sway)))
        q = dm.rest_joints()
        q[index["chest"]] = dm.quat_mul(quat([1, 0, 0], -0.03 * sway),
                                        quat([0, 0, 1], -0.03 + 0.02 * np.sin(2 * w * t)))
        q[index["neck"]] = quat([0, 0, 1], 0.04)
        for side, sgn in (("right", 1.0), ("left", -1.0)):
            swing = 0.04 * np.sin(4 * w * t + (0.0 if side == "right" else 1.0))
            q[index[f"{side}_shoulder"]] = dm.quat_mul(quat([1, 0, 0], -sgn * 0.12), quat([0, 0, 1], swing))
            q[index[f"{side}_elbow"]] = np.array([0.25 + 0.05 * np.sin(2 * w * t)])
            q[index[f"{side}_hip"]] = quat([1, 0, 0], sgn * 0.02 * sway)
            q[index[f"{side}_ankle"]] = quat([1, 0, 0], -sgn * 0.02 * sway)
        return dm.PoseState(root, q)

    return _deepmimic_motion("stand", lambda t: state(t % STAND_DURATION), STAND_DURATION, True,
                             {"source": "procedural", "clip": "stand"})


def clip_names() -> list[str]:
    """Every built-in clip name: the 15 DeepMimic clips and "stand"."""
    return deepmimic_clips() + ["stand"]


def builtin_source(name: str) -> SourceMotion:
    """A built-in clip by name (ValueError listing the choices for an unknown one)."""
    if name == "stand":
        return standing_source()
    if name not in deepmimic_clips():
        raise ValueError(f"unknown clip {name!r}; choices: {clip_names()}")
    return deepmimic_source(name)
