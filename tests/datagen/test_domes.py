"""datagen.scene.domes in real Blender renders: every skyline and sky builds, the sky is above the skyline and looks
like its kind, and a scene rendered with a realistic dome records it and keeps its ground truth."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

W, H = 96, 64


def _render_dome(bpy, tmp_path, skyline: str, sky: str, seed: int) -> np.ndarray:
    """(H, W, 3) linear RGB of the dome (radius 30 m) seen level from 1.7 m: the horizon is row H // 2."""
    from datagen.scene import assets
    from datagen.scene.domes import dome_material

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    bpy.ops.wm.obj_import(filepath=assets.dome_mesh(tmp_path), forward_axis="Y", up_axis="Z")
    dome = bpy.context.selected_objects[0]
    dome.scale = (30.0, 30.0, 30.0)
    mat, facts = dome_material(bpy, "dome", np.random.RandomState(seed), 30.0, skyline, sky)
    assert facts == {"skyline": skyline, "sky": sky}
    dome.data.materials.append(mat)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy, sun.rotation_euler = 3.0, (0.8, 0.0, 3.0)  # lights the skyline we look at
    scene.collection.objects.link(sun)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.lens, cam.location, cam.rotation_euler = 12.0, (0.0, 0.0, 1.7), (np.pi / 2, 0.0, 0.3)
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device = 8, "CPU"
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / f"{skyline}_{sky}.png")
    scene.view_settings.view_transform = "Standard"
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(scene.render.filepath)
    return np.asarray(img.pixels[:], dtype=np.float32).reshape(H, W, 4)[::-1, :, :3]


def test_every_skyline_and_sky_renders_a_plausible_backdrop(tmp_path):
    """Looking level at the horizon with a 12 mm lens (36 x 24 mm sensor): the middle half of the top 6 rows looks
    >= 33 degrees up, where the dome is >= 18 m high, above every skyline (<= 16 m; the corners look lower); the 2
    rows just above the horizon look <= 2.7 degrees up (<= 3.1 m, below every skyline: >= 4 m). The sky is lighter
    than a skyline and is its kind (a clear sky blue, an overcast one grey, a cloudy one patchier than a clear one);
    the city's windows make its rows vary more than the wall's; the trees are green; the same seed gives the same
    material."""
    bpy = pytest.importorskip("bpy")
    from datagen.scene.domes import SKIES, SKYLINES, dome_material

    images = {(line, "clear"): _render_dome(bpy, tmp_path, line, "clear", 3) for line in SKYLINES}
    images.update({("wall", sky): _render_dome(bpy, tmp_path, "wall", sky, 3) for sky in SKIES if sky != "clear"})
    top = (slice(0, 6), slice(W // 4, 3 * W // 4))  # sky: the middle of the top rows
    low = slice(H // 2 - 2, H // 2)  # skyline: the rows just above the horizon
    for (line, sky), img in images.items():
        assert img[top].mean() > img[low].mean() + 0.05, (line, sky)  # a glowing sky over a lit skyline
    clear = images["wall", "clear"][top].reshape(-1, 3).mean(0)
    assert clear[2] > clear[0] + 0.1, clear  # blue
    grey = images["wall", "overcast"][top].reshape(-1, 3).mean(0)
    assert np.ptp(grey) < 0.05 and grey.mean() > 0.4, grey
    assert images["wall", "cloudy"][top].mean(-1).std() > 2 * images["wall", "clear"][top].mean(-1).std()
    trees = images["trees", "clear"][low].reshape(-1, 3).mean(0)
    assert trees[1] > trees[0] and trees[1] > trees[2], trees
    assert images["city", "clear"][low].mean(-1).std() > 2 * images["wall", "clear"][low].mean(-1).std()

    def values(mat):  # every input's value and every link
        tree = mat.node_tree
        inputs = [tuple(np.round(s.default_value, 6)) if hasattr(s.default_value, "__len__")
                  else round(s.default_value, 6) for n in tree.nodes for s in n.inputs if hasattr(s, "default_value")]
        links = sorted((ln.from_node.bl_idname, ln.from_socket.identifier, ln.to_node.bl_idname,
                        ln.to_socket.identifier) for ln in tree.links)
        return inputs, links

    a, b = (dome_material(bpy, name, np.random.RandomState(5), 30.0)[0] for name in ("again_a", "again_b"))
    assert values(a) == values(b)


def test_a_scene_with_a_realistic_dome_records_it(tmp_path):
    """render_scene with dome_textures=[realistic] (the build path): the metadata names the skyline and the sky."""
    pytest.importorskip("bpy")
    from datagen.config.scene import SceneConfig
    from datagen.scene.domes import SKIES, SKYLINES
    from datagen.scene.render import render_scene

    cfg = SceneConfig(resolution=[48, 48], num_frames=2, samples_per_pixel=4, num_static_objects=[1, 1],
                      num_tossed_objects=[0, 0], num_tracks=32, dome_textures=["realistic"],
                      floor_textures=["realistic"], camera_elevation=[2.0, 4.0], camera_motion=["static"])
    sample = render_scene(cfg, 2, tmp_path / "scene").sample
    dome = next(a for a in sample.meta["assets"] if a.get("name") == "dome")
    assert dome["texture"] == "realistic" and dome["skyline"] in SKYLINES and dome["sky"] in SKIES
    assert sample.video.shape[0] == 2 and np.isfinite(sample.tracks).all()
