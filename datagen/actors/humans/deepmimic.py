"""DeepMimic humanoid clips and their forward kinematics (pybullet only, no Kubric/bpy).

The people (``datagen.actors.humans.retarget``) read motion from the DeepMimic humanoid that ships with
``pybullet_data``: the URDF ``humanoid/humanoid.urdf`` (loaded at ``globalScaling=0.25`` like DeepMimic
does, ~1.6 m tall) and its clips ``data/motions/humanoid3d_*.txt``. This module parses a clip, interpolates
it at any time and runs the URDF's forward kinematics to get world link frames; retargeting takes it from
there.

Clip file format (JSON, ``{"Loop": "wrap"|"none", "Frames": [[...], ...]}``), one row of 44 numbers per
keyframe: ``[dt, root_pos(3), root_rot(4, w x y z), chest(4), neck(4), right_hip(4), right_knee(1),
right_ankle(4), right_shoulder(4), right_elbow(1), left_hip(4), left_knee(1), left_ankle(4),
left_shoulder(4), left_elbow(1)]``; quaternions are (w, x, y, z) local rotations of spherical joints,
1-numbers are revolute angles (rad); ``dt`` is the time to the next row.

Frames: the URDF and the clips are **Y-up**, facing +x; ``CLIP_TO_WORLD_XYZW`` (+90 deg about x) turns
them into the Z-up world, so the actor faces +x with its left side towards +y.

Posing: ``clip_state(clip, t)`` interpolates keyframes (lerp for positions/angles, slerp for rotations).
"wrap" clips loop; every finished cycle moves the actor on by the clip's own root displacement and turn
(yaw), so a walk keeps walking. "none" clips hold their last frame. ``Skeleton.link_poses`` runs the
forward kinematics in a DIRECT pybullet client (reset base pose + joint states, read the URDF link frames)
and returns the world frames of ``Skeleton.links``.

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

URDF = "humanoid/humanoid.urdf"
SCALE = 0.25  # DeepMimic loads its humanoid at globalScaling=0.25 (metres)

# Clip row layout after dt, root pos, root rot: (pybullet link/joint name, number of values).
_JOINTS = (
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
    ("left_shoulder", 4), ("left_elbow", 1),
)
_ROW_LENGTH = 8 + sum(n for _, n in _JOINTS)  # 44

# The body axis the humanoid faces, in its root link frame (for heading / yaw).
_FORWARD_AXIS = np.array([1.0, 0.0, 0.0])
# Y-up clip frame -> Z-up world: +90 deg about x.
CLIP_TO_WORLD_XYZW = np.array([np.sqrt(0.5), 0.0, 0.0, np.sqrt(0.5)])


def data_path() -> Path:
    """Folder of pybullet_data (URDFs, motion clips)."""
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
    for i, r in enumerate(m):  # one root per frame: clarity over vectorisation
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


def heading_of(pose: np.ndarray) -> float:
    """Yaw (rad, about world z) of the humanoid's forward axis for a (4, 4) root pose."""
    f = pose[:3, :3] @ _FORWARD_AXIS
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


def clip_files() -> dict[str, Path]:
    """Available clips: name -> file (e.g. "walk" -> .../humanoid3d_walk.txt)."""
    motions = data_path() / "data" / "motions"
    return {p.stem.removeprefix("humanoid3d_"): p for p in sorted(motions.glob("humanoid3d_*.txt"))}


def list_clips() -> list[str]:
    """Sorted clip names (walk, run, dance_a, ...)."""
    return list(clip_files())


@lru_cache(maxsize=64)
def load_clip(name: str) -> MotionClip:
    """Parse one clip file into a ``MotionClip`` (see the module docstring for the format)."""
    files = clip_files()
    if name not in files:
        raise ValueError(f"unknown clip {name!r}; available: {sorted(files)}")
    raw = json.loads(files[name].read_text())
    frames = np.asarray(raw["Frames"], dtype=np.float64)
    loop = str(raw.get("Loop", "wrap")).lower() == "wrap"
    if frames.shape[1] != _ROW_LENGTH:
        raise ValueError(f"{files[name]}: expected {_ROW_LENGTH} values per DeepMimic frame, got {frames.shape[1]}")
    # dt of a row is the time to the next row (the last row's dt is unused, often 0).
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    if np.any(np.diff(times) <= 0):
        raise ValueError(f"clip {files[name]} has non-increasing keyframe times")
    root_pos = frames[:, 1:4] @ quat_to_matrix(CLIP_TO_WORLD_XYZW).T
    root_quat = quat_mul(np.broadcast_to(CLIP_TO_WORLD_XYZW, (len(frames), 4)), _wxyz_to_xyzw(frames[:, 4:8]))
    joints: dict[int, np.ndarray] = {}
    col = 8
    index = _joint_indices()
    for joint_name, n in _JOINTS:
        values = frames[:, col:col + n]
        joints[index[joint_name]] = quat_normalize(_wxyz_to_xyzw(values)) if n == 4 else values
        col += n
    return MotionClip(name=name, loop=loop, times=times, root_pos=root_pos, root_quat=quat_normalize(root_quat),
                      joints=joints)


def _wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[..., 1:4], q[..., :1]], axis=-1)


@lru_cache(maxsize=1)
def _joint_indices() -> dict[str, int]:
    """Clip joint name -> pybullet joint index in the loaded URDF."""
    return {name: get_skeleton().link_index[name] for name, _ in _JOINTS}


@dataclass(frozen=True)
class PoseState:
    """Interpolated clip state at one time: root (4, 4) world pose + joint values (pybullet convention)."""

    root: np.ndarray
    joints: dict[int, np.ndarray]


def rest_joints() -> dict[int, np.ndarray]:
    """Every clip joint at rest: identity xyzw rotation (spherical) or zero angle (revolute), in clip order."""
    index = _joint_indices()
    return {index[name]: (np.array([0.0, 0.0, 0.0, 1.0]) if n == 4 else np.zeros(1)) for name, n in _JOINTS}


def rest_state() -> PoseState:
    """The humanoid's rest pose: root at the world origin in the Z-up frame, every joint at rest."""
    return PoseState(make_pose(np.zeros(3), CLIP_TO_WORLD_XYZW), rest_joints())


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
    m = rot_z(heading_of(last) - heading_of(first))
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
# skeleton: pybullet forward kinematics


class Skeleton:
    """The humanoid URDF in its own DIRECT pybullet client, used only for kinematics (never stepped).

    ``links``: the names of the URDF's child links in pybullet joint order (link i is joint i's child;
    the fixed base is not among them); ``link_index``: link name -> pybullet index (-1 for the base);
    ``link_poses(state)`` returns the (len(links), 4, 4) world frames of ``links``.
    """

    def __init__(self):
        import pybullet as pb

        urdf = data_path() / URDF
        self._pb = pb
        self._client = pb.connect(pb.DIRECT)
        self._body = _load_kinematic_urdf(pb, urdf, SCALE, self._client)
        if self._body < 0:
            raise RuntimeError(f"pybullet could not load {urdf}")
        n = pb.getNumJoints(self._body, physicsClientId=self._client)
        self.link_index = {pb.getBodyInfo(self._body, physicsClientId=self._client)[0].decode(): -1}
        self.joint_type: dict[int, int] = {}
        links = []
        for j in range(n):
            info = pb.getJointInfo(self._body, j, physicsClientId=self._client)
            links.append(info[12].decode())
            self.link_index[links[-1]] = j
            self.joint_type[j] = info[2]
        self.links = tuple(links)
        # The base pose pybullet sets/returns is its inertial frame; keep the offset to its URDF link frame.
        dyn = pb.getDynamicsInfo(self._body, -1, physicsClientId=self._client)
        self._base_inertial = make_pose(np.array(dyn[3]), np.array(dyn[4]))

    def link_poses(self, state: PoseState) -> np.ndarray:
        """World frames of ``links`` for one clip state -> (len(links), 4, 4)."""
        pb, c, body = self._pb, self._client, self._body
        inertial_world = state.root @ self._base_inertial  # root is the URDF link frame of the base
        pos, quat = inertial_world[:3, 3], matrix_to_quat(inertial_world[:3, :3])
        pb.resetBasePositionAndOrientation(body, pos.tolist(), quat.tolist(), physicsClientId=c)
        for j, v in state.joints.items():
            if self.joint_type[j] == pb.JOINT_SPHERICAL:
                pb.resetJointStateMultiDof(body, j, targetValue=v.tolist(), physicsClientId=c)
            else:
                pb.resetJointState(body, j, float(v[0]), physicsClientId=c)
        n = len(self.links)
        pos, quat = np.zeros((n, 3)), np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        for j in range(n):
            ls = pb.getLinkState(body, j, computeForwardKinematics=True, physicsClientId=c)
            pos[j], quat[j] = ls[4], ls[5]
        out = np.tile(np.eye(4), (n, 1, 1))
        out[:, :3, :3] = quat_to_matrix(quat)  # one batched conversion per frame
        out[:, :3, 3] = pos
        return out

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
    """Load ``urdf`` without its visual/collision geometry (FK only needs joints and inertial frames, and
    pybullet would otherwise build every shape). Returns the body id."""
    import tempfile

    # pybullet_data's humanoid.urdf ends with a NUL byte, which ElementTree rejects.
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


@lru_cache(maxsize=1)
def get_skeleton() -> Skeleton:
    """The shared humanoid skeleton (one pybullet client per process)."""
    return Skeleton()
