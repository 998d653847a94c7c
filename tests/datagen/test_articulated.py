"""Mocap parsing, forward kinematics and Kubric actors (datagen.mocap / datagen.articulated).

Real components only: the pybullet_data clips and URDFs, pybullet FK, and one tiny real Kubric render.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytest.importorskip("pybullet")

from datagen import articulated, mocap  # noqa: E402


def _relative_poses(poses: np.ndarray) -> np.ndarray:
    """(T, P, 4, 4) world poses -> poses relative to part 0 (the root): placement-independent body shape."""
    return np.einsum("tij,tpjk->tpik", np.linalg.inv(poses[:, 0]), poses)


@pytest.mark.parametrize("kind", mocap.KINDS)
def test_every_clip_parses(kind):
    names = mocap.list_clips(kind)
    assert len(names) >= (15 if kind == "human" else 1)
    n_joints = 12
    for name in names:
        clip = mocap.load_clip(kind, name)
        assert clip.num_keyframes >= 2 and clip.duration > 0.2
        assert np.all(np.diff(clip.times) > 0)
        assert np.isfinite(clip.root_pos).all() and np.isfinite(clip.root_quat).all()
        np.testing.assert_allclose(np.linalg.norm(clip.root_quat, axis=1), 1.0, atol=1e-6)
        assert len(clip.joints) == n_joints
        for values in clip.joints.values():
            assert values.shape in ((clip.num_keyframes, 4), (clip.num_keyframes, 1))
            assert np.isfinite(values).all()
        # Z-up world: the root stays above the floor and well below 2 m
        assert 0.05 < clip.root_pos[:, 2].max() < 2.0, name
    with pytest.raises(ValueError, match="unknown"):
        mocap.load_clip(kind, "no_such_clip")


@pytest.mark.parametrize("kind,clip", [("human", "walk"), ("human", "cartwheel"), ("animal", "walk")])
def test_fk_is_finite_and_limbs_keep_their_length(kind, clip):
    sk = mocap.get_skeleton(kind)
    motion = mocap.load_clip(kind, clip)
    joints = [sk.joint_positions(mocap.clip_state(motion, t)) for t in np.linspace(0, 2.5 * motion.duration, 40)]
    names = list(joints[0])
    pos = np.stack([[j[n] for n in names] for j in joints])  # (T, L, 3)
    assert np.isfinite(pos).all()
    index = {n: i for i, n in enumerate(names)}
    checked = 0
    for name, link in sk.link_index.items():
        if link < 0:
            continue
        parent = [n for n, j in sk.link_index.items() if j == sk.parent_of(link)][0]
        length = np.linalg.norm(pos[:, index[name]] - pos[:, index[parent]], axis=-1)
        assert length.max() - length.min() < 1e-5, (name, parent, length.min(), length.max())
        checked += length.mean() > 0.05  # real bones (not co-located frames)
    assert checked >= 8
    # the body really moves: some joint travels relative to the root
    rel = pos - pos[:, :1]
    assert np.ptp(rel, axis=0).max() > 0.05


def test_humanoid_is_upright_and_facing_plus_x():
    """Clips are Y-up; after conversion the walk's head is above its feet and it walks towards +x."""
    sk = mocap.get_skeleton("human")
    clip = mocap.load_clip("human", "walk")
    j0 = sk.joint_positions(mocap.clip_state(clip, 0.0))
    assert j0["neck"][2] - j0["right_ankle"][2] > 1.0
    assert mocap.clip_state(clip, clip.duration * 0.99).root[0, 3] - j0["root"][0] > 0.8
    assert abs(mocap.heading_of(mocap.clip_state(clip, 0.0).root, "human")) < 0.3


def test_wrapping_clip_continues_from_its_end():
    clip = mocap.load_clip("human", "walk")
    c = mocap.cycle_transform(clip)
    for t in (0.1, 0.7):
        a = mocap.clip_state(clip, t)
        b = mocap.clip_state(clip, t + clip.duration)
        np.testing.assert_allclose(b.root, c @ a.root, atol=1e-9)
        for j in a.joints:
            np.testing.assert_allclose(a.joints[j], b.joints[j], atol=1e-12)
    # the next cycle starts where the last one ended: continuous across the wrap
    before = mocap.clip_state(clip, clip.duration - 1e-4).root
    after = mocap.clip_state(clip, clip.duration + 1e-4).root
    assert np.linalg.norm(before[:3, 3] - after[:3, 3]) < 0.01


@pytest.mark.parametrize("kind", mocap.KINDS)
def test_actor_rests_on_the_floor(kind):
    for seed in range(3):
        m = articulated.pose_actor(kind, np.random.default_rng(seed), 12, 12.0,
                                   clip="walk", vary_body=(seed != 0))
        lows = []
        for t in range(12):
            lows.append(min(float((v @ m.poses[t, i, :3, :3].T + m.poses[t, i, :3, 3])[:, 2].min())
                            for i, (v, _) in enumerate(m.part_meshes)))
        # nothing below the floor, and while walking some foot is on (or very near) it every frame
        assert min(lows) > -1e-6
        assert max(lows) < 0.05 * m.scale, lows
        mid = (12 - 1) // 2
        np.testing.assert_allclose(m.poses[mid, 0, :2, 3], m.position, atol=1e-9)
        assert abs(np.angle(np.exp(1j * (mocap.heading_of(m.poses[mid, 0], kind) - m.heading)))) < 1e-6


@pytest.mark.parametrize("kind", mocap.KINDS)
def test_phase_and_speed_shift_clip_time(kind):
    fps, n = 10.0, 8
    clip = mocap.load_clip(kind, "walk")
    kw = dict(clip="walk", scale=1.0, vary_body=False)
    base = articulated.pose_actor(kind, np.random.default_rng(0), n, fps, phase=0.1, speed=1.0, **kw)
    # starting k frames later in the clip = the same body pose k frames later
    k = 3
    later = articulated.pose_actor(kind, np.random.default_rng(0), n, fps, speed=1.0,
                                   phase=0.1 + k / fps / clip.duration, **kw)
    np.testing.assert_allclose(_relative_poses(later.poses)[: n - k], _relative_poses(base.poses)[k:], atol=1e-6)
    # double speed: frame i shows clip time 2i / fps, and the root covers the distance of 2n - 1 frames
    fast = articulated.pose_actor(kind, np.random.default_rng(0), n, fps, phase=0.1, speed=2.0, **kw)
    slow = articulated.pose_actor(kind, np.random.default_rng(0), 2 * n - 1, fps, phase=0.1, speed=1.0, **kw)
    np.testing.assert_allclose(_relative_poses(fast.poses), _relative_poses(slow.poses)[::2], atol=1e-6)
    d_fast = np.linalg.norm(fast.poses[-1, 0, :3, 3] - fast.poses[0, 0, :3, 3])
    d_slow = np.linalg.norm(slow.poses[-1, 0, :3, 3] - slow.poses[0, 0, :3, 3])
    assert d_fast == pytest.approx(d_slow, abs=1e-6)
    # and a different phase really is a different pose
    assert np.abs(_relative_poses(later.poses)[0] - _relative_poses(base.poses)[0]).max() > 1e-3


def test_laikago_walks_forward():
    clip = mocap.load_clip("animal", "walk")
    start, end = mocap.clip_state(clip, 0.0).root, mocap.clip_state(clip, 2 * clip.duration).root
    step = end[:3, 3] - start[:3, 3]
    heading = mocap.heading_of(start, "animal")
    forward = step[0] * np.cos(heading) + step[1] * np.sin(heading)
    assert forward > 0.3  # ~0.27 m/s at speed 1
    assert abs(step[2]) < 0.05
    # legs below the body: every lower leg origin is lower than the chassis
    sk = mocap.get_skeleton("animal")
    j = sk.joint_positions(mocap.clip_state(clip, 0.3))
    for leg in ("FR", "FL", "RR", "RL"):
        assert j[f"{leg}_lower_leg"][2] < j["chassis"][2] - 0.1


def test_procedural_quadruped_changes_proportions(tmp_path):
    body = {"body_length": 1.2, "leg_length": 0.9}
    varied = mocap.Skeleton("animal", urdf=articulated._varied_laikago_urdf(body, tmp_path))
    try:
        base = mocap.get_skeleton("animal")
        state = mocap.clip_state(mocap.load_clip("animal", "walk"), 0.0)
        a, b = base.joint_positions(state), varied.joint_positions(state)

        def dist(j, x, y):
            return np.linalg.norm(j[x] - j[y])

        assert dist(b, "FR_hip_motor", "RR_hip_motor") == pytest.approx(1.2 * dist(a, "FR_hip_motor", "RR_hip_motor"))
        assert dist(b, "FR_upper_leg", "FR_lower_leg") == pytest.approx(0.9 * dist(a, "FR_upper_leg", "FR_lower_leg"))
    finally:
        varied.close()


def test_procedural_human_changes_limbs_and_girth(tmp_path):
    body = {"leg_length": 1.08, "arm_length": 0.9, "girth": 1.2}
    varied = mocap.Skeleton("human", urdf=articulated._varied_humanoid_urdf(body, tmp_path))
    try:
        base = mocap.get_skeleton("human")
        state = mocap.clip_state(mocap.load_clip("human", "run"), 0.2)
        a, b = base.joint_positions(state), varied.joint_positions(state)
        for x, y, k in (("left_knee", "left_ankle", 1.08), ("right_hip", "right_knee", 1.08),
                        ("left_elbow", "left_wrist", 0.9), ("chest", "neck", 1.0)):
            assert np.linalg.norm(b[x] - b[y]) == pytest.approx(k * np.linalg.norm(a[x] - a[y]))
        thigh_a = next(p for p in base.parts if p.name == "left_hip").vertices
        thigh_b = next(p for p in varied.parts if p.name == "left_hip").vertices
        assert np.ptp(thigh_b[:, 0]) == pytest.approx(1.2 * np.ptp(thigh_a[:, 0]))  # girth
        assert np.ptp(thigh_b[:, 1]) > np.ptp(thigh_a[:, 1])  # longer
    finally:
        varied.close()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("bpy") is None or importlib.util.find_spec("kubric") is None,
                    reason="Kubric/bpy not installed")
def test_kubric_render_shows_human_and_animal(tmp_path):
    from datagen import kubric_compat

    kubric_compat.apply()
    import kubric as kb
    from kubric.renderer.blender import Blender
    from kubric.simulator.pybullet import PyBullet

    n = 4
    scene = kb.Scene(resolution=(64, 64), frame_start=1, frame_end=n, frame_rate=12)
    renderer = Blender(scene, scratch_dir=str(tmp_path / "blender"), samples_per_pixel=2, use_denoising=False)
    scene += kb.Cube(name="floor", scale=(10, 10, 0.01), position=(0, 0, -0.01), static=True, background=True)
    scene += kb.DirectionalLight(name="sun", position=(3, -2, 6), look_at=(0, 0, 0), intensity=3.0)
    scene.camera = kb.PerspectiveCamera(name="cam", position=(0.5, -4.0, 1.3), look_at=(0.5, 0, 0.6),
                                        focal_length=30)
    simulator = PyBullet(scene, str(tmp_path / "sim"))
    rng = np.random.default_rng(0)
    human = articulated.add_articulated_actor(scene, "human", rng, n, 12.0, tmp_path, clip="walk",
                                              position=(-0.3, 0.0), heading=0.0, speed=1.0)
    animal = articulated.add_articulated_actor(scene, "animal", rng, n, 12.0, tmp_path,
                                               position=(1.3, 0.0), heading=np.pi)
    nh, na = len(human.objects), len(animal.objects)
    assert nh in (15, 16) and na == 15  # 15 links (+ hair) / 13 links + head + tail
    assert human.poses.shape == (n, nh, 4, 4) and animal.poses.shape == (n, na, 4, 4)
    assert {o.metadata["category"] for o in human.objects} == {"human"}
    # the simulator ignores the parts: running it leaves their keyframes alone
    simulator.run(frame_start=1, frame_end=n)
    obj = human.objects[0]
    for i in range(n):
        np.testing.assert_allclose(obj.keyframes["position"][1 + i], human.poses[i, 0, :3, 3], atol=1e-6)
        w, x, y, z = obj.keyframes["quaternion"][1 + i]
        np.testing.assert_allclose(mocap.quat_to_matrix(np.array([x, y, z, w])), human.poses[i, 0, :3, :3],
                                   atol=1e-6)
    frames = renderer.render(return_layers=("rgba", "segmentation"))
    seg = kb.adjust_segmentation_idxs(frames["segmentation"], scene.assets, human.objects + animal.objects)
    assert seg.shape == (n, 64, 64, 1)
    human_px = ((seg >= 1) & (seg <= nh)).sum(axis=(1, 2, 3))
    animal_px = (seg > nh).sum(axis=(1, 2, 3))
    assert (human_px > 20).all(), human_px
    assert (animal_px > 10).all(), animal_px
    # what was keyframed is what was rendered: projected part vertices land on their own actor's pixels
    for info, lo, hi in ((human, 1, nh), (animal, nh + 1, nh + na)):
        for i in range(n):
            pts = np.concatenate(info.world_vertices(i))[::5]
            uv = np.stack([scene.camera.project_point(p, frame=1 + i)[:2] for p in pts]) * 64
            xy = np.clip(uv.astype(int), 0, 63)
            win = np.stack([seg[i, np.clip(xy[:, 1] + dy, 0, 63), np.clip(xy[:, 0] + dx, 0, 63), 0]
                            for dy in (-1, 0, 1) for dx in (-1, 0, 1)])  # 1-pixel tolerance at 64 px
            assert ((win >= lo) & (win <= hi)).any(axis=0).mean() > 0.95, (info.kind, i)
    # the human stands upright: its pixels span more rows than the dog's
    rows_h = np.nonzero(((seg[0, ..., 0] >= 1) & (seg[0, ..., 0] <= nh)).any(axis=1))[0]
    rows_a = np.nonzero((seg[0, ..., 0] > nh).any(axis=1))[0]
    assert np.ptp(rows_h) > np.ptp(rows_a)
