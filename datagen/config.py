"""`DataConfig` = {scene: SceneConfig, generate: GenerateConfig}: typed OmegaConf configs for data generation.

`load_data_config(path, overrides)` merges a YAML preset onto the structured defaults, then `key=value`
dotlist overrides, and checks the result. Every problem (missing file, unknown key, wrong type, bad value)
is a `ConfigError` with a one-line message naming the key. Pure dataclasses + OmegaConf: no Blender here.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from datagen.scene_config import SceneConfig

VIDEO_CODECS = ("ffv1", "npy_zstd")


class ConfigError(ValueError):
    """A data config problem (one-line message that names the offending key or file)."""


@dataclass
class GenerateConfig:
    num_scenes: int = 8
    scenes_per_shard: int = 4
    base_seed: int = 0
    workers: int = 1  # scenes rendered in parallel (each in its own process)
    timeout_s: Optional[float] = None  # per scene attempt; None -> scene.render_timeout_s
    max_retries: int = 2  # extra attempts (each with a new derived seed) after a failed/timed-out one
    # "npy_zstd" (zstd'ed .npy: exact, ~10x faster to decode) or "ffv1" (lossless FFV1 .mkv, playable);
    # see docs/datagen_pipeline.md for the measurements behind the default.
    video_codec: str = "npy_zstd"
    # Testing/debugging knob: the FIRST attempt of these scene indices raises inside its scene process
    # (after the process started, before rendering), so the retry path runs for real.
    debug_fail_scenes: list[int] = field(default_factory=list)


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
        # Optional scene keys added later hash only when set, so data sets made before they existed still match.
        scene = {k: v for k, v in d["scene"].items() if not (k in _OPTIONAL_SCENE_KEYS and not v)}
        blob = json.dumps({"scene": scene, "generate": keep}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


_OPTIONAL_SCENE_KEYS = ("focal_length_range", "camera_linear_travel")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _omegaconf_error(err: Exception, source: str) -> ConfigError:
    """Turn an OmegaConf exception into a one-line message naming the full key."""
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    msg = getattr(err, "msg", None) or str(err)
    first = msg.strip().splitlines()[0] if msg.strip() else type(err).__name__
    kind = type(err).__name__
    if kind == "ConfigKeyError" or "not in struct" in first or "Key '" in first and "not" in first:
        return ConfigError(f"{source}: unknown config key '{key}'" if key else f"{source}: {first}")
    if key:
        return ConfigError(f"{source}: bad value for '{key}': {first}")
    return ConfigError(f"{source}: {first}")


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
    if getattr(s, "step_rate", s.fps) % s.fps:
        fail("scene.step_rate", f"must be a multiple of scene.fps={s.fps}, got {s.step_rate}")
    if s.samples_per_pixel < 1:
        fail("scene.samples_per_pixel", f"must be >= 1, got {s.samples_per_pixel}")
    if s.num_tracks < 1:
        fail("scene.num_tracks", f"must be >= 1, got {s.num_tracks}")
    for name in ("num_humans", "num_animals"):
        if getattr(s, name, 0) < 0:
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
        value = list(getattr(s, key, []))
        if value and (len(value) != 2 or not 0 <= value[0] <= value[1]):
            fail(f"scene.{key}", f"must be empty or a range [low, high] with 0 <= low <= high, got {value}")
    if hasattr(s, "foreground_fraction") and not 0.0 <= s.foreground_fraction <= 1.0:
        fail("scene.foreground_fraction", f"must be in [0, 1], got {s.foreground_fraction}")
    if hasattr(s, "camera_motion"):
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
    if g.timeout_s is not None and g.timeout_s <= 0:
        fail("generate.timeout_s", f"must be > 0 (or null for scene.render_timeout_s), got {g.timeout_s}")
    if g.max_retries < 0:
        fail("generate.max_retries", f"must be >= 0, got {g.max_retries}")
    if g.video_codec not in VIDEO_CODECS:
        fail("generate.video_codec", f"choices are {', '.join(VIDEO_CODECS)}, got {g.video_codec!r}")
    bad_idx = [i for i in g.debug_fail_scenes if not 0 <= i < g.num_scenes]
    if bad_idx:
        fail("generate.debug_fail_scenes", f"scene indices must be in [0, {g.num_scenes}), got {bad_idx}")


def _structured_defaults():
    from omegaconf import OmegaConf

    base = OmegaConf.structured(DataConfig)
    OmegaConf.set_struct(base, True)
    return base


def config_from_dict(data: dict[str, Any], source: str = "config") -> DataConfig:
    """Build and check a DataConfig from a plain dict (e.g. dataset.json's "config")."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(_structured_defaults(), OmegaConf.create(data))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _omegaconf_error(err, source) from None
    _check(cfg)
    return cfg


def load_data_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> DataConfig:
    """YAML file (optional) merged onto the structured defaults, then `key=value` overrides; checked.

    Raises ConfigError (one line, naming the key/file) for a missing/unparsable file, an unknown key,
    a value of the wrong type or a semantically bad value.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = _structured_defaults()
    if path is not None:
        path = Path(path)
        if not path.exists() or path.is_dir():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = OmegaConf.load(path)
        except Exception as err:  # yaml.YAMLError and friends
            raise ConfigError(f"cannot parse {path}: {_one_line(err)}") from None
        if loaded is None or not isinstance(loaded, type(merged)):
            if loaded:
                raise ConfigError(f"{path}: top level must be a mapping with 'scene' and/or 'generate'")
        else:
            try:
                merged = OmegaConf.merge(merged, loaded)
            except OmegaConfBaseException as err:
                raise _omegaconf_error(err, str(path)) from None
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. generate.num_scenes=4)")
    if overrides:
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(overrides))
        except OmegaConfBaseException as err:
            raise _omegaconf_error(err, "override") from None
        except Exception as err:  # yaml parse errors inside a dotlist value
            raise ConfigError(f"bad override: {_one_line(err)}") from None
    try:
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise _omegaconf_error(err, str(path) if path else "config") from None
    _check(cfg)
    return cfg
