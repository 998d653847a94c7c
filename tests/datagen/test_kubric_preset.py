"""The CoTracker3-Kubric-like preset: its config loads as specified, and a real (tiny) render honours the randomised
focal length and the bounded linear camera travel it adds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datagen.config import load_data_config

REPO = Path(__file__).resolve().parents[2]
PRESETS = [REPO / "configs/data/cotracker3_kubric.yaml", REPO / "configs/data/cotracker3_kubric_humans_animals.yaml"]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_matches_the_cotracker3_kubric_set(path):
    s = load_data_config(path, []).scene
    assert (list(s.resolution), s.num_frames) == ([512, 512], 120)
    assert s.camera_motion == ["linear"] and list(s.camera_linear_travel) == [0.0, 8.0]
    assert s.focal_length_range[0] < s.focal_length_range[1]
    assert list(s.num_tossed_objects) == [0, 10] and list(s.motion_blur) == [0.0, 2.0]
    assert (s.num_humans, s.num_animals) == ((0, 0) if path == PRESETS[0] else (1, 1))


@pytest.mark.slow
def test_render_uses_the_drawn_focal_length_and_travel(tmp_path):
    pytest.importorskip("bpy")
    from datagen.scene.render import render_scene

    cfg = load_data_config(PRESETS[0], [
        "scene.resolution=[32,48]", "scene.num_frames=4", "scene.samples_per_pixel=1", "scene.motion_blur=[0,0]",
        "scene.num_static_objects=[1,1]", "scene.num_tossed_objects=[0,0]", "scene.num_tracks=32",
        "scene.focal_length_range=[20,20]", "scene.camera_linear_travel=[3,3]", "scene.dome_textures=[procedural]",
        "scene.floor_textures=[procedural]", f"scene.asset_cache_dir={tmp_path / 'assets'}"]).scene
    s = render_scene(cfg, 5, tmp_path / "scene").sample
    K = np.array(s.meta["intrinsics"])
    assert K[0, 0] == pytest.approx(20 / cfg.sensor_width * 48)  # 20 mm, not the default 35 mm
    w2c = np.array(s.meta["extrinsics"])
    centres = [-(E[:3, :3].T @ E[:3, 3]) for E in w2c]  # camera centre in world coordinates
    # 3 m from the first to the last frame, unless the floor clamp (z >= 0.5) shortened the path.
    travel = np.linalg.norm(centres[-1] - centres[0])
    assert travel == pytest.approx(3.0, rel=1e-3) or (travel < 3.0 and min(c[2] for c in centres) <= 0.5 + 1e-6)



def test_new_camera_keys_change_the_content_hash_when_set():
    """Set, they change what is rendered, hence the data set's content hash (unset, they are left out of it, so data
    sets made before they existed still resume)."""
    tiny = load_data_config(REPO / "configs/data/tiny.yaml", [])
    for key in ("scene.focal_length_range=[20,50]", "scene.camera_linear_travel=[0,8]"):
        assert load_data_config(REPO / "configs/data/tiny.yaml", [key]).content_hash() != tiny.content_hash()
