"""Garment fabrics (datagen.actors.humans.materials): every pattern is drawn, looks are seeded, and each print
renders in Cycles as a pattern of the fabric's colours stuck to the rest coordinates (a flat cloth, 48x48, a few
samples; ~10 s)."""
from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
import pytest

from datagen.actors.humans import materials as mat_lib
from datagen.actors.humans.regions import SLOTS


def test_every_fabric_pattern_is_drawn_and_looks_are_seeded():
    looks = [mat_lib.Look.sample(np.random.default_rng(s)) for s in range(400)]
    fabrics = [f for look in looks for f in (look.top, look.bottom)]
    assert {f.pattern for f in fabrics} == set(mat_lib.FABRIC_PATTERNS)
    assert "denim" not in {look.top.pattern for look in looks}  # tops are never denim
    assert mat_lib.Look.sample(np.random.default_rng(9)) == mat_lib.Look.sample(np.random.default_rng(9))
    assert sum(mat_lib.FABRIC_P) == pytest.approx(1.0) and len(mat_lib.FABRIC_P) == len(mat_lib.FABRIC_PATTERNS)


def test_skin_tones_are_skin_from_light_to_dark():
    """Every drawn skin has skin's warm cast (no white or grey plaster at the light end, where the Monk swatches
    used as albedos had HSV saturation 0.07) and the draws span very light to very dark."""
    hsv = np.array([colorsys.rgb_to_hsv(*mat_lib.Look.sample(np.random.default_rng(s)).skin) for s in range(300)])
    hue_deg = hsv[:, 0] * 360.0
    assert ((hue_deg > 12) & (hue_deg < 32)).all(), hue_deg.min()
    assert (hsv[:, 1] > 0.18).all() and (hsv[:, 2] < 0.96).all()
    assert hsv[:, 2].min() < 0.3 and hsv[:, 2].max() > 0.85


def test_lips_stand_out_from_every_skin_tone():
    """Lips are redder than the skin; on light skin a little darker (not lipstick: at most 0.2 more saturated,
    0.72-0.9 of the skin's value), on dark skin (HSV value < 0.45) as light or lighter: a darker red vanished into
    dark skin on the contact sheets."""
    looks = [mat_lib.Look.sample(np.random.default_rng(s)) for s in range(300)]
    dark = 0
    for look in looks:
        (_, skin_s, skin_v), (lip_h, lip_s, lip_v) = colorsys.rgb_to_hsv(*look.skin), colorsys.rgb_to_hsv(*look.lips)
        assert lip_s > skin_s + 0.07 and min(lip_h, 1 - lip_h) < 0.06  # redder (hue within ~20 degrees of red)
        if skin_v < 0.45:
            dark += 1
            assert lip_v >= skin_v
        else:
            assert 0.71 * skin_v < lip_v < 0.91 * skin_v and lip_s < skin_s + 0.21
    assert 30 < dark < 270  # both kinds were drawn


def test_brows_are_darker_than_light_hair():
    """Brows take the hair's colour darkened, and light hair (blond, platinum, grey, white) gets brows no brighter
    than a mid brown-grey: as bright as white hair they read as two pale painted stripes on the close-ups."""
    from datagen.colour import luminance, srgb_to_linear

    for name, hex_ in mat_lib.HAIR_COLORS.items():
        hair = srgb_to_linear(mat_lib.hex_rgb(hex_))
        brows = mat_lib.brow_colour(mat_lib.hex_rgb(hex_))
        assert luminance(brows) <= mat_lib.BROW_MAX_LUMINANCE + 1e-9 and luminance(brows) < luminance(hair), name
        np.testing.assert_allclose(brows / brows.sum(), hair / hair.sum(), atol=1e-9)  # the hair's own hue
        if luminance(hair) * 0.8 <= mat_lib.BROW_MAX_LUMINANCE:  # dark hair: the brows are the hair, darkened
            np.testing.assert_allclose(brows, 0.8 * hair, atol=1e-9)
    assert luminance(mat_lib.brow_colour(mat_lib.hex_rgb(mat_lib.HAIR_COLORS["white"]))) < 0.1 * luminance(
        srgb_to_linear(mat_lib.hex_rgb(mat_lib.HAIR_COLORS["white"])))


def _render_cloth(bpy, make_material, rest_scale: float = 1.0, shift: float = 0.0, strand=None) -> np.ndarray:
    """A 1 m square of cloth with the material `make_material(bpy)` seen from above in orthographic view, lit by a
    sun; its `rest` attribute is its own position (x across the image, z = the image's y, upwards; scaled), plus
    `shift` along x; `strand`: its `strand` attribute, a function of the vertices' (x, y) arrays -> (N, 3).
    -> (48, 48, 3) linear RGB, row 0 at the bottom (rest z = -0.5 x rest_scale)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    material = make_material(bpy)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.use_denoising = False
    scene.render.resolution_x = scene.render.resolution_y = 48
    scene.render.image_settings.file_format = "OPEN_EXR"
    mesh = bpy.data.meshes.new("cloth")
    n = 24
    xs = np.linspace(-0.5, 0.5, n + 1)
    verts = [(x, y, 0.0) for y in xs for x in xs]
    faces = [(j * (n + 1) + i, j * (n + 1) + i + 1, (j + 1) * (n + 1) + i + 1, (j + 1) * (n + 1) + i)
             for j in range(n) for i in range(n)]
    mesh.from_pydata(verts, [], faces)
    rest = mesh.attributes.new("rest", "FLOAT_VECTOR", "POINT")
    # the cloth faces the camera like the front of a body: rest x across, rest z up the image
    rest.data.foreach_set("vector", np.array([(rest_scale * x + shift, 0.0, rest_scale * y) for x, y, _ in verts],
                                             np.float32).ravel())
    if strand is not None:
        xy = np.array(verts)[:, :2]
        mesh.attributes.new("strand", "FLOAT_VECTOR", "POINT").data.foreach_set(
            "vector", np.asarray(strand(xy[:, 0], xy[:, 1]), np.float32).ravel())
    mesh.materials.append(material)
    obj = bpy.data.objects.new("cloth", mesh)
    scene.collection.objects.link(obj)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    cam.data.type = "ORTHO"
    cam.data.ortho_scale = 1.0
    cam.location = (0.0, 0.0, 2.0)
    scene.collection.objects.link(cam)
    scene.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.7, 0.3, 0.0)  # not straight down: no mirror highlight of the sun into the camera
    scene.collection.objects.link(sun)
    world = bpy.data.worlds.new("w")
    scene.world = world
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = 0.5
    scene.render.filepath = str(Path(bpy.app.tempdir) / "cloth.exr")
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(scene.render.filepath)
    px = np.array(img.pixels[:], np.float32).reshape(48, 48, 4)[..., :3]
    bpy.data.images.remove(img)
    return px



@pytest.mark.parametrize("pattern", ["plaid", "floral", "camo"])
def test_prints_render_as_a_pattern_of_the_fabric_colours(pattern):
    bpy = pytest.importorskip("bpy")
    red, blue = (0.8, 0.1, 0.1), (0.1, 0.2, 0.8)
    fabric = mat_lib.Fabric(pattern=pattern, color=red, color2=blue, scale=6.0, roughness=0.8, direction=0)
    # rest coordinates at 1/1 scale across the 1 m cloth: several repeats of the print in view
    px = _render_cloth(bpy, lambda bpy: mat_lib.fabric_material(bpy, "cloth", fabric))
    chroma = px / np.maximum(px.sum(-1, keepdims=True), 1e-6)
    reddish, bluish = chroma[..., 0] > 0.5, chroma[..., 2] > 0.4
    # both colours of the fabric show, each on a fair share of the cloth (a print, not one flat colour)
    assert 0.05 < reddish.mean() < 0.95 and 0.03 < bluish.mean() < 0.95, (reddish.mean(), bluish.mean())
    # the pattern is stuck to the rest coordinates: shifting them by a fraction of a repeat moves it
    moved = _render_cloth(bpy, lambda bpy: mat_lib.fabric_material(bpy, "cloth", fabric), shift=0.37 / fabric.scale)
    moved_red = (moved / np.maximum(moved.sum(-1, keepdims=True), 1e-6))[..., 0] > 0.5
    assert (moved_red != reddish).mean() > 0.05


def test_hair_streaks_run_along_the_strands():
    """The hair material draws its streaks from the mesh's ``strand`` coordinates (hair.strand_coordinates: cos and
    sin of the azimuth about the crown, height): fine across the strands, long along them. The cloth stands in for
    a 2 cm patch of hair on the side of a head of 9 cm radius, strands running up the image: the colour changes
    much faster across the image than up it (and without the attribute there would be no streaks at all)."""
    bpy = pytest.importorskip("bpy")
    patch, radius = 0.02, 0.09

    def strand(x, y):
        azimuth = x * patch / radius
        return np.stack([np.cos(azimuth), np.sin(azimuth), y * patch], -1)

    import dataclasses

    look = dataclasses.replace(mat_lib.Look.sample(np.random.default_rng(3)), hair=mat_lib.hex_rgb(
        mat_lib.HAIR_COLORS["blond"]))
    px = _render_cloth(bpy, lambda bpy: mat_lib.build_materials(bpy, look, "person", floor_z=-0.5)[
        SLOTS.index("hair")], strand=strand)
    grey = px.mean(-1)
    across, along = np.abs(np.diff(grey, axis=1)).mean(), np.abs(np.diff(grey, axis=0)).mean()
    assert across > 0.04 * grey.mean() and across > 1.8 * along, (across, along, grey.mean())


def test_shoes_have_soles_at_the_bottom_of_the_feet():
    """The shoe material: the sole colour from the body's lowest rest point up to the look's sole height, the
    upper's colour above (a 1 m cloth stands in for a shoe: rest z from -0.5 to 0.5, the 'floor' at -0.5)."""
    bpy = pytest.importorskip("bpy")
    import dataclasses

    look = dataclasses.replace(mat_lib.Look.sample(np.random.default_rng(3)), shoes=(0.1, 0.2, 0.8),
                               sole=(0.8, 0.1, 0.1), sole_height=0.25)
    px = _render_cloth(bpy, lambda bpy: mat_lib.build_materials(bpy, look, "person", floor_z=-0.5)[
        SLOTS.index("shoes")])
    rows = np.linspace(-0.5, 0.5, 49)[:-1] + 0.5 / 48  # rest z of each image row (row 0 at the bottom)
    sole_rows, upper_rows = rows < -0.5 + 0.25 - 0.03, rows > -0.5 + 0.25 + 0.03
    red, blue = px[..., 0], px[..., 2]
    assert (red[sole_rows] > 2 * blue[sole_rows]).mean() > 0.9  # a red sole below the sole height
    assert (blue[upper_rows] > 2 * red[upper_rows]).mean() > 0.9  # the blue upper above it
