"""Build, simulate and render one MOVi-like Kubric scene with ground-truth point tracks.

`render_scene(cfg, seed, workdir)` runs in the current process (Blender keeps global state, so the
pipeline gives each scene its own process). Same (cfg, seed) -> same scene: every random choice
comes from one seeded RandomState, PyBullet runs deterministically, Cycles uses a fixed seed.

Scene: textured floor + dome (procedural, image or panorama/HDRI textures; a panorama also lights the scene
through the world shader), a sun + optional point lights + ambient light, actors (humans, animals: kinds from
datagen.actors, rigid parts or deforming meshes), static objects resting on the floor, tossed objects simulated
with Kubric's PyBullet simulator, and a static, linearly moving or orbiting camera that looks at the action.

Segmentation ids: Kubric's convention for its assets (id i + 1 = scene.assets[i], matched through the
Cryptomatte object hash of the asset's uid = its Blender object name); the deforming meshes of actors (plain
Blender objects, unknown to Kubric) get the ids after them, matched through the Cryptomatte hash of their
Blender object names (`_segmentation_ids`). Every id is one surface of the ground truth (datagen.surfaces).
"""
from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen import assets as asset_lib
from datagen import surfaces as surf
from datagen import tracks as tracks_lib
from datagen.sample import CATEGORY_NAMES, TrackSample
from datagen.scene_config import SceneConfig

logger = logging.getLogger(__name__)
PROCEDURAL = ("noise", "voronoi", "checker", "wave", "magic", "brick")


@dataclass
class _Built:
    """Book-keeping while building: asset -> category/region and what was placed, for the metadata."""
    category: dict = field(default_factory=dict)  # kubric asset -> category index into category_names
    region: dict = field(default_factory=dict)  # kubric asset -> region name (rigid actor parts)
    asset_ids: list = field(default_factory=list)  # dicts describing what was placed
    actors: list = field(default_factory=list)  # datagen.actors.Actor
    category_names: list = field(default_factory=lambda: list(CATEGORY_NAMES))
    camera_path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # close-up camera (x, y) per key

    def category_index(self, name: str) -> int:
        if name not in self.category_names:  # a kind with a new category (e.g. "vehicle")
            self.category_names.append(name)
        return self.category_names.index(name)


# ---------------------------------------------------------------------------------------------
# materials (bpy): procedural or image textures in the object's own coordinates, so a texture
# sticks to the surface as the object moves (what point tracking needs)
# ---------------------------------------------------------------------------------------------
def _random_color(rng, sat=(0.3, 1.0), val=(0.3, 1.0)):
    import colorsys

    return (*colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)), 1.0)


def _textured_material(bpy, name: str, rng, kind: str, images: list[str], scale: float):
    """A Principled material whose base colour comes from a random procedural or image texture.

    `scale`: texture repeats per unit of object-local coordinates; kind "procedural" or "image".
    """
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = rng.uniform(0.3, 1.0)
    bsdf.inputs["Metallic"].default_value = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.3, 0.8)])
    coords = nodes.new("ShaderNodeTexCoord")
    mapping = nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (scale, scale, scale)
    mapping.inputs["Rotation"].default_value = tuple(rng.uniform(0, 2 * np.pi, 3))
    links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    if kind == "image" and images:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = bpy.data.images.load(str(images[rng.randint(len(images))]), check_existing=True)
        tex.projection = "BOX"  # no UVs needed; seams blended
        tex.projection_blend = 0.2
        tex.extension = "REPEAT"
        links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        return mat
    pattern = PROCEDURAL[rng.randint(len(PROCEDURAL))]
    tex = nodes.new({"noise": "ShaderNodeTexNoise", "voronoi": "ShaderNodeTexVoronoi",
                     "checker": "ShaderNodeTexChecker", "wave": "ShaderNodeTexWave",
                     "magic": "ShaderNodeTexMagic", "brick": "ShaderNodeTexBrick"}[pattern])
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    if "Scale" in tex.inputs:  # node's own frequency multiplier (default 5); `scale` sets it alone
        tex.inputs["Scale"].default_value = 1.0
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = _random_color(rng)
    ramp.color_ramp.elements[1].color = _random_color(rng)
    fac = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    links.new(fac, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


@dataclass
class _Panorama:
    """An equirectangular panorama (HDRI or LDR) lighting the scene: file, yaw (rad) and world strength."""
    path: str
    rotation: float
    strength: float


def _panorama_material(bpy, name: str, pano: _Panorama):
    """Emissive dome material showing the panorama exactly as the world shader does: the environment texture
    is looked up along the camera ray (-Incoming), not at the dome's UVs, so the backdrop has no parallax and
    agrees with the light the panorama casts (the dome itself is invisible to diffuse and shadow rays)."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    # not a light source: the world shader lights the scene; estimating the emission of a view-dependent
    # textured dome for light sampling cost seconds per frame and would double its light
    mat.cycles.emission_sampling = "NONE"
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    for n in list(nodes):
        if n.type != "OUTPUT_MATERIAL":
            nodes.remove(n)
    geometry = nodes.new("ShaderNodeNewGeometry")
    flip = nodes.new("ShaderNodeVectorMath")
    flip.operation = "SCALE"
    flip.inputs["Scale"].default_value = -1.0
    links.new(geometry.outputs["Incoming"], flip.inputs[0])
    mapping = nodes.new("ShaderNodeMapping")
    mapping.vector_type = "VECTOR"
    mapping.inputs["Rotation"].default_value = (0.0, 0.0, pano.rotation)
    links.new(flip.outputs["Vector"], mapping.inputs["Vector"])
    tex = nodes.new("ShaderNodeTexEnvironment")
    tex.image = bpy.data.images.load(pano.path, check_existing=True)
    links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = pano.strength
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
    return mat


def _panorama_world(bpy, renderer, pano: _Panorama) -> None:
    """Light the scene with the panorama: Kubric's world shader (Background for non-camera rays mixed with one
    for camera rays) gets the environment texture with the same yaw and strength on both."""
    image = bpy.data.images.load(pano.path, check_existing=True)
    tree = bpy.context.scene.world.node_tree
    for tex, mapping, background in ((renderer.ambient_hdri_node, renderer.illum_mapping_node, renderer.ambient_node),
                                     (renderer.bg_hdri_node, renderer.bg_mapping_node, renderer.bg_node)):
        tex.image = image
        mapping.vector_type = "VECTOR"
        mapping.inputs["Rotation"].default_value = (0.0, 0.0, pano.rotation)
        tree.links.new(tex.outputs["Color"], background.inputs["Color"])
        background.inputs["Strength"].default_value = pano.strength
    # The world's light-importance map: twice as wide as the image (<= 2048). Coarser maps miss small bright suns
    # (Blender's city/interior/sunrise HDRIs: ~3e4 in a few pixels) and speckle every lit surface with noise
    # (seen at 256, 1024; clean at 2048 on a 1024-px HDRI). It is built once per pass (render_scene keeps
    # Cycles' data between frames: without that the build cost seconds per frame).
    world = bpy.context.scene.world.cycles
    world.sampling_method = "MANUAL"
    world.sample_map_resolution = int(np.clip(2 * image.size[0], 256, 2048))


def _set_material(renderer, asset, material) -> None:
    b_obj = asset.linked_objects[renderer]
    b_obj.data.materials.clear()
    b_obj.data.materials.append(material)


# ---------------------------------------------------------------------------------------------
# scene content
# ---------------------------------------------------------------------------------------------
def _uniform(rng, lo_hi):
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _randint(rng, lo_hi):
    return int(rng.randint(lo_hi[0], lo_hi[1] + 1))


def _add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built) -> _Panorama | None:
    """Floor + dome; returns the panorama that lights the scene when the dome got one (else None)."""
    r = cfg.dome_radius
    floor = kb.Cube(name="floor", scale=(r, r, 0.1), position=(0, 0, -0.1), static=True,
                    friction=0.5, restitution=0.3)
    scene += floor
    dome = kb.FileBasedObject(name="dome", asset_id="dome", render_filename=asset_lib.dome_mesh(cache),
                              simulation_filename=None, scale=(r, r, r), static=True,
                              render_import_kwargs={"forward_axis": "Y", "up_axis": "Z"})
    scene += dome
    floor_kind = cfg.floor_textures[rng.randint(len(cfg.floor_textures))]
    dome_kind = cfg.dome_textures[rng.randint(len(cfg.dome_textures))]
    # object coords of the floor cube are in [-1, 1] (x r metres): 0.3-1 repeats per metre
    _set_material(renderer, floor, _textured_material(bpy, "floor", rng, floor_kind, images,
                                                      r * rng.uniform(0.3, 1.0)))
    pano = None
    if dome_kind == "hdri":  # a random offline HDRI, or a texture of the Kubric sources with category "hdri"
        pool = [("file", p) for p in asset_lib.hdri_paths(cfg.hdri_dirs, cache)]
        pool += [("kubric", i) for i in sources.indices("hdri")]
        if not pool:
            raise ValueError('dome_textures has "hdri" but no HDRI is available (hdri_dirs, kubric_sources)')
        source, ref = pool[rng.randint(len(pool))]
        if source == "kubric":
            ids = sources.asset_ids(ref)
            ref = sources.source(ref).create(asset_id=ids[rng.randint(len(ids))]).filename
        pano = _Panorama(str(ref), float(rng.uniform(0, 2 * np.pi)), _uniform(rng, cfg.hdri_strength))
        dome_kind = "equirect"
    elif dome_kind not in ("procedural", "image"):  # a path/URL of a panorama image or HDRI
        pano = _Panorama(_local_file(dome_kind, cache), float(rng.uniform(0, 2 * np.pi)),
                         _uniform(rng, cfg.hdri_strength))
        dome_kind = "equirect"
    if pano is not None:
        _set_material(renderer, dome, _panorama_material(bpy, "dome", pano))
    else:
        _set_material(renderer, dome, _textured_material(bpy, "dome", rng, dome_kind, images,
                                                         rng.uniform(1.0, 4.0)))
    # The dome must not shadow the sun nor block the world's light for diffuse bounces;
    # it stays visible to the camera (and to reflections, unless the world shows the same panorama).
    b_dome = dome.linked_objects[renderer]
    b_dome.visible_shadow = False
    b_dome.visible_diffuse = False
    if pano is not None:  # reflections see the world instead (the same panorama, but importance-sampled: a
        b_dome.visible_glossy = False  # reflected HDRI sun on the dome is a firefly on every glossy surface)
        b_dome.visible_transmission = False
    built.category[floor] = built.category[dome] = 0
    built.asset_ids += [{"name": "floor", "texture": floor_kind}, {"name": "dome", "texture": dome_kind}]
    if pano is not None:
        built.asset_ids[-1].update(panorama=Path(pano.path).name, strength=pano.strength, yaw=pano.rotation)
    return pano


def _local_file(path_or_url: str, cache: Path) -> str:
    """Local path for a texture given by path or URL (URLs downloaded once into the cache)."""
    if "://" not in path_or_url:
        return path_or_url
    import hashlib

    name = hashlib.sha1(path_or_url.encode()).hexdigest()[:12] + "_" + path_or_url.rsplit("/", 1)[-1]
    return str(asset_lib.fetch_url(path_or_url, Path(cache) / "downloads" / name))


def _add_lights(kb, scene, cfg, rng, pano: _Panorama | None):
    """A sun (weaker when a panorama already lights the scene), point lights, and uniform ambient light
    unless a panorama lights the world."""
    azim, elev = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(35, 80))
    sun_pos = 20 * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    intensity = _uniform(rng, cfg.hdri_sun_intensity if pano is not None else cfg.sun_intensity)
    scene += kb.DirectionalLight(name="sun", position=tuple(sun_pos), look_at=(0, 0, 0), intensity=intensity,
                                 color=kb.Color(*_random_color(rng, sat=(0, 0.15), val=(0.9, 1))[:3]))
    for i in range(_randint(rng, cfg.num_extra_lights)):
        pos = (rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(3, 8))
        scene += kb.PointLight(name=f"lamp{i}", position=pos, intensity=rng.uniform(100, 600),
                               color=kb.Color(*_random_color(rng, sat=(0, 0.4), val=(0.9, 1))[:3]))
    a = _uniform(rng, cfg.ambient_intensity)
    if pano is None:
        scene.ambient_illumination = kb.Color(a, a, a)


def _choose_object(rng, cfg, pyb_ids, sources):
    """-> ("pybullet", id) or (source_index, id), by source weight."""
    kinds = [("pybullet", cfg.pybullet_weight)] + [(i, sources.configs[i].weight)
                                                   for i in sources.indices("object")]
    w = np.array([k[1] for k in kinds], dtype=float)
    kind = kinds[rng.choice(len(kinds), p=w / w.sum())][0]
    if kind == "pybullet":
        return kind, pyb_ids[rng.randint(len(pyb_ids))]
    ids = sources.asset_ids(kind)
    return kind, ids[rng.randint(len(ids))]


def _make_object(kb, kind, asset_id, size, cache, sources, name):
    if kind == "pybullet":
        m = asset_lib.prepare_mesh(asset_id, cache)
        ext = np.array(m.extents)
        obj = kb.FileBasedObject(name=name, asset_id=asset_id, render_filename=m.obj_path,
                                 simulation_filename=m.urdf_path, scale=(size,) * 3,
                                 bounds=(tuple(-ext / 2), tuple(ext / 2)),
                                 render_import_kwargs={"forward_axis": "Y", "up_axis": "Z"})
        return obj
    obj = sources.source(kind).create(asset_id=asset_id)
    obj.name = name
    # Kubric assets are normalised to a unit bounding-box diagonal-ish size; rescale to `size`
    lo, hi = np.array(obj.bounds[0]), np.array(obj.bounds[1])
    obj.scale = (size / float((hi - lo).max()),) * 3
    return obj


def _overlaps(sim, obj, ignore: int) -> bool:
    """Like Kubric's check_overlap, but objects may touch the `ignore` body (the floor they rest on;
    PyBullet's convex hulls reach ~1 mm below the mesh bounds)."""
    import pybullet as pb

    me, client = obj.linked_objects[sim], sim.physics_client
    others = [pb.getBodyUniqueId(i, physicsClientId=client) for i in range(pb.getNumBodies(physicsClientId=client))]
    return any(pb.getClosestPoints(me, b, distance=0, physicsClientId=client)
               for b in others if b not in (me, ignore))


def _add_objects(kb, bpy, scene, renderer, sim, cfg, rng, cache, images, sources, built):
    pyb_ids = list(cfg.pybullet_objects) or asset_lib.pybullet_object_ids()
    h = cfg.spawn_region_half
    paths, radii = _actor_footprint(built)
    floor_body = next(a for a in scene.assets if a.name == "floor").linked_objects[sim]
    n_static, n_tossed = _randint(rng, cfg.num_static_objects), _randint(rng, cfg.num_tossed_objects)
    for i in range(n_static + n_tossed):
        tossed = i >= n_static
        kind, asset_id = _choose_object(rng, cfg, pyb_ids, sources)
        size = _uniform(rng, cfg.object_scale)
        obj = _make_object(kb, kind, asset_id, size, cache, sources, f"{'tossed' if tossed else 'static'}{i}")
        obj.static = not tossed
        obj.mass = 1.0 * size ** 3
        obj.friction, obj.restitution = rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.6)
        if rng.uniform() < cfg.object_texture_prob:
            material = None
        else:
            material = kb.PrincipledBSDFMaterial(color=kb.Color(*_random_color(rng)[:3]),
                                                 roughness=rng.uniform(0.2, 0.9),
                                                 metallic=float(rng.uniform() < 0.3),
                                                 specular=0.5, ior=1.45)
            obj.material = material
        scene += obj
        if material is None:
            tex_kind = "image" if rng.uniform() < 0.5 else "procedural"
            _set_material(renderer, obj, _textured_material(bpy, f"{obj.name}_mat", rng, tex_kind,
                                                            images, rng.uniform(1.0, 4.0)))
        lo, hi = np.abs(obj.bounds[0]) * obj.scale[0], np.abs(obj.bounds[1]) * obj.scale[0]
        bottom = lo[2]  # origin height above the floor when resting unrotated
        radius = float(np.linalg.norm(np.maximum(lo, hi)))  # clears the floor in any orientation
        for _ in range(cfg.max_placement_trials):
            if tossed:
                obj.position = (rng.uniform(-h, h), rng.uniform(-h, h),
                                radius + _uniform(rng, cfg.toss_height))
                obj.quaternion = kb.random_rotation(rng=rng)
            else:  # resting on the floor, random heading
                obj.position = (rng.uniform(-h, h), rng.uniform(-h, h), bottom)
                obj.quaternion = kb.random_rotation(axis="Z", rng=rng)
            clear = (np.linalg.norm(paths - np.asarray(obj.position[:2]), axis=1) - radii).min(initial=np.inf)
            if clear > size / 2 + 0.2 and not _overlaps(sim, obj, ignore=floor_body):
                break
        else:
            logger.info("no free spot for %s, removing it", obj.name)
            scene.remove(obj)
            continue
        if tossed:  # thrown roughly towards the centre
            direction = -np.asarray(obj.position[:2]) + rng.normal(0, 1, 2)
            direction /= np.linalg.norm(direction) + 1e-9
            obj.velocity = (*(direction * _uniform(rng, cfg.toss_speed)), rng.uniform(0, 2))
        built.category[obj] = CATEGORY_NAMES.index("object")
        built.asset_ids.append({"name": obj.name, "source": str(kind), "asset_id": asset_id,
                                "size": size, "static": not tossed})


def _add_actors(bpy, scene, renderer, cfg, rng, workdir, cache, built):
    """Actor groups of the config (datagen.actors kinds; a herd shares a centre, heading and choices)."""
    groups = cfg.actor_groups()
    if not groups:
        return
    from datagen import actors as actor_lib

    gen = np.random.default_rng(rng.randint(2**31))
    h = cfg.actor_spawn_half
    centres: list[np.ndarray] = []
    counters: dict[str, int] = {}

    def free_spot() -> np.ndarray:
        """A ground point at least 1.5 m from the other groups' centres (best effort)."""
        for _ in range(cfg.max_placement_trials):
            p = gen.uniform(-h, h, 2)
            if all(np.linalg.norm(p - c) > 1.5 for c in centres):
                break
        centres.append(p)
        return p

    for group in groups:
        if gen.uniform() >= group.probability:
            continue
        kind = actor_lib.get_kind(group.kind)(dict(group.options))
        n = int(gen.integers(group.count[0], group.count[1] + 1))
        shared = {} if group.herd else None
        centre, heading = free_spot(), float(gen.uniform(-np.pi, np.pi))
        for i in range(n):
            if not group.herd and i:
                centre, heading = free_spot(), float(gen.uniform(-np.pi, np.pi))
            index = counters.get(kind.category, 0)
            counters[kind.category] = index + 1
            ctx = actor_lib.ActorContext(scene=scene, renderer=renderer, bpy=bpy, workdir=Path(workdir),
                                         cache_dir=Path(cache), name=f"{kind.category}{index:02d}",
                                         frame_start=scene.frame_start, num_frames=cfg.num_frames, fps=cfg.fps)
            spawn = actor_lib.Spawn(position=(float(centre[0]), float(centre[1])), heading=heading, group=shared,
                                    index=i if group.herd else 0, group_size=n if group.herd else 1)
            actor = kind.add(ctx, np.random.default_rng(gen.integers(2**31)), spawn)
            built.actors.append(actor)
            category = built.category_index(actor.category)
            for part in actor.rigid_parts:
                built.category[part.obj] = category
                built.region[part.obj] = part.region
            built.asset_ids.append(actor.meta)


def _actor_footprint(built) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) ground points of every actor at every frame and (N,) their radii (objects keep clear), plus the
    ground path of a close-up camera (objects must not swallow it)."""
    paths = [a.trajectory for a in built.actors] + [built.camera_path]
    radii = [np.full(len(a.trajectory), a.radius) for a in built.actors] + [np.full(len(built.camera_path), 0.6)]
    return np.concatenate(paths).reshape(-1, 2), np.concatenate(radii)


def _camera_target(cfg, rng, built) -> np.ndarray:
    """World point the camera looks at (see SceneConfig.camera_target)."""
    jitter = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8)])
    if cfg.camera_target == "scene" or not built.actors:
        return jitter
    if cfg.camera_target == "actors":
        mids = np.stack([a.trajectory[len(a.trajectory) // 2] for a in built.actors])
        return np.array([*mids.mean(0), 0.0]) + jitter * [0.3, 0.3, 1.0]
    for a in built.actors:
        if cfg.camera_target in a.points:
            return np.asarray(a.points[cfg.camera_target], float).mean(0)
    raise ValueError(f"camera_target {cfg.camera_target!r}: no actor reports that point "
                     f"(actors: {[a.kind for a in built.actors]})")


# Close-up framings (SceneConfig.camera_framing): visible height (m) at the subject's distance, aim point below
# the eyes (m), largest azimuth away from the face direction (deg).
FRAMINGS = {"face": ((0.17, 0.26), 0.04, 25.0), "upper_body": ((0.75, 1.1), 0.3, 55.0),
            "body": ((2.0, 2.8), 0.75, 80.0)}


def _steady(path: np.ndarray) -> np.ndarray:
    """(n, 3) least-squares straight line through a path (n, 3) at the same times: a steadicam's course."""
    t = np.arange(len(path), dtype=float)
    A = np.stack([np.ones_like(t), t], 1)
    coef, *_ = np.linalg.lstsq(A, path, rcond=None)
    return A @ coef


def _closeup_path(cfg, rng, built, framing: str, n: int):
    """Camera positions and aim points (n, 3) for frames 0..n-1 framing one person's head/upper body/body.

    The subject is the calmest actor reporting the points "head" and "face_front" (the anny human does): the
    one whose head strays least from a straight course. The camera looks at the face from within FRAMINGS'
    azimuth of the face's direction, 5 deg below to 20 deg above it, at the distance where the framing's
    visible height fills the image's shorter side. Like a steadicam it moves along the straight course of the
    head plus a random share of the head's own motion (face: 30-80 %, wider shots: 0-50 %) and turns with
    30-70 % of the face's turning (at most 45 deg), so the face moves and turns in the frame but stays in view.
    The viewpoint is redrawn (10 tries) until the camera keeps 0.3 m clear of the other actors (a crowd);
    objects are later kept clear of the camera's ground path.
    """
    subjects = [a for a in built.actors if "head" in a.points and "face_front" in a.points]
    if not subjects:
        raise ValueError(f"camera_framing {framing!r} needs an actor with 'head' and 'face_front' points "
                         f"(kind human); actors: {[a.kind for a in built.actors]}")

    def pad(x):  # rendered frames -> camera keys 0..T+1
        x = np.asarray(x, float)
        return np.concatenate([x[:1], x, x[-1:]])[:n]

    strays = [np.abs(pad(a.points["head"]) - _steady(pad(a.points["head"]))).max() for a in subjects]
    a = subjects[int(np.argmin(strays))]
    head, ahead = pad(a.points["head"]), pad(a.points["face_front"])
    (lo, hi), below, max_az = FRAMINGS[framing]
    mid = n // 2
    face_yaw = np.unwrap(np.arctan2(ahead[:, 1] - head[:, 1], ahead[:, 0] - head[:, 0]))
    turn = rng.uniform(0.3, 0.7)  # a spinning subject: the camera swings by at most 45 deg
    half_fov = np.arctan(cfg.sensor_width / 2 / cfg.focal_length) * min(cfg.height, cfg.width) / cfg.width
    dist = rng.uniform(lo, hi) / (2 * np.tan(half_fov))
    course = _steady(head)
    follow = rng.uniform(0.3, 0.8) if framing == "face" else rng.uniform(0.0, 0.5)
    aim = course + follow * (head - course) - np.array([0.0, 0.0, below])
    aim[:, 2] = np.maximum(aim[:, 2], 0.15)  # someone lying or rolling on the floor: stay above it
    others = [(pad(np.c_[o.trajectory, np.zeros(len(o.trajectory))])[:, :2], o.radius) for o in built.actors
              if o is not a]
    best, best_clear = None, -np.inf
    for _ in range(10):  # the first viewpoint that stays clear of the other actors' bodies (crowds), else the best
        yaw = face_yaw[mid] + np.clip(turn * (face_yaw - face_yaw[mid]), -np.pi / 4, np.pi / 4) \
            + np.deg2rad(rng.uniform(-max_az, max_az))
        elev = np.deg2rad(rng.uniform(-5.0, 20.0))
        direction = np.stack([np.cos(elev) * np.cos(yaw), np.cos(elev) * np.sin(yaw), np.full(n, np.sin(elev))], -1)
        pos = aim + direction * dist
        pos[:, 2] = np.maximum(pos[:, 2], 0.3)
        clear = min((np.linalg.norm(pos[:, :2] - path, axis=1) - radius).min() for path, radius in others) \
            if others else np.inf
        if clear > best_clear:
            best, best_clear = pos, clear
        if clear > 0.3:
            break
    return best, aim


def _add_camera(kb, scene, cfg, rng, built):
    """Camera keyframed at every frame; returns (motion kind, framing)."""
    framing = cfg.camera_framing[0] if len(cfg.camera_framing) == 1 else \
        cfg.camera_framing[rng.randint(len(cfg.camera_framing))]  # one choice: no draw (seeds stay as they were)
    if framing != "scene":
        cam = kb.PerspectiveCamera(name="camera", focal_length=cfg.focal_length, sensor_width=cfg.sensor_width)
        scene += cam
        scene.camera = cam
        pos, aim = _closeup_path(cfg, rng, built, framing, cfg.num_frames + 2)
        built.camera_path = pos[:, :2]
        for f, (p, a) in enumerate(zip(pos, aim)):
            cam.position = tuple(p)
            cam.look_at(tuple(a))
            cam.keyframe_insert("position", f)
            cam.keyframe_insert("quaternion", f)
        return "follow", framing
    motion = cfg.camera_motion[rng.randint(len(cfg.camera_motion))]
    dist, elev = _uniform(rng, cfg.camera_distance), np.deg2rad(_uniform(rng, cfg.camera_elevation))
    azim = rng.uniform(0, 2 * np.pi)
    target = _camera_target(cfg, rng, built)
    focal = _uniform(rng, cfg.focal_length_range) if cfg.focal_length_range else cfg.focal_length
    cam = kb.PerspectiveCamera(name="camera", focal_length=focal, sensor_width=cfg.sensor_width)
    scene += cam
    scene.camera = cam
    t = np.arange(cfg.num_frames + 2) / cfg.fps  # frames 0..T+1 (flow needs the next frame)
    if motion == "orbit":
        sign = rng.choice([-1.0, 1.0])
        az = azim + sign * np.deg2rad(_uniform(rng, cfg.camera_orbit_speed)) * t
        pos = target + dist * np.stack([np.cos(elev) * np.cos(az), np.cos(elev) * np.sin(az),
                                        np.full_like(az, np.sin(elev))], -1)
    else:
        start = target + dist * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim),
                                          np.sin(elev)])
        if motion == "linear":
            d = rng.normal(0, 1, 3)
            d[2] *= 0.3
            d /= np.linalg.norm(d)
            speed = (_uniform(rng, cfg.camera_linear_travel) * cfg.fps / max(cfg.num_frames - 1, 1)
                     if cfg.camera_linear_travel else _uniform(rng, cfg.camera_linear_speed))
            pos = start + np.outer(t, d * speed)
            pos[:, 2] = np.maximum(pos[:, 2], 0.5)
        elif motion == "static":
            pos = np.repeat(start[None], len(t), 0)
        else:
            raise ValueError(f"camera_motion must be static|linear|orbit, got {motion!r}")
    for f, p in enumerate(pos):
        cam.position = tuple(p)
        cam.look_at(tuple(target))
        cam.keyframe_insert("position", f)
        cam.keyframe_insert("quaternion", f)
    return motion, framing


# ---------------------------------------------------------------------------------------------
# rendering and ground truth
# ---------------------------------------------------------------------------------------------
@dataclass
class _Segments:
    """Segmentation ids: 0 = nothing, 1..N = scene.assets (Kubric), then every actor's deforming mesh.

    hashes: (S,) Cryptomatte object hash per id (0 for id 0); names: display names; category: (S,) index into
    category_names; meshes: (segment id, actor index, DeformingMesh) of the deforming ids.
    """
    names: list
    hashes: np.ndarray
    category: np.ndarray
    meshes: list


def _segmentation_ids(scene, built) -> _Segments:
    from kubric.renderer.blender_utils import mm3hash

    assets = list(scene.assets)
    names = ["none"] + [a.name for a in assets]
    hashes = [0] + [mm3hash(a.uid) for a in assets]  # Kubric names each Blender object after the asset uid
    category = [0] + [built.category.get(a, 0) for a in assets]
    meshes = []
    for k, actor in enumerate(built.actors):
        for mesh in actor.meshes:
            meshes.append((len(names), k, mesh))
            names.append(mesh.obj.name)
            hashes.append(mm3hash(mesh.obj.name))  # Cryptomatte hashes the Blender object name
            category.append(built.category_index(actor.category))
    hashes = np.array(hashes, dtype=np.uint32)
    if len(np.unique(hashes[1:])) != len(hashes) - 1:
        raise RuntimeError(f"two objects share a Cryptomatte hash (rename one): {names}")
    return _Segments(names, hashes, np.array(category, np.int64), meshes)


def _install_segmentation(renderer, segments: _Segments) -> None:
    """Kubric's segmentation post-processor knows only its assets; this one maps every registered object's
    Cryptomatte hash to its id (anything else, e.g. nothing hit, stays 0)."""
    table = segments.hashes

    def process(exr_layers, scene):  # same signature as Kubric's post-processors
        raw = exr_layers["segmentation_indices"][:, :, :1]
        out = np.zeros(raw.shape, dtype=np.int64)
        for i in range(1, len(table)):  # loop over objects (few), pixels vectorised
            out[raw == table[i]] = i
        return out

    renderer.post_processors["segmentation"] = process


def _read_back(bpy, renderer, scene, frames, cam_asset, segments: _Segments):
    """Blender's own per-frame state of what was rendered.

    Returns poses (T, S, 4, 4) world matrices per segmentation id (identity for ids that are not Kubric
    objects), cameras (T, 4, 4) Blender camera-to-world, and per deforming id (its world vertices (T, V, 3)
    from the evaluated mesh, the triangulation (F, 3) and per-triangle polygon index (F,) of the first frame,
    the number of polygons).
    Raises if a deforming mesh changes its topology between frames.
    """
    assets = list(scene.assets)
    S = len(segments.names)
    poses = np.tile(np.eye(4), (len(frames), S, 1, 1))
    cams = np.zeros((len(frames), 4, 4))
    b_objs = [(i + 1, a.linked_objects.get(renderer)) for i, a in enumerate(assets)]
    b_objs = [(i, b) for i, b in b_objs if isinstance(b, bpy.types.Object)]
    b_cam = cam_asset.linked_objects[renderer]
    verts = {sid: [] for sid, _, _ in segments.meshes}
    topology = {}
    for k, f in enumerate(frames):  # loop over frames and objects only (few)
        bpy.context.scene.frame_set(f)
        for i, b in b_objs:
            poses[k, i] = np.array(b.matrix_world)
        cams[k] = np.array(b_cam.matrix_world)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        for sid, _, mesh in segments.meshes:
            ev = mesh.obj.evaluated_get(depsgraph)
            me = ev.to_mesh()
            co = np.empty(len(me.vertices) * 3, np.float32)
            me.vertices.foreach_get("co", co)
            m = np.array(ev.matrix_world)
            verts[sid].append(co.reshape(-1, 3).astype(np.float64) @ m[:3, :3].T + m[:3, 3])
            shape = (len(me.vertices), len(me.polygons))
            if sid not in topology:
                me.calc_loop_triangles()
                tris = np.empty(len(me.loop_triangles) * 3, np.int64)
                me.loop_triangles.foreach_get("vertices", tris)
                poly = np.empty(len(me.loop_triangles), np.int64)
                me.loop_triangles.foreach_get("polygon_index", poly)
                topology[sid] = (shape, tris.reshape(-1, 3), poly)
            elif topology[sid][0] != shape:
                raise RuntimeError(f"deforming mesh {mesh.obj.name} changes topology: {topology[sid][0]} "
                                   f"(vertices, polygons) at frame {frames[0]} but {shape} at frame {f}")
            ev.to_mesh_clear()
    meshes = {sid: (np.stack(verts[sid]), topology[sid][1], topology[sid][2], topology[sid][0][1])
              for sid in verts}
    return poses, cams, meshes


def _surface_set(poses, segments: _Segments, meshes: dict, built) -> surf.SurfaceSet:
    """The annotator's view: rigid poses per id, deforming meshes with their regions, global region names."""
    region_names = [surf.NONE_REGION]

    def region_id(name: str) -> int:
        if name not in region_names:
            region_names.append(name)
        return region_names.index(name)

    segment_region = np.zeros(len(segments.names), np.int64)
    assets = {a.name: a for a in built.region}
    for i, name in enumerate(segments.names):
        if name in assets:
            segment_region[i] = region_id(built.region[assets[name]])
    deforming = {}
    for sid, _, mesh in segments.meshes:
        vertices, faces, polygon, n_polygons = meshes[sid]
        if len(mesh.polygon_region) != n_polygons:
            raise RuntimeError(f"{mesh.obj.name}: {len(mesh.polygon_region)} region labels for its "
                               f"{n_polygons} polygons")
        local = np.array([region_id(n) for n in mesh.region_names], np.int64)
        deforming[sid] = surf.DeformingSurface(vertices, faces, local[mesh.polygon_region[polygon]])
    return surf.SurfaceSet(poses=poses, deforming=deforming, segment_region=segment_region,
                           region_names=region_names)


def _actor_screen_heights(seg: np.ndarray, segments: _Segments, built) -> list[list[float]]:
    """Per actor, per frame: height of its on-screen bounding box / image height (0 when not visible)."""
    T, H, _ = seg.shape
    ids_of = [[] for _ in built.actors]
    rigid = {a.name: k for k, actor in enumerate(built.actors) for a in (p.obj for p in actor.rigid_parts)}
    for i, name in enumerate(segments.names):
        if name in rigid:
            ids_of[rigid[name]].append(i)
    for sid, k, _ in segments.meshes:
        ids_of[k].append(sid)
    out = []
    for ids in ids_of:  # loop over actors only
        rows = np.isin(seg, ids).any(axis=2)  # (T, H)
        top, bottom = rows.argmax(1), H - 1 - rows[:, ::-1].argmax(1)
        out.append(np.where(rows.any(1), (bottom - top + 1) / H, 0.0).round(4).tolist())
    return out


def _to_jsonable(x):
    if isinstance(x, dict):
        return {str(k): _to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def render_scene(cfg: SceneConfig, seed: int, workdir: Path, *, debug: dict | None = None,
                 threads: int | None = None, gpu_slot: int | None = None) -> TrackSample:
    """Build, simulate and render one scene; returns video + ground-truth tracks (see TrackSample).

    `threads`: Cycles render threads (None: Blender's default, every core).
    `gpu_slot`: with several GPUs, render on GPU gpu_slot mod n (datagen.cycles_device; cfg.render_device).
    `debug`: if a dict is given it receives the raw GT layers (for tests/inspection): "flow"
    (T, H, W, 2) Kubric forward flow, "z" (T, H, W), "segmentation" (T, H, W), "poses", "camera",
    "surfaces" (the datagen.surfaces.SurfaceSet) and "anchor_gap" (Q,).
    """
    from datagen import cycles_device, kubric_compat

    kubric_compat.apply()
    import kubric as kb
    from kubric.renderer.blender import Blender
    from kubric.simulator.pybullet import PyBullet
    from kubric.safeimport.bpy import bpy

    t0 = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for scratch in ("render", "render_gt"):  # Kubric reads back every EXR there: never mix in an older scene's
        shutil.rmtree(workdir / scratch, ignore_errors=True)
    cache = Path(cfg.asset_cache_dir) if cfg.asset_cache_dir else asset_lib.default_cache_dir()
    rng = np.random.RandomState(seed % 2**32)
    H, W, T = cfg.height, cfg.width, cfg.num_frames
    if cfg.step_rate % cfg.fps:
        raise ValueError(f"step_rate ({cfg.step_rate}) must be a multiple of fps ({cfg.fps})")

    scene = kb.Scene(resolution=(W, H), frame_start=1, frame_end=T, frame_rate=cfg.fps,
                     step_rate=cfg.step_rate)
    blur = _uniform(rng, cfg.motion_blur)
    renderer = Blender(scene, scratch_dir=workdir / "render", samples_per_pixel=cfg.samples_per_pixel,
                       use_denoising=cfg.use_denoising, adaptive_sampling=cfg.adaptive_sampling,
                       motion_blur=blur if blur > 0 else None, verbose=cfg.verbose)
    if threads:
        bpy.context.scene.render.threads_mode = "FIXED"
        bpy.context.scene.render.threads = int(threads)
    render_device = cycles_device.setup(bpy.context.scene, cfg.render_device, gpu_slot)
    cycles = bpy.context.scene.cycles
    cycles.seed = int(rng.randint(2**31))  # deterministic noise pattern
    cycles.max_bounces = cfg.max_bounces
    cycles.diffuse_bounces = cycles.glossy_bounces = min(2, cfg.max_bounces)
    cycles.transmission_bounces = cycles.transparent_max_bounces = cfg.max_bounces
    cycles.volume_bounces = 0
    cycles.sample_clamp_direct, cycles.sample_clamp_indirect = cfg.clamp_direct, cfg.clamp_indirect
    cycles.caustics_reflective = cycles.caustics_refractive = cfg.caustics
    cycles.blur_glossy = cfg.filter_glossy
    cycles.denoising_quality = cfg.denoising_quality.upper()
    bpy.context.scene.render.use_persistent_data = cfg.persistent_data
    sim = PyBullet(scene, scratch_dir=workdir / "sim")
    images = asset_lib.image_texture_paths(cfg.image_textures)
    sources = asset_lib.KubricSources(cfg.kubric_sources, workdir)
    built = _Built()

    pano = _add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built)
    _add_lights(kb, scene, cfg, rng, pano)
    if pano is not None:
        _panorama_world(bpy, renderer, pano)
        # Without persistent data Cycles rebuilds the world's importance map for every frame (64x64, 3 frames:
        # 17.7 s instead of 1.8 s under load); it is switched off again before the GT pass (see below).
        bpy.context.scene.render.use_persistent_data = True
    _add_actors(bpy, scene, renderer, cfg, rng, workdir, cache, built)
    motion, framing = _add_camera(kb, scene, cfg, rng, built)
    _add_objects(kb, bpy, scene, renderer, sim, cfg, rng, cache, images, sources, built)
    sim.run(frame_start=0, frame_end=T + 1)
    segments = _segmentation_ids(scene, built)
    _install_segmentation(renderer, segments)
    t_sim = time.perf_counter()

    if cfg.exact_gt_pass:
        rgb = renderer.render(return_layers=("rgba",))["rgba"][..., :3]
        t_rgb = time.perf_counter()
        # GT pass: 1 sample through the exact pixel centre (no filter jitter, no anti-aliasing), so
        # depth, segmentation and flow belong to the pixel centre where queries are unprojected.
        spp, width = cycles.samples, cycles.filter_width
        cycles.samples, cycles.filter_width = 1, 0.01
        cycles_device.prepare_gt_pass(bpy.context.scene)  # no denoising/adaptive sampling on GT layers
        # a persistent Cycles session does not survive the filter change (heap corruption in 4.2)
        bpy.context.scene.render.use_persistent_data = False
        # no light is needed for depth/segmentation/flow: skip rebuilding the world's importance map per frame
        world = bpy.context.scene.world.cycles
        world_sampling, world.sampling_method = world.sampling_method, "NONE"
        renderer.scratch_dir = workdir / "render_gt"
        layers = renderer.render(return_layers=("z", "segmentation", "forward_flow"))
        cycles.samples, cycles.filter_width = spp, width
        world.sampling_method = world_sampling
    else:
        layers = renderer.render(return_layers=("rgba", "z", "segmentation", "forward_flow"))
        rgb = layers["rgba"][..., :3]
        t_rgb = time.perf_counter()
    t_render = time.perf_counter()

    frames = list(range(1, T + 1))
    poses, cam_mats, meshes = _read_back(bpy, renderer, scene, frames, scene.camera, segments)
    surfaces = _surface_set(poses, segments, meshes, built)
    K = tracks_lib.intrinsics(scene.camera.focal_length, cfg.sensor_width, H, W)
    w2c = tracks_lib.world_to_opencv_camera(cam_mats)
    z = layers["z"][..., 0].astype(np.float64)
    seg = layers["segmentation"][..., 0].astype(np.int64)
    category = segments.category
    gen = np.random.default_rng(rng.randint(2**31))
    actor_ids = np.zeros(len(category), bool)
    actor_categories = {built.category_index(a.category) for a in built.actors}
    actor_ids[np.isin(category, list(actor_categories))] = True
    priority = [(actor_ids, cfg.actor_fraction)] if cfg.actor_fraction > 0 else []
    queries = tracks_lib.sample_queries(z, seg, category > 0, cfg.num_tracks, cfg.foreground_fraction, gen,
                                        priority=priority)
    res = tracks_lib.compute_tracks(z, seg, K, w2c, surfaces, queries, cfg.depth_tolerance,
                                    cfg.depth_tolerance_abs)
    heights = _actor_screen_heights(seg, segments, built)
    actors_meta = [{"name": a.name, "kind": a.kind, "category": a.category, "screen_height": h,
                    "segments": [sid for sid, k, _ in segments.meshes if k == i]
                    + [segments.names.index(p.obj.name) for p in a.rigid_parts if p.obj.name in segments.names]}
                   for i, (a, h) in enumerate(zip(built.actors, heights))]
    t_annot = time.perf_counter()

    meta = {
        "seed": int(seed),
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg),
        "assets": built.asset_ids,
        "camera_motion": motion,
        "camera_framing": framing,
        "motion_blur": blur,
        "fps": cfg.fps,
        "intrinsics": K,
        "extrinsics": w2c,
        "extrinsics_convention": "world_to_camera (OpenCV axes: x right, y down, z forward)",
        "query_frames": queries.frame,
        "track_category": category[res.segment],
        "track_segment": res.segment,
        "track_region": res.region,
        "category_names": built.category_names,
        "segment_names": segments.names,
        "region_names": surfaces.region_names,
        "actors": actors_meta,
        "timings": {"simulate_s": t_sim - t0, "render_s": t_render - t_sim, "annotate_s": t_annot - t_render,
                    "render_gt_s": t_render - t_rgb},  # part of render_s spent in the GT pass
        "render_threads": int(bpy.context.scene.render.threads),  # what the timings were measured with
        "render_device": render_device,  # "CPU", "OPTIX", "CUDA", ...: GPU and CPU noise differ
    }
    sample = TrackSample(video=np.ascontiguousarray(rgb, dtype=np.uint8), tracks=res.tracks,
                         visibility=res.visibility, tracks3d=res.tracks3d, meta=_to_jsonable(meta))
    if debug is not None:
        debug.update(flow=layers["forward_flow"], z=z, segmentation=seg, poses=poses, camera=cam_mats,
                     surfaces=surfaces, anchor_gap=res.anchor_gap)
    return sample
