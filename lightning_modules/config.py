"""Typed training configuration: OmegaConf structured dataclasses, YAML files in configs/train/, CLI overrides.

`load_train_config(path, overrides)` merges (schema defaults) <- YAML file <- `key=value` overrides and validates
every key and type against the dataclasses below. Any problem raises `ConfigError` with a one-line message naming
the offending key, which the CLI prints without a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError


class ConfigError(ValueError):
    """A bad training configuration (unknown key, wrong type, inconsistent values); the message is one line."""


@dataclass
class ArchConfig:
    """Architecture overrides passed to the model constructor; None keeps the official CoTracker3 value."""

    hidden_size: Optional[int] = None
    num_heads: Optional[int] = None
    time_depth: Optional[int] = None
    space_depth: Optional[int] = None
    num_virtual_tracks: Optional[int] = None
    latent_dim: Optional[int] = None
    corr_levels: Optional[int] = None
    corr_radius: Optional[int] = None
    mlp_ratio: Optional[float] = None
    corr_hidden: Optional[int] = None
    corr_dim: Optional[int] = None
    encoder_dims: Optional[list[int]] = None
    encoder_fuse_dim: Optional[int] = None
    # Scale of the displacement encoding (official: 384x512 whatever the input size); tiny configs set theirs.
    model_resolution: Optional[list[int]] = None
    # Anything else the tracker constructor accepts (passed through verbatim).
    extra: dict[str, Any] = field(default_factory=dict)


def arch_kwargs(arch: ArchConfig) -> dict[str, Any]:
    """Constructor keyword arguments: the keys that are set, plus `extra`."""
    plain = OmegaConf.to_container(arch, resolve=True) if isinstance(arch, DictConfig) else dict(arch.__dict__)
    extra = plain.pop("extra", {}) or {}
    return {**{k: v for k, v in plain.items() if v is not None}, **extra}


@dataclass
class ModelConfig:
    variant: str = "online"  # "online" (sliding windows) | "offline" (one window)
    window_len: int = 16  # rows of the time embedding; online step = window_len // 2
    arch: ArchConfig = field(default_factory=ArchConfig)
    init_from: Optional[str] = None  # official .pth or our .ckpt to fine-tune from (tracker.load_tracker)
    train_iters: int = 4
    val_iters: int = 6
    # The recipe's loss constants (Huber delta 6 px, confidence radius 12 px, term weights) are in 384x512 pixels:
    # coordinates are multiplied by this factor before the loss. None: 512 / training width (1 for the recipe).
    loss_coord_scale: Optional[float] = None
    # Recompute the update transformer's block activations in the backward pass instead of keeping them: less
    # training memory (longer clips, more tracks or a larger batch per GPU) for about one more transformer forward.
    activation_checkpointing: bool = False


@dataclass
class AugmentConfig:
    """Photometric, occlusion and spatial augmentation of the Kubric recipe (spec 16.1); pixel sizes refer to the
    source frames (eraser) or the training crop (padding, jitter) and are scaled down by the tiny configs."""

    enabled: bool = True
    eraser_prob: float = 0.5  # per frame after the first
    eraser_max_boxes: int = 10
    eraser_size: list[int] = field(default_factory=lambda: [2, 99])  # inclusive range of box width/height
    color_jitter_prob: float = 0.25  # per clip
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.25 / 3.14
    blur_prob: float = 0.25  # per clip
    blur_kernel: int = 11
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])
    pad_max: int = 24  # 0..pad_max black pixels on each side
    scale_range: list[float] = field(default_factory=lambda: [0.75, 1.25])
    scale_drift: float = 0.05
    crop_jitter: int = 15  # crop offsets drawn in [-crop_jitter, crop_jitter)
    hflip_prob: float = 0.5
    vflip_prob: float = 0.5


@dataclass
class DataConfig:
    shards: str = "data/shards/default/shard-*.tar"  # glob, brace pattern or URL list (comma-separated)
    val_shards: Optional[str] = None  # None: hold out the last `num_val_shards` shards of `shards`
    num_val_shards: int = 1
    resolution: list[int] = field(default_factory=lambda: [384, 512])  # training crop (H, W)
    clip_len: int = 64  # frames per clip (offline: the upper end of the random length)
    clip_len_min: Optional[int] = None  # offline recipe: length uniform in [clip_len_min, clip_len]
    random_stride: bool = False  # offline recipe: frame stride uniform in [1, T // L]
    num_tracks: int = 384  # tracks per training clip
    min_tracks: Optional[int] = None  # fewer distinct candidates -> drop the clip; None: num_tracks (the recipe)
    candidates_last_frame: bool = False  # offline recipe also takes tracks visible in the last frame
    max_track_dist: float = 1000.0  # tracks ever this far from the crop centre are discarded
    batch_size: int = 1  # clips per device
    num_workers: int = 2
    log_keys: bool = False  # write the sample keys every rank trained on to <run_dir>/keys/rank<r>.txt
    shuffle_buffer: int = 64
    epoch_samples: int = 1000  # clips per rank per "epoch" (resampled stream)
    val_clips: int = 16  # held-out clips used for validation (split over ranks)
    val_clip_len: Optional[int] = None  # None: clip_len
    val_num_tracks: int = 256
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    lr: float = 5e-4  # OneCycle maximum
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    pct_start: float = 0.05
    extra_total_steps: int = 100  # OneCycle total = max_steps + this (as the recipe)
    div_factor: float = 25.0
    final_div_factor: float = 1e4


@dataclass
class TrainerConfig:
    max_steps: int = 50000
    accelerator: str = "auto"
    devices: Any = "auto"  # int, "auto" or a list of ids
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" for multi-GPU / multi-node
    precision: Optional[str] = None  # None: bf16-mixed on CUDA, 32 on CPU
    gradient_clip_val: float = 1.0
    val_check_interval: int = 1000  # optimizer steps between validations
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    slurm_auto_requeue: bool = True
    threads: Optional[int] = None  # torch intra-op threads per process (None: leave torch's default)


@dataclass
class LoggerConfig:
    kind: str = "wandb"  # "wandb" | "csv" | "none"
    project: str = "trackforge"
    entity: Optional[str] = None
    mode: str = "offline"  # "offline" (default, no account) | "online" | "disabled"
    video_every_n_steps: int = 1000  # 0 disables the prediction-vs-GT video
    video_fps: int = 8


@dataclass
class CheckpointConfig:
    save_top_k: int = 3
    monitor: str = "val/average_jaccard"
    every_n_train_steps: Optional[int] = None  # also save last.ckpt this often (None: at every validation)


@dataclass
class TrainConfig:
    name: str = "run"
    seed: int = 42
    run_dir: Optional[str] = None  # None: runs/<name>-<timestamp>
    resume: Optional[str] = None  # a .ckpt path, or "auto": <run_dir>/checkpoints/last.ckpt if it exists
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def _one_line(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None)
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{msg} (key: {key})" if key and key not in msg else msg


def _validate(cfg: TrainConfig) -> None:
    checks = [
        (cfg.model.variant in ("online", "offline"), f"model.variant must be 'online' or 'offline', got {cfg.model.variant!r}"),
        (len(cfg.data.resolution) == 2 and all(r % 4 == 0 and r > 0 for r in cfg.data.resolution),
         f"data.resolution must be [H, W] with multiples of 4, got {list(cfg.data.resolution)}"),
        (cfg.data.clip_len >= 2, f"data.clip_len must be >= 2, got {cfg.data.clip_len}"),
        (cfg.data.clip_len_min is None or 2 <= cfg.data.clip_len_min <= cfg.data.clip_len,
         f"data.clip_len_min must be in [2, data.clip_len], got {cfg.data.clip_len_min}"),
        (cfg.logger.kind in ("wandb", "csv", "none"), f"logger.kind must be wandb|csv|none, got {cfg.logger.kind!r}"),
        (cfg.logger.mode in ("offline", "online", "disabled"),
         f"logger.mode must be offline|online|disabled, got {cfg.logger.mode!r}"),
        (cfg.data.num_tracks > 0 and cfg.data.batch_size > 0, "data.num_tracks and data.batch_size must be > 0"),
        (cfg.trainer.max_steps > 0, f"trainer.max_steps must be > 0, got {cfg.trainer.max_steps}"),
    ]
    if cfg.model.variant == "online":
        shortest = cfg.data.clip_len_min or cfg.data.clip_len
        checks.append((shortest > cfg.model.window_len // 2,
                       f"online model needs clips longer than window_len // 2 = {cfg.model.window_len // 2} frames, "
                       f"got data.clip_len(_min) = {shortest}"))
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)


def load_train_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Schema defaults <- YAML file <- dotted `key=value` overrides -> validated `TrainConfig` (typed DictConfig).

    Raises ConfigError (one line, naming the key) on an unknown key, a wrong type or an invalid value.
    """
    schema = OmegaConf.structured(TrainConfig)
    try:
        cfg = schema
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file not found: {path}")
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise ConfigError(f"override {bad[0]!r} is not key=value")
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except (ConfigKeyError, ConfigAttributeError) as exc:
        raise ConfigError(f"unknown config key: {_one_line(exc)}") from None
    except ValidationError as exc:
        raise ConfigError(f"bad config value: {_one_line(exc)}") from None
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config error: {_one_line(exc)}") from None
    _validate(cfg)  # type: ignore[arg-type]
    return cfg  # type: ignore[return-value]


def to_container(cfg: TrainConfig) -> dict[str, Any]:
    """Plain resolved dict (stored in checkpoints as hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[arg-type,return-value]


def from_container(data: dict[str, Any]) -> TrainConfig:
    """Inverse of `to_container` (e.g. a checkpoint's hyper-parameters) -> typed config; unknown keys rejected."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"stored config does not match the schema: {_one_line(exc)}") from None
    return cfg  # type: ignore[return-value]
