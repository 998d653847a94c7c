"""datagen.scene.kubric_compat: Kubric 2023.12 patched for Blender 4.2 (real bpy, real Kubric)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import pytest

from datagen.scene.kubric_compat import translate_obj_import_kwargs


def test_translate_obj_import_kwargs():
    out = translate_obj_import_kwargs({"axis_forward": "-Z", "axis_up": "Y", "global_scale": 2.0})
    assert out == {"forward_axis": "NEGATIVE_Z", "up_axis": "Y", "global_scale": 2.0,
                   "use_split_objects": False, "use_split_groups": False}
    assert translate_obj_import_kwargs({"forward_axis": "Y"})["forward_axis"] == "Y"


@pytest.fixture(scope="module")
def kb_env(tmp_path_factory):
    pytest.importorskip("bpy")
    pytest.importorskip("kubric")
    from datagen.scene import kubric_compat

    kubric_compat.apply()
    kubric_compat.apply()  # idempotent
    import kubric as kb
    from kubric.renderer.blender import Blender
    from kubric.safeimport.bpy import bpy

    scene = kb.Scene(resolution=(32, 32), frame_start=1, frame_end=2)
    renderer = Blender(scene, scratch_dir=tmp_path_factory.mktemp("compat"), samples_per_pixel=1)
    return kb, bpy, scene, renderer


def test_apply_marks_applied_and_disables_render_motion_blur(kb_env):
    from datagen.scene import kubric_compat

    _, bpy, _, _ = kb_env
    assert kubric_compat.is_applied()
    # Cycles drops the vector (flow) pass when render motion blur is on
    assert bpy.context.scene.render.use_motion_blur is False


def test_principled_bsdf_sockets_renamed(kb_env):
    kb, _, scene, renderer = kb_env
    mat = kb.PrincipledBSDFMaterial(color=kb.Color(0.2, 0.4, 0.6), specular=0.8, transmission=0.3,
                                    emission=kb.Color(0.1, 0.0, 0.0), specular_tint=1.0)
    scene += mat
    inputs = mat.linked_objects[renderer].node_tree.nodes["Principled BSDF"].inputs
    assert inputs["Specular IOR Level"].default_value == pytest.approx(0.8)
    assert inputs["Transmission Weight"].default_value == pytest.approx(0.3)
    assert tuple(inputs["Emission Color"].default_value)[:3] == pytest.approx((0.1, 0.0, 0.0))
    assert inputs["Emission Strength"].default_value == pytest.approx(1.0)
    # tint 1.0 = fully the base colour (3.x float semantics mapped onto the 4.x colour socket)
    assert tuple(inputs["Specular Tint"].default_value)[:3] == pytest.approx((0.2, 0.4, 0.6), abs=1e-6)
    mat.roughness = 0.25  # observers still bound after the patch
    assert inputs["Roughness"].default_value == pytest.approx(0.25)


def test_obj_import_uses_wm_obj_import(kb_env, tmp_path):
    kb, _, scene, renderer = kb_env
    obj_path = tmp_path / "tri.obj"
    obj_path.write_text("o a\nv 0 0 0\nv 1 0 0\nv 0 2 0\nf 1 2 3\no b\nv 0 0 1\nv 1 0 1\nv 0 1 1\nf 4 5 6\n")
    # identity axes: Blender mesh coordinates == file coordinates (what PyBullet sees)
    ident = kb.FileBasedObject(name="ident", render_filename=str(obj_path), simulation_filename=None,
                               render_import_kwargs={"forward_axis": "Y", "up_axis": "Z"})
    # legacy (import_scene.obj) keyword names still accepted: OBJ y-up -> Blender z-up
    legacy = kb.FileBasedObject(name="legacy", render_filename=str(obj_path), simulation_filename=None,
                                render_import_kwargs={"axis_forward": "-Z", "axis_up": "Y"})
    scene += ident
    scene += legacy
    b_ident, b_legacy = ident.linked_objects[renderer], legacy.linked_objects[renderer]
    assert len(b_ident.data.polygons) == 2  # the two "o" groups joined into one object
    ys = sorted(v.co.y for v in b_ident.data.vertices)
    zs = sorted(v.co.z for v in b_legacy.data.vertices)
    assert ys[-1] == pytest.approx(2.0) and zs[-1] == pytest.approx(2.0)
    ident.position = (1.0, 2.0, 3.0)
    assert tuple(b_ident.location) == pytest.approx((1.0, 2.0, 3.0))


def _kubric_manifest(tmp_path):
    """A Kubric-format asset source (manifest + <id>.tar.gz with data.json) holding one prepared mesh."""
    import json
    import tarfile

    from datagen.scene import assets

    mesh = assets.prepare_mesh("duck", tmp_path / "cache")
    data = tmp_path / "data"
    data.mkdir()
    with tarfile.open(data / "duck.tar.gz", "w:gz") as tar:  # flat layout, like GSO's
        tar.add(mesh.obj_path, arcname="visual_geometry.obj")
        tar.add(mesh.urdf_path, arcname="object.urdf")
        (tmp_path / "data.json").write_text("{}")
        tar.add(tmp_path / "data.json", arcname="data.json")
    half = [e / 2 for e in mesh.extents]
    manifest = {"name": "toy", "assets": {"duck": {
        "asset_type": "FileBasedObject", "metadata": {"category": "bird"},
        "kwargs": {"render_filename": "{asset_dir}/visual_geometry.obj",
                   "simulation_filename": "{asset_dir}/object.urdf",
                   "bounds": [[-h for h in half], half], "mass": 1.0}}}}
    path = data / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("as_url", [False, True])
def test_kubric_asset_source_by_path_or_url(kb_env, tmp_path, as_url):
    from datagen.scene.assets import KubricSources
    from datagen.config.scene import AssetSourceConfig

    manifest = _kubric_manifest(tmp_path)
    src = str(manifest.as_uri()) if as_url else str(manifest)
    sources = KubricSources([AssetSourceConfig(manifest=src)], tmp_path / "work")
    assert sources.indices("object") == [0] and sources.asset_ids(0) == ["duck"]
    obj = sources.source(0).create(asset_id="duck")
    assert obj.metadata["category"] == "bird"
    assert Path(obj.render_filename).is_file() and Path(obj.simulation_filename).is_file()
    assert str(tmp_path / "work") in obj.render_filename  # unpacked into the scratch dir


def test_render_layers_after_patches(kb_env, tmp_path):
    """A real 2-frame render: every Kubric layer comes back, incl. flow and object coordinates."""
    kb, _, _, _ = kb_env
    from kubric.renderer.blender import Blender

    scene = kb.Scene(resolution=(24, 16), frame_start=1, frame_end=2)
    renderer = Blender(scene, scratch_dir=tmp_path, samples_per_pixel=2, use_denoising=False)
    cube = kb.Cube(name="cube", scale=(1, 1, 1), position=(0, 0, 0),
                   material=kb.PrincipledBSDFMaterial(color=kb.Color(0.8, 0.2, 0.2)))
    scene += cube
    scene += kb.DirectionalLight(name="sun", position=(1, -1, 3), look_at=(0, 0, 0), intensity=3.0)
    scene.camera = kb.PerspectiveCamera(name="cam", position=(0, -6, 2), look_at=(0, 0, 0))
    cube.keyframe_insert("position", 1)
    cube.position = (0.3, 0, 0)  # moves right in the image
    cube.keyframe_insert("position", 2)
    out = renderer.render()
    assert out["rgba"].shape == (2, 16, 24, 4)
    on_cube = out["segmentation"][0, ..., 0] == scene.assets.index(cube) + 1
    assert on_cube.sum() > 20
    assert out["object_coordinates"][0][on_cube].max() > 0  # AOV patch
    dy, dx = np.moveaxis(out["forward_flow"][0][on_cube], -1, 0)  # Kubric order: (d_row, d_col)
    assert np.median(dx) > 0.3 and abs(np.median(dy)) < 0.2
    assert np.isfinite(out["depth"]).all()
    # patch 5: reading back only what is asked gives Kubric's own arrays, bit for bit
    from datagen.scene.kubric_compat import read_back

    original = Blender.postprocess.__wrapped__
    for layers in (("rgba",), ("z", "segmentation", "forward_flow"), ("depth", "backward_flow", "normal", "uv"),
                   ("rgb", "object_coordinates")):
        mine, theirs = read_back(renderer, tmp_path, layers), original(renderer, tmp_path, layers)
        assert set(mine) == set(theirs) == set(layers)
        for k in layers:
            assert mine[k].dtype == theirs[k].dtype and mine[k].shape == theirs[k].shape, k
            assert mine[k].tobytes() == theirs[k].tobytes(), k
