"""datagen.scene.floors in a real Blender render: every realistic floor surface builds and shows a texture."""
from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import row_of_materials

pytestmark = pytest.mark.slow

TILE = 32  # pixels per patch in the render: 2 cm each


def test_every_floor_surface_renders_a_textured_plausible_floor(tmp_path):
    """One render of floor patches seen from above, one per surface and a plain grey one (a sun over them): each
    surface has texture (its pixels vary several times more than the plain patch's sampling noise) and a plausible
    level (neither black nor white), so no builder fails or falls back to a flat colour; the same seed gives the
    same material parameters."""
    bpy = pytest.importorskip("bpy")
    from datagen.scene.floors import FLOOR_SURFACES, floor_material

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    kinds = [*FLOOR_SURFACES, "plain"]
    n = len(kinds)
    patch = 0.64  # metres: a few planks, a tile or two, a few stones

    def make(kind, i):
        mat, got = floor_material(bpy, f"floor_{kind}", np.random.RandomState(i), kind=kind)
        assert got == kind
        return mat

    row_of_materials(bpy, kinds, patch, bpy.ops.mesh.primitive_plane_add, make)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.4, 0.3, 0.0)
    scene.collection.objects.link(sun)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.type, cam.data.ortho_scale = "ORTHO", n * patch
    cam.location = (0.0, 0.0, 10.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device = 8, "CPU"
    scene.render.resolution_x, scene.render.resolution_y = n * TILE, TILE
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / "floors.png")
    scene.view_settings.view_transform = "Standard"
    bpy.ops.render.render(write_still=True)

    img = bpy.data.images.load(str(tmp_path / "floors.png"))
    px = np.asarray(img.pixels[:], dtype=np.float32).reshape(TILE, n * TILE, 4)[..., :3]
    tiles = {kind: px[2:-2, i * TILE + 2:(i + 1) * TILE - 2] for i, kind in enumerate(kinds)}
    noise = tiles.pop("plain").mean(-1).std()
    for kind, tile in tiles.items():
        assert 0.03 < tile.mean() < 0.9, (kind, tile.mean())
        assert tile.mean(-1).std() > 3 * noise, (kind, tile.mean(-1).std(), noise)  # textured, not flat

    a, _ = floor_material(bpy, "again_a", np.random.RandomState(5))
    b, _ = floor_material(bpy, "again_b", np.random.RandomState(5))
    values = lambda m: [tuple(s.default_value) if hasattr(s.default_value, "__len__") else s.default_value  # noqa
                        for node in m.node_tree.nodes for s in node.inputs if hasattr(s, "default_value")]
    assert values(a) == values(b)
