"""Build one scene's content in Kubric (step 2 of `datagen.scene.render.render_scene`): floor and dome
(`add_background`), lights, actors (kinds from datagen.actors), static and tossed objects; `Built` keeps what was
placed (categories, metadata, actors). Every random choice comes from the scene's one seeded RandomState, in a fixed
order: background, lights, actors, camera (datagen.scene.camera), objects."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from datagen.formats.sample import CATEGORY_NAMES
from datagen.scene import assets as asset_lib
from datagen.scene.domes import dome_material
from datagen.scene.floors import floor_material
from datagen.scene.object_materials import object_material
from datagen.scene.materials import Panorama, panorama_material, random_color, set_material, textured_material

logger = logging.getLogger(__name__)


@dataclass
class Built:
    """Book-keeping while building: asset -> category/region and what was placed, for the metadata."""
    category: dict = field(default_factory=dict)  # kubric asset -> category index into category_names
    asset_ids: list = field(default_factory=list)  # dicts describing what was placed
    actors: list = field(default_factory=list)  # datagen.actors.Actor
    category_names: list = field(default_factory=lambda: list(CATEGORY_NAMES))
    camera_path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # close-up camera (x, y) per key

    def category_index(self, name: str) -> int:
        if name not in self.category_names:  # a kind with a new category (e.g. "vehicle")
            self.category_names.append(name)
        return self.category_names.index(name)


def uniform(rng, lo_hi):
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def randint(rng, lo_hi):
    return int(rng.randint(lo_hi[0], lo_hi[1] + 1))


def add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built) -> Panorama | None:
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
    floor_facts = {"name": "floor", "texture": floor_kind}
    if floor_kind == "realistic":  # wood, tiles, concrete, ... (datagen.scene.floors)
        material, floor_facts["surface"] = floor_material(bpy, "floor", rng)
    else:  # object coords of the floor cube are in [-1, 1] (x r metres): 0.3-1 repeats per metre
        material = textured_material(bpy, "floor", rng, floor_kind, images, r * rng.uniform(0.3, 1.0))
    set_material(renderer, floor, material)
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
        pano = Panorama(str(ref), float(rng.uniform(0, 2 * np.pi)), uniform(rng, cfg.hdri_strength))
        dome_kind = "equirect"
    elif dome_kind not in ("procedural", "image", "realistic"):  # a path/URL of a panorama image or HDRI
        pano = Panorama(_local_file(dome_kind, cache), float(rng.uniform(0, 2 * np.pi)),
                         uniform(rng, cfg.hdri_strength))
        dome_kind = "equirect"
    dome_facts = {"name": "dome", "texture": dome_kind}
    if pano is not None:
        set_material(renderer, dome, panorama_material(bpy, "dome", pano))
    elif dome_kind == "realistic":  # a sky above buildings, trees or a wall (datagen.scene.domes)
        material, facts = dome_material(bpy, "dome", rng, r)
        set_material(renderer, dome, material)
        dome_facts.update(facts)
    else:
        set_material(renderer, dome, textured_material(bpy, "dome", rng, dome_kind, images,
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
    built.asset_ids += [floor_facts, dome_facts]
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


def add_lights(kb, scene, cfg, rng, pano: Panorama | None):
    """A sun (weaker when a panorama already lights the scene), point lights, and uniform ambient light
    unless a panorama lights the world."""
    azim, elev = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(35, 80))
    sun_pos = 20 * np.array([np.cos(elev) * np.cos(azim), np.cos(elev) * np.sin(azim), np.sin(elev)])
    intensity = uniform(rng, cfg.hdri_sun_intensity if pano is not None else cfg.sun_intensity)
    scene += kb.DirectionalLight(name="sun", position=tuple(sun_pos), look_at=(0, 0, 0), intensity=intensity,
                                 color=kb.Color(*random_color(rng, sat=(0, 0.15), val=(0.9, 1))[:3]))
    for i in range(randint(rng, cfg.num_extra_lights)):
        pos = (rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(3, 8))
        scene += kb.PointLight(name=f"lamp{i}", position=pos, intensity=rng.uniform(100, 600),
                               color=kb.Color(*random_color(rng, sat=(0, 0.4), val=(0.9, 1))[:3]))
    a = uniform(rng, cfg.ambient_intensity)
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


def add_objects(kb, bpy, scene, renderer, sim, cfg, rng, cache, images, sources, built):
    pyb_ids = list(cfg.pybullet_objects) or asset_lib.pybullet_object_ids()
    h = cfg.spawn_region_half
    paths, radii = _actor_footprint(built)
    floor_body = next(a for a in scene.assets if a.name == "floor").linked_objects[sim]
    n_static, n_tossed = randint(rng, cfg.num_static_objects), randint(rng, cfg.num_tossed_objects)
    for i in range(n_static + n_tossed):
        tossed = i >= n_static
        kind, asset_id = _choose_object(rng, cfg, pyb_ids, sources)
        size = uniform(rng, cfg.object_scale)
        obj = _make_object(kb, kind, asset_id, size, cache, sources, f"{'tossed' if tossed else 'static'}{i}")
        obj.static = not tossed
        obj.mass = 1.0 * size ** 3
        obj.friction, obj.restitution = rng.uniform(0.3, 0.8), rng.uniform(0.1, 0.6)
        if rng.uniform() < cfg.object_texture_prob:
            material = None
        else:
            material = kb.PrincipledBSDFMaterial(color=kb.Color(*random_color(rng)[:3]),
                                                 roughness=rng.uniform(0.2, 0.9),
                                                 metallic=float(rng.uniform() < 0.3),
                                                 specular=0.5, ior=1.45)
            obj.material = material
        scene += obj
        surface = None
        if material is None:
            kinds = cfg.object_textures or ["image", "procedural"]  # unset: even odds, drawn as before the key
            tex_kind = kinds[min(int(rng.uniform() * len(kinds)), len(kinds) - 1)]
            if tex_kind == "realistic":
                extent = float(np.max(np.asarray(obj.bounds[1]) - np.asarray(obj.bounds[0])))
                mat, surface = object_material(bpy, f"{obj.name}_mat", rng, extent)
            else:
                mat = textured_material(bpy, f"{obj.name}_mat", rng, tex_kind, images, rng.uniform(1.0, 4.0))
            set_material(renderer, obj, mat)
        lo, hi = np.abs(obj.bounds[0]) * obj.scale[0], np.abs(obj.bounds[1]) * obj.scale[0]
        bottom = lo[2]  # origin height above the floor when resting unrotated
        radius = float(np.linalg.norm(np.maximum(lo, hi)))  # clears the floor in any orientation
        for _ in range(cfg.max_placement_trials):
            if tossed:
                obj.position = (rng.uniform(-h, h), rng.uniform(-h, h),
                                radius + uniform(rng, cfg.toss_height))
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
            obj.velocity = (*(direction * uniform(rng, cfg.toss_speed)), rng.uniform(0, 2))
        built.category[obj] = CATEGORY_NAMES.index("object")
        built.asset_ids.append({"name": obj.name, "source": str(kind), "asset_id": asset_id,
                                "size": size, "static": not tossed, **({"surface": surface} if surface else {})})


def add_actors(bpy, scene, renderer, cfg, rng, workdir, cache, built):
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
            built.category_index(actor.category)
            built.asset_ids.append(actor.meta)


def _actor_footprint(built) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) ground points of every actor at every frame and (N,) their radii (objects keep clear), plus the
    ground path of a close-up camera (objects must not swallow it)."""
    paths = [a.trajectory for a in built.actors] + [built.camera_path]
    radii = [np.full(len(a.trajectory), a.radius) for a in built.actors] + [np.full(len(built.camera_path), 0.6)]
    return np.concatenate(paths).reshape(-1, 2), np.concatenate(radii)
