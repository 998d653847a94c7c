"""anny people without Blender: retargeting, placement, faces, regions, BVH, the asset cache.

Real anny model (its cache is built once per machine on first use, minutes; then ~5 s per process to load),
real DeepMimic clips from pybullet_data, real BVH files written and parsed. About 30-40 s in all.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("anny")

from datagen.actors.humans import body as body_lib  # noqa: E402
from datagen.actors.humans import bvh as bvh_lib  # noqa: E402
from datagen.actors.humans import face as face_lib  # noqa: E402
from datagen.actors.humans import hair as hair_lib  # noqa: E402
from datagen.actors.humans import regions as reg_lib  # noqa: E402
from datagen.actors.humans import retarget  # noqa: E402
from datagen.actors.humans.actor import pose_human  # noqa: E402

# anny segment (bone head -> bone head) vs the canonical source segment that drives it
SEGMENTS = [("upperarm01.{s}", "lowerarm01.{s}", "shoulder.{s}", "elbow.{s}"),
            ("lowerarm01.{s}", "wrist.{s}", "elbow.{s}", "wrist.{s}"),
            ("upperleg01.{s}", "lowerleg01.{s}", "hip.{s}", "knee.{s}"),
            ("lowerleg01.{s}", "foot.{s}", "knee.{s}", "ankle.{s}")]


@pytest.fixture(scope="module")
def body():
    return body_lib.BodyModel(body_lib.Phenotype.sample(np.random.default_rng(3)))


def _segment_angles(body, rt: retarget.Retargeter, times: np.ndarray) -> np.ndarray:
    """Angles (deg) between every retargeted anny limb segment and the source's, (T, segments)."""
    pose = rt(times)
    _, heads = body.skin(pose.rotations, pose.root, vertex_subset=np.arange(10))
    L = body.rest.bone_labels.index
    segs = [tuple(x.format(s=side) for x in seg) for side in "LR" for seg in SEGMENTS]
    src = rt.source_directions(times, [(a, b) for _, _, a, b in segs])
    ours = np.stack([heads[:, L(b)] - heads[:, L(a)] for a, b, _, _ in segs], 1)
    ours /= np.linalg.norm(ours, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip((ours * src).sum(-1), -1.0, 1.0)))


@pytest.mark.parametrize("clip,mirror", [("walk", False), ("cartwheel", True), ("stand", False)])
def test_retargeted_bones_point_where_the_clip_bones_point(body, clip, mirror):
    src = retarget.builtin_source(clip)
    rt = retarget.Retargeter(src, body.rest, mirror=mirror)
    times = np.linspace(0.0, 0.95 * src.duration, 9)
    angles = _segment_angles(body, rt, times)
    assert angles.max() < 0.05, angles.max()
    # the motion is not trivial: the limbs really move between frames
    pose = rt(times)
    assert np.ptp(pose.rotations, axis=0).max() > 0.05


def test_mirror_swaps_left_and_right(body):
    src = retarget.builtin_source("punch")  # one arm punches: strongly asymmetric
    times = np.linspace(0.2, 0.8, 5) * src.duration
    plain = retarget.Retargeter(src, body.rest)(times)
    mirrored = retarget.Retargeter(src, body.rest, mirror=True)(times)
    M = retarget.MIRROR
    L, R = body.rest.bone("lowerarm01.L"), body.rest.bone("lowerarm01.R")
    # mirrored left forearm = reflection of the plain right forearm
    # (up to the tiny asymmetry of the anny body, whose left and right bones are calibrated separately)
    np.testing.assert_allclose(mirrored.rotations[:, L], M @ plain.rotations[:, R] @ M, atol=1e-5)
    np.testing.assert_allclose(mirrored.root, plain.root @ M, atol=1e-9)


def test_pose_human_deterministic_on_the_floor_and_placed():
    a = pose_human(np.random.default_rng(11), 6, 12.0, clip="walk", position=(0.5, -1.0), heading=0.3)
    b = pose_human(np.random.default_rng(11), 6, 12.0, clip="walk", position=(0.5, -1.0), heading=0.3)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert a.meta == b.meta
    hair = a.meta["hair_vertices"]
    assert a.vertices.shape == (8, 13718 + hair, 3) and a.faces.shape[0] >= 27420
    assert len(a.rest) == len(a.brow) == len(a.hairline) == len(a.eye_r) == 13718 + hair
    assert len(a.slots) == len(a.regions) == len(a.uv) == len(a.faces)
    assert np.isfinite(a.vertices).all()
    # lowest point of the clip touches z = 0: never below, and a walking foot reaches it in the window
    assert a.vertices[..., 2].min() >= -1e-4
    assert a.vertices[..., 2].min(axis=1).min() < 0.02
    # walking: a foot rests on the floor at every frame, and what stands on it does not slide
    v = a.vertices.astype(np.float64)
    assert v[..., 2].min(axis=1).max() < 0.01
    z = v[..., 2]
    stand = (z[1:] < 0.015) & (z[:-1] < 0.015)
    step = np.linalg.norm(np.diff(v[..., :2], axis=0), axis=-1)
    assert stand.sum() > 100 and np.median(step[stand]) < 0.005, (stand.sum(), np.median(step[stand]))
    mid = 1 + (6 - 1) // 2
    np.testing.assert_allclose(a.root[mid, :2], [0.5, -1.0], atol=1e-6)
    f = a.head_forward[mid]
    assert np.cos(np.arctan2(f[1], f[0]) - 0.3) > 0.8  # faces roughly `heading` (head motion adds a bit)
    assert 1.0 < a.meta["height_m"] < 2.1
    c = pose_human(np.random.default_rng(12), 6, 12.0, clip="walk")
    assert c.meta["phenotype"] != a.meta["phenotype"]


def test_face_track_blinks_expressions_and_gaze():
    labels = body_lib.load_model().facial_action_labels
    track = face_lib.FaceTrack.sample(np.random.default_rng(0), labels, 0.0, 4.0, blink_interval=1.5)
    times = np.arange(0, 4.0, 1 / 120)
    units, gaze, head = track.evaluate(times)
    assert units.shape == (len(times), 52) and units.min() >= 0 and units.max() <= 1
    blink = units[:, labels.index("eyeBlinkLeft")]
    assert blink.max() > 0.95 and (blink < 0.05).mean() > 0.5  # closes fully, mostly open
    assert len(track.blinks) >= 2
    # smooth: no jump bigger than a blink's closing speed (1 per 70 ms) between 1/120 s samples
    assert np.abs(np.diff(units, axis=0)).max() < 0.2
    assert np.ptp(gaze, axis=0).max() > 0.05 and np.abs(head).max() > 0.01
    flat = face_lib.FaceTrack.sample(np.random.default_rng(0), labels, 0.0, 4.0, expressive=0.0, head_motion=0.0,
                                     talk_probability=0.0)
    u, _, h = flat.evaluate(times)
    others = [i for i, n in enumerate(labels) if not n.startswith("eyeBlink")]
    assert u[:, others].max() == 0 and np.abs(h).max() == 0


def test_uv_labels_are_kept_on_disk_and_a_bad_file_is_recomputed(body, tmp_path, monkeypatch):
    """The per-polygon labels read from anny's UV images are the same for every body: a scene process reads them from
    the cache folder instead of decoding the images again; an unreadable file is computed again and rewritten."""
    monkeypatch.setattr(body_lib, "cache_dir", lambda: tmp_path)
    fresh = reg_lib._uv_labels_from_disk(body.rest.uv, "test")
    (path,) = tmp_path.glob("trackforge_uv_labels-*-test.npz")

    def same(a, b):
        return (a[0] == b[0]).all() and a[1].keys() == b[1].keys() and all((a[1][k] == b[1][k]).all() for k in a[1])

    assert same(reg_lib._uv_labels_from_disk(body.rest.uv, "test"), fresh)
    with np.load(path, allow_pickle=False) as z:  # what is in the file is what a process gets
        edited = {k: z[k] for k in z.files}
    edited["part"] = np.zeros_like(edited["part"])
    np.savez(path, **edited)
    assert set(reg_lib._uv_labels_from_disk(body.rest.uv, "test")[0]) == {str(edited["part_names"][0])}
    assert len(set(fresh[0])) > 5 and fresh[1]["face"].any() and not fresh[1]["face"].all()
    path.write_bytes(b"not an npz")
    assert same(reg_lib._uv_labels_from_disk(body.rest.uv, "test"), fresh)
    with np.load(path, allow_pickle=False) as z:  # rewritten whole
        assert len(z["part"]) == len(body.rest.faces)


def test_regions_cover_the_body_and_the_face(body):
    rng = np.random.default_rng(5)
    outfit = reg_lib.Outfit(sleeve=0.5, hem=0.0, neckline=0.03, legs=1.95, bottom="trousers", dress=False,
                            boots=2.0, hair="short")
    lab = reg_lib.label_body(body.rest, outfit)
    counts = {r: lab.count(r) for r in reg_lib.REGIONS}
    assert all(counts[r] > 200 for r in ("skin", "face", "hair", "top", "bottom", "shoes")), counts
    faces = body.rest.faces
    cen = body.rest.vertices[faces].mean(1)
    face = lab.region == reg_lib.REGIONS.index("face")
    eyes = 0.5 * (body.rest.head("eye.L") + body.rest.head("eye.R"))
    # facial polygons are on the front of the head, around the eyes
    assert np.median(np.linalg.norm(cen[face] - eyes, axis=1)) < 0.08
    assert (cen[face, 1] < body.rest.head("head")[1]).mean() > 0.9  # anny faces -y
    # eyes, lips and brows are part of "face" and distinct material slots
    for slot in ("eye", "lips", "face_skin"):
        assert (lab.slot == reg_lib.SLOTS.index(slot)).sum() > 20, slot
    # long sleeves cover more arm than short ones; shorts less leg than trousers
    long = reg_lib.label_body(body.rest, reg_lib.Outfit(**{**outfit.to_dict(), "sleeve": 1.9, "legs": 0.6,
                                                          "bottom": "shorts"}))
    assert long.count("top") > lab.count("top") and long.count("bottom") < lab.count("bottom")
    sampled = reg_lib.Outfit.sample(rng, female=True)
    assert sampled.hair in reg_lib.HAIR_STYLES and sampled.bottom in reg_lib.BOTTOM_KINDS
    assert {reg_lib.Outfit.sample(rng, female=True, hair_styles=["bun"]).hair for _ in range(5)} == {"bun"}
    # brows and the hairline are painted per vertex: brows above each eye on the front of the face; the hair
    # polygons lie inside the painted hairline
    v = body.rest.vertices
    browed = lab.brow > 0.3  # the face mesh is coarse: a few vertices per brow, the shader interpolates between
    assert 4 <= browed.sum() < 200, browed.sum()
    assert (v[browed, 2] > eyes[2]).all() and (v[browed, 1] < eyes[1] + 0.02).all()
    assert {bool(x) for x in v[browed, 0] > eyes[0]} == {True, False}  # both brows
    lashed = lab.lash > 0  # the eyelids' rims, around both eyes
    near_eye = np.minimum(np.linalg.norm(v - body.rest.head("eye.L"), axis=1),
                          np.linalg.norm(v - body.rest.head("eye.R"), axis=1))
    assert 20 < lashed.sum() < 300 and near_eye[lashed].max() < 0.025, (lashed.sum(), near_eye[lashed].max())
    hair_faces = faces[lab.slot == reg_lib.SLOTS.index("hair")]
    assert (lab.hairline[hair_faces] > reg_lib.HAIR_MARGIN).all()
    bald = reg_lib.label_body(body.rest, reg_lib.Outfit(**{**outfit.to_dict(), "hair": "bald"}))
    assert bald.count("hair") == 0 and (bald.hairline < 0).all()


def test_lips_and_neckline_are_painted_across_the_polygons_they_cross(body):
    """The lips' outline and the neckline are per-vertex signed distances: a polygon wholly inside the lips is the
    lips' slot, one the outline crosses the face skin's (which paints the lips up to the outline; the mouth's inside
    excepted); a polygon the neckline crosses is the top's (which paints skin below it), one wholly inside the neck
    sphere is skin."""
    outfit = reg_lib.Outfit(sleeve=0.5, hem=0.0, neckline=0.03, legs=1.95, bottom="trousers", dress=False,
                            boots=2.0, hair="short")
    lab = reg_lib.label_body(body.rest, outfit)
    faces, v = body.rest.faces, body.rest.vertices
    S = reg_lib.SLOTS.index
    lo, hi = lab.lips[faces].min(1), lab.lips[faces].max(1)
    assert (lo[lab.slot == S("lips")] > 0).all() and (lab.slot == S("lips")).sum() > 20
    crossing = (hi > 0) & (lo <= 0) & (lab.slot != S("inner"))  # the mouth's inside stays the mouth's
    assert crossing.sum() > 10 and (lab.slot[crossing] == S("face_skin")).all()
    eyes = 0.5 * (body.rest.head("eye.L") + body.rest.head("eye.R"))
    lip_points = v[lab.lips > 0]
    assert 0.03 < eyes[2] - lip_points[:, 2].mean() < 0.1 and (lip_points[:, 1] < eyes[1]).all()  # below, in front
    lo, hi = lab.collar[faces].min(1), lab.collar[faces].max(1)
    below_chin = v[faces].mean(1)[:, 2] < body.rest.head("neck01")[2]  # (the sphere also cuts the jaw: no top)
    neck = (lo <= 0) & (hi > 0) & below_chin
    assert neck.sum() > 10 and (lab.slot[neck] == S("top")).all(), np.unique(lab.slot[neck], return_counts=True)
    assert (lab.slot[hi <= 0] != S("top")).all()
    assert np.linalg.norm(v[lab.collar < 0] - body.rest.head("neck01"), axis=1).max() < 0.2
    deeper = reg_lib.label_body(body.rest, reg_lib.Outfit(**{**outfit.to_dict(), "neckline": 0.06}))
    assert (deeper.collar < 0).sum() > (lab.collar < 0).sum() and deeper.count("top") < lab.count("top")


@pytest.mark.parametrize("style", ["short", "long", "bun", "buzz"])
def test_hair_geometry_sits_on_the_head_and_follows_it(body, style):
    """Hair geometry per style: a shell just off the scalp whose rim dips under it (no gap at its outline), a
    draped curtain for long hair, a bun; none for a buzz cut. Posed, the shell keeps its distance to the scalp while
    the head turns."""
    from scipy.spatial import cKDTree

    outfit = reg_lib.Outfit(sleeve=0.5, hem=0.0, neckline=0.03, legs=1.95, bottom="trousers", dress=False,
                            boots=2.0, hair=style)
    lab = reg_lib.label_body(body.rest, outfit)
    mask = lab.slot == reg_lib.SLOTS.index("hair")
    hair = hair_lib.grow_hair(body.rest, mask, style, np.random.default_rng(1))
    again = hair_lib.grow_hair(body.rest, mask, style, np.random.default_rng(1))
    np.testing.assert_array_equal(hair.vertices, again.vertices)
    parts = set(np.unique(hair.parts).tolist())
    assert parts == {"short": {0}, "long": {0, 1}, "bun": {0, 2}, "buzz": set()}[style]
    if style == "buzz":
        assert len(hair.vertices) == 0
        return
    assert hair.faces.max() < len(hair.vertices) and hair.faces.min() >= 0
    np.testing.assert_allclose(hair.weights.sum(1), 1.0, atol=1e-6)
    rest = body.rest.vertices
    normals = hair_lib.vertex_normals(rest, body.rest.faces)
    tree = cKDTree(rest)
    dist, near = tree.query(hair.vertices)
    above = ((hair.vertices - rest[near]) * normals[near]).sum(1)  # height over its nearest body vertex's surface
    shell_faces = hair.faces[hair.parts == 0]
    shell = np.unique(shell_faces)
    # the shell's rim (vertices on an edge of one shell triangle only) lies just under the scalp ...
    edges = np.sort(np.concatenate([shell_faces[:, [0, 1]], shell_faces[:, [1, 2]], shell_faces[:, [2, 0]]]), 1)
    edges, uses = np.unique(edges, axis=0, return_counts=True)
    rim = np.zeros(len(hair.vertices), bool)
    rim[edges[uses == 1].ravel()] = True
    assert rim[shell].mean() > 0.02 and (above[rim] < 0).all() and (above[rim] > -2 * hair_lib.SINK).all()
    # ... every other hair vertex is outside the body, the shell at least MIN_LIFT off it
    assert np.quantile(above[~rim], 0.02) > 0.0, np.quantile(above[~rim], 0.02)
    lo, hi = hair_lib.STYLES[style]["volume"]
    inner = shell[~rim[shell]]
    assert hair_lib.MIN_LIFT * 0.9 <= dist[inner].min() and dist[shell].max() < 1.5 * hi + 0.01
    eyes = 0.5 * (body.rest.head("eye.L") + body.rest.head("eye.R"))
    assert (hair.vertices[shell, 2] > eyes[2] - 0.12).all()  # on the head
    if style == "long":  # the curtain hangs from the head down the back
        curtain = np.unique(hair.faces[hair.parts == 1])
        assert hair.vertices[curtain, 2].min() < eyes[2] - 0.1
        assert np.median(hair.vertices[curtain, 1]) > eyes[1] + 0.05  # behind the face (anny faces -y)
        # the strands' texture coordinates follow the curtain's strands (its grid's columns, top to bottom): down
        # a strand the azimuth about the crown turns less than from one strand to the next
        grid = hair_lib.strand_coordinates(body.rest, hair.vertices[curtain]).reshape(
            hair_lib.CURTAIN_COLUMNS, hair_lib.CURTAIN_ROWS, 3)
        azimuth = np.arctan2(grid[..., 1], grid[..., 0])

        def turn(a, b):
            return np.abs((a - b + np.pi) % (2 * np.pi) - np.pi)

        down = turn(azimuth, azimuth[:, :1]).max(1)  # (C,) the most a strand turns from its root
        across = turn(azimuth[1:], azimuth[:-1]).mean(1)  # (C - 1,) between neighbouring strands
        assert np.median(down) < 0.7 * np.median(across), (np.degrees(down), np.degrees(across))
        np.testing.assert_allclose(np.linalg.norm(grid[..., :2], axis=-1), 1.0, atol=1e-6)
        np.testing.assert_allclose(grid[..., 2].ravel(), hair.vertices[curtain, 2])
    # posed with the head turning: the shell stays at its rest distance from the scalp vertex it was lifted from
    labels = body.rest.bone_labels
    T = 4
    rotations = np.tile(np.eye(3), (T, len(labels), 1, 1))
    for t, yaw in enumerate(np.linspace(0.0, 0.6, T)):
        c, s_ = np.cos(yaw), np.sin(yaw)
        rotations[t, labels.index("head")] = [[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]]
    root = np.tile(body.rest.head(labels[0]), (T, 1))
    verts, _ = body.skin(rotations, root, extra=(hair.vertices, hair.weights))
    assert verts.shape == (T, len(rest) + len(hair.vertices), 3)
    posed_body, posed_hair = verts[:, :len(rest)], verts[:, len(rest):]
    np.testing.assert_allclose(posed_body[0], rest, atol=1e-5)
    gap = np.linalg.norm(posed_hair[:, shell] - posed_body[:, near[shell]], axis=-1)  # (T, S)
    crown = hair.vertices[shell, 2] > eyes[2]  # skinned to the head alone; at the nape head and neck blend
    np.testing.assert_allclose(gap[:, crown], np.broadcast_to(gap[0, crown], gap[:, crown].shape), atol=2e-3)
    np.testing.assert_allclose(gap, np.broadcast_to(gap[0], gap.shape), atol=6e-3)
    assert np.linalg.norm(posed_hair[-1, shell] - posed_hair[0, shell], axis=-1).max() > 0.03  # it did turn


def test_phenotypes_are_realistic_and_seeded():
    draws = [body_lib.Phenotype.sample(np.random.default_rng(s)) for s in range(200)]
    v = np.array([d.vector() for d in draws])
    assert v.min() >= 0 and v.max() <= 1
    ages = v[:, 1]
    assert (ages >= body_lib.ADULT_AGE[0]).mean() > 0.75 and ages.min() >= body_lib.CHILD_AGE[0]
    assert body_lib.Phenotype.sample(np.random.default_rng(7)) == body_lib.Phenotype.sample(np.random.default_rng(7))


# ------------------------------------------------------------------------------------------------------- BVH
def test_bvh_round_trip_and_retarget(tmp_path, body):
    src = retarget.deepmimic_source("dance_a")
    written = bvh_lib.write_bvh(tmp_path / "dance.bvh", bvh_lib.source_to_bvh(src, fps=30.0))
    parsed = bvh_lib.read_bvh(written)
    again = bvh_lib.write_bvh(tmp_path / "again.bvh", parsed)
    assert again.read_text() == written.read_text()  # writer and reader agree exactly
    loaded = bvh_lib.load_source(written)
    assert {"pelvis", "chest", "head", "wrist.L", "ankle.R"} <= set(loaded.joints)
    times = np.arange(parsed.num_frames)[::5] / 30.0  # frame times: no interpolation in between
    p_src, _ = src.sample(times)
    p_bvh, _ = loaded.sample(times)
    cols = [src.joints.index(j) for j in loaded.joints]
    np.testing.assert_allclose(p_src[:, cols] @ bvh_lib.Z_TO_Y_UP.T, p_bvh, atol=1e-5)
    # retargeting the BVH (Y up, rest rotations I) gives the same anny pose as the clip itself (Z up)
    a = retarget.Retargeter(src, body.rest)(times)
    b = retarget.Retargeter(loaded, body.rest)(times)
    np.testing.assert_allclose(a.rotations, b.rotations, atol=1e-4)
    np.testing.assert_allclose(a.root, b.root, atol=1e-4)
    m = pose_human(np.random.default_rng(1), 4, 12.0, bvh=written)
    assert m.meta["clip"] == "bvh:dance.bvh" and np.isfinite(m.vertices).all()


def test_bvh_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n}\n"
                   "MOTION\nFrames: 2\nFrame Time: 0.03\n0 0 0\n1 2\n")
    with pytest.raises(bvh_lib.BVHError, match="expected 2 frames x 3 channels") as err:
        bvh_lib.read_bvh(bad)
    assert "\n" not in str(err.value)
    bad.write_text("ROOT x\n")
    with pytest.raises(bvh_lib.BVHError, match="no MOTION"):
        bvh_lib.read_bvh(bad)
    ok = tmp_path / "fish.bvh"  # parses, but is no human
    ok.write_text("HIERARCHY\nROOT Body\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
                  " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.03\n0 0 0\n")
    with pytest.raises(ValueError, match="lacks the canonical joints"):
        bvh_lib.load_source(ok)


def test_motion_files_are_parsed_when_the_config_is_loaded(tmp_path):
    """A garbage BVH, a file that parses but is no human, and a good one: the bad ones stop the config load (and
    `datagen generate`, before any scene or output) with one line naming the key and the file; no scene ever
    renders them, so no retry with new seeds is spent on them."""
    import subprocess
    import sys
    from pathlib import Path

    from datagen.config import ConfigError, load_data_config

    repo = Path(__file__).resolve().parents[2]
    good = bvh_lib.write_bvh(tmp_path / "dance.bvh", bvh_lib.source_to_bvh(retarget.deepmimic_source("dance_a"),
                                                                           fps=30.0))
    garbage = tmp_path / "garbage.bvh"
    garbage.write_bytes(b"\x00\x01 this is not a BVH file \xff" * 10)
    fish = tmp_path / "fish.bvh"
    fish.write_text("HIERARCHY\nROOT Body\n{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
                    " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.03\n0 0 0\n")
    folder = tmp_path / "motions"
    folder.mkdir()
    (folder / "a.bvh").write_bytes(good.read_bytes())
    (folder / "b.bvh").write_bytes(garbage.read_bytes())

    def actors(*paths) -> str:
        return f"scene.actors=[{{kind: human, options: {{bvh: [{', '.join(str(p) for p in paths)}]}}}}]"

    tiny = repo / "configs" / "data" / "tiny.yaml"
    cfg = load_data_config(tiny, [actors(good)])
    assert cfg.scene.actors[0].options["bvh"] == [str(good)]
    for paths, file, why in (((good, garbage), garbage, "no MOTION section"),
                             ((fish,), fish, "lacks the canonical joints"),
                             ((folder,), folder / "b.bvh", "no MOTION section")):
        with pytest.raises(ConfigError) as err:
            load_data_config(tiny, [actors(*paths)])
        msg = str(err.value)
        assert msg.startswith(f"bad value for 'scene.actors[0].options': {file}: ") and why in msg, msg
        assert "\n" not in msg
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "datagen", "generate", "--config", str(tiny), "--out", str(out),
                           actors(garbage)], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: bad value for 'scene.actors[0].options': {garbage}: no MOTION section"], proc.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------- cache
@pytest.mark.slow
def test_cache_build_is_atomic_and_reuses_finished_stages(tmp_path, capfd):
    """A cache that lacks only the final (compact) file: ensure_cache builds just that stage in a scratch folder
    and moves it into place; the existing stages are hard-linked, not rebuilt; a second call is a no-op."""
    from anny.paths import get_anny_cache_path, set_anny_cache_path

    real = body_lib.cached_model_file()
    assert real is not None and real.is_file(), "run any anny test once to build the cache"
    fresh = tmp_path / "anny_cache"
    (fresh / real.parent.name).mkdir(parents=True)
    for f in real.parent.glob("*.safetensors"):
        if f.name != real.name:
            try:
                os.link(f, fresh / real.parent.name / f.name)
            except OSError:
                pytest.skip("no hard links between the anny cache and tmp_path (would rebuild for minutes)")
    old = get_anny_cache_path()
    set_anny_cache_path(fresh)
    try:
        assert not body_lib.cache_ready()
        (fresh / ".build-99999999").mkdir()  # leftover of a killed build
        assert body_lib.ensure_cache(progress=True) == fresh
        err = capfd.readouterr().err
        assert f"building the anny body-model cache once in {fresh}" in err and f"anny cache ready in {fresh}" in err
        assert "3/3 stages" in err  # the progress bar went through anny's three cache stages
        assert body_lib.cache_ready()
        assert not list(fresh.glob(".build-*"))
        built = body_lib.cached_model_file()
        assert built.stat().st_size == real.stat().st_size
        stamp = built.stat().st_mtime_ns
        body_lib.ensure_cache(progress=True)
        assert built.stat().st_mtime_ns == stamp and "building" not in capfd.readouterr().err
    finally:
        set_anny_cache_path(old)


# ---------------------------------------------------------------------------------------------------- configs
def test_human_presets_load_and_bad_values_are_one_line(tmp_path):
    from datagen.config import ConfigError, load_data_config

    root = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "data"
    face = load_data_config(root / "face_closeup.yaml")
    assert set(face.scene.camera_framing) <= {"face", "upper_body"} and face.scene.actor_groups()[0].kind == "human"
    mix = load_data_config(root / "humans_mix.yaml")
    assert any(g.herd for g in mix.scene.actor_groups()) and "scene" in mix.scene.camera_framing
    for override, key in ((["scene.camera_framing=[portrait]"], "camera_framing"),
                          (["scene.actors=[{kind: human, options: {clips: [moonwalk]}}]"], "actors[0]"),
                          (["scene.actors=[{kind: human, options: {bvh: [/nonexistent.bvh]}}]"], "actors[0]"),
                          (["scene.num_humans=0", "scene.actors=[]"], "camera_framing")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[")) as err:
            load_data_config(root / "face_closeup.yaml", override)
        assert "\n" not in str(err.value)


def _closeup(clip: str, framing: str, seed: int):
    """A person playing ``clip`` (24 frames at 12 fps, face_closeup's head motion) filmed with ``framing`` ->
    (camera positions, aim points, head points at the camera keys 0..T+1 (T + 2, 3), the framing used)."""
    from types import SimpleNamespace

    from datagen.config.scene import SceneConfig
    from datagen.scene.camera import _closeup_path

    m = pose_human(np.random.default_rng(seed), 24, 12.0, clip=clip, head_motion=1.5)
    rendered = slice(1, 25)
    actor = SimpleNamespace(points={"head": m.head[rendered], "face_front": m.head[rendered] +
                                    m.head_forward[rendered]}, trajectory=m.root[rendered, :2], radius=0.45)
    cfg = SceneConfig(resolution=[128, 128], num_frames=24, fps=12)
    pos, aim, used = _closeup_path(cfg, np.random.default_rng(100 + seed), SimpleNamespace(actors=[actor]), framing,
                                   26)
    head = np.concatenate([m.head[1:2], m.head[rendered], m.head[24:25]])
    return pos, aim, head, used


@pytest.mark.parametrize("clip,framing", [("walk", "face"), ("stand", "face"), ("dance_a", "upper_body")])
def test_closeup_camera_keeps_the_head_near_the_middle(clip, framing):
    """A close-up's camera (datagen.scene.camera._closeup_path) follows a moving person's head like an operator:
    the head stays within Framing.stray of the visible height of the aim point, i.e. near the middle of the image,
    in every frame, however far the drawn follow share would let it stray (before the bound, a walker's head went
    12 degrees off the middle of a face close-up and a dancer's out of the picture)."""
    from datagen.config.scene import SceneConfig
    from datagen.scene.camera import FRAMINGS

    cfg = SceneConfig(resolution=[128, 128])
    tan_half_fov = cfg.sensor_width / 2 / cfg.focal_length
    worst = 0.0
    for seed in range(6):
        pos, aim, head, used = _closeup(clip, framing, seed)
        assert used == framing
        look, to_head = aim - pos, head - np.array([0.0, 0.0, FRAMINGS[framing].below]) - pos
        cos = (look * to_head).sum(1) / np.linalg.norm(look, axis=1) / np.linalg.norm(to_head, axis=1)
        worst = max(worst, float(np.arccos(np.clip(cos, -1.0, 1.0)).max()))
    # stray x the visible height, seen from the framing's distance: atan(2 stray tan(half_fov)) (face: 5.2 degrees)
    assert worst < np.arctan(1.1 * 2 * FRAMINGS[framing].stray * tan_half_fov), np.degrees(worst)


@pytest.mark.parametrize("clip,expected", [("stand", "face"), ("walk", "face"), ("dance_a", "upper_body"),
                                           ("backflip", "body"), ("roll", "body")])
def test_a_wild_subject_widens_the_closeup(clip, expected):
    """Nobody films a dance or a somersault from 25 cm: a face close-up of a subject whose head strays from a
    straight course by more than Framing.calm widens to the upper body, and further to the body (a face close-up
    of a dancer left the camera inside the bending body: black frames)."""
    assert _closeup(clip, "face", 0)[3] == expected
