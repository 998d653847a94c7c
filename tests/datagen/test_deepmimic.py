"""DeepMimic clips and their forward kinematics (datagen.actors.humans.deepmimic): the motion the people play.

Real components only: pybullet_data's clips and humanoid URDF, pybullet forward kinematics.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pybullet")

from datagen.actors.humans import deepmimic as dm  # noqa: E402

# parent -> child link pairs of rigid bones (a link frame's origin is its joint)
BONES = [("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("left_hip", "left_knee"),
         ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
         ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("chest", "neck")]


def _joints(sk: dm.Skeleton, state: dm.PoseState) -> dict[str, np.ndarray]:
    """World position (3,) of every link's joint for one state."""
    poses = sk.link_poses(state)
    return {name: poses[i, :3, 3] for i, name in enumerate(sk.links)}


def test_every_clip_parses():
    names = dm.list_clips()
    assert len(names) >= 15 and "walk" in names
    for name in names:
        clip = dm.load_clip(name)
        assert clip.num_keyframes >= 2 and clip.duration > 0.2
        assert np.all(np.diff(clip.times) > 0)
        assert np.isfinite(clip.root_pos).all() and np.isfinite(clip.root_quat).all()
        np.testing.assert_allclose(np.linalg.norm(clip.root_quat, axis=1), 1.0, atol=1e-6)
        assert len(clip.joints) == 12
        for values in clip.joints.values():
            assert values.shape in ((clip.num_keyframes, 4), (clip.num_keyframes, 1))
            assert np.isfinite(values).all()
        # Z-up world: the root stays above the floor and well below 2 m
        assert 0.05 < clip.root_pos[:, 2].max() < 2.0, name
    with pytest.raises(ValueError, match="unknown"):
        dm.load_clip("no_such_clip")


@pytest.mark.parametrize("clip", ["walk", "cartwheel"])
def test_fk_is_finite_and_limbs_keep_their_length(clip):
    sk = dm.get_skeleton()
    motion = dm.load_clip(clip)
    frames = [_joints(sk, dm.clip_state(motion, t)) for t in np.linspace(0, 2.5 * motion.duration, 40)]
    assert all(np.isfinite(p).all() for f in frames for p in f.values())
    for parent, child in BONES:
        length = np.array([np.linalg.norm(f[child] - f[parent]) for f in frames])
        assert length.min() > 0.05, (parent, child)
        assert length.max() - length.min() < 1e-5, (parent, child, length.min(), length.max())
    # the body really moves: some joint travels relative to the chest
    rel = np.stack([[f[n] - f["chest"] for n in sk.links] for f in frames])
    assert np.ptp(rel, axis=0).max() > 0.05


def test_humanoid_is_upright_and_facing_plus_x():
    """Clips are Y-up; after conversion the walk's head is above its feet and it walks towards +x."""
    sk = dm.get_skeleton()
    clip = dm.load_clip("walk")
    start = dm.clip_state(clip, 0.0)
    j0 = _joints(sk, start)
    assert j0["neck"][2] - j0["right_ankle"][2] > 1.0
    assert dm.clip_state(clip, clip.duration * 0.99).root[0, 3] - start.root[0, 3] > 0.8
    assert abs(dm.heading_of(start.root)) < 0.3


def test_wrapping_clip_continues_from_its_end():
    clip = dm.load_clip("walk")
    c = dm.cycle_transform(clip)
    for t in (0.1, 0.7):
        a = dm.clip_state(clip, t)
        b = dm.clip_state(clip, t + clip.duration)
        np.testing.assert_allclose(b.root, c @ a.root, atol=1e-9)
        for j in a.joints:
            np.testing.assert_allclose(a.joints[j], b.joints[j], atol=1e-12)
    # the next cycle starts where the last one ended: continuous across the wrap
    before = dm.clip_state(clip, clip.duration - 1e-4).root
    after = dm.clip_state(clip, clip.duration + 1e-4).root
    assert np.linalg.norm(before[:3, 3] - after[:3, 3]) < 0.01
