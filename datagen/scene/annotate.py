"""Annotate one rendered scene (step 4 of `datagen.scene.render.render_scene`): sample query points on the GT
layers (a share on the actors first), follow them through the scene's surfaces (datagen.scene.tracks), measure
each actor's on-screen size, and assemble the sample's content metadata. Run facts (timings, threads) are not
content and stay out of the meta (render_scene returns them beside it).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.formats.sample import TrackSample
from datagen.scene import tracks as tracks_lib
from datagen.scene.readback import Segments


@dataclass
class Annotation:
    """The tracks of one scene and what the debug view needs (see render_scene's `debug`)."""

    sample: TrackSample
    z: np.ndarray  # (T, H, W) float64 depth
    seg: np.ndarray  # (T, H, W) int64 segmentation ids
    anchor_gap: np.ndarray  # (Q,)


def annotate(cfg, seed: int, rng: np.random.RandomState, rgb: np.ndarray, layers: dict, built, segments: Segments,
             surfaces, camera, cam_mats: np.ndarray, scene_facts: dict) -> Annotation:
    """rgb: (T, H, W, 3) uint8 sRGB (white-balanced if the scene asks); layers: Kubric's "z", "segmentation"
    (T, H, W, 1) of the GT pass; cam_mats: (T, 4, 4) Blender camera-to-world; scene_facts: meta entries the build
    recorded (camera motion and framing, motion blur, render device, white-balance gains). Draws the query points
    from `rng` (the scene's RandomState)."""
    H, W = cfg.height, cfg.width
    K = tracks_lib.intrinsics(camera.focal_length, cfg.sensor_width, H, W)
    w2c = tracks_lib.world_to_opencv_camera(cam_mats)
    z = layers["z"][..., 0].astype(np.float64)
    seg = layers["segmentation"][..., 0].astype(np.int64)
    category = segments.category
    gen = np.random.default_rng(rng.randint(2**31))
    per_actor = segments.of_actors(len(built.actors))
    actor_ids = np.zeros(len(category), bool)
    actor_ids[[sid for ids in per_actor for sid in ids]] = True
    priority = [(actor_ids, cfg.actor_fraction)] if cfg.actor_fraction > 0 else []
    queries = tracks_lib.sample_queries(z, seg, category > 0, cfg.num_tracks, cfg.foreground_fraction, gen,
                                        priority=priority)
    res = tracks_lib.compute_tracks(z, seg, K, w2c, surfaces, queries, cfg.depth_tolerance,
                                    cfg.depth_tolerance_abs)
    heights = actor_screen_heights(seg, per_actor)
    actors_meta = [{"name": a.name, "kind": a.kind, "category": a.category, "screen_height": h, "segments": ids}
                   for a, h, ids in zip(built.actors, heights, per_actor)]
    meta = {
        "seed": int(seed),
        "config": cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg),
        "assets": built.asset_ids,
        "camera_motion": scene_facts["camera_motion"],
        "camera_framing": scene_facts["camera_framing"],
        "motion_blur": scene_facts["motion_blur"],
        "white_balance": scene_facts.get("white_balance", [1.0, 1.0, 1.0]),  # RGB gains (white_balance.py)
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
        "render_device": scene_facts["render_device"],  # "CPU", "OPTIX", "CUDA", ...: GPU and CPU noise differ
    }
    sample = TrackSample(video=np.ascontiguousarray(rgb, dtype=np.uint8), tracks=res.tracks,
                         visibility=res.visibility, tracks3d=res.tracks3d, meta=to_jsonable(meta))
    return Annotation(sample, z, seg, res.anchor_gap)


def actor_screen_heights(seg: np.ndarray, per_actor: list[list[int]]) -> list[list[float]]:
    """Per actor, per frame: height of its on-screen bounding box / image height (0 when not visible).
    seg: (T, H, W) segmentation ids; per_actor: each actor's segmentation ids (Segments.of_actors)."""
    T, H, _ = seg.shape
    out = []
    for ids in per_actor:  # loop over actors only
        rows = np.isin(seg, ids).any(axis=2)  # (T, H)
        top, bottom = rows.argmax(1), H - 1 - rows[:, ::-1].argmax(1)
        out.append(np.where(rows.any(1), (bottom - top + 1) / H, 0.0).round(4).tolist())
    return out


def to_jsonable(x):
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
