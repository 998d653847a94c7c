"""Build, simulate and render one MOVi-like Kubric scene with ground-truth point tracks.

`render_scene(cfg, seed, workdir)` runs in the current process (Blender keeps global state, so the
pipeline gives each scene its own process). Same (cfg, seed) -> same scene: every random choice
comes from one seeded RandomState, PyBullet runs deterministically, Cycles uses a fixed seed.

Scene: textured floor + dome (procedural or image textures), a sun + optional point lights +
ambient light, static objects resting on the floor, tossed objects simulated with Kubric's PyBullet
simulator, optional humans/animals from `datagen.articulated`, and a static, linearly moving or
orbiting camera that always looks at the action.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen import assets as asset_lib
from datagen import tracks as tracks_lib
from datagen.sample import CATEGORY_NAMES, TrackSample
from datagen.scene_config import SceneConfig

logger = logging.getLogger(__name__)
PROCEDURAL = ("noise", "voronoi", "checker", "wave", "magic", "brick")


@dataclass
class _Built:
    """Book-keeping while building: asset -> category and id for the metadata."""
    category: dict = field(default_factory=dict)  # kubric asset -> category index
    asset_ids: list = field(default_factory=list)  # dicts describing what was placed
    actors: list = field(default_factory=list)  # ActorInfo from datagen.articulated


# ---------------------------------------------------------------------------------------------
# materials (bpy): procedural or image textures in the object's own coordinates, so a texture
# sticks to the surface as the object moves (what point tracking needs)
# ---------------------------------------------------------------------------------------------
def _random_color(rng, sat=(0.3, 1.0), val=(0.3, 1.0)):
    import colorsys

    return (*colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)), 1.0)


def _textured_material(bpy, name: str, rng, kind: str, images: list[str], scale: float):
    """A Principled material whose base colour comes from a random procedural or image texture.

    `scale`: texture repeats per unit of object-local coordinates. kind "equirect": the image is a
    lat-long panorama (e.g. an HDRI) laid over the dome's UVs (upper half of the panorama).
    """
    if kind == "equirect":
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        nodes, links = mat.node_tree.nodes, mat.node_tree.links
        coords, mapping, tex = (nodes.new("ShaderNodeTexCoord"), nodes.new("ShaderNodeMapping"),
                                nodes.new("ShaderNodeTexImage"))
        mapping.inputs["Scale"].default_value = (1.0, 0.5, 1.0)  # dome v in [0, 1] = horizon..zenith
        mapping.inputs["Location"].default_value = (rng.uniform(0, 1), 0.5, 0.0)  # random yaw
        tex.image = bpy.data.images.load(str(images[rng.randint(len(images))]), check_existing=True)
        links.new(coords.outputs["UV"], mapping.inputs["Vector"])
        links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
        # emissive: a panorama already contains its lighting
        emit = nodes.new("ShaderNodeEmission")
        links.new(tex.outputs["Color"], emit.inputs["Color"])
        links.new(emit.outputs["Emission"], nodes["Material Output"].inputs["Surface"])
        return mat
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


def _add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built):
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
    dome_images = images
    if dome_kind == "hdri":  # a random texture of the Kubric sources with category "hdri"
        hdri = sources.indices("hdri")
        if not hdri:
            raise ValueError('dome_textures has "hdri" but no kubric_sources entry has category "hdri"')
        i = hdri[rng.randint(len(hdri))]
        ids = sources.asset_ids(i)
        texture = sources.source(i).create(asset_id=ids[rng.randint(len(ids))])
        dome_images, dome_kind = [texture.filename], "equirect"
    elif dome_kind not in ("procedural", "image"):  # a path/URL of a panorama image or HDRI
        dome_images, dome_kind = [_local_file(dome_kind, cache)], "equirect"
    _set_material(renderer, dome, _textured_material(bpy, "dome", rng, dome_kind, dome_images,
                                                     rng.uniform(1.0, 4.0)))
    # The dome must not shadow the sun nor block the world's ambient light for diffuse bounces;
    # it stays visible to the camera and to reflections.
    b_dome = dome.linked_objects[renderer]
    b_dome.visible_shadow = False
    b_dome.visible_diffuse = False
    built.category[floor] = built.category[dome] = 0
    built.asset_ids += [{"name": "floor", "texture": floor_kind}, {"name": "dome", "texture": dome_kind}]


def _local_file(path_or_url: str, cache: Path) -> str:
    """Local path for a texture given by path or URL (URLs downloaded once into the cache)."""
    if "://" not in path_or_url:
        return path_or_url
    import hashlib

    name = hashlib.sha1(path_or_url.encode()).hexdigest()[:12] + "_" + path_or_url.rsplit("/", 1)[-1]
    return str(asset_lib.fetch_url(path_or_url, Path(cache) / "downloads" / name))


def _add_lights(kb, scene, cfg, rng):
    azim, elev = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(35, 80))
    sun_pos = 20 * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    scene += kb.DirectionalLight(name="sun", position=tuple(sun_pos), look_at=(0, 0, 0),
                                 intensity=_uniform(rng, cfg.sun_intensity),
                                 color=kb.Color(*_random_color(rng, sat=(0, 0.15), val=(0.9, 1))[:3]))
    for i in range(_randint(rng, cfg.num_extra_lights)):
        pos = (rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(3, 8))
        scene += kb.PointLight(name=f"lamp{i}", position=pos, intensity=rng.uniform(100, 600),
                               color=kb.Color(*_random_color(rng, sat=(0, 0.4), val=(0.9, 1))[:3]))
    a = _uniform(rng, cfg.ambient_intensity)
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
    footprint = _actor_footprint(built)
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
            clear = np.linalg.norm(footprint - np.asarray(obj.position[:2]), axis=1).min(initial=np.inf)
            if clear > size / 2 + 0.4 and not _overlaps(sim, obj, ignore=floor_body):
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


def _add_actors(scene, cfg, rng, workdir, built):
    """Humans and animals from `datagen.articulated` (mocap-driven, keyframed rigid parts)."""
    if cfg.num_humans + cfg.num_animals == 0:
        return
    from datagen import articulated

    gen = np.random.default_rng(rng.randint(2**31))
    for kind, n in (("human", cfg.num_humans), ("animal", cfg.num_animals)):
        for _ in range(n):
            info = articulated.add_articulated_actor(scene, kind, gen, cfg.num_frames, cfg.fps, workdir)
            built.actors.append(info)
            for part in info.parts:
                built.category[part.obj] = CATEGORY_NAMES.index(kind)
            built.asset_ids.append(info.meta())


def _actor_footprint(built) -> np.ndarray:
    """(N, 2) x, y of every actor part at every frame (objects are kept clear of these)."""
    if not built.actors:
        return np.zeros((0, 2))
    return np.concatenate([a.poses[..., :2, 3].reshape(-1, 2) for a in built.actors])


def _add_camera(kb, scene, cfg, rng):
    """Camera keyframed at every frame; returns the motion kind."""
    motion = cfg.camera_motion[rng.randint(len(cfg.camera_motion))]
    dist, elev = _uniform(rng, cfg.camera_distance), np.deg2rad(_uniform(rng, cfg.camera_elevation))
    azim = rng.uniform(0, 2 * np.pi)
    target = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8)])
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
    return motion


# ---------------------------------------------------------------------------------------------
# rendering and ground truth
# ---------------------------------------------------------------------------------------------
def _world_matrices(bpy, renderer, scene, frames, cam_asset):
    """Blender's own per-frame world matrices: (T, S, 4, 4) per segmentation id and (T, 4, 4) camera.

    Segmentation id i + 1 is scene.assets[i] (Kubric's convention); ids of non-objects stay identity.
    """
    assets = list(scene.assets)
    poses = np.tile(np.eye(4), (len(frames), len(assets) + 1, 1, 1))
    cams = np.zeros((len(frames), 4, 4))
    b_objs = [(i + 1, a.linked_objects.get(renderer)) for i, a in enumerate(assets)]
    b_objs = [(i, b) for i, b in b_objs if isinstance(b, bpy.types.Object)]
    b_cam = cam_asset.linked_objects[renderer]
    for k, f in enumerate(frames):  # loop over frames and objects only (few)
        bpy.context.scene.frame_set(f)
        for i, b in b_objs:
            poses[k, i] = np.array(b.matrix_world)
        cams[k] = np.array(b_cam.matrix_world)
    return poses, cams


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
                 threads: int | None = None) -> TrackSample:
    """Build, simulate and render one scene; returns video + ground-truth tracks (see TrackSample).

    `threads`: Cycles render threads (None: Blender's default, every core).
    `debug`: if a dict is given it receives the raw GT layers (for tests/inspection): "flow"
    (T, H, W, 2) Kubric forward flow, "z" (T, H, W), "segmentation" (T, H, W), "poses", "camera".
    """
    from datagen import kubric_compat

    kubric_compat.apply()
    import kubric as kb
    from kubric.renderer.blender import Blender
    from kubric.simulator.pybullet import PyBullet
    from kubric.safeimport.bpy import bpy

    t0 = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
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
    cycles = bpy.context.scene.cycles
    cycles.seed = int(rng.randint(2**31))  # deterministic noise pattern
    cycles.max_bounces = cfg.max_bounces
    cycles.diffuse_bounces = cycles.glossy_bounces = min(2, cfg.max_bounces)
    cycles.transmission_bounces = cycles.transparent_max_bounces = cfg.max_bounces
    cycles.volume_bounces = 0
    bpy.context.scene.render.use_persistent_data = cfg.persistent_data
    sim = PyBullet(scene, scratch_dir=workdir / "sim")
    images = asset_lib.image_texture_paths(cfg.image_textures)
    sources = asset_lib.KubricSources(cfg.kubric_sources, workdir)
    built = _Built()

    _add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built)
    _add_lights(kb, scene, cfg, rng)
    motion = _add_camera(kb, scene, cfg, rng)
    _add_actors(scene, cfg, rng, workdir, built)
    _add_objects(kb, bpy, scene, renderer, sim, cfg, rng, cache, images, sources, built)
    sim.run(frame_start=0, frame_end=T + 1)
    t_sim = time.perf_counter()

    if cfg.exact_gt_pass:
        rgb = renderer.render(return_layers=("rgba",))["rgba"][..., :3]
        t_rgb = time.perf_counter()
        # GT pass: 1 sample through the exact pixel centre (no filter jitter, no anti-aliasing), so
        # depth, segmentation and flow belong to the pixel centre where queries are unprojected.
        spp, width = cycles.samples, cycles.filter_width
        cycles.samples, cycles.filter_width = 1, 0.01
        # a persistent Cycles session does not survive the filter change (heap corruption in 4.2)
        bpy.context.scene.render.use_persistent_data = False
        renderer.scratch_dir = workdir / "render_gt"
        layers = renderer.render(return_layers=("z", "segmentation", "forward_flow"))
        cycles.samples, cycles.filter_width = spp, width
    else:
        layers = renderer.render(return_layers=("rgba", "z", "segmentation", "forward_flow"))
        rgb = layers["rgba"][..., :3]
        t_rgb = time.perf_counter()
    t_render = time.perf_counter()

    frames = list(range(1, T + 1))
    poses, cam_mats = _world_matrices(bpy, renderer, scene, frames, scene.camera)
    K = tracks_lib.intrinsics(scene.camera.focal_length, cfg.sensor_width, H, W)
    w2c = tracks_lib.world_to_opencv_camera(cam_mats)
    z = layers["z"][..., 0].astype(np.float64)
    seg = layers["segmentation"][..., 0].astype(np.int64)
    assets = list(scene.assets)
    category = np.zeros(len(assets) + 1, dtype=np.int64)
    for i, a in enumerate(assets):
        category[i + 1] = built.category.get(a, 0)
    gen = np.random.default_rng(rng.randint(2**31))
    queries = tracks_lib.sample_queries(z, seg, category > 0, cfg.num_tracks, cfg.foreground_fraction, gen)
    res = tracks_lib.compute_tracks(z, seg, K, w2c, poses, queries, cfg.depth_tolerance,
                                    cfg.depth_tolerance_abs)
    t_annot = time.perf_counter()

    meta = {
        "seed": int(seed),
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg),
        "assets": built.asset_ids,
        "camera_motion": motion,
        "motion_blur": blur,
        "fps": cfg.fps,
        "intrinsics": K,
        "extrinsics": w2c,
        "extrinsics_convention": "world_to_camera (OpenCV axes: x right, y down, z forward)",
        "query_frames": queries.frame,
        "track_category": category[res.segment],
        "track_segment": res.segment,
        "category_names": CATEGORY_NAMES,
        "segment_names": ["none"] + [a.name for a in assets],
        "timings": {"simulate_s": t_sim - t0, "render_s": t_render - t_sim, "annotate_s": t_annot - t_render,
                    "render_gt_s": t_render - t_rgb},  # part of render_s spent in the GT pass
        "render_threads": int(bpy.context.scene.render.threads),  # what the timings were measured with
    }
    sample = TrackSample(video=np.ascontiguousarray(rgb, dtype=np.uint8), tracks=res.tracks,
                         visibility=res.visibility, tracks3d=res.tracks3d, meta=_to_jsonable(meta))
    if debug is not None:
        debug.update(flow=layers["forward_flow"], z=z, segmentation=seg, poses=poses, camera=cam_mats)
    return sample
