"""anny people in real tiny Kubric/Blender renders (64x64, a few frames, 4 samples per pixel).

* one rolling person with long hair filmed by the body-framing camera: skin and clothes in the silhouette, ground
  truth on the deforming surface, the hair included, vs Blender's forward flow (median < 0.5 px), self-occlusion
  (the body hides parts of itself as it rolls) agreeing with the rendered depth;
* the face close-up preset through the real pipeline (generate -> shards -> stats): most visible points on
  the face, the head filling the frame;
* a crowd of three people standing close together (no render: placement only).
About 1.5-2 min in all on 2 cores (each scene process loads TensorFlow, Kubric and anny).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _roll_cfg():
    from datagen.config.scene import ActorGroupConfig, SceneConfig

    return SceneConfig(resolution=[64, 64], num_frames=5, samples_per_pixel=4, num_static_objects=[0, 0],
                       num_tossed_objects=[0, 0], dome_textures=["procedural"], floor_textures=["procedural"],
                       actors=[ActorGroupConfig(kind="human", options={"clips": ["roll"], "hair": ["long"]})],
                       camera_framing=["body"], num_tracks=600, foreground_fraction=0.8, actor_fraction=0.8)


@pytest.fixture(scope="module")
def rolling(tmp_path_factory):
    pytest.importorskip("bpy")
    pytest.importorskip("anny")
    from datagen import actors
    from datagen.scene.render import render_scene

    actors.prepare(["human"])
    debug: dict = {}
    sample = render_scene(_roll_cfg(), 4, tmp_path_factory.mktemp("roll"), debug=debug).sample
    return sample, debug


def _human_tracks(s):
    names = s.meta["category_names"]
    return np.flatnonzero(np.asarray(s.meta["track_category"]) == names.index("human"))


def test_person_shows_skin_and_clothes(rolling):
    s, _ = rolling
    human = [a for a in s.meta["assets"] if a.get("kind") == "anny_human"]
    assert len(human) == 1 and human[0]["clip"] == "deepmimic:roll"
    regions = np.asarray(s.meta["track_region"])
    names = s.meta["region_names"]
    q = _human_tracks(s)
    t = np.asarray(s.meta["query_frames"])
    x, y = np.asarray(s.tracks[t, np.arange(len(t))]).round().astype(int).T
    rgb = s.video[t, y, x].astype(float)  # colour under every query point, at its query frame
    bare = q[np.isin(regions[q], [names.index(r) for r in ("skin", "face") if r in names])]
    dressed = q[np.isin(regions[q], [names.index(r) for r in ("top", "bottom") if r in names])]
    assert len(bare) >= 10 and len(dressed) >= 10, (len(bare), len(dressed))
    # the skin looks like the person's skin tone, the clothes like their fabrics (chromaticity: lighting cancels)
    look = human[0]["look"]

    def chroma(c):
        c = np.asarray(c, float)
        return c / c.sum(-1, keepdims=True)

    skin = chroma(np.power(look["skin"], 2.2))  # the render is sRGB, Blender's albedo linear
    fabric = chroma(np.power(look["top"]["color"], 2.2))
    if np.abs(skin - fabric).sum() > 0.15:  # only when the two colours can be told apart
        seen = chroma(np.power(rgb[bare].mean(0) / 255.0, 2.2) + 1e-6)
        d_skin, d_fabric = np.abs(seen - skin).sum(), np.abs(seen - fabric).sum()
        assert d_skin < d_fabric, (d_skin, d_fabric)
    # the person is textured, not flat: the pixels of the silhouette vary
    assert rgb[q].std(0).mean() > 5


def test_ground_truth_follows_the_deforming_body(rolling):
    """GT on the deforming human surface vs Blender's forward optical flow at visible points."""
    from tests.conftest import flow_errors

    s, dbg = rolling
    err, disp, q = flow_errors(s, dbg, _human_tracks(s))
    assert len(err) > 50  # visible points compared
    assert np.median(np.linalg.norm(disp, axis=1)) > 0.3, "a rolling body moves"
    assert np.median(err) < 0.5, np.median(err)
    # long hair (geometry skinned with the body) is ground truth like the rest of the person
    names = s.meta["region_names"]
    hair = q[np.asarray(s.meta["track_region"])[q] == names.index("hair")]
    h_err, _, _ = flow_errors(s, dbg, hair)
    assert len(h_err) >= 5 and np.median(h_err) < 0.5, (len(h_err), np.median(h_err) if len(h_err) else None)
    # the anchors sit on the rendered surface (the mesh Blender drew is the mesh that was annotated)
    assert np.median(dbg["anchor_gap"][q]) < 0.01


def test_self_occlusion_agrees_with_the_rendered_depth(rolling):
    """Points hidden by another part of the same body (a rolling body hides its back, arms, legs...)."""
    s, dbg = rolling
    z, seg = dbg["z"], dbg["segmentation"]
    seg_of = np.asarray(s.meta["track_segment"])
    q = _human_tracks(s)
    T, H, W = z.shape
    tt, qq = np.meshgrid(np.arange(T), q, indexing="ij")
    uv = s.tracks[tt, qq]
    inside = (uv[..., 0] > 0) & (uv[..., 0] < W - 1) & (uv[..., 1] > 0) & (uv[..., 1] < H - 1)
    x, y = np.rint(uv[..., 0]).astype(int).clip(0, W - 1), np.rint(uv[..., 1]).astype(int).clip(0, H - 1)
    z_track = s.tracks3d[tt, qq, 2]
    own = seg[tt, y, x] == seg_of[qq]
    hidden_by_self = inside & ~s.visibility[tt, qq] & own
    assert hidden_by_self.sum() >= 5, hidden_by_self.sum()
    # the rendered depth of the 2x2 pixel centres around each point (its exact position lies between them)
    x0, y0 = np.floor(uv[..., 0]).astype(int).clip(0, W - 2), np.floor(uv[..., 1]).astype(int).clip(0, H - 2)
    block = np.stack([z[tt, y0 + dy, x0 + dx] for dy in (0, 1) for dx in (0, 1)], -1)  # (T, Q, 4)
    # where the body hides itself, a part of it is really in front
    in_front = (block < (z_track - 0.01)[..., None]).any(-1)
    assert in_front[hidden_by_self].mean() > 0.95, in_front[hidden_by_self].mean()
    # and points marked visible lie on the rendered surface
    vis = inside & s.visibility[tt, qq] & own
    on_surface = (np.abs(block - z_track[..., None]) < 0.02 * z_track[..., None]).any(-1)
    assert on_surface[vis].mean() > 0.95, on_surface[vis].mean()


def test_face_closeup_preset_puts_most_points_on_the_face(tmp_path):
    """configs/data/face_closeup.yaml (made tiny) through generate -> shards -> stats."""
    pytest.importorskip("bpy")
    pytest.importorskip("anny")
    from datagen import actors
    from datagen.cli import dataset_stats
    from datagen.config import load_data_config
    from datagen.pipeline.generate import generate_dataset

    cfg = load_data_config(REPO / "configs" / "data" / "face_closeup.yaml", [
        "scene.resolution=[64,64]", "scene.num_frames=4", "scene.samples_per_pixel=4", "scene.num_tracks=400",
        "scene.camera_framing=[face]", "scene.dome_textures=[procedural]", "scene.motion_blur=[0.0,0.0]",
        "generate.num_scenes=1", "generate.scenes_per_shard=1", "generate.workers=1"])
    actors.prepare([g.kind for g in cfg.scene.actor_groups()])
    generate_dataset(cfg, tmp_path / "shards", progress=False)
    stats = dataset_stats(str(tmp_path / "shards" / "shard-*.tar"))
    assert stats["samples"] == 1
    assert stats["face_share"]["visible_points"] >= 0.5, stats["region_visible_share"]
    height = stats["actor_screen_height"]["anny_human"]["median"]
    assert height > 0.9, height  # the head (and shoulders) fill the frame
    assert json.dumps(stats)


def test_crowd_members_stand_close_together():
    """A herd of three people: one shared clip, 0.5-1.1 m apart (so they overlap on screen), on the floor."""
    pytest.importorskip("anny")
    from datagen.scene import kubric_compat

    kubric_compat.apply()
    from kubric.safeimport.bpy import bpy

    from datagen.actors import ActorContext, Spawn, get_kind

    kind = get_kind("human")({"clips": ["walk"]})
    group: dict = {}
    people = []
    for i in range(3):
        ctx = ActorContext(scene=None, renderer=None, bpy=bpy, workdir=REPO, cache_dir=REPO, name=f"crowd{i:02d}",
                           frame_start=1, num_frames=3, fps=12.0)
        people.append(kind.add(ctx, np.random.default_rng(i), Spawn((0.0, 0.0), 0.5, group, i, 3)))
    mids = np.array([p.trajectory[1] for p in people])
    gaps = np.linalg.norm(mids[:, None] - mids[None], axis=-1)[np.triu_indices(3, 1)]
    assert gaps.min() > 0.2 and gaps.max() < 3.0, gaps
    assert len({p.meta["clip"] for p in people}) == 1
    for p in people:
        mesh = p.meshes[0]
        assert mesh.obj.name == f"{p.name}_body" and len(mesh.polygon_region) == len(mesh.obj.data.polygons)
        assert mesh.obj.data.shape_keys is not None and len(mesh.obj.data.shape_keys.key_blocks) == 1 + 5
        bpy.data.objects.remove(mesh.obj, do_unlink=True)
