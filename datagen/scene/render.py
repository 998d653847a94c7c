"""Render one MOVi-like Kubric scene with ground-truth point tracks: `render_scene(cfg, seed, workdir)`.

It runs in the current process (Blender keeps global state, so the pipeline gives each scene its own process) as
named steps, data flowing one way:

1. `_start_renderer`: Kubric scene, Blender renderer and Cycles settings (threads, device, seed, bounces);
2. `build_scene`: background, lights, actors, camera, objects (datagen.scene.build, .camera), then the simulation;
3. `_render_passes`: the RGB pass and the exact ground-truth pass (depth, segmentation, flow at pixel centres);
4. read back what Blender drew (datagen.scene.readback) and annotate it (datagen.scene.annotate).

Same (cfg, seed) -> same scene: every random choice comes from one seeded RandomState, PyBullet runs
deterministically, Cycles uses a fixed seed. The result is the sample (content only) and, beside it, the run's
facts (timings, render threads) that describe this run and not the data.

Scene: textured floor + dome (procedural, image or panorama/HDRI textures; a panorama also lights the scene
through the world shader), a sun + optional point lights + ambient light, actors (humans, animals: kinds from
datagen.actors, deforming meshes), static objects resting on the floor, tossed objects simulated with Kubric's
PyBullet simulator, and a static, linearly moving, orbiting or following camera that looks at the action.

Segmentation ids: Kubric's convention for its assets (id i + 1 = scene.assets[i], matched through the
Cryptomatte object hash of the asset's uid = its Blender object name); the deforming meshes of actors (plain
Blender objects, unknown to Kubric) get the ids after them (datagen.scene.readback). Every id is one surface of the
ground truth (datagen.scene.surfaces).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datagen.config.scene import SceneConfig
from datagen.formats.sample import TrackSample
from datagen.scene import assets as asset_lib
from datagen.scene import white_balance
from datagen.scene.annotate import annotate
from datagen.scene.build import Built, add_actors, add_background, add_lights, add_objects, uniform
from datagen.scene.camera import add_camera
from datagen.scene.materials import panorama_world
from datagen.scene.readback import install_segmentation, read_back, segmentation_ids, surface_set

AUX_LAYER = "AuxOutputs"  # Kubric's view layer of data passes (kubric.renderer.blender_utils)


@dataclass
class RenderedScene:
    """One rendered scene: the sample (video, tracks, content meta) and the run's facts beside it.

    run: {"timings": {simulate_s, render_s, annotate_s, render_gt_s (part of render_s)}, "render_threads": int}.
    """

    sample: TrackSample
    run: dict


def render_scene(cfg: SceneConfig, seed: int, workdir: Path, *, debug: dict | None = None,
                 threads: int | None = None, gpu_slot: int | None = None) -> RenderedScene:
    """Build, simulate and render one scene; returns its sample (video + ground-truth tracks) and run facts.

    `threads`: Cycles render threads (None: Blender's default, every core).
    `gpu_slot`: with several GPUs, render on GPU gpu_slot mod n (datagen.scene.cycles_device; cfg.render_device).
    `debug`: if a dict is given it receives the raw GT layers (for tests/inspection): "flow"
    (T, H, W, 2) Kubric forward flow, "z" (T, H, W), "segmentation" (T, H, W), "poses", "camera",
    "surfaces" (the datagen.scene.surfaces.SurfaceSet) and "anchor_gap" (Q,).
    """
    from datagen.scene import kubric_compat

    kubric_compat.apply()
    import kubric as kb
    from kubric.safeimport.bpy import bpy

    t0 = time.perf_counter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for scratch in ("render", "render_gt"):  # Kubric reads back every EXR there: never mix in an older scene's
        shutil.rmtree(workdir / scratch, ignore_errors=True)
    if cfg.step_rate % cfg.fps:
        raise ValueError(f"step_rate ({cfg.step_rate}) must be a multiple of fps ({cfg.fps})")
    rng = np.random.RandomState(seed % 2**32)

    scene, renderer, facts = _start_renderer(kb, bpy, cfg, rng, workdir, threads, gpu_slot)
    built = build_scene(kb, bpy, scene, renderer, cfg, rng, workdir, facts)
    segments = segmentation_ids(scene, built)
    install_segmentation(renderer, segments)
    t_sim = time.perf_counter()

    rgb, layers, gt_s = _render_passes(bpy, renderer, cfg, workdir)
    t_render = time.perf_counter()

    # the camera balances for the panorama's light (RGB only; a table lookup per pixel, timed with annotate_s)
    facts["white_balance"] = [1.0, 1.0, 1.0]
    if facts["panorama_cast"] is not None:
        g = white_balance.gains(facts["panorama_cast"], cfg.white_balance)
        rgb, facts["white_balance"] = white_balance.apply(rgb, g), [round(float(v), 4) for v in g]

    poses, cam_mats, meshes = read_back(bpy, renderer, scene, list(range(1, cfg.num_frames + 1)), scene.camera,
                                        segments)
    surfaces = surface_set(poses, segments, meshes)
    ann = annotate(cfg, seed, rng, rgb, layers, built, segments, surfaces, scene.camera, cam_mats, facts)
    t_annot = time.perf_counter()

    if debug is not None:
        debug.update(flow=layers["forward_flow"], z=ann.z, segmentation=ann.seg, poses=poses, camera=cam_mats,
                     surfaces=surfaces, anchor_gap=ann.anchor_gap)
    run = {"timings": {"simulate_s": t_sim - t0, "render_s": t_render - t_sim, "annotate_s": t_annot - t_render,
                       "render_gt_s": gt_s},
           "render_threads": int(bpy.context.scene.render.threads)}  # what the timings were measured with
    return RenderedScene(ann.sample, run)


def _start_renderer(kb, bpy, cfg: SceneConfig, rng, workdir: Path, threads: int | None, gpu_slot: int | None):
    """The Kubric scene and its Blender renderer with this config's Cycles settings. Draws the motion blur and the
    Cycles seed from `rng`. Returns (scene, renderer, facts: {"motion_blur", "render_device"})."""
    from kubric.renderer.blender import Blender

    from datagen.scene import cycles_device

    scene = kb.Scene(resolution=(cfg.width, cfg.height), frame_start=1, frame_end=cfg.num_frames,
                     frame_rate=cfg.fps, step_rate=cfg.step_rate)
    blur = uniform(rng, cfg.motion_blur)
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
    cycles.adaptive_threshold = cfg.adaptive_threshold
    cycles.adaptive_min_samples = cfg.adaptive_min_samples
    bpy.context.scene.render.use_persistent_data = cfg.persistent_data
    return scene, renderer, {"motion_blur": blur, "render_device": render_device}


def build_scene(kb, bpy, scene, renderer, cfg: SceneConfig, rng, workdir: Path, facts: dict) -> Built:
    """Everything in the scene, in the order of the random draws: background, lights, actors, camera, objects;
    then the simulation of the tossed objects. Adds "camera_motion", "camera_framing" and "panorama_cast" (the
    panorama's colour cast when the camera white-balances, else None) to `facts`."""
    from kubric.simulator.pybullet import PyBullet

    cache = Path(cfg.asset_cache_dir) if cfg.asset_cache_dir else asset_lib.default_cache_dir()
    sim = PyBullet(scene, scratch_dir=workdir / "sim")
    images = asset_lib.image_texture_paths(cfg.image_textures)
    sources = asset_lib.KubricSources(cfg.kubric_sources, workdir)
    built = Built()
    pano = add_background(kb, bpy, scene, renderer, cfg, rng, cache, images, sources, built)
    add_lights(kb, scene, cfg, rng, pano)
    facts["panorama_cast"] = None
    if pano is not None:
        facts["panorama_cast"] = panorama_world(bpy, renderer, pano, cfg.world_light_blur_deg,
                                                measure_cast=cfg.white_balance > 0)
        # Without persistent data Cycles rebuilds the world's importance map for every frame (64x64, 3 frames:
        # 17.7 s instead of 1.8 s under load); it is switched off again before the GT pass (_render_passes).
        bpy.context.scene.render.use_persistent_data = True
    add_actors(bpy, scene, renderer, cfg, rng, workdir, cache, built)
    facts["camera_motion"], facts["camera_framing"] = add_camera(kb, scene, cfg, rng, built)
    add_objects(kb, bpy, scene, renderer, sim, cfg, rng, cache, images, sources, built)
    sim.run(frame_start=0, frame_end=cfg.num_frames + 1)
    return built


def _render_passes(bpy, renderer, cfg: SceneConfig, workdir: Path) -> tuple[np.ndarray, dict, float]:
    """The RGB frames (T, H, W, 3) and the GT layers ("z", "segmentation", "forward_flow"), and the seconds the
    GT pass took. With cfg.exact_gt_pass the GT layers come from their own pass: 1 sample through the exact pixel
    centre (no filter jitter, no anti-aliasing, no denoising), so depth, segmentation and flow belong to the pixel
    centre where queries are unprojected.

    Kubric renders every frame in two view layers: the scene's own (image, depth) and "AuxOutputs" (1 sample, one
    override material: flow, segmentation, normals, UV, object coordinates). Each pass renders only the layer it
    reads (the same frames and layers, byte for byte, in about 3/4 of the time): the RGB pass the scene's layer
    (and the aux one only when Kubric's vector motion blur reads its flow), the GT pass the aux layer, with depth
    taken there (the first hit along a pixel ray does not depend on materials; no material is transparent)."""
    from datagen.scene import cycles_device

    if not cfg.exact_gt_pass:
        layers = renderer.render(return_layers=("rgba", "z", "segmentation", "forward_flow"))
        return layers["rgba"][..., :3], layers, 0.0
    scene = bpy.context.scene
    main, aux = scene.view_layers[0], scene.view_layers[AUX_LAYER]
    aux.use = any(node.bl_idname == "CompositorNodeVecBlur" for node in scene.node_tree.nodes)
    rgb = renderer.render(return_layers=("rgba",))["rgba"][..., :3]
    t_rgb = time.perf_counter()
    cycles = scene.cycles
    spp, width = cycles.samples, cycles.filter_width
    cycles.samples, cycles.filter_width = 1, 0.01
    cycles_device.prepare_gt_pass(scene)  # no denoising/adaptive sampling on GT layers
    # a persistent Cycles session does not survive the filter change (heap corruption in 4.2)
    scene.render.use_persistent_data = False
    # no light is needed for depth/segmentation/flow: skip rebuilding the world's importance map per frame
    world = scene.world.cycles
    world_sampling, world.sampling_method = world.sampling_method, "NONE"
    main.use, aux.use, depth_from = False, True, _depth_source(scene, AUX_LAYER)
    renderer.scratch_dir = workdir / "render_gt"
    layers = renderer.render(return_layers=("z", "segmentation", "forward_flow"))
    cycles.samples, cycles.filter_width = spp, width
    world.sampling_method = world_sampling
    main.use = True
    _depth_source(scene, depth_from)
    return rgb, layers, time.perf_counter() - t_rgb


def _depth_source(scene, layer: str) -> str:
    """Feed the EXR output's "Depth" slot from view layer `layer` (its z pass switched on); returns the layer that
    fed it before. Kubric's compositor: one Render Layers node per view layer, one multilayer-EXR File Output."""
    tree = scene.node_tree
    out = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeOutputFile")
    before = out.inputs["Depth"].links[0].from_node.layer
    source = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers" and n.layer == layer)
    scene.view_layers[layer].use_pass_z = True
    tree.links.new(source.outputs["Depth"], out.inputs["Depth"])
    return before
