"""Motion clips and forward kinematics for the articulated actors (pybullet only, no Kubric/bpy).

Two skeletons ship with ``pybullet_data``:

* ``"human"``: the DeepMimic humanoid (``humanoid/humanoid.urdf``, loaded at ``globalScaling=0.25`` like
  DeepMimic does, ~1.6 m tall) and its motion clips ``data/motions/humanoid3d_*.txt``. The URDF and the
  clips are **Y-up**, facing +x; we rotate them into the Z-up world (+90 deg about x) so the actor faces +x,
  with its left side towards +y.
* ``"animal"``: the Laikago quadruped (``laikago/laikago.urdf``, Y-up body frame, head towards body +z)
  and ``data/motions/laikago_walk.txt``, whose root pose is already Z-up (the root quaternion maps the
  body into the world).

Clip file formats (JSON, ``{"Loop": "wrap"|"none", "Frames": [[...], ...]}``), one row per keyframe:

* DeepMimic humanoid (44 numbers): ``[dt, root_pos(3), root_rot(4, w x y z), chest(4), neck(4),
  right_hip(4), right_knee(1), right_ankle(4), right_shoulder(4), right_elbow(1), left_hip(4),
  left_knee(1), left_ankle(4), left_shoulder(4), left_elbow(1)]``; quaternions are (w, x, y, z) local
  rotations of spherical joints, 1-numbers are revolute angles (rad); ``dt`` is the time to the next row.
* Laikago (20 numbers): ``[dt, root_pos(3), root_rot(4, x y z w), 12 motor angles]`` in the order
  FR, FL, RR, RL x (hip, upper, lower); the URDF angle is ``direction * angle + offset`` with
  directions (-1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1, 1) and offsets (0, -0.7, 0.7) per leg (the convention of
  pybullet's own Laikago mocap player).

Posing: ``clip_state(clip, t)`` interpolates keyframes (lerp for positions/angles, slerp for rotations).
"wrap" clips loop; every finished cycle moves the actor on by the clip's own root displacement and turn
(yaw), so a walk keeps walking. "none" clips hold their last frame. ``Skeleton.link_poses`` runs the
forward kinematics in a DIRECT pybullet client (reset base pose + joint states, read the URDF link frames)
and returns world link frames; ``Skeleton.parts`` are the visual meshes in those link frames.

Conventions: quaternions in this module are pybullet's (x, y, z, w); poses are 4x4 float64 world-from-link
matrices in metres, Z up.
"""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

KINDS = ("human", "animal")

HUMAN_URDF = "humanoid/humanoid.urdf"
HUMAN_SCALE = 0.25  # DeepMimic loads its humanoid at globalScaling=0.25 (metres)
ANIMAL_URDF = "laikago/laikago.urdf"

# DeepMimic row layout: (pybullet link/joint name, number of values) after dt, root pos, root rot.
_HUMAN_JOINTS = (
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
    ("left_shoulder", 4), ("left_elbow", 1),
)
_LAIKAGO_DIRECTIONS = np.array([-1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1, 1], dtype=np.float64)
_LAIKAGO_OFFSETS = np.tile([0.0, -0.7, 0.7], 4)

# Body axis the actor faces, in its URDF link frame (used for heading / yaw).
_FORWARD_AXIS = {"human": np.array([1.0, 0.0, 0.0]), "animal": np.array([0.0, 0.0, 1.0])}
# Clip frame -> Z-up world: humanoid clips are Y-up (rotate +90 deg about x), laikago's are Z-up already.
_CLIP_TO_WORLD_XYZW = {"human": np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)]),
                       "animal": np.array([0.0, 0.0, 0.0, 1.0])}


def data_path() -> Path:
    """Folder of pybullet_data (URDFs, meshes, motion clips)."""
    import pybullet_data

    return Path(pybullet_data.getDataPath())


# ----------------------------------------------------------------------------------------------------------
# quaternion / transform helpers (x, y, z, w)


def quat_normalize(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) xyzw quaternions: rotation ``a`` after ``b``."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


def quat_slerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Spherical interpolation of unit xyzw quaternions a -> b at weight ``w`` in [0, 1]."""
    a, b = quat_normalize(np.asarray(a, float)), quat_normalize(np.asarray(b, float))
    dot = float(np.dot(a, b))
    if dot < 0.0:  # take the short way round
        b, dot = -b, -dot
    if dot > 0.9995:  # nearly parallel: lerp is exact enough and avoids dividing by sin(~0)
        return quat_normalize(a + w * (b - a))
    theta = np.arccos(dot)
    return (np.sin((1 - w) * theta) * a + np.sin(w * theta) * b) / np.sin(theta)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) xyzw -> (..., 3, 3) rotation matrices."""
    x, y, z, w = np.moveaxis(quat_normalize(np.asarray(q, float)), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=-2)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) xyzw unit quaternions (w >= 0)."""
    m = np.asarray(m, float)
    batch = m.shape[:-2]
    m = m.reshape(-1, 3, 3)
    out = np.empty((m.shape[0], 4))
    for i, r in enumerate(m):  # a handful of parts per frame: clarity over vectorisation
        tr = np.trace(r)
        if tr > 0:
            s = np.sqrt(tr + 1.0) * 2
            out[i] = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
        elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
            s = np.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
            out[i] = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
        elif r[1, 1] > r[2, 2]:
            s = np.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
            out[i] = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
        else:
            s = np.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
            out[i] = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    out = quat_normalize(out)
    out *= np.where(out[:, 3:] < 0, -1.0, 1.0)
    return out.reshape(*batch, 4)


def make_pose(pos: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    """(3,), (4,) -> (4, 4) rigid transform."""
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quat_xyzw)
    m[:3, 3] = pos
    return m


def rot_z(angle: float) -> np.ndarray:
    """(4, 4) rotation about the world z axis."""
    c, s = np.cos(angle), np.sin(angle)
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    return m


def heading_of(pose: np.ndarray, kind: str) -> float:
    """Yaw (rad, about world z) of the actor's forward axis for a (4, 4) root pose."""
    f = pose[:3, :3] @ _FORWARD_AXIS[kind]
    if np.hypot(f[0], f[1]) < 0.3:  # lying / upside down: use the head direction (body y) instead
        f = pose[:3, :3] @ np.array([0.0, 1.0, 0.0])
    return float(np.arctan2(f[1], f[0]))


# ----------------------------------------------------------------------------------------------------------
# motion clips


@dataclass(frozen=True)
class MotionClip:
    """A keyframed clip, already converted to the Z-up world and URDF joint conventions.

    times: (K,) keyframe times (s), times[0] = 0; root_pos: (K, 3) m; root_quat: (K, 4) xyzw (root link
    frame in the world); joints: per pybullet joint index, (K, 4) xyzw local rotations (spherical) or
    (K, 1) angles (revolute); loop: True for "wrap" clips.
    """

    name: str
    kind: str
    loop: bool
    times: np.ndarray
    root_pos: np.ndarray
    root_quat: np.ndarray
    joints: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.times[-1])

    @property
    def num_keyframes(self) -> int:
        return len(self.times)


def clip_files(kind: str) -> dict[str, Path]:
    """Available clips for ``kind``: name -> file (e.g. "walk" -> .../humanoid3d_walk.txt)."""
    motions = data_path() / "data" / "motions"
    if kind == "human":
        return {p.stem.removeprefix("humanoid3d_"): p for p in sorted(motions.glob("humanoid3d_*.txt"))}
    if kind == "animal":
        return {p.stem.removeprefix("laikago_"): p for p in sorted(motions.glob("laikago_*.txt"))}
    raise ValueError(f"unknown actor kind {kind!r}; expected one of {KINDS}")


def list_clips(kind: str) -> list[str]:
    """Sorted clip names for ``kind`` ("human": walk, run, dance_a, ...; "animal": walk)."""
    return list(clip_files(kind))


@lru_cache(maxsize=64)
def load_clip(kind: str, name: str) -> MotionClip:
    """Parse one clip file into a ``MotionClip`` (see the module docstring for the formats)."""
    files = clip_files(kind)
    if name not in files:
        raise ValueError(f"unknown {kind} clip {name!r}; available: {sorted(files)}")
    raw = json.loads(files[name].read_text())
    frames = np.asarray(raw["Frames"], dtype=np.float64)
    loop = str(raw.get("Loop", "wrap")).lower() == "wrap"
    # dt of a row is the time to the next row (the last row's dt is unused, often 0).
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"clip {files[name]} has non-increasing keyframe times")
    to_world = _CLIP_TO_WORLD_XYZW[kind]
    rot = quat_to_matrix(to_world)
    if kind == "human":
        if frames.shape[1] != 44:
            raise ValueError(f"{files[name]}: expected 44 values per DeepMimic frame, got {frames.shape[1]}")
        root_pos = frames[:, 1:4] @ rot.T
        root_quat = quat_mul(np.broadcast_to(to_world, (len(frames), 4)), _wxyz_to_xyzw(frames[:, 4:8]))
        joints: dict[int, np.ndarray] = {}
        col = 8
        index = _human_joint_indices()
        for joint_name, n in _HUMAN_JOINTS:
            values = frames[:, col:col + n]
            joints[index[joint_name]] = quat_normalize(_wxyz_to_xyzw(values)) if n == 4 else values
            col += n
    else:
        if frames.shape[1] != 20:
            raise ValueError(f"{files[name]}: expected 20 values per Laikago frame, got {frames.shape[1]}")
        root_pos = frames[:, 1:4] @ rot.T
        root_quat = quat_mul(np.broadcast_to(to_world, (len(frames), 4)), frames[:, 4:8])
        angles = frames[:, 8:20] * _LAIKAGO_DIRECTIONS + _LAIKAGO_OFFSETS
        joints = {j: angles[:, j:j + 1] for j in range(12)}  # URDF joint j is motor j (FR, FL, RR, RL)
    return MotionClip(name=name, kind=kind, loop=loop, times=times, root_pos=root_pos,
                      root_quat=quat_normalize(root_quat), joints=joints)


def _wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)


@lru_cache(maxsize=1)
def _human_joint_indices() -> dict[str, int]:
    sk = get_skeleton("human")
    return {name: sk.link_index[name] for name, _ in _HUMAN_JOINTS}


@dataclass(frozen=True)
class PoseState:
    """Interpolated clip state at one time: root (4, 4) world pose + joint values (pybullet convention)."""

    root: np.ndarray
    joints: dict[int, np.ndarray]


def _keyframe_state(clip: MotionClip, t: float) -> PoseState:
    """State at ``t`` within one cycle (clamped to [0, duration])."""
    t = float(np.clip(t, 0.0, clip.duration))
    k = int(np.clip(np.searchsorted(clip.times, t, side="right") - 1, 0, clip.num_keyframes - 2))
    w = (t - clip.times[k]) / (clip.times[k + 1] - clip.times[k])
    pos = (1 - w) * clip.root_pos[k] + w * clip.root_pos[k + 1]
    quat = quat_slerp(clip.root_quat[k], clip.root_quat[k + 1], w)
    joints = {}
    for j, v in clip.joints.items():
        joints[j] = quat_slerp(v[k], v[k + 1], w) if v.shape[1] == 4 else (1 - w) * v[k] + w * v[k + 1]
    return PoseState(make_pose(pos, quat), joints)


def cycle_transform(clip: MotionClip) -> np.ndarray:
    """(4, 4) world transform one loop of ``clip`` applies to the actor: yaw about z + horizontal shift.

    Maps the first keyframe's root (heading, ground position) onto the last one's, so the next cycle
    continues where this one ended.
    """
    first, last = make_pose(clip.root_pos[0], clip.root_quat[0]), make_pose(clip.root_pos[-1], clip.root_quat[-1])
    dyaw = heading_of(last, clip.kind) - heading_of(first, clip.kind)
    m = rot_z(dyaw)
    p0 = np.array([*first[:2, 3], 0.0])
    p1 = np.array([*last[:2, 3], 0.0])
    m[:3, 3] = p1 - m[:3, :3] @ p0
    return m


def clip_state(clip: MotionClip, t: float) -> PoseState:
    """Clip state at time ``t`` (s); "wrap" clips loop with accumulated displacement, others clamp."""
    if not clip.loop:
        return _keyframe_state(clip, t)
    cycles = int(np.floor(t / clip.duration))
    state = _keyframe_state(clip, t - cycles * clip.duration)
    if cycles == 0:
        return state
    c = np.linalg.matrix_power(cycle_transform(clip), cycles) if cycles > 0 else \
        np.linalg.matrix_power(np.linalg.inv(cycle_transform(clip)), -cycles)
    return PoseState(c @ state.root, state.joints)


# ----------------------------------------------------------------------------------------------------------
# skeleton: URDF visuals + pybullet forward kinematics


@dataclass(frozen=True)
class Part:
    """One rigid visual part: a triangle mesh in its link frame (metres, at skeleton scale).

    vertices: (V, 3) float64; faces: (F, 3) int; link: pybullet link index (-1 = base); name: link name.
    """

    name: str
    link: int
    vertices: np.ndarray
    faces: np.ndarray


class Skeleton:
    """A URDF loaded in its own DIRECT pybullet client, used only for kinematics (never stepped).

    ``parts``: the visual meshes (one per link that has visual geometry); ``link_poses(state)`` returns the
    (n_parts, 4, 4) world poses of those parts' link frames.
    """

    def __init__(self, kind: str, urdf: Path | None = None, global_scale: float | None = None):
        import pybullet as pb

        if kind not in KINDS:
            raise ValueError(f"unknown actor kind {kind!r}; expected one of {KINDS}")
        self.kind = kind
        self.urdf = Path(urdf) if urdf else data_path() / (HUMAN_URDF if kind == "human" else ANIMAL_URDF)
        self.global_scale = global_scale if global_scale is not None else (HUMAN_SCALE if kind == "human" else 1.0)
        self._pb = pb
        self._client = pb.connect(pb.DIRECT)
        self._body = _load_kinematic_urdf(pb, self.urdf, self.global_scale, self._client)
        if self._body < 0:
            raise RuntimeError(f"pybullet could not load {self.urdf}")
        n = pb.getNumJoints(self._body, physicsClientId=self._client)
        self.link_index = {pb.getBodyInfo(self._body, physicsClientId=self._client)[0].decode(): -1}
        self.joint_type: dict[int, int] = {}
        for j in range(n):
            info = pb.getJointInfo(self._body, j, physicsClientId=self._client)
            self.link_index[info[12].decode()] = j
            self.joint_type[j] = info[2]
        # The base pose pybullet sets/returns is its inertial frame; keep the offset to its URDF link frame.
        dyn = pb.getDynamicsInfo(self._body, -1, physicsClientId=self._client)
        self._base_inertial = make_pose(np.array(dyn[3]), np.array(dyn[4]))
        self.parts = _urdf_parts(self.urdf, self.kind, self.global_scale, self.link_index)

    def link_poses(self, state: PoseState) -> np.ndarray:
        """World poses of the parts' link frames for one clip state -> (n_parts, 4, 4)."""
        pb, c, body = self._pb, self._client, self._body
        inertial_world = state.root @ self._base_inertial  # root is the URDF link frame of the base
        pos, quat = inertial_world[:3, 3], matrix_to_quat(inertial_world[:3, :3])
        pb.resetBasePositionAndOrientation(body, pos.tolist(), quat.tolist(), physicsClientId=c)
        for j, v in state.joints.items():
            if self.joint_type[j] == pb.JOINT_SPHERICAL:
                pb.resetJointStateMultiDof(body, j, targetValue=v.tolist(), physicsClientId=c)
            else:
                pb.resetJointState(body, j, float(v[0]), physicsClientId=c)
        pos, quat = np.zeros((len(self.parts), 3)), np.tile([0.0, 0.0, 0.0, 1.0], (len(self.parts), 1))
        for i, part in enumerate(self.parts):
            if part.link != -1:
                ls = pb.getLinkState(body, part.link, computeForwardKinematics=True, physicsClientId=c)
                pos[i], quat[i] = ls[4], ls[5]
        out = np.tile(np.eye(4), (len(self.parts), 1, 1))
        out[:, :3, :3] = quat_to_matrix(quat)  # one batched conversion per frame
        out[:, :3, 3] = pos
        for i, part in enumerate(self.parts):
            if part.link == -1:
                out[i] = state.root
        return out

    def joint_positions(self, state: PoseState) -> dict[str, np.ndarray]:
        """World positions (3,) of every link frame origin (= its parent joint) by link name (for tests)."""
        self.link_poses(state)
        pb, c = self._pb, self._client
        out = {}
        for name, j in self.link_index.items():
            if j == -1:
                out[name] = state.root[:3, 3].copy()
            else:
                out[name] = np.array(pb.getLinkState(self._body, j, computeForwardKinematics=True,
                                                     physicsClientId=c)[4])
        return out

    def parent_of(self, link: int) -> int:
        return self._pb.getJointInfo(self._body, link, physicsClientId=self._client)[16]

    def close(self) -> None:
        if self._client is not None:
            try:
                self._pb.disconnect(physicsClientId=self._client)
            except Exception:  # interpreter shutdown: pybullet may already be gone
                pass
            self._client = None

    def __del__(self):
        self.close()


def _load_kinematic_urdf(pb, urdf: Path, scale: float, client: int) -> int:
    """Load ``urdf`` without its visual/collision geometry (pybullet would parse every mesh: ~0.4 s for
    Laikago) -- FK only needs joints and inertial frames. Returns the body id."""
    import tempfile

    root = ET.fromstring(urdf.read_bytes().rstrip(b"\x00\r\n\t "))
    for link in root.findall("link"):
        for el in link.findall("visual") + link.findall("collision"):
            link.remove(el)
    with tempfile.NamedTemporaryFile("wb", suffix=".urdf", delete=False) as f:
        f.write(ET.tostring(root))
    try:
        return pb.loadURDF(f.name, globalScaling=scale, useFixedBase=True, flags=pb.URDF_MAINTAIN_LINK_ORDER,
                           physicsClientId=client)
    finally:
        Path(f.name).unlink(missing_ok=True)


@lru_cache(maxsize=4)
def get_skeleton(kind: str) -> Skeleton:
    """The default skeleton for ``kind`` (cached: loading the Laikago meshes takes ~0.2 s)."""
    return Skeleton(kind)


# ----------------------------------------------------------------------------------------------------------
# URDF visual geometry -> triangle meshes


def _origin(el: ET.Element | None) -> np.ndarray:
    """URDF <origin xyz rpy> -> (4, 4)."""
    m = np.eye(4)
    if el is None:
        return m
    xyz = np.array([float(v) for v in el.get("xyz", "0 0 0").split()])
    r, p, y = (float(v) for v in el.get("rpy", "0 0 0").split())
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    # URDF rpy: fixed-axis roll (x), then pitch (y), then yaw (z): R = Rz(y) Ry(p) Rx(r)
    m[:3, :3] = np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                          [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                          [-sp, cp * sr, cp * cr]])
    m[:3, 3] = xyz
    return m


# The DeepMimic humanoid's spheres make a "snowman" torso; stretch pelvis/chest/head into ellipsoids
# (radii multipliers along link x (forward), y (up), z (sideways)) so it reads as a human body.
_HUMAN_ELLIPSOID = {"root": (1.05, 1.35, 1.4), "chest": (1.0, 1.3, 1.45), "neck": (0.95, 1.15, 0.9)}


def _urdf_parts(urdf: Path, kind: str, scale: float, link_index: dict[str, int]) -> list[Part]:
    """Visual meshes per link (collision geometry when a link has no <visual>, as in the humanoid)."""
    # pybullet_data's humanoid.urdf ends with a NUL byte, which ElementTree rejects.
    root = ET.fromstring(urdf.read_bytes().rstrip(b"\x00\r\n\t "))
    parts = []
    for link in root.findall("link"):
        name = link.get("name")
        elems = link.findall("visual") or link.findall("collision")
        meshes = []
        for el in elems:
            geom = el.find("geometry")
            if geom is None or len(geom) == 0:
                continue
            g = geom[0]
            if g.tag == "sphere":
                r = float(g.get("radius"))
                v, f = uv_sphere(np.array(_HUMAN_ELLIPSOID.get(name, (1, 1, 1))) * r if kind == "human" else r)
            elif g.tag == "capsule":
                v, f = capsule(float(g.get("radius")), float(g.get("length")))
            elif g.tag == "cylinder":
                v, f = capsule(float(g.get("radius")), float(g.get("length")), caps=False)
            elif g.tag == "box":
                v, f = box(np.array([float(s) for s in g.get("size").split()]))
            elif g.tag == "mesh":
                v, f = _read_obj_cached(str((urdf.parent / g.get("filename")).resolve()))
                v = v * np.array([float(s) for s in g.get("scale", "1 1 1").split()])
            else:
                continue
            m = _origin(el.find("origin"))
            meshes.append((v @ m[:3, :3].T + m[:3, 3], f))
        if not meshes:
            continue
        verts, faces, offset = [], [], 0
        for v, f in meshes:
            verts.append(v)
            faces.append(f + offset)
            offset += len(v)
        parts.append(Part(name=name, link=link_index[name], vertices=np.concatenate(verts) * scale,
                          faces=np.concatenate(faces).astype(np.int64)))
    return parts


def uv_sphere(radius: float | np.ndarray, n_lat: int = 10, n_lon: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Sphere (or ellipsoid with per-axis radii) at the origin -> vertices (V, 3), faces (F, 3)."""
    lat = np.linspace(0, np.pi, n_lat + 1)[1:-1]
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    ring = np.stack([np.sin(la) * np.cos(lo), np.sin(la) * np.sin(lo), np.cos(la)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]]) * radius
    return verts, _rings_faces(n_lat - 1, n_lon, top=0, bottom=len(verts) - 1, first=1)


def capsule(radius: float, length: float, n_cap: int = 5, n_lon: int = 16,
            caps: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Capsule (cylinder ``length`` long between hemispheres) along z, centred at the origin."""
    lon = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    if caps:
        top = np.linspace(0, np.pi / 2, n_cap + 1)[1:]
        polar = np.concatenate([top, np.pi / 2 + (np.pi / 2 - top[::-1])])
        z_off = np.where(polar <= np.pi / 2, length / 2, -length / 2)
        r, z = radius * np.sin(polar), radius * np.cos(polar) + z_off
        tip = radius + length / 2
    else:
        r, z, tip = np.array([radius, radius]), np.array([length / 2, -length / 2]), length / 2
    ring = np.stack([r[:, None] * np.cos(lon), r[:, None] * np.sin(lon), np.broadcast_to(z[:, None], (len(z), n_lon))],
                    -1).reshape(-1, 3)
    verts = np.concatenate([[[0, 0, tip]], ring, [[0, 0, -tip]]])
    return verts, _rings_faces(len(z), n_lon, top=0, bottom=len(verts) - 1, first=1)


def _rings_faces(n_rings: int, n_lon: int, top: int, bottom: int, first: int) -> np.ndarray:
    """Triangles of a closed surface of ``n_rings`` rings (top to bottom) between two pole vertices."""
    faces = []
    j = np.arange(n_lon)
    jn = (j + 1) % n_lon
    faces.append(np.stack([np.full(n_lon, top), first + j, first + jn], -1))
    for i in range(n_rings - 1):
        a, b = first + i * n_lon, first + (i + 1) * n_lon
        faces.append(np.stack([a + j, b + j, b + jn], -1))
        faces.append(np.stack([a + j, b + jn, a + jn], -1))
    last = first + (n_rings - 1) * n_lon
    faces.append(np.stack([np.full(n_lon, bottom), last + jn, last + j], -1))
    return np.concatenate(faces)


def box(size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box with full extents ``size`` (3,), centred at the origin (outward winding)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)]) * size
    faces = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])
    return corners, faces


@lru_cache(maxsize=64)
def _read_obj_cached(path: str) -> tuple[np.ndarray, np.ndarray]:
    v, f = read_obj(Path(path))
    v.flags.writeable = False  # shared between skeletons
    f.flags.writeable = False
    return v, f


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) and triangulated faces (F, 3) of a Wavefront OBJ (positions only)."""
    verts, faces = [], []
    for line in Path(path).read_text(errors="replace").splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
            idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
            faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))  # fan
    return np.asarray(verts, dtype=np.float64), np.asarray(faces, dtype=np.int64)


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray, smooth: bool = True) -> Path:
    """Write a triangle mesh as OBJ (1-based indices, no materials; ``smooth``: smooth-shading group)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"o {path.stem}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines.append("s 1" if smooth else "s off")
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
    return path
