"""datagen.scene.object_materials in real Blender renders: every realistic object surface builds, shows a texture
and carries it along when the object moves; the generator draws it from scene.object_textures."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import row_of_materials
from tracker.common.errors import ConfigError

pytestmark = pytest.mark.slow

TILE = 32  # pixels per cube face in the render
REPO = Path(__file__).resolve().parents[2]


def _render(bpy, tmp_path: Path, name: str, width: int, ortho: float) -> np.ndarray:
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = width, TILE
    scene.camera.data.ortho_scale = ortho
    scene.render.filepath = str(tmp_path / f"{name}.png")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(tmp_path / f"{name}.png"))
    return np.asarray(img.pixels[:], dtype=np.float32).reshape(TILE, width, 4)[..., :3]


def _stage(bpy):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy, sun.rotation_euler = 3.0, (0.3, 0.2, 0.0)
    scene.collection.objects.link(sun)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.type, cam.location = "ORTHO", (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device, scene.cycles.seed = 16, "CPU", 0
    scene.render.image_settings.file_format = "PNG"
    scene.view_settings.view_transform = "Standard"


def test_every_object_surface_renders_a_texture_that_moves_with_the_object(tmp_path):
    """Cubes seen from above, one per surface and a plain grey one: each surface has texture (its pixels vary
    several times more than the plain cube's sampling noise) at a plausible level; the same seed gives the same
    node values. A cube moved by whole pixels shows the same pattern moved with it (object coordinates), and a
    cube twice the size shows its pattern at twice the size (sizes follow the object's extent)."""
    bpy = pytest.importorskip("bpy")
    from datagen.scene.object_materials import OBJECT_SURFACES, object_material

    _stage(bpy)
    kinds = [*OBJECT_SURFACES, "plain"]
    n, side = len(kinds), 0.5

    def make(kind, i):
        mat, got = object_material(bpy, f"obj_{kind}", np.random.RandomState(i), extent=side, kind=kind)
        assert got == kind
        return mat

    row_of_materials(bpy, kinds, side, bpy.ops.mesh.primitive_cube_add, make)
    px = _render(bpy, tmp_path, "surfaces", n * TILE, n * side)
    tiles = {kind: px[2:-2, i * TILE + 2:(i + 1) * TILE - 2] for i, kind in enumerate(kinds)}
    noise = tiles.pop("plain").mean(-1).std()
    for kind, tile in tiles.items():
        assert 0.02 < tile.mean() < 0.95, (kind, tile.mean())
        assert tile.mean(-1).std() > 3 * noise, (kind, tile.mean(-1).std(), noise)  # textured, not flat

    # the pattern travels with the object: one painted cube, then the same cube 8 pixels to the right
    _stage(bpy)
    bpy.ops.mesh.primitive_cube_add(size=side, location=(0.0, 0.0, 0.0))
    cube = bpy.context.object
    cube.data.materials.append(object_material(bpy, "moving", np.random.RandomState(3), side, "printed")[0])
    width, ortho = 4 * TILE, 4 * side  # TILE pixels per cube side
    before = _render(bpy, tmp_path, "before", width, ortho)
    cube.location.x += 8 * side / TILE
    after = _render(bpy, tmp_path, "after", width, ortho)
    cols = np.arange(58, 72)  # the cube covers pixels 48-80 before and 56-88 after
    stayed, moved = before[4:-4, cols].mean(-1), after[4:-4, cols + 8].mean(-1)
    fixed = after[4:-4, cols].mean(-1)  # what a pattern fixed in the world would show
    assert np.abs(moved - stayed).mean() < 0.5 * np.abs(fixed - stayed).mean()

    a, _ = object_material(bpy, "again_a", np.random.RandomState(5), side)
    b, _ = object_material(bpy, "again_b", np.random.RandomState(5), side)
    values = lambda m: [tuple(s.default_value) if hasattr(s.default_value, "__len__") else s.default_value  # noqa
                        for node in m.node_tree.nodes for s in node.inputs if hasattr(s, "default_value")]
    assert values(a) == values(b)


def test_scene_objects_draw_their_surfaces_from_object_textures(tmp_path):
    """A real scene with object_textures=[realistic] and every object textured records a realistic surface for each
    object; without the key the draws are those of the old kinds (no surface recorded); a misspelt kind is one
    config error."""
    pytest.importorskip("bpy")
    from datagen.config import load_data_config
    from datagen.scene.object_materials import OBJECT_SURFACES
    from datagen.scene.render import render_scene

    base = ["scene.resolution=[32,32]", "scene.num_frames=2", "scene.samples_per_pixel=1", "scene.num_tracks=16",
            "scene.num_static_objects=[3,3]", "scene.num_tossed_objects=[0,0]", "scene.object_texture_prob=1.0"]
    cfg = load_data_config(REPO / "configs/data/tiny.yaml", [*base, "scene.object_textures=[realistic]"])
    meta = render_scene(cfg.scene, 7, tmp_path / "a", threads=1).sample.meta
    objects = [a for a in meta["assets"] if a.get("static") is not None]
    assert objects and all(a["surface"] in OBJECT_SURFACES for a in objects)
    old = render_scene(load_data_config(REPO / "configs/data/tiny.yaml", base).scene, 7, tmp_path / "b",
                       threads=1).sample.meta
    assert not any("surface" in a for a in old["assets"] if a.get("static") is not None)
    with pytest.raises(ConfigError, match="scene.object_textures"):
        load_data_config(REPO / "configs/data/tiny.yaml", [*base, "scene.object_textures=[realstic]"])
