"""Real tiny Kubric/Blender renders (64x64, 5 frames, 4 spp) with an object, a human and an animal."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SEED = 7


def _tiny_cfg(cache_dir):
    from datagen.config.scene import SceneConfig

    return SceneConfig(resolution=[64, 64], num_frames=5, samples_per_pixel=4, num_static_objects=[1, 1],
                       num_tossed_objects=[1, 1], object_scale=[1.0, 1.4], spawn_region_half=1.5,
                       num_humans=1, num_animals=1, camera_motion=["orbit"], camera_distance=[5.0, 5.5],
                       camera_orbit_speed=[40.0, 40.0], num_tracks=512, asset_cache_dir=str(cache_dir))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    pytest.importorskip("bpy")
    pytest.importorskip("kubric")
    from datagen.scene.render import render_scene

    cache = tmp_path_factory.mktemp("assets")
    debug: dict = {}
    rendered = render_scene(_tiny_cfg(cache), SEED, tmp_path_factory.mktemp("scene"), debug=debug)
    sample = rendered.sample
    return sample, debug, cache, tmp_path_factory


def test_sample_shapes_and_meta(rendered):
    s, _, _, _ = rendered
    T, Q = 5, 512
    assert s.video.shape == (T, 64, 64, 3) and s.video.dtype == np.uint8
    assert s.tracks.shape == (T, Q, 2) and s.tracks.dtype == np.float32
    assert s.visibility.shape == (T, Q) and s.visibility.dtype == bool
    assert s.tracks3d.shape == (T, Q, 3)
    meta = json.loads(json.dumps(s.meta))  # JSON-able
    assert meta["seed"] == SEED and meta["fps"] == 12
    assert np.array(meta["intrinsics"]).shape == (3, 3)
    assert np.array(meta["extrinsics"]).shape == (T, 4, 4)
    assert not {"timings", "render_threads"} & set(meta)  # run facts come beside the sample (RenderedScene.run)
    names = meta["category_names"]
    cats = {names[c] for c in meta["track_category"]}
    assert {"background", "object", "human", "animal"} <= cats, cats
    # the image is not blank and the camera sees the action (foreground pixels in every frame)
    assert s.video.std() > 5
    seg_cat = np.array(meta["track_category"])
    assert (seg_cat > 0).mean() > 0.3


def test_tracks_agree_with_rendered_forward_flow(rendered):
    """Ground truth vs Blender's vector pass at visible points: median error < 0.5 px."""
    from tests.conftest import flow_errors

    s, dbg, _, _ = rendered
    err, disp, q = flow_errors(s, dbg)
    assert len(err) > 100  # visible points compared
    assert np.abs(disp).max() > 0.5, "orbiting camera should move things"
    assert np.median(err) < 0.5, np.median(err)
    ok = s.visibility[np.asarray(s.meta["query_frames"])[q] + 1, q]  # the tracks flow_errors kept
    cats = np.asarray(s.meta["track_category"])[q][ok]
    for c, name in enumerate(s.meta["category_names"]):
        if (cats == c).sum() >= 5:  # each of background / object / human / animal
            assert np.median(err[cats == c]) < 0.5, (name, np.median(err[cats == c]))


def test_tracks3d_and_camera_consistent(rendered):
    s, dbg, _, _ = rendered
    K = np.array(s.meta["intrinsics"])
    uv = s.tracks3d[..., :2] / s.tracks3d[..., 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    front = s.tracks3d[..., 2] > 0.1
    np.testing.assert_allclose(uv[front], s.tracks[front], atol=1e-2)
    # visible points lie on the rendered surface: their z matches the rendered z-depth
    t, qq = np.nonzero(s.visibility)
    x, y = np.rint(s.tracks[t, qq]).astype(int).T
    rel = np.abs(dbg["z"][t, y, x] - s.tracks3d[t, qq, 2]) / s.tracks3d[t, qq, 2]
    assert np.median(rel) < 0.01


def test_visibility_marks_occlusion_and_query_frame(rendered):
    s, dbg, _, _ = rendered
    t = np.asarray(s.meta["query_frames"])
    assert s.visibility[t, np.arange(s.num_tracks)].all()
    # visible points mostly sit on their own segment (sub-pixel edges aside)
    seg_of_track = np.asarray(s.meta["track_segment"])
    tt, qq = np.nonzero(s.visibility)
    x, y = np.rint(s.tracks[tt, qq]).astype(int).T
    assert (dbg["segmentation"][tt, y, x] == seg_of_track[qq]).mean() > 0.9


def test_same_seed_same_scene(rendered):
    """Same seed, same scene, also with a different number of render threads (parallel workers get fewer)."""
    from datagen.scene.render import render_scene

    s, _, cache, factory = rendered
    again = render_scene(_tiny_cfg(cache), SEED, factory.mktemp("again"), threads=1)
    assert again.run["render_threads"] == 1
    assert {"simulate_s", "render_s", "annotate_s", "render_gt_s"} <= set(again.run["timings"])
    assert all(v >= 0 for v in again.run["timings"].values())
    again = again.sample
    # Across thread counts the rendered depth may differ in its last bits on some CPUs (Intel): a tolerance, not
    # bit-identity (docs/datagen_pipeline.md, "Rerendering is byte-identical").
    np.testing.assert_allclose(again.tracks, s.tracks, rtol=0, atol=1e-4)
    assert (again.visibility != s.visibility).mean() <= 1e-3
    assert again.meta["assets"] == s.meta["assets"]
    assert np.abs(again.video.astype(int) - s.video).mean() < 1.0


def test_motion_blur_and_static_camera_scene(tmp_path):
    """Compositor vector blur on (Kubric's motion_blur), static camera, objects only, and a
    panorama image file on the dome."""
    pytest.importorskip("bpy")
    from datagen.scene.assets import pybullet_data_dir
    from datagen.scene.render import render_scene
    from datagen.config.scene import SceneConfig

    panorama = str(pybullet_data_dir() / "checker_grid.jpg")
    cfg = SceneConfig(resolution=[32, 48], num_frames=3, samples_per_pixel=2, num_static_objects=[1, 1],
                      num_tossed_objects=[1, 1], motion_blur=[1.0, 1.0], camera_motion=["static"],
                      dome_textures=[panorama], num_tracks=64, asset_cache_dir=str(tmp_path / "assets"))
    s = render_scene(cfg, 3, tmp_path / "scene").sample
    assert s.video.shape == (3, 32, 48, 3) and s.meta["motion_blur"] == 1.0
    assert s.meta["camera_motion"] == "static"
    dome = next(a for a in s.meta["assets"] if a.get("name") == "dome")
    assert dome["texture"] == "equirect" and dome["panorama"] == "checker_grid.jpg"  # it also lights the scene
    ext = np.array(s.meta["extrinsics"])
    np.testing.assert_allclose(ext, ext[:1].repeat(3, 0), atol=1e-5)
    # static camera: background tracks do not move
    bg = np.array(s.meta["track_category"]) == 0
    assert np.abs(s.tracks[:, bg] - s.tracks[:1, bg]).max() < 1e-3


def test_each_pass_renders_only_the_view_layer_it_reads(tmp_path):
    """Kubric renders every frame in two view layers; render_scene's passes each render one. The aux layer alone,
    with depth taken there, gives the depth, segmentation and flow that both layers give, and the scene's layer
    alone the same image."""
    pytest.importorskip("bpy")
    from datagen.scene import kubric_compat

    kubric_compat.apply()
    import kubric as kb
    from kubric.renderer.blender import Blender
    from kubric.safeimport.bpy import bpy

    from datagen.scene.render import AUX_LAYER, _depth_source

    scene = kb.Scene(resolution=(40, 32), frame_start=1, frame_end=2)
    renderer = Blender(scene, scratch_dir=tmp_path / "both", samples_per_pixel=2)
    bpy.context.scene.render.threads_mode, bpy.context.scene.render.threads = "FIXED", 2
    bpy.context.scene.cycles.filter_width = 0.01  # the GT pass's pixel-centre filter (_render_passes)
    scene += kb.Cube(name="floor", scale=(3, 3, 0.1), position=(0, 0, -0.1), static=True)
    cube = kb.Cube(name="cube", scale=0.5, position=(-0.4, 0, 0.5))
    scene += cube
    for frame, x in ((1, -0.4), (2, 0.3)):  # it moves: flow on the cube, none on the floor
        cube.position = (x, 0.0, 0.5)
        cube.keyframe_insert("position", frame)
    scene += kb.DirectionalLight(position=(1, -1, 3), look_at=(0, 0, 0), intensity=2.0)
    scene += kb.PerspectiveCamera(position=(2.5, -3.5, 2.5), look_at=(0, 0, 0.4))
    both = renderer.render(return_layers=("rgba", "z", "segmentation", "forward_flow"))

    main, aux = bpy.context.scene.view_layers[0], bpy.context.scene.view_layers[AUX_LAYER]
    main.use = False
    assert _depth_source(bpy.context.scene, AUX_LAYER) == main.name
    renderer.scratch_dir = tmp_path / "aux"
    alone = renderer.render(return_layers=("z", "segmentation", "forward_flow"))
    assert len(np.unique(both["segmentation"])) == 3 and np.abs(both["forward_flow"]).max() > 1.0
    np.testing.assert_allclose(alone["z"], both["z"], rtol=1e-6)
    assert (alone["segmentation"] == both["segmentation"]).all()
    np.testing.assert_allclose(alone["forward_flow"], both["forward_flow"], rtol=1e-6, atol=1e-6)

    main.use, aux.use = True, False
    assert _depth_source(bpy.context.scene, main.name) == AUX_LAYER
    renderer.scratch_dir = tmp_path / "main"
    image = renderer.render(return_layers=("rgba", "z"))
    assert (image["rgba"] == both["rgba"]).all()
    np.testing.assert_allclose(image["z"], both["z"], rtol=1e-6)
