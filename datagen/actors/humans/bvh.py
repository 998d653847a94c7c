"""A small BVH (Biovision hierarchy) reader/writer with forward kinematics, and BVH files as motion sources.

Format (text): ``HIERARCHY`` then ``ROOT name { OFFSET x y z  CHANNELS n ...  JOINT name {...}  End Site
{ OFFSET ... } }``, then ``MOTION``, ``Frames: N``, ``Frame Time: dt`` and N rows of channel values in the
order the channels were declared (depth-first). Rotation channels are degrees, applied in the order listed
(``Zrotation Xrotation Yrotation`` -> R = Rz Rx Ry, intrinsic); a joint's world rotation is its parent's
times its own; its position is the parent's position + parent rotation @ OFFSET (+ the position channels,
usually only on the root). The rest pose is all rotations zero. Units are whatever the file uses (inches,
cm, m): retargeting rescales by leg length. The up axis is +Y by convention (``load_source(up=...)``).

``load_source(path)`` maps the joints onto the retargeting's canonical joints by name (CMU, Mixamo,
MotionBuilder and common lower-case spellings; see ``JOINT_NAMES``) and samples the motion at any time by
interpolating between frames (positions linearly, rotations by normalised quaternion interpolation).
Pure numpy (+ scipy for Euler angles); never executes anything from the file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from datagen.actors.humans.retarget import SourceMotion

MAX_BVH_BYTES = 200 * 2**20  # refuse absurd files instead of filling memory


class BVHError(ValueError):
    """A malformed BVH file (one-line message with the file and what is wrong)."""


@dataclass
class BVH:
    """Parsed BVH. joints: names in file order (End Sites as "<parent>_End", without channels);
    parents: (J,) index (-1 root); offsets: (J, 3); channels: per joint its channel names; frame_time: s;
    motion: (N, C) channel values in file order."""

    joints: list[str]
    parents: list[int]
    offsets: np.ndarray
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions (N, J, 3) and rotations (N, J, 3, 3) of every joint at every frame (vectorised
        over frames; a loop over the joints only)."""
        n, J = self.num_frames, len(self.joints)
        pos = np.zeros((n, J, 3))
        rot = np.zeros((n, J, 3, 3))
        col = 0
        for j in range(J):
            names = self.channels[j]
            values = self.motion[:, col:col + len(names)]
            col += len(names)
            local = np.broadcast_to(np.eye(3), (n, 3, 3))
            rot_axes = [c[0].upper() for c in names if c.lower().endswith("rotation")]
            if rot_axes:
                angles = values[:, [i for i, c in enumerate(names) if c.lower().endswith("rotation")]]
                local = Rotation.from_euler("".join(rot_axes), angles, degrees=True).as_matrix()
            translation = np.zeros((n, 3))
            for i, c in enumerate(names):
                if c.lower().endswith("position"):
                    translation[:, "xyz".index(c[0].lower())] = values[:, i]
            p = self.parents[j]
            if p < 0:
                pos[:, j] = self.offsets[j] + translation
                rot[:, j] = local
            else:
                pos[:, j] = pos[:, p] + np.einsum("nij,j->ni", rot[:, p], self.offsets[j]) + \
                    np.einsum("nij,nj->ni", rot[:, p], translation)
                rot[:, j] = rot[:, p] @ local
        return pos, rot


_TOKEN = re.compile(r"\S+")


def read_bvh(path: str | Path) -> BVH:
    """Parse a BVH file (BVHError with a one-line reason if it is malformed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BVH file not found: {path}")
    if path.stat().st_size > MAX_BVH_BYTES:
        raise BVHError(f"{path}: larger than {MAX_BVH_BYTES >> 20} MB")
    text = path.read_text(errors="replace")
    head, sep, tail = text.partition("MOTION")
    if not sep:
        raise BVHError(f"{path}: no MOTION section")
    tokens = _TOKEN.findall(head)
    if not tokens or tokens[0] != "HIERARCHY":
        raise BVHError(f"{path}: does not start with HIERARCHY")
    joints, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    i = 1
    try:
        while i < len(tokens):
            t = tokens[i]
            if t in ("ROOT", "JOINT"):
                joints.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append(np.zeros(3))
                channels.append([])
                i += 2
            elif t == "End":  # End Site
                joints.append(f"{joints[stack[-1]]}_End")
                parents.append(stack[-1])
                offsets.append(np.zeros(3))
                channels.append([])
                i += 2
            elif t == "{":
                stack.append(len(joints) - 1)
                i += 1
            elif t == "}":
                stack.pop()
                i += 1
            elif t == "OFFSET":
                offsets[stack[-1]] = np.array([float(x) for x in tokens[i + 1:i + 4]])
                i += 4
            elif t == "CHANNELS":
                k = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2:i + 2 + k]
                i += 2 + k
            else:
                raise BVHError(f"{path}: unexpected token {t!r} in HIERARCHY")
    except (IndexError, ValueError) as err:
        if isinstance(err, BVHError):
            raise
        raise BVHError(f"{path}: malformed HIERARCHY near token {i} ({err})") from None
    if stack:
        raise BVHError(f"{path}: unbalanced braces in HIERARCHY")
    lines = [ln for ln in tail.strip().splitlines() if ln.strip()]
    n_channels = sum(len(c) for c in channels)
    try:
        n = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        rows = [ln.split() for ln in lines[2:]]
        if len(rows) != n or any(len(r) != n_channels for r in rows):
            shape = (len(rows), sorted({len(r) for r in rows}))
            raise BVHError(f"{path}: expected {n} frames x {n_channels} channels, got {shape[0]} frames of "
                           f"{'/'.join(map(str, shape[1]))} values")
        motion = np.array(rows, dtype=np.float64).reshape(n, n_channels)
    except (IndexError, ValueError) as err:
        if isinstance(err, BVHError):
            raise
        raise BVHError(f"{path}: malformed MOTION header or values ({err})") from None
    if frame_time <= 0 or not np.isfinite(motion).all():
        raise BVHError(f"{path}: bad frame time {frame_time} or non-finite channel values")
    return BVH(joints=joints, parents=parents, offsets=np.array(offsets), channels=channels,
               frame_time=frame_time, motion=motion, meta={"path": str(path)})


def write_bvh(path: str | Path, bvh: BVH) -> Path:
    """Write ``bvh`` as a BVH file (End Sites: joints named "*_End" without channels and children)."""
    children = {j: [c for c, p in enumerate(bvh.parents) if p == j] for j in range(len(bvh.joints))}
    out = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        end = bvh.joints[j].endswith("_End") and not bvh.channels[j] and not children[j]
        if end:
            out.append(f"{pad}End Site")
        else:
            out.append(f"{pad}{'ROOT' if bvh.parents[j] < 0 else 'JOINT'} {bvh.joints[j]}")
        out.append(f"{pad}{{")
        out.append(f"{pad}  OFFSET {' '.join(f'{v:.6f}' for v in bvh.offsets[j])}")
        if not end:
            out.append(f"{pad}  CHANNELS {len(bvh.channels[j])} {' '.join(bvh.channels[j])}".rstrip())
        for c in children[j]:
            emit(c, depth + 1)
        out.append(f"{pad}}}")

    for root in [j for j, p in enumerate(bvh.parents) if p < 0]:
        emit(root, 0)
    out += ["MOTION", f"Frames: {bvh.num_frames}", f"Frame Time: {bvh.frame_time:.8f}"]
    out += [" ".join(f"{v:.6f}" for v in row) for row in bvh.motion]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path


# ----------------------------------------------------------------------------------------------------------
# BVH -> SourceMotion

# canonical joint -> accepted BVH joint names (lower case, without "mixamorig:"-style prefixes); first match wins
JOINT_NAMES = {
    "pelvis": ["hips", "hip", "pelvis", "root"],
    "chest": ["spine2", "spine1", "chest", "spine", "abdomen"],
    "neck": ["neck", "neck1"],
    "head": ["head"],
}
for _s, _w, _x in (("L", "left", "l"), ("R", "right", "r")):
    JOINT_NAMES.update({
        f"clavicle.{_s}": [f"{_w}shoulder", f"{_w}collar", f"{_x}collar", f"{_x}clavicle", f"{_w}clavicle"],
        f"shoulder.{_s}": [f"{_w}arm", f"{_w}uparm", f"{_w}upperarm", f"{_x}shldr", f"{_x}uparm", f"{_x}upperarm"],
        f"elbow.{_s}": [f"{_w}forearm", f"{_w}lowarm", f"{_w}lowerarm", f"{_x}forearm", f"{_x}lowarm"],
        f"wrist.{_s}": [f"{_w}hand", f"{_x}hand", f"{_w}wrist", f"{_x}wrist"],
        f"hand_end.{_s}": [f"{_w}handmiddle1", f"{_w}handindex1", f"{_w}fingerbase", f"{_w}hand_end",
                           f"{_x}hand_end"],
        f"hip.{_s}": [f"{_w}upleg", f"{_w}upperleg", f"{_w}thigh", f"{_x}thigh", f"{_w}hip", f"{_x}upleg"],
        f"knee.{_s}": [f"{_w}leg", f"{_w}lowleg", f"{_w}lowerleg", f"{_w}knee", f"{_x}shin", f"{_w}shin"],
        f"ankle.{_s}": [f"{_w}foot", f"{_x}foot", f"{_w}ankle", f"{_x}ankle"],
        f"toe.{_s}": [f"{_w}toebase", f"{_w}toe", f"{_x}toe", f"{_w}foot_end", f"{_x}foot_end"],
    })


def canonical_joints(bvh: BVH) -> dict[str, int]:
    """canonical joint -> BVH joint index, for every canonical joint found by name."""
    simple = {}
    for j, name in enumerate(bvh.joints):
        key = name.split(":")[-1].lower()
        key = key[:-4].replace("_", "") + "_end" if key.endswith("_end") else key.replace("_", "")
        simple.setdefault(key, j)
    out = {}
    for canon, options in JOINT_NAMES.items():
        for o in options:
            if o in simple:
                out[canon] = simple[o]
                break
    return out


def load_source(path: str | Path, up: str = "y") -> SourceMotion:
    """A BVH file as a retargeting SourceMotion (ValueError naming the missing joints if the skeleton is
    not a recognisable human). ``up``: the file's up axis ("y" by convention, or "z")."""
    bvh = read_bvh(path)
    found = canonical_joints(bvh)
    names = list(found)
    cols = [found[n] for n in names]
    pos, rot = bvh.forward_kinematics()
    pos, rot = pos[:, cols], rot[:, cols]
    rest_pos = _rest_positions(bvh)[cols]
    quat = Rotation.from_matrix(rot.reshape(-1, 3, 3)).as_quat().reshape(len(pos), len(cols), 4)
    # consecutive frames on the same hemisphere so interpolation takes the short way
    flip = np.cumprod(np.where((quat[1:] * quat[:-1]).sum(-1) < 0, -1.0, 1.0), axis=0)
    quat[1:] *= flip[..., None]
    duration = (bvh.num_frames - 1) * bvh.frame_time

    def sample(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.clip(np.asarray(times, float) / bvh.frame_time, 0.0, bvh.num_frames - 1)
        k = np.minimum(np.floor(f).astype(int), max(bvh.num_frames - 2, 0))
        w = (f - k)[:, None, None]
        k1 = np.minimum(k + 1, bvh.num_frames - 1)
        p = (1 - w) * pos[k] + w * pos[k1]
        q = (1 - w) * quat[k] + w * quat[k1]
        q /= np.linalg.norm(q, axis=-1, keepdims=True)
        return p, Rotation.from_quat(q.reshape(-1, 4)).as_matrix().reshape(len(times), len(cols), 3, 3)

    axis = {"y": np.array([0.0, 1.0, 0.0]), "z": np.array([0.0, 0.0, 1.0])}.get(up.lower())
    if axis is None:
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    return SourceMotion(name=f"bvh:{Path(path).name}", joints=names, rest_positions=rest_pos,
                        rest_rotations=np.broadcast_to(np.eye(3), (len(cols), 3, 3)).copy(), up=axis,
                        duration=float(duration), loop=False, sample=sample,
                        meta={"source": "bvh", "path": str(path), "frames": bvh.num_frames,
                              "frame_time": bvh.frame_time})


def _rest_positions(bvh: BVH) -> np.ndarray:
    """(J, 3) joint positions with every rotation zero (the BVH rest pose), root at its OFFSET."""
    pos = np.zeros((len(bvh.joints), 3))
    for j, p in enumerate(bvh.parents):
        pos[j] = bvh.offsets[j] + (pos[p] if p >= 0 else 0.0)
    return pos


# canonical joint -> parent canonical joint (first present wins), for writing sources as BVH
CANONICAL_PARENTS = {"chest": ["pelvis"], "neck": ["chest"], "head": ["neck", "chest"]}
for _s in ("L", "R"):
    CANONICAL_PARENTS.update({f"clavicle.{_s}": ["chest"], f"shoulder.{_s}": [f"clavicle.{_s}", "chest"],
                              f"elbow.{_s}": [f"shoulder.{_s}"], f"wrist.{_s}": [f"elbow.{_s}"],
                              f"hand_end.{_s}": [f"wrist.{_s}"], f"hip.{_s}": ["pelvis"],
                              f"knee.{_s}": [f"hip.{_s}"], f"ankle.{_s}": [f"knee.{_s}"],
                              f"toe.{_s}": [f"ankle.{_s}"]})
# Z-up world -> the BVH convention (Y up): x stays, z becomes y, y becomes -z
Z_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def source_to_bvh(source: SourceMotion, fps: float, duration: float | None = None) -> BVH:
    """Sample ``source`` at ``fps`` over ``duration`` (default: the source's) and express it as a BVH of its
    canonical joints (joint rotations relative to the source's rest pose, Y up, source units). Joints must
    hang from each other rigidly as ``CANONICAL_PARENTS`` says (true for the DeepMimic skeleton)."""
    duration = source.duration if duration is None else duration
    times = np.arange(int(np.floor(duration * fps)) + 1) / fps
    pos, rot = source.sample(times)
    up = source.up / np.linalg.norm(source.up)
    A = Z_TO_Y_UP if np.allclose(up, [0, 0, 1]) else np.eye(3) if np.allclose(up, [0, 1, 0]) else None
    if A is None:
        raise ValueError(f"source up axis {source.up} is neither y nor z")
    names = list(source.joints)
    parents = []
    for n in names:
        p = next((c for c in CANONICAL_PARENTS.get(n, []) if c in names), None)
        if n != "pelvis" and p is None:
            raise ValueError(f"no parent for canonical joint {n!r} among {names}")
        parents.append(-1 if n == "pelvis" else names.index(p))
    delta = rot @ np.swapaxes(source.rest_rotations, -1, -2)[None]  # (T, J, 3, 3) world, I at rest
    delta = A @ delta @ A.T
    pos, rest = pos @ A.T, source.rest_positions @ A.T
    order, seen = [], set()

    def visit(j: int) -> None:  # depth-first: the BVH channel order
        order.append(j)
        seen.add(j)
        for c, p in enumerate(parents):
            if p == j and c not in seen:
                visit(c)

    visit(names.index("pelvis"))
    columns = []
    channels = []
    for j in order:
        p = parents[j]
        local = delta[:, j] if p < 0 else np.swapaxes(delta[:, p], -1, -2) @ delta[:, j]
        euler = Rotation.from_matrix(local).as_euler("ZXY", degrees=True)
        if p < 0:
            columns.append(np.concatenate([pos[:, j] - rest[j], euler], 1))
            channels.append(["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"])
        else:
            columns.append(euler)
            channels.append(["Zrotation", "Xrotation", "Yrotation"])
    offsets = np.array([rest[j] - (rest[parents[j]] if parents[j] >= 0 else 0.0) for j in order])
    new_index = {j: k for k, j in enumerate(order)}
    bvh_names = {"pelvis": "Hips", "chest": "Spine1", "neck": "Neck", "head": "Head"}
    for s, w in (("L", "Left"), ("R", "Right")):
        bvh_names.update({f"clavicle.{s}": f"{w}Shoulder", f"shoulder.{s}": f"{w}Arm",
                          f"elbow.{s}": f"{w}ForeArm", f"wrist.{s}": f"{w}Hand", f"hand_end.{s}": f"{w}HandIndex1",
                          f"hip.{s}": f"{w}UpLeg", f"knee.{s}": f"{w}Leg", f"ankle.{s}": f"{w}Foot",
                          f"toe.{s}": f"{w}ToeBase"})
    return BVH(joints=[bvh_names[names[j]] for j in order],
               parents=[new_index[parents[j]] if parents[j] >= 0 else -1 for j in order],
               offsets=offsets, channels=channels, frame_time=1.0 / fps, motion=np.concatenate(columns, 1),
               meta={"source": source.name})
