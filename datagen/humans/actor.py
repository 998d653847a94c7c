"""One person in a scene: ``pose_human`` (no Blender) and ``add_human_object`` (the Blender mesh).

``pose_human(rng, num_frames, fps, ...) -> HumanMotion`` draws whatever is not given (phenotype,
outfit, look, clip, phase, speed, mirror, heading, position, facial performance), retargets the clip
onto the anny body, and skins it for the scene frames ``frame_start - 1 .. frame_end + 1`` (one extra
frame either side: motion blur and the forward-flow pass need the neighbours). Row ``i`` of
``HumanMotion.vertices`` is scene frame ``frame_start - 1 + i``. The lowest point of the body over
one pass of the clip (and over the rendered frames) touches the floor z = 0; the root is at
``position`` (x, y) at the middle rendered frame, facing ``heading`` (yaw, rad; 0 = +x).

``add_human_object(bpy, motion, name, first_frame)`` puts ONE ordinary Blender mesh object into the
scene (the actor kind ``datagen.actors.anny_human`` reports it as a ``DeformingMesh``; the scene gives it
its own segmentation id), with ONE fixed topology, and makes it deform: one shape key per frame, keyed 1 at
its frame and 0 at the neighbouring frames (linear), so at every integer frame Blender's evaluated mesh IS
that frame's skinned body, and in between it interpolates linearly. The annotator reads the geometry back
from Blender's evaluated mesh (``obj.evaluated_get(depsgraph)``): what Blender draws is what is annotated.

Same seed -> same person: every random choice comes from the ``rng`` passed in, in a fixed order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.humans import body as body_lib
from datagen.humans import face as face_lib
from datagen.humans import materials as mat_lib
from datagen.humans import regions as reg_lib
from datagen.humans import retarget as rt_lib

CATEGORY = "human"
SPEED_RANGE = (0.8, 1.25)  # playback speed (x clip time)
POSITION_RANGE = 1.5  # |x|, |y| <= this (m) for the root at the middle frame, when not given
FLOOR_SAMPLES_PER_S = 30.0  # clip sampling rate for the floor-contact search
FLOOR_VERTEX_STRIDE = 3  # every 3rd vertex in that search (the rendered frames use all of them)
FLOOR_MAX_SAMPLES = 121  # long clips: coarser sampling (bounded cost)
MIRROR_PROBABILITY = 0.5


@dataclass
class HumanMotion:
    """A posed person, independent of Blender (anny mesh topology; world metres, Z up).

    vertices: (T + 2, V, 3) float32 for scene frames frame_start - 1 .. frame_end + 1;
    rest: (V, 3) float32 unposed body (also the texture coordinates of the procedural materials);
    faces: (F, 3) int64; uv: (F, 3, 2) float32 per corner; slots: (F,) index into regions.SLOTS
    (material per polygon); regions: (F,) index into regions.REGIONS (reported to the annotator);
    eye_r: (V,) float32 (iris/pupil shading); head: (T + 2, 3) centre between the eyes; head_forward:
    (T + 2, 3) unit direction the face looks at; root: (T + 2, 3) pelvis.
    """

    vertices: np.ndarray
    rest: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    slots: np.ndarray
    regions: np.ndarray
    eye_r: np.ndarray
    head: np.ndarray
    head_forward: np.ndarray
    root: np.ndarray
    look: mat_lib.Look
    meta: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    @property
    def region_names(self) -> list[str]:
        return list(reg_lib.REGIONS)

    @property
    def num_frames(self) -> int:
        """Rendered frames (rows - 2)."""
        return int(self.vertices.shape[0]) - 2


def _source_for(clip: str | None, bvh: str | Path | None, rng: np.random.Generator,
                bvh_files: list[str] | None) -> rt_lib.SourceMotion:
    """clip name (DeepMimic) or BVH path; None: a random DeepMimic clip or, if bvh_files, one of those."""
    if bvh is not None:
        from datagen.humans import bvh as bvh_lib

        return bvh_lib.load_source(bvh)
    if clip is None:
        names = rt_lib.clip_names() + [f"bvh:{p}" for p in (bvh_files or [])]
        clip = names[int(rng.integers(len(names)))]
    if clip.startswith("bvh:"):
        from datagen.humans import bvh as bvh_lib

        return bvh_lib.load_source(clip[4:])
    return rt_lib.builtin_source(clip)


def pose_human(rng: np.random.Generator, num_frames: int, fps: float, *, clip: str | None = None,
               bvh: str | Path | None = None, bvh_files: list[str] | None = None,
               phase: float | None = None, speed: float | None = None, mirror: bool | None = None,
               heading: float | None = None, position=None, phenotype: body_lib.Phenotype | None = None,
               expressive: float = 1.0, head_motion: float = 1.0, model=None) -> HumanMotion:
    """Draw (from ``rng``) and pose one person for ``num_frames`` frames at ``fps``; see the module doc.

    clip: a built-in clip name (``retarget.clip_names()``: the DeepMimic clips and "stand") or "bvh:<path>";
    bvh: a BVH file (wins over clip); bvh_files: extra BVH paths the random choice may pick; phase: clip time
    at frame 0 as a fraction of the clip; speed: playback speed; mirror: left/right swapped; expressive: scales the
    facial expressions (0: neutral face, blinks only); head_motion: scales the extra head motion.
    """
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"need num_frames >= 1 and fps > 0, got {num_frames}, {fps}")
    timings = {}
    t0 = time.perf_counter()
    phenotype = phenotype if phenotype is not None else body_lib.Phenotype.sample(rng)
    outfit = reg_lib.Outfit.sample(rng, female=phenotype.gender > 0.5)
    look = mat_lib.Look.sample(rng, age=phenotype.age, dress=outfit.dress)
    source = _source_for(clip, bvh, rng, bvh_files)
    speed = float(speed if speed is not None else rng.uniform(*SPEED_RANGE))
    span = speed * (num_frames - 1) / fps
    if phase is None:  # one-shot clips: start early enough that the window fits, if it can
        top = 1.0 if source.loop else max(0.0, 1.0 - span / max(source.duration, 1e-6))
        phase = float(rng.uniform(0.0, top))
    mirror = bool(mirror if mirror is not None else rng.uniform() < MIRROR_PROBABILITY)
    heading = float(heading if heading is not None else rng.uniform(-np.pi, np.pi))
    if position is None:
        position = rng.uniform(-POSITION_RANGE, POSITION_RANGE, size=2)
    position = (float(position[0]), float(position[1]))
    frame_times = (np.arange(-1, num_frames + 1) / fps)  # scene seconds of frames -1 .. T
    track = face_lib.FaceTrack.sample(rng, body_lib.load_model().facial_action_labels if model is None
                                      else model.facial_action_labels, frame_times[0], frame_times[-1],
                                      expressive=expressive, head_motion=head_motion)
    body = body_lib.BodyModel(phenotype, model=model)
    rest = body.rest
    timings["body_s"] = time.perf_counter() - t0

    # --- motion ----------------------------------------------------------------------------------------
    t1 = time.perf_counter()
    retarget = rt_lib.Retargeter(source, rest, mirror=mirror)
    clip_t = phase * source.duration + speed * frame_times
    pose = retarget(clip_t)
    units, gaze, head_angles = track.evaluate(frame_times)
    rotations = _with_head_and_gaze(pose.rotations, rest.bone_labels, head_angles, gaze)
    # floor: lowest point over one pass of the clip (subset of vertices) and over the rendered frames (all)
    n_samples = int(np.clip(np.ceil(source.duration * FLOOR_SAMPLES_PER_S) + 1, 2, FLOOR_MAX_SAMPLES))
    clip_pose = retarget(np.linspace(0.0, source.duration, n_samples))
    subset = np.arange(0, body.num_vertices, FLOOR_VERTEX_STRIDE)
    v_clip, _ = body.skin(clip_pose.rotations, clip_pose.root, vertex_subset=subset)
    timings["retarget_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    verts, heads = body.skin(rotations, pose.root, units)
    timings["skin_s"] = time.perf_counter() - t2
    lowest = min(float(v_clip[..., 2].min()), float(verts[..., 2].min()))

    # --- placement: root at `position` at the middle frame, facing `heading`, feet on z = 0 -------------
    mid = 1 + (num_frames - 1) // 2  # row of the middle rendered frame
    yaw = _body_yaw(rotations[mid, 0])
    c, s = np.cos(heading - yaw), np.sin(heading - yaw)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pivot = np.array([pose.root[mid, 0], pose.root[mid, 1], 0.0])
    offset = np.array([position[0], position[1], -lowest]) - Rz @ pivot
    verts = verts @ Rz.T + offset
    heads = heads @ Rz.T + offset
    root = pose.root @ Rz.T + offset
    L = rest.bone_labels.index
    eye_mid = 0.5 * (heads[:, L("eye.L")] + heads[:, L("eye.R")])
    head_rot = Rz @ rotations[:, L("head")]
    forward = head_rot @ np.array([0.0, -1.0, 0.0])

    # --- appearance -------------------------------------------------------------------------------------
    labels = reg_lib.label_body(rest, outfit)
    meta = {
        "category": CATEGORY, "model": "anny", "anny_config": dict(body_lib.MODEL_CONFIG),
        "phenotype": phenotype.to_dict(), "outfit": outfit.to_dict(), "look": look.to_dict(),
        "clip": source.name, "phase": float(phase), "speed": speed, "mirror": mirror, "heading": heading,
        "position": list(position), "retarget_scale": pose.scale, "floor_offset": -lowest,
        "height_m": float(rest.vertices[:, 2].max() - rest.vertices[:, 2].min()),
        "face_track": track.meta(), "expressive": float(expressive), "head_motion": float(head_motion),
        "regions": list(reg_lib.REGIONS),
    }
    timings["total_s"] = time.perf_counter() - t0
    return HumanMotion(vertices=verts.astype(np.float32), rest=rest.vertices.astype(np.float32),
                       faces=rest.faces, uv=rest.uv.astype(np.float32), slots=labels.slot,
                       regions=labels.region, eye_r=reg_lib.eye_coordinates(rest).astype(np.float32),
                       head=eye_mid, head_forward=forward, root=root, look=look, meta=meta, timings=timings)


def _with_head_and_gaze(rotations: np.ndarray, labels: list[str], head: np.ndarray,
                        gaze: np.ndarray) -> np.ndarray:
    """Add the face track's head motion (neck bones take 1/3, 2/3 of it) and gaze (eye bones)."""
    from scipy.spatial.transform import Rotation

    out = rotations.copy()
    share = {"neck01": 1 / 3, "neck02": 2 / 3, "neck03": 1.0, "head": 1.0}
    for bone, w in share.items():
        out[:, labels.index(bone)] = rotations[:, labels.index(bone)] @ face_lib.head_rotation(head * w)
    eyes = face_lib.head_rotation(head) @ Rotation.from_euler("ZX", gaze).as_matrix()
    for bone in ("eye.L", "eye.R"):
        out[:, labels.index(bone)] = rotations[:, labels.index(bone)] @ eyes
    return out


def _body_yaw(root_rotation: np.ndarray) -> float:
    """Yaw (rad) of the direction the pelvis faces (anny's rest forward is -y)."""
    f = root_rotation @ np.array([0.0, -1.0, 0.0])
    if np.hypot(f[0], f[1]) < 0.3:  # lying or upside down: use the spine direction instead
        f = root_rotation @ np.array([0.0, 0.0, 1.0])
    return float(np.arctan2(f[1], f[0]))


# ----------------------------------------------------------------------------------------------------------
# Blender / Kubric


def build_mesh(bpy, name: str, motion: HumanMotion):
    """A Blender mesh of the rest body: vertices in anny order, triangles, UVs, material index per
    polygon (regions.SLOTS), smooth shading, point attributes ``rest`` and ``eye_r``."""
    V, F = len(motion.rest), len(motion.faces)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", motion.vertices[1].ravel())  # frame 0's shape as the basis
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", motion.faces.astype(np.int32).ravel())
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    mesh.polygons.foreach_set("loop_total", np.full(F, 3, dtype=np.int32))
    mesh.polygons.foreach_set("material_index", motion.slots.astype(np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(F, dtype=bool))
    uv = mesh.uv_layers.new(name="UVMap")
    uv.data.foreach_set("uv", motion.uv.reshape(-1))
    mesh.attributes.new("rest", "FLOAT_VECTOR", "POINT").data.foreach_set("vector", motion.rest.ravel())
    mesh.attributes.new("eye_r", "FLOAT", "POINT").data.foreach_set("value", motion.eye_r)
    mesh.update()
    return mesh


def key_frames(bpy, b_obj, vertices: np.ndarray, first_frame: int) -> None:
    """One relative shape key per row of ``vertices`` (T, V, 3): value 1 at its frame
    (first_frame + row), 0 at the neighbouring frames, linear in between."""
    b_obj.shape_key_add(name="basis", from_mix=False)
    key = b_obj.data.shape_keys
    key.use_relative = True
    for i, v in enumerate(vertices):
        block = b_obj.shape_key_add(name=f"frame_{first_frame + i}", from_mix=False)
        block.data.foreach_set("co", v.ravel())
        f = first_frame + i
        for frame, value in ((f - 1, 0.0), (f, 1.0), (f + 1, 0.0)):
            block.value = value
            block.keyframe_insert("value", frame=frame)
        block.value = 0.0
    for fc in key.animation_data.action.fcurves:
        for kp in fc.keyframe_points:
            kp.interpolation = "LINEAR"
        fc.extrapolation = "CONSTANT"


def add_human_object(bpy, motion: HumanMotion, name: str, first_frame: int):
    """Link ``motion`` into the current Blender scene as ONE plain mesh object ``name`` that deforms.

    Row i of ``motion.vertices`` is keyed at scene frame ``first_frame + i`` (pass frame_start - 1).
    Materials: one per ``regions.SLOTS`` entry. Cycles exports the vertex motion (deformation) for the
    vector pass and motion blur. Returns the Blender object.
    """
    mesh = build_mesh(bpy, name, motion)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    for m in mat_lib.build_materials(bpy, motion.look, name):
        mesh.materials.append(m)
    key_frames(bpy, obj, motion.vertices, first_frame)
    obj.cycles.use_motion_blur = True
    obj.cycles.use_deform_motion = True
    return obj
