"""datagen.config: presets load, bad keys/values give one-line errors naming the key (no Blender needed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datagen.config import ConfigError, DataConfig, load_data_config
from datagen.pipeline.layout import task_shards

REPO = Path(__file__).resolve().parents[2]
PRESETS = sorted((REPO / "configs" / "data").glob("*.yaml"))


def test_presets_exist():
    names = {p.name for p in PRESETS}
    assert {"default.yaml", "movi_f_like.yaml", "humans_animals.yaml", "tiny.yaml"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_loads(path):
    cfg = load_data_config(path, [])
    assert isinstance(cfg, DataConfig)
    assert cfg.num_shards == -(-cfg.generate.num_scenes // cfg.generate.scenes_per_shard)
    assert cfg.scene.num_frames >= 2


def test_preset_contents():
    default = load_data_config(REPO / "configs/data/default.yaml", [])
    # Rendered at the size tiny_cpu trains at (its crop), 24 frames: several windows of 8.
    assert default.scene.resolution == [128, 128] and default.scene.num_frames == 24
    assert default.scene.num_humans >= 1 and default.scene.num_animals >= 1  # every category appears
    assert default.scene.num_static_objects[0] + default.scene.num_tossed_objects[0] >= 1
    assert "static" not in default.scene.camera_motion  # every pixel moves: zero motion is a real baseline
    movi = load_data_config(REPO / "configs/data/movi_f_like.yaml", [])
    assert movi.scene.resolution == [512, 512] and movi.scene.fps == 12 and movi.scene.num_frames == 24
    assert movi.scene.num_static_objects == [10, 20] and movi.scene.num_tossed_objects == [1, 3]
    assert movi.scene.samples_per_pixel == 64 and movi.scene.motion_blur == [0.0, 2.0]
    assert movi.scene.camera_motion == ["linear"]


def test_overrides_apply_and_types_convert():
    cfg = load_data_config(REPO / "configs/data/tiny.yaml",
                           ["generate.num_scenes=7", "scene.resolution=[32,48]", "generate.timeout_s=12.5"])
    assert cfg.generate.num_scenes == 7 and cfg.scene.resolution == [32, 48]
    assert cfg.scene.height == 32 and cfg.scene.width == 48
    assert cfg.generate.timeout_s == 12.5 and cfg.num_shards == 4


@pytest.mark.parametrize("overrides, needle", [
    (["scene.resolutoin=[64,64]"], "scene.resolutoin"),
    (["generate.bogus=1"], "generate.bogus"),
    (["scene.num_frames=abc"], "scene.num_frames"),
    (["scene.num_frames=1"], "scene.num_frames"),
    (["generate.scenes_per_shard=0"], "generate.scenes_per_shard"),
    (["scene.num_static_objects=[5,2]"], "scene.num_static_objects"),
    (["scene.camera_motion=[teleport]"], "scene.camera_motion"),
    (["generate.video_codec=gif"], "generate.video_codec"),
    (["generate.debug_fail_scenes=[99]"], "generate.debug_fail_scenes"),
    (["scene.step_rate=25"], "scene.step_rate"),
    (["scene.render_timeout_s=-5"], "scene.render_timeout_s"),  # every scene would "time out" at once
    (["scene.render_timeout_s=0"], "scene.render_timeout_s"),
    (["scene.render_timeout_s=nan"], "scene.render_timeout_s"),
    (["generate.timeout_s=0"], "generate.timeout_s"),
    (["scene.render_device=cuda0"], "scene.render_device"),
    (["scene.denoising_quality=best"], "scene.denoising_quality"),
    (["scene.clamp_indirect=-1"], "scene.clamp_indirect"),
    (["scene.clamp_direct=nan"], "scene.clamp_direct"),
    (["scene.world_light_blur_deg=-3"], "scene.world_light_blur_deg"),
    (["scene.white_balance=1.5"], "scene.white_balance"),
    (["scene.dome_textures=[realistc]"], "scene.dome_textures"),
    (["scene.adaptive_threshold=0"], "scene.adaptive_threshold"),
    (["scene.adaptive_min_samples=-1"], "scene.adaptive_min_samples"),
    (["generate.scene_process=lukewarm"], "generate.scene_process"),
    (["generate.warm_imports=[bpy, 'os; rm -rf']"], "generate.warm_imports"),
])
def test_bad_override_names_key(overrides, needle):
    with pytest.raises(ConfigError) as info:
        load_data_config(REPO / "configs/data/tiny.yaml", overrides)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_bad_yaml_key_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scene:\n  num_framez: 3\n")
    with pytest.raises(ConfigError, match="scene.num_framez"):
        load_data_config(bad, [])
    with pytest.raises(ConfigError, match="not found"):
        load_data_config(tmp_path / "missing.yaml", [])
    with pytest.raises(ConfigError, match="key=value"):
        load_data_config(None, ["generate.num_scenes"])



def test_missing_hdri_and_texture_folders_fail_at_load_time(tmp_path):
    """scene.hdri_dirs / scene.image_textures that do not exist (or hold no usable file) used to fail in every scene
    process; now loading the config says so in one line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "hdris").mkdir()
    (tmp_path / "hdris" / "sky.exr").write_bytes(b"v/1\x01")
    for override, needle in ((f"scene.hdri_dirs=[{tmp_path / 'nope'}]", f"HDRI {tmp_path / 'nope'} does not exist"),
                             (f"scene.hdri_dirs=[{empty}]", f"HDRI folder {empty} holds no .exr/.hdr file"),
                             (f"scene.image_textures=[{tmp_path / 'x.png'}]", "image texture")):
        with pytest.raises(ConfigError) as info:
            load_data_config(REPO / "configs/data/tiny.yaml", [override])
        msg = str(info.value)
        assert msg.startswith(f"bad value for 'scene.{override[6:].split('=')[0]}': ") and needle in msg, msg
        assert "\n" not in msg
    cfg = load_data_config(REPO / "configs/data/tiny.yaml", [f"scene.hdri_dirs=[{tmp_path / 'hdris'}]"])
    assert cfg.scene.hdri_dirs == [str(tmp_path / "hdris")]
    proc = subprocess.run([sys.executable, "-m", "datagen", "generate", "--config", "configs/data/tiny.yaml", "--out",
                           str(tmp_path / "o"), f"scene.hdri_dirs=[{tmp_path / 'nope'}]"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: bad value for 'scene.hdri_dirs': HDRI {tmp_path / 'nope'} does not exist"], proc.stderr
    assert not (tmp_path / "o").exists()

@pytest.mark.parametrize("args, needle", [
    (["--config", "configs/data/tiny.yaml", "scene.num_frams=3"], "scene.num_frams"),
    (["--config", "configs/data/tiny.yaml", "generate.num_scenes=-1"], "generate.num_scenes"),
    (["--config", "configs/data/nope.yaml"], "config file not found"),
])
def test_cli_config_errors_one_line(tmp_path, args, needle):
    for cmd in ("generate", "complete"):
        proc = subprocess.run([sys.executable, "-m", "datagen", cmd, "--out", str(tmp_path / "o"), *args],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "shard-000000.tar").exists()


@pytest.mark.parametrize("num_shards", [1, 2, 5, 7, 64, 320])
@pytest.mark.parametrize("num_tasks", [1, 2, 3, 8, 100])
def test_task_slicing_disjoint_complete_contiguous(num_shards, num_tasks):
    per_task = [task_shards(num_shards, i, num_tasks) for i in range(num_tasks)]
    flat = [s for shards in per_task for s in shards]
    assert flat == list(range(num_shards))  # complete, disjoint and in task order
    for shards in per_task:
        assert shards == list(range(shards[0], shards[0] + len(shards))) if shards else True
        for s in shards:
            assert per_task.index(shards) == (s * num_tasks) // num_shards
    sizes = [len(s) for s in per_task]
    assert max(sizes) - min(sizes) <= 1  # balanced
    with pytest.raises(ValueError):
        task_shards(num_shards, num_tasks, num_tasks)


def test_render_device_is_not_content():
    """A data set started on CPU nodes may be finished on GPU nodes (meta.json says which device rendered what);
    what the scenes show stays hashed."""
    base = load_data_config(REPO / "configs/data/tiny.yaml", [])
    gpu = load_data_config(REPO / "configs/data/tiny.yaml", ["scene.render_device=gpu", "generate.scene_process=cold"])
    assert gpu.content_hash() == base.content_hash()
    assert load_data_config(REPO / "configs/data/tiny.yaml", ["scene.use_denoising=true"]).content_hash() \
        != base.content_hash()


def test_denoising_or_blurring_a_single_sample_is_refused():
    """Blender 4.2 corrupts its heap denoising or motion-blurring a 1-sample render (the scene process aborts): the
    config says so in one line naming the key, instead of a data run whose scenes crash and retry."""
    tiny = REPO / "configs/data/tiny.yaml"
    with pytest.raises(ConfigError) as info:
        load_data_config(tiny, ["scene.use_denoising=true", "scene.samples_per_pixel=1"])
    assert "scene.samples_per_pixel" in str(info.value) and "use_denoising" in str(info.value)
    assert "\n" not in str(info.value)
    load_data_config(tiny, ["scene.use_denoising=true", "scene.samples_per_pixel=2"])
    load_data_config(tiny, ["scene.use_denoising=false", "scene.samples_per_pixel=1"])
    # the same with the vector motion blur (a face close-up's process aborted at 1 sample with the blur on)
    with pytest.raises(ConfigError) as info:
        load_data_config(tiny, ["scene.use_denoising=false", "scene.samples_per_pixel=1", "scene.motion_blur=[0,0.3]"])
    assert "scene.samples_per_pixel" in str(info.value) and "motion_blur" in str(info.value)
    assert "\n" not in str(info.value)
    load_data_config(tiny, ["scene.use_denoising=false", "scene.samples_per_pixel=2", "scene.motion_blur=[0,0.3]"])
