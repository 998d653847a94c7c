"""Articulated actors (mocap-driven humans and quadrupeds) as rigid, keyframed Kubric parts.

Contract for the scene builder (datagen.scene) and the ground-truth code (datagen.tracks):

``add_articulated_actor(scene, kind, rng, num_frames, fps, workdir, *, clip=None, phase=None,
position=None, heading=None, speed=None, scale=None, vary_body=True) -> ActorInfo``

* ``kind="human"``: pybullet_data's DeepMimic humanoid (+ a hair cap, usually) playing one of its 15
  clips (walk, run, jump, dance_a, cartwheel, ...), with random skin/clothing/hair colours and, when
  ``vary_body``, random leg/arm length and girth; ``kind="animal"``: the Laikago quadruped with a
  procedural head and tail, random fur colours and, when ``vary_body``, random body/leg length, playing
  ``laikago_walk``.
  Clips, the posing maths and the URDF conventions are in ``datagen.mocap``.
* Every link with geometry becomes one ``kb.FileBasedObject`` (an OBJ written under
  ``workdir/actors/``) whose local frame is the link frame; the mesh already contains the actor scale,
  so the object's Kubric ``scale`` stays 1. Each part is keyframed at every scene frame
  ``scene.frame_start + i`` for i in [-1, num_frames] (one extra frame either side for motion blur)
  with ``position`` and ``quaternion`` (Kubric's (w, x, y, z)).
* Parts have ``simulation_filename=None``: Kubric's PyBullet simulator ignores them, so they can be
  added before or after ``simulator.run()``, never fall, and tossed objects pass through them (no
  collisions). They are posed kinematically only.
* The actor's lowest point over its whole clip (and over the rendered frames) touches the floor z = 0.
* ``ActorInfo.poses[i, p]`` (4x4, rigid, world-from-part) is the pose of part p at frame
  ``scene.frame_start + i``; a point ``v`` of ``ActorInfo.parts[p].vertices`` (part frame, metres) is at
  ``poses[i, p] @ [v, 1]`` in the world. This is exactly what was keyframed into Kubric.
* Each object carries ``metadata = {"category": kind, "actor": actor_name, "part": link_name}``; the
  segmentation id is left to the caller (Kubric's default: index in the asset list).

Import cost: numpy + pybullet only; Kubric is imported inside ``add_articulated_actor`` (call
``datagen.kubric_compat.apply()`` before rendering on Blender 4.2).
"""
from __future__ import annotations

import colorsys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datagen import mocap

# Sampling ranges used when an argument is None.
SPEED_RANGE = {"human": (0.8, 1.25), "animal": (1.0, 2.0)}  # playback speed (x clip time)
SCALE_RANGE = {"human": (0.95, 1.15), "animal": (0.8, 1.35)}  # uniform size factor (human ~1.5-1.85 m)
POSITION_RANGE = 1.5  # |x|, |y| <= this (m) for the root at the middle frame
FLOOR_SAMPLES_PER_S = 30.0  # clip sampling rate for the floor contact search
# Procedural proportions (vary_body=True), factors on the URDF's: name -> (low, high) per kind.
# Limb lengths change the kinematics (a little foot sliding against the unchanged root motion); girth only
# the look.
BODY_RANGES = {
    "human": {"leg_length": (0.92, 1.08), "arm_length": (0.9, 1.1), "girth": (0.85, 1.25)},
    "animal": {"body_length": (0.85, 1.25), "leg_length": (0.85, 1.2)},
}
HAIR_PROBABILITY = 0.8


@dataclass
class ActorPart:
    """One rigid part: its mesh in the part frame (metres) and the Kubric object showing it."""

    name: str
    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    mesh_path: Path
    asset_id: str
    obj: Any = None  # kb.FileBasedObject (None when built without a scene)


@dataclass
class ActorInfo:
    """What ``add_articulated_actor`` added. poses: (T, n_parts, 4, 4) world-from-part per frame."""

    name: str
    kind: str
    clip: str
    phase: float  # clip time at frame 0 as a fraction of the clip duration
    speed: float
    heading: float  # yaw (rad) the actor faces at the middle frame
    position: tuple[float, float]  # root (x, y) at the middle frame
    scale: float
    parts: list[ActorPart]
    poses: np.ndarray
    body: dict[str, float] = field(default_factory=dict)  # procedural proportions (animals)

    @property
    def objects(self) -> list:
        return [p.obj for p in self.parts]

    @property
    def asset_ids(self) -> list[str]:
        return [p.asset_id for p in self.parts]

    def world_vertices(self, frame: int) -> list[np.ndarray]:
        """Per part, its vertices (V, 3) in the world at frame index ``frame`` (0-based)."""
        return [p.vertices @ self.poses[frame, i, :3, :3].T + self.poses[frame, i, :3, 3]
                for i, p in enumerate(self.parts)]

    def meta(self) -> dict:
        """JSON-able summary for the scene metadata."""
        return {"name": self.name, "kind": self.kind, "clip": self.clip, "phase": self.phase,
                "speed": self.speed, "heading": self.heading, "position": list(self.position),
                "scale": self.scale, "body": dict(self.body),
                "parts": [p.name for p in self.parts], "asset_ids": self.asset_ids}


# ----------------------------------------------------------------------------------------------------------
# posing (no Kubric)


@dataclass
class ActorMotion:
    """Posed actor independent of Kubric: parts (meshes at actor scale) + world poses (T, n_parts, 4, 4).

    ``extra_poses`` are the poses one frame before and one after the window (for motion-blur keyframes).
    """

    kind: str
    clip: str
    phase: float
    speed: float
    heading: float
    position: tuple[float, float]
    scale: float
    part_names: list[str]
    part_meshes: list[tuple[np.ndarray, np.ndarray]]
    smooth: list[bool]
    poses: np.ndarray
    pose_before: np.ndarray
    pose_after: np.ndarray
    body: dict[str, float]


def clip_times(clip: mocap.MotionClip, phase: float, speed: float, num_frames: int, fps: float) -> np.ndarray:
    """Clip time (s) of frames -1..num_frames: t_i = phase * duration + speed * i / fps -> (num_frames + 2,)."""
    i = np.arange(-1, num_frames + 1, dtype=np.float64)
    return phase * clip.duration + speed * i / fps


def pose_actor(kind: str, rng: np.random.Generator, num_frames: int, fps: float, *, clip: str | None = None,
               phase: float | None = None, position=None, heading: float | None = None,
               speed: float | None = None, scale: float | None = None, vary_body: bool = True,
               workdir: Path | None = None) -> ActorMotion:
    """Draw the unspecified parameters from ``rng`` and pose the actor for ``num_frames`` frames at ``fps``.

    Returns meshes and world poses; see the module docstring for the conventions.
    """
    if kind not in mocap.KINDS:
        raise ValueError(f"unknown actor kind {kind!r}; expected one of {mocap.KINDS}")
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"need num_frames >= 1 and fps > 0, got {num_frames}, {fps}")
    names = mocap.list_clips(kind)
    clip = clip if clip is not None else names[int(rng.integers(len(names)))]
    motion = mocap.load_clip(kind, clip)
    speed = float(speed if speed is not None else rng.uniform(*SPEED_RANGE[kind]))
    span = speed * (num_frames - 1) / fps
    if phase is None:
        # one-shot clips: start early enough that the window fits, if it can
        top = 1.0 if motion.loop else max(0.0, 1.0 - span / motion.duration)
        phase = float(rng.uniform(0.0, top))
    scale = float(scale if scale is not None else rng.uniform(*SCALE_RANGE[kind]))
    heading = float(heading if heading is not None else rng.uniform(-np.pi, np.pi))
    if position is None:
        position = rng.uniform(-POSITION_RANGE, POSITION_RANGE, size=2)
    position = (float(position[0]), float(position[1]))

    body: dict[str, float] = {}
    if vary_body:
        body = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in BODY_RANGES[kind].items()}
        make = _varied_laikago_urdf if kind == "animal" else _varied_humanoid_urdf
        skeleton, own_skeleton = mocap.Skeleton(kind, urdf=make(body, workdir)), True
    else:
        skeleton, own_skeleton = mocap.get_skeleton(kind), False
    extras = _extras(kind, body, hair=bool(rng.uniform() < HAIR_PROBABILITY))
    try:
        part_names = [p.name for p in skeleton.parts]
        meshes = [(p.vertices, p.faces) for p in skeleton.parts]
        times = clip_times(motion, phase, speed, num_frames, fps)
        poses = np.stack([skeleton.link_poses(mocap.clip_state(motion, t)) for t in times])  # (T+2, P, 4, 4)
        # Floor contact: lowest point over one pass of the clip (+ the rendered frames themselves).
        n_samples = max(2, int(np.ceil(motion.duration * FLOOR_SAMPLES_PER_S)) + 1)
        clip_poses = [skeleton.link_poses(mocap.clip_state(motion, t))
                      for t in np.linspace(0.0, motion.duration, n_samples)]
    finally:
        if own_skeleton:
            skeleton.close()
    # Extra parts (dog head/tail, hair) ride rigidly on an existing part: reuse its poses.
    carriers = [part_names.index(carrier) for carrier, _, _ in extras.values()]
    for name, (_, v, f) in extras.items():
        part_names.append(name)
        meshes.append((v, f))
    poses = np.concatenate([poses, poses[:, carriers]], axis=1)
    clip_poses = [np.concatenate([p, p[carriers]]) for p in clip_poses]
    smooth = [not (kind == "human" and n.endswith("_ankle")) for n in part_names]  # box feet stay flat

    # Uniform scale about the origin: meshes * s, translations * s.
    meshes = [(v * scale, f) for v, f in meshes]
    poses = poses.copy()
    poses[..., :3, 3] *= scale
    clip_poses = np.stack(clip_poses)
    clip_poses[..., :3, 3] *= scale
    lowest = min(_lowest_z(meshes, clip_poses), _lowest_z(meshes, poses))

    # Place: the root at the middle frame goes to `position`, facing `heading`; feet on z = 0.
    mid = 1 + (num_frames - 1) // 2  # index into poses (which start at frame -1)
    root = poses[mid, 0]
    place = mocap.rot_z(heading - mocap.heading_of(root, kind))
    place[:3, 3] = np.array([position[0], position[1], -lowest]) - place[:3, :3] @ np.array([*root[:2, 3], 0.0])
    poses = np.einsum("ij,tpjk->tpik", place, poses)
    return ActorMotion(kind=kind, clip=clip, phase=float(phase), speed=speed, heading=heading,
                       position=position, scale=scale, part_names=part_names, part_meshes=meshes,
                       smooth=smooth, poses=poses[1:-1], pose_before=poses[0], pose_after=poses[-1], body=body)


def _lowest_z(meshes: list[tuple[np.ndarray, np.ndarray]], poses: np.ndarray) -> float:
    """Lowest world z of meshes [(V, 3), ...] posed by poses (T, P, 4, 4)."""
    low = np.inf
    for i, (v, _) in enumerate(meshes):
        # z of R v + p only needs the third rows: (T, 3) @ (3, V)
        z = poses[:, i, 2, :3] @ v.T + poses[:, i, 2, 3:4]
        low = min(low, float(z.min()))
    return low


def _varied_laikago_urdf(body: dict[str, float], workdir: Path | None) -> Path:
    """Write a Laikago URDF with a longer/shorter body and legs; returns its path.

    Body length: hip joint origins and the chassis mesh stretch along the body axis (link z).
    Leg length: the knee joint origin and both leg meshes scale uniformly about their joints.
    """
    src = mocap.data_path() / mocap.ANIMAL_URDF
    root = ET.fromstring(src.read_bytes().rstrip(b"\x00\r\n\t "))
    bl, ll = body["body_length"], body["leg_length"]
    for mesh in root.iter("mesh"):
        mesh.set("filename", str(src.parent / mesh.get("filename")))  # absolute: the copy lives elsewhere
    for link in root.findall("link"):
        name = link.get("name")
        for el in link.findall("visual") + link.findall("collision"):
            mesh = el.find("geometry/mesh")
            if mesh is None:
                continue
            s = np.array([float(x) for x in mesh.get("scale", "1 1 1").split()])
            if name == "chassis":
                s = s * [1.0, 1.0, bl]
            elif name.endswith("_upper_leg") or name.endswith("_lower_leg"):
                s = s * ll
            mesh.set("scale", " ".join(f"{x:g}" for x in s))
    for joint in root.findall("joint"):
        origin = joint.find("origin")
        child = joint.find("child").get("link")
        xyz = np.array([float(x) for x in origin.get("xyz", "0 0 0").split()])
        if child.endswith("_hip_motor"):
            xyz[2] *= bl
        elif child.endswith("_lower_leg"):
            xyz *= ll
        origin.set("xyz", " ".join(f"{x:.6f}" for x in xyz))
    out_dir = Path(workdir) / "actors" if workdir is not None else Path(_tmpdir())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"laikago_b{bl:.4f}_l{ll:.4f}.urdf"
    path.write_bytes(ET.tostring(root))
    return path


def _varied_humanoid_urdf(body: dict[str, float], workdir: Path | None) -> Path:
    """Write a humanoid URDF with scaled leg/arm segments and girth; returns its path.

    Leg/arm length: the child joint origins and the capsules (length and centre) of thigh/shin resp.
    upper arm/forearm scale; girth: limb capsule radii and the pelvis/chest spheres scale.
    """
    src = mocap.data_path() / mocap.HUMAN_URDF
    root = ET.fromstring(src.read_bytes().rstrip(b"\x00\r\n\t "))
    legs = {"right_hip", "left_hip", "right_knee", "left_knee"}
    arms = {"right_shoulder", "left_shoulder", "right_elbow", "left_elbow"}

    def length_of(link_name: str) -> float:
        return body["leg_length"] if link_name in legs else body["arm_length"] if link_name in arms else 1.0

    for link in root.findall("link"):
        name = link.get("name")
        k = length_of(name)
        for el in link.findall("collision") + link.findall("inertial") + link.findall("visual"):
            origin = el.find("origin")
            if origin is not None and k != 1.0:
                xyz = np.array([float(x) for x in origin.get("xyz", "0 0 0").split()]) * k
                origin.set("xyz", " ".join(f"{x:.6f}" for x in xyz))
            cap = el.find("geometry/capsule")
            if cap is not None:
                cap.set("length", f"{float(cap.get('length')) * k:.6f}")
                cap.set("radius", f"{float(cap.get('radius')) * body['girth']:.6f}")
            sphere = el.find("geometry/sphere")
            if sphere is not None and name in ("root", "chest"):
                sphere.set("radius", f"{float(sphere.get('radius')) * body['girth']:.6f}")
    for joint in root.findall("joint"):
        # a joint's origin sits at the far end of its parent segment
        k = length_of(joint.find("parent").get("link"))
        origin = joint.find("origin")
        if k != 1.0 and origin is not None:
            xyz = np.array([float(x) for x in origin.get("xyz", "0 0 0").split()]) * k
            origin.set("xyz", " ".join(f"{x:.6f}" for x in xyz))
    out_dir = Path(workdir) / "actors" if workdir is not None else Path(_tmpdir())
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = "_".join(f"{body[k]:.4f}" for k in sorted(body))
    path = out_dir / f"humanoid_{tag}.urdf"
    path.write_bytes(ET.tostring(root))
    return path


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="trackforge_actor_")


def _extras(kind: str, body: dict[str, float], hair: bool) -> dict[str, tuple[str, np.ndarray, np.ndarray]]:
    """Extra rigid parts: name -> (carrier part name, vertices, faces in the carrier's frame)."""
    if kind == "animal":
        return {name: ("chassis", v, f) for name, (v, f) in _dog_extras(body).items()}
    if not hair:
        return {}
    # Hair cap on the head (link "neck": y up, face towards +x, head centre 0.175 m up the link).
    v, f = mocap.uv_sphere(np.array([0.104, 0.106, 0.099]))
    return {"hair": ("neck", v + [-0.014, 0.19, 0.0], f)}


def _dog_extras(body: dict[str, float]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Head (skull + snout + ears) and tail meshes in the Laikago chassis frame (y up, head towards +z)."""
    front = 0.30 * body.get("body_length", 1.0)
    back = -0.25 * body.get("body_length", 1.0)
    pieces = []
    v, f = mocap.uv_sphere(np.array([0.075, 0.08, 0.095]))
    pieces.append((v + [0.0, 0.13, front + 0.06], f))
    v, f = mocap.uv_sphere(np.array([0.042, 0.04, 0.075]))
    pieces.append((v + [0.0, 0.11, front + 0.15], f))
    for side in (-1, 1):
        v, f = mocap.uv_sphere(np.array([0.02, 0.05, 0.03]), n_lat=6, n_lon=8)
        pieces.append((v + [side * 0.045, 0.215, front + 0.04], f))
    head = _merge(pieces)
    v, f = mocap.capsule(0.022, 0.22)
    tilt = np.radians(-35.0)  # tail sticks up and back
    rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    tail = (v @ rx.T + [0.0, 0.11, back - 0.12], f)
    return {"head": head, "tail": tail}


def _merge(pieces: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    verts, faces, offset = [], [], 0
    for v, f in pieces:
        verts.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(verts), np.concatenate(faces)


# ----------------------------------------------------------------------------------------------------------
# materials

_SKIN_TONES = [(0.98, 0.83, 0.70), (0.93, 0.74, 0.58), (0.80, 0.58, 0.42), (0.62, 0.42, 0.28),
               (0.45, 0.29, 0.18), (0.30, 0.19, 0.12)]
_HAIR = [(0.05, 0.04, 0.03), (0.25, 0.15, 0.08), (0.45, 0.3, 0.15), (0.85, 0.7, 0.4), (0.6, 0.25, 0.1),
         (0.7, 0.7, 0.7)]
_FUR = [(0.45, 0.30, 0.16), (0.20, 0.14, 0.09), (0.08, 0.07, 0.06), (0.55, 0.55, 0.55), (0.92, 0.88, 0.80),
        (0.80, 0.60, 0.30), (0.65, 0.42, 0.22)]


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.06) -> tuple[float, float, float]:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb)


def _random_cloth(rng: np.random.Generator) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.95))


def part_colors(kind: str, part_names: list[str], rng: np.random.Generator) -> dict[str, tuple]:
    """Random per-part (r, g, b, roughness): skin / shirt / trousers / shoes for humans, fur for animals."""
    if kind == "human":
        skin = _jitter(rng, _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], 0.04)
        shirt, trousers, shoes = _random_cloth(rng), _random_cloth(rng), _jitter(rng, (0.1, 0.1, 0.1), 0.1)
        if rng.uniform() < 0.3:  # jeans
            trousers = _jitter(rng, (0.15, 0.22, 0.4), 0.05)
        long_sleeves, long_trousers = rng.uniform() < 0.5, rng.uniform() < 0.7
        table = {"root": (trousers, 0.8), "chest": (shirt, 0.8), "neck": (skin, 0.5),
                 "right_hip": (trousers, 0.8), "left_hip": (trousers, 0.8),
                 "right_knee": (trousers if long_trousers else skin, 0.7),
                 "left_knee": (trousers if long_trousers else skin, 0.7),
                 "right_ankle": (shoes, 0.4), "left_ankle": (shoes, 0.4),
                 "right_shoulder": (shirt, 0.8), "left_shoulder": (shirt, 0.8),
                 "right_elbow": (shirt if long_sleeves else skin, 0.7),
                 "left_elbow": (shirt if long_sleeves else skin, 0.7),
                 "right_wrist": (skin, 0.5), "left_wrist": (skin, 0.5),
                 "hair": (_jitter(rng, _HAIR[int(rng.integers(len(_HAIR)))], 0.04), 0.9)}
        return {n: (*table.get(n, (shirt, 0.8))[0], table.get(n, (shirt, 0.8))[1]) for n in part_names}
    fur = _jitter(rng, _FUR[int(rng.integers(len(_FUR)))])
    legs = _jitter(rng, _FUR[int(rng.integers(len(_FUR)))]) if rng.uniform() < 0.4 else fur
    head = _jitter(rng, fur, 0.05)
    out = {}
    for n in part_names:
        c = legs if n.endswith("_lower_leg") else head if n == "head" else fur
        out[n] = (*c, float(rng.uniform(0.6, 0.95)))
    return out


# ----------------------------------------------------------------------------------------------------------
# Kubric


def add_articulated_actor(scene, kind: str, rng: np.random.Generator, num_frames: int, fps: float,
                          workdir: Path, *, clip: str | None = None, phase: float | None = None,
                          position=None, heading: float | None = None, speed: float | None = None,
                          scale: float | None = None, vary_body: bool = True, name: str | None = None) -> ActorInfo:
    """Add a mocap-driven ``kind`` ("human" | "animal") to the Kubric ``scene`` as keyframed rigid parts.

    ``rng`` draws whatever is None: clip (uniform over ``mocap.list_clips(kind)``), phase (fraction of the
    clip, in [0, 1)), speed (``SPEED_RANGE``), scale (``SCALE_RANGE``), heading (uniform yaw), position
    (root (x, y) at the middle frame, uniform in +-``POSITION_RANGE``) and, for animals with
    ``vary_body``, body/leg length. Frames are ``scene.frame_start + i``, i < num_frames, at ``fps``.
    ``name``: prefix of the parts' names (default: the next free ``{kind}NN`` of ``workdir``).
    """
    import kubric as kb

    workdir = Path(workdir)
    motion = pose_actor(kind, rng, num_frames, fps, clip=clip, phase=phase, position=position,
                        heading=heading, speed=speed, scale=scale, vary_body=vary_body, workdir=workdir)
    actor_dir = workdir / "actors"
    actor_dir.mkdir(parents=True, exist_ok=True)
    if name is None:
        taken = {p.name.split("_")[0] for p in actor_dir.iterdir() if p.is_dir()}
        index = 0
        while f"{kind}{index:02d}" in taken:  # never reuse a folder of this workdir: human00, human01, ...
            index += 1
        name = f"{kind}{index:02d}"
    out_dir = actor_dir / f"{name}_{motion.clip}"
    colors = part_colors(kind, motion.part_names, rng)

    parts = []
    frame0 = scene.frame_start
    for p, (pname, (verts, faces)) in enumerate(zip(motion.part_names, motion.part_meshes)):
        path = mocap.write_obj(out_dir / f"{pname}.obj", verts, faces, smooth=motion.smooth[p])
        r, g, b, rough = colors[pname]
        asset_id = f"{name}_{motion.clip}_{pname}"
        obj = kb.FileBasedObject(
            name=asset_id, asset_id=asset_id, render_filename=str(path), simulation_filename=None,
            # identity axis mapping: the OBJ is already in the Z-up part frame
            render_import_kwargs={"forward_axis": "Y", "up_axis": "Z"},
            bounds=(tuple(verts.min(0)), tuple(verts.max(0))),
            material=kb.PrincipledBSDFMaterial(color=kb.Color(r, g, b, 1.0), roughness=rough),
        )
        obj.metadata = {"category": kind, "actor": name, "part": pname}
        scene.add(obj)
        series = np.concatenate([motion.pose_before[None, p], motion.poses[:, p], motion.pose_after[None, p]])
        quats = _continuous_wxyz(mocap.matrix_to_quat(series[:, :3, :3]))
        for i in range(len(series)):
            obj.position = tuple(series[i, :3, 3])
            obj.quaternion = tuple(quats[i])
            obj.keyframe_insert("position", frame0 + i - 1)
            obj.keyframe_insert("quaternion", frame0 + i - 1)
        obj.position, obj.quaternion = tuple(series[1, :3, 3]), tuple(quats[1])  # static state = frame 0
        parts.append(ActorPart(name=pname, vertices=verts, faces=faces, mesh_path=path, asset_id=asset_id,
                               obj=obj))
    return ActorInfo(name=name, kind=kind, clip=motion.clip, phase=motion.phase, speed=motion.speed,
                     heading=motion.heading, position=motion.position, scale=motion.scale, parts=parts,
                     poses=motion.poses, body=motion.body)


def _continuous_wxyz(q_xyzw: np.ndarray) -> np.ndarray:
    """(T, 4) xyzw -> (T, 4) Kubric wxyz with signs flipped so neighbours agree (Blender interpolates
    quaternion keyframes component-wise: q and -q are the same rotation but not the same curve)."""
    q = np.concatenate([q_xyzw[:, 3:], q_xyzw[:, :3]], axis=1)
    for i in range(1, len(q)):
        if np.dot(q[i], q[i - 1]) < 0:
            q[i] = -q[i]
    return q
