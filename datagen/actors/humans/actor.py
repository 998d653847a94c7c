"""One person in a scene: ``pose_human`` (no Blender) and ``add_human_object`` (the Blender mesh).

``pose_human(rng, num_frames, fps, ...) -> HumanMotion`` draws whatever is not given (phenotype,
outfit, look, clip, phase, speed, mirror, heading, position, facial performance), retargets the clip
onto the anny body, and skins it for the scene frames ``frame_start - 1 .. frame_end + 1`` (one extra
frame either side: motion blur and the forward-flow pass need the neighbours). Row ``i`` of
``HumanMotion.vertices`` is scene frame ``frame_start - 1 + i``. The body stands on the floor z = 0: its
lowest point is at the height the source clip is off its ground at that frame (``ground_level``), never below
it; the root is at
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

from datagen.actors import planting
from datagen.actors.humans import body as body_lib
from datagen.actors.humans import face as face_lib
from datagen.actors.humans import hair as hair_lib
from datagen.actors.humans import materials as mat_lib
from datagen.actors.humans import regions as reg_lib
from datagen.actors.humans import retarget as rt_lib

CATEGORY = "human"
SPEED_RANGE = (0.8, 1.25)  # playback speed (x clip time)
POSITION_RANGE = 1.5  # |x|, |y| <= this (m) for the root at the middle frame, when not given
# The floor: mocap retargeted onto another body floats or sinks by a few cm (with one offset per clip, a running
# stance foot stayed 3-5 cm above the floor and a crawling body 2-9 cm). So the body's lowest point is put at the
# height the SOURCE skeleton is off its ground at that frame: its lowest joint's height above that joint height's
# rolling minimum over GROUND_WINDOW_S either side (smoothed over half of that). Standing, walking, crawling: the
# body rests on the floor at every frame; jumps, flips and a run's strides keep their flight (ground_level).
GROUND_WINDOW_S = 0.6  # scene seconds either side
GROUND_SAMPLES_PER_S = 10.0  # sampling of the source around the rendered frames
# The source's lowest point is a JOINT: an ankle rises ~5 cm while the toes push off, and a rolling body rests on
# joints of different clearances (shoulder, hip, knee). Flights count above this much (m), so those stay on the floor.
GROUND_CONTACT_TOLERANCE = 0.05
MIRROR_PROBABILITY = 0.5


@dataclass
class HumanMotion:
    """A posed person, independent of Blender (the anny mesh's vertices and polygons first, then the hair's,
    datagen.actors.humans.hair; world metres, Z up).

    vertices: (T + 2, V, 3) float32 for scene frames frame_start - 1 .. frame_end + 1;
    rest: (V, 3) float32 unposed body (also the texture coordinates of the procedural materials);
    faces: (F, 3) int64; uv: (F, 3, 2) float32 per corner; slots: (F,) index into regions.SLOTS
    (material per polygon); regions: (F,) index into regions.REGIONS (reported to the annotator);
    eye_r: (V,) float32 (iris/pupil shading); brow, hairline, lash, lips, collar: (V,) float32 painted
    brows, hair, lash lines, lips' outline and neckline (regions.BodyLabels); strand: (V, 3) float32 the hair
    texture's coordinates (hair.strand_coordinates); head: (T + 2, 3) centre between
    the eyes; head_forward: (T + 2, 3) unit direction the face looks at; root: (T + 2, 3) pelvis.
    """

    vertices: np.ndarray
    rest: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    slots: np.ndarray
    regions: np.ndarray
    eye_r: np.ndarray
    brow: np.ndarray
    hairline: np.ndarray
    lash: np.ndarray
    lips: np.ndarray
    collar: np.ndarray
    strand: np.ndarray
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
        from datagen.actors.humans import bvh as bvh_lib

        return bvh_lib.load_source(bvh)
    if clip is None:
        names = rt_lib.clip_names() + [f"bvh:{p}" for p in (bvh_files or [])]
        clip = names[int(rng.integers(len(names)))]
    if clip.startswith("bvh:"):
        from datagen.actors.humans import bvh as bvh_lib

        return bvh_lib.load_source(clip[4:])
    return rt_lib.builtin_source(clip)


def pose_human(rng: np.random.Generator, num_frames: int, fps: float, *, clip: str | None = None,
               bvh: str | Path | None = None, bvh_files: list[str] | None = None,
               phase: float | None = None, speed: float | None = None, mirror: bool | None = None,
               heading: float | None = None, position=None, phenotype: body_lib.Phenotype | None = None,
               expressive: float = 1.0, head_motion: float = 1.0, hair_styles: list[str] | None = None,
               model=None) -> HumanMotion:
    """Draw (from ``rng``) and pose one person for ``num_frames`` frames at ``fps``; see the module doc.

    clip: a built-in clip name (``retarget.clip_names()``: the DeepMimic clips and "stand") or "bvh:<path>";
    bvh: a BVH file (wins over clip); bvh_files: extra BVH paths the random choice may pick; phase: clip time
    at frame 0 as a fraction of the clip; speed: playback speed; mirror: left/right swapped; expressive: scales the
    facial expressions (0: neutral face, blinks only); head_motion: scales the extra head motion; hair_styles: the
    styles (regions.HAIR_STYLES) to draw from (None: all, by their frequencies).
    """
    if num_frames < 1 or fps <= 0:
        raise ValueError(f"need num_frames >= 1 and fps > 0, got {num_frames}, {fps}")
    timings = {}
    t0 = time.perf_counter()
    phenotype = phenotype if phenotype is not None else body_lib.Phenotype.sample(rng)
    outfit = reg_lib.Outfit.sample(rng, female=phenotype.gender > 0.5, hair_styles=hair_styles)
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
    hair_rng = np.random.default_rng(int(rng.integers(2 ** 63)))
    body = body_lib.BodyModel(phenotype, model=model)
    rest = body.rest
    labels = reg_lib.label_body(rest, outfit)
    hair = hair_lib.grow_hair(rest, labels.slot == reg_lib.SLOTS.index("hair"), outfit.hair, hair_rng)
    timings["body_s"] = time.perf_counter() - t0

    # --- motion ----------------------------------------------------------------------------------------
    t1 = time.perf_counter()
    retarget = rt_lib.Retargeter(source, rest, mirror=mirror)
    clip_t = phase * source.duration + speed * frame_times
    pose = retarget(clip_t)
    units, gaze, head_angles = track.evaluate(frame_times)
    rotations = _with_head_and_gaze(pose.rotations, rest.bone_labels, head_angles, gaze)
    # floor: how high the source skeleton is off its ground around the rendered frames (see GROUND_WINDOW_S)
    ground_times = np.arange(frame_times[0] - GROUND_WINDOW_S, frame_times[-1] + GROUND_WINDOW_S + 1e-9,
                             1.0 / GROUND_SAMPLES_PER_S)
    source_low = retarget.lowest_joint(phase * source.duration + speed * ground_times)
    timings["retarget_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    verts, heads = body.skin(rotations, pose.root, units, extra=(hair.vertices, hair.weights))
    timings["skin_s"] = time.perf_counter() - t2
    ground = ground_level(frame_times, verts[..., 2].min(1), pose.lowest_joint, ground_times, source_low)

    # --- placement: root at `position` at the middle frame, facing `heading`, feet on z = 0 -------------
    mid = 1 + (num_frames - 1) // 2  # row of the middle rendered frame
    yaw = _body_yaw(rotations[mid, 0])
    c, s = np.cos(heading - yaw), np.sin(heading - yaw)
    Rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    pivot = np.array([pose.root[mid, 0], pose.root[mid, 1], 0.0])
    offset = np.array([position[0], position[1], 0.0]) - Rz @ pivot
    down = np.zeros((len(ground), 3))
    down[:, 2] = ground  # per frame: the ground level comes down to z = 0 (Rz turns about z: order is free)
    verts = verts @ Rz.T + (offset - down)[:, None]
    # standing feet (or knees, hands, a rolling back) do not slide: the body is pushed back by their mean step
    slide = np.zeros_like(down)
    slide[:, :2] = planting.stop_sliding(verts)
    slide -= slide[mid]  # the root stays at `position` at the middle frame
    verts = verts + slide[:, None]
    heads = heads @ Rz.T + (offset - down + slide)[:, None]
    root = pose.root @ Rz.T + offset - down + slide
    L = rest.bone_labels.index
    eye_mid = 0.5 * (heads[:, L("eye.L")] + heads[:, L("eye.R")])
    head_rot = Rz @ rotations[:, L("head")]
    forward = head_rot @ np.array([0.0, -1.0, 0.0])

    # --- appearance: the body's polygons, then the hair's ---------------------------------------------------
    V = len(rest.vertices)
    hair_slot = reg_lib.SLOTS.index("hair")
    faces = np.concatenate([rest.faces, hair.faces + V])
    slots = np.concatenate([labels.slot, np.full(len(hair.faces), hair_slot, np.int64)])
    regions = np.concatenate([labels.region, np.full(len(hair.faces), reg_lib.REGIONS.index("hair"), np.int64)])
    uv = np.concatenate([rest.uv, np.zeros((len(hair.faces), 3, 2))])
    rest_points = np.concatenate([rest.vertices, hair.vertices])
    eye_r = np.concatenate([reg_lib.eye_coordinates(rest), np.ones(len(hair.vertices))])
    brow = np.concatenate([labels.brow, np.zeros(len(hair.vertices))])
    hairline = np.concatenate([labels.hairline, np.ones(len(hair.vertices))])
    lash = np.concatenate([labels.lash, np.zeros(len(hair.vertices))])
    lips = np.concatenate([labels.lips, np.full(len(hair.vertices), -100.0)])
    collar = np.concatenate([labels.collar, np.ones(len(hair.vertices))])
    strand = hair_lib.strand_coordinates(rest, rest_points)
    meta = {
        "category": CATEGORY, "model": "anny", "anny_config": dict(body_lib.MODEL_CONFIG),
        "phenotype": phenotype.to_dict(), "outfit": outfit.to_dict(), "look": look.to_dict(),
        "clip": source.name, "phase": float(phase), "speed": speed, "mirror": mirror, "heading": heading,
        "position": list(position), "retarget_scale": pose.scale,
        "floor_offset": [float(-ground.max()), float(-ground.min())],
        "height_m": float(rest.vertices[:, 2].max() - rest.vertices[:, 2].min()),
        "face_track": track.meta(), "expressive": float(expressive), "head_motion": float(head_motion),
        "regions": list(reg_lib.REGIONS), "hair_vertices": int(len(hair.vertices)),
    }
    timings["total_s"] = time.perf_counter() - t0
    return HumanMotion(vertices=verts.astype(np.float32), rest=rest_points.astype(np.float32),
                       faces=faces, uv=uv.astype(np.float32), slots=slots,
                       regions=regions, eye_r=eye_r.astype(np.float32), brow=brow.astype(np.float32),
                       hairline=hairline.astype(np.float32), lash=lash.astype(np.float32),
                       lips=lips.astype(np.float32), collar=collar.astype(np.float32),
                       strand=strand.astype(np.float32),
                       head=eye_mid, head_forward=forward, root=root, look=look, meta=meta, timings=timings)


def ground_level(frame_times: np.ndarray, frame_low: np.ndarray, frame_source_low: np.ndarray,
                 sample_times: np.ndarray, sample_source_low: np.ndarray) -> np.ndarray:
    """(T,) the height to take off every vertex at each frame so the body stands on the floor z = 0.

    frame_times (T,) scene seconds; frame_low (T,) the posed body's lowest point (all vertices);
    frame_source_low (T,) the source skeleton's lowest joint (Retargeted.lowest_joint) at those frames;
    sample_times (S,) / sample_source_low (S,) the same around them (GROUND_WINDOW_S either side). The source's
    flight at a frame is its lowest joint above that joint height's rolling minimum over +-GROUND_WINDOW_S
    (smoothed by a +-GROUND_WINDOW_S / 2 moving average, so the reference does not jump), less
    GROUND_CONTACT_TOLERANCE; the body's lowest point is put at that flight height, hence never below the floor.
    """
    smooth = planting.rolling_floor(sample_source_low, sample_times, GROUND_WINDOW_S)
    flight = np.maximum(0.0, frame_source_low - np.interp(frame_times, sample_times, smooth) - GROUND_CONTACT_TOLERANCE)
    return frame_low - flight


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
    polygon (regions.SLOTS), smooth shading, point attributes ``rest``, ``strand``, ``eye_r``, ``brow``, ``hairline``,
    ``lash``, ``lips`` and ``collar``."""
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
    for attr in ("rest", "strand"):
        mesh.attributes.new(attr, "FLOAT_VECTOR", "POINT").data.foreach_set("vector", getattr(motion, attr).ravel())
    for attr in ("eye_r", "brow", "hairline", "lash", "lips", "collar"):
        mesh.attributes.new(attr, "FLOAT", "POINT").data.foreach_set("value", getattr(motion, attr))
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
    for m in mat_lib.build_materials(bpy, motion.look, name, floor_z=float(motion.rest[:, 2].min())):
        mesh.materials.append(m)
    key_frames(bpy, obj, motion.vertices, first_frame)
    obj.cycles.use_motion_blur = True
    obj.cycles.use_deform_motion = True
    return obj
