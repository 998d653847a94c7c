"""Typed training configuration: OmegaConf structured dataclasses, YAML files in configs/train/, CLI overrides.

`load_train_config(path, overrides)` merges (schema defaults) <- YAML file <- `key=value` overrides and validates
every key and type against the dataclasses below. Any problem raises `ConfigError` with a one-line message naming
the file or override and the offending key, which the CLI prints without a traceback (the load path is shared with
the data configs: tracker.common.config_loading).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tracker.common.config_loading import merge_config, omegaconf_error
from tracker.common.errors import ConfigError  # noqa: F401  (re-exported: lightning_modules.config.ConfigError)

from .evaluation.config import BenchmarkConfig


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
    # Scale of the displacement encoding (official: 384x512 whatever the input size); None: data.resolution (the
    # plan's `arch_input_size`, recorded resolved). Tiny configs set theirs.
    model_resolution: Optional[list[int]] = None
    # Starting [visibility, confidence] logits of every track (official [0, 0]); short runs from scratch start at the
    # data's prior (tiny_cpu; docs/training.md "Occlusion accuracy at 200 steps").
    initial_logits: Optional[list[float]] = None
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
    # Rows of the time embedding; online step = window_len // 2. None: the init_from checkpoint's, else the
    # variant's official value (online 16, offline 60).
    window_len: Optional[int] = None
    arch: ArchConfig = field(default_factory=ArchConfig)
    # Official .pth or our .ckpt to fine-tune from: its architecture and window length fill the unset model keys
    # at load time, and set keys must agree with it (tracker.checkpoint reads it).
    init_from: Optional[str] = None
    train_iters: int = 4
    val_iters: int = 6
    # The recipe's loss constants (Huber delta 6 px, confidence radius 12 px, term weights) are in 384x512 pixels:
    # coordinates are multiplied by this factor before the loss. None: 512 / training width (1 for the recipe).
    loss_coord_scale: Optional[float] = None
    # Radius of the confidence target (confidence = "the prediction is within this distance of the truth"), in the
    # loss's scaled pixels. None: the recipe's 12 (6 px of the 256 TAP-Vid raster). Evaluation calls a point visible
    # when visibility x confidence > 0.6, so a model whose tracks are rarely this close calls most points occluded;
    # small CPU recipes widen it (docs/training.md, "Why the first runs did not track").
    loss_conf_radius: Optional[float] = None
    # Weight of visible points in the visibility loss (the recipe's 1). w > 1 makes the model call a point occluded
    # only with w times the evidence: a young model that barely tells occlusion (CPU recipes) otherwise calls every
    # point it is unsure of occluded (docs/training.md "Occlusion accuracy at 200 steps").
    loss_visible_weight: float = 1.0
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
class SourceConfig:
    """One training data source of `data.sources` (see docs/data_sources.md). Clip length, crop size and track count
    are global (`data.*`: a batch must stack); how clips are cut from this source's videos is per source."""

    path: str = ""  # shards: glob / braces / folder / URLs (comma-separated); cotracker3_kubric: the root folder
    format: str = "auto"  # auto | shards | cotracker3_kubric (datagen.formats.READERS)
    weight: float = 1.0  # share of training clips (normalised over the sources; 0 disables the source)
    val_path: Optional[str] = None  # validation data of the same format; None: hold out the last `num_val` items
    num_val: int = 1  # items (shards / sequences) held out for validation when val_path is unset; 0: none
    random_stride: Optional[bool] = None  # None: data.random_stride
    min_tracks: Optional[int] = None  # None: data.min_tracks
    augment: dict[str, Any] = field(default_factory=dict)  # overrides of data.augment keys for this source


@dataclass
class DataConfig:
    # Training data: either `sources` (named, weighted mixture) or the single-source shorthand `shards`.
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    # Shorthand for one source of our shards (glob, braces, folder or URLs, comma-separated); with `sources` unset
    # and this unset, data/shards/default is used. Equivalent to sources: {default: {path: ..., format: shards,
    # val_path: <val_shards>, num_val: <num_val_shards>}}.
    shards: Optional[str] = None
    val_shards: Optional[str] = None  # None: hold out the last `num_val_shards` shards of `shards`
    num_val_shards: int = 1
    # The model's input size (H, W) = the training crop (`input_size` in lightning_modules.data_plan); None: the
    # sources' frame size (they must agree). Recorded resolved.
    resolution: Optional[list[int]] = None
    clip_len: int = 64  # frames per clip (offline: the upper end of the random length)
    clip_len_min: Optional[int] = None  # offline recipe: length uniform in [clip_len_min, clip_len]
    random_stride: bool = False  # offline recipe: frame stride uniform in [1, T // L]
    num_tracks: int = 384  # tracks per training clip
    min_tracks: Optional[int] = None  # fewer distinct candidates -> drop the clip; None: num_tracks (the recipe)
    candidates_last_frame: bool = False  # offline recipe also takes tracks visible in the last frame
    max_track_dist: float = 1000.0  # tracks ever this far from the crop centre are discarded
    batch_size: int = 1  # clips per device
    # Clips per optimizer step over all devices; None: batch_size x devices. Reached with gradient accumulation
    # (global = batch_size x world size x accumulation; it must divide exactly).
    global_batch_size: Optional[int] = None
    # A source that yields no usable clip in this many consecutive attempts (unreadable shards/samples, too few
    # tracks, too short) ends the run with an error naming it, instead of cycling for ever.
    max_consecutive_failures: int = 200
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
    vis_conf_lr_scale: float = 1.0  # lr multiplier of the visibility/confidence head (schedule.py says why)


@dataclass
class TrainerConfig:
    max_steps: int = 50000
    accelerator: str = "auto"
    devices: Any = "auto"  # int, "auto" or a list of ids
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" for multi-GPU / multi-node
    # None: bf16-mixed on CUDA, 32-true on the CPU. "fastest": on the CPU whichever of 32-true and bf16-mixed makes the
    # faster step here, measured before training (lightning_modules/time_budget.py; config.yaml records the choice;
    # bf16 pays on CPUs with bf16 instructions), bf16-mixed on CUDA. One CPU process, like the time budget.
    precision: Optional[str] = None
    gradient_clip_val: float = 1.0
    val_check_interval: int = 1000  # optimizer steps between validations
    log_every_n_steps: int = 10
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    slurm_auto_requeue: bool = True  # SIGUSR1 -> hpc_ckpt_<n>.ckpt at an agreed step + scontrol requeue
    threads: Optional[int] = None  # torch intra-op threads per process (None: leave torch's default)
    # Wall-clock minutes for the whole command (from $TRACKFORGE_STARTED_AT, which `make train` sets before it renders
    # missing data; else from the training's start): max_steps becomes the steps that fit on this machine, measured
    # before training, at most max_steps (lightning_modules/time_budget.py). None: exactly max_steps. One CPU process.
    time_budget_min: Optional[float] = None


FASTEST = "fastest"  # trainer.precision: measured on the CPU (time_budget.choose_precision)
CPU_PRECISIONS = ("32-true", "bf16-mixed")  # what "fastest" chooses from


def precision_of(cfg) -> str:
    """Lightning's precision for this run: trainer.precision, or bf16-mixed on CUDA and 32-true on the CPU
    ("fastest" on the CPU must have been measured first: time_budget.choose_precision)."""
    import torch

    on_gpu = cfg.trainer.accelerator in ("gpu", "cuda") or (cfg.trainer.accelerator == "auto"
                                                            and torch.cuda.is_available())
    if cfg.trainer.precision == FASTEST:
        if not on_gpu:
            raise ConfigError("trainer.precision=fastest is chosen by measuring the step before training "
                              "(lightning_modules.time_budget.choose_precision); it was not")
        return "bf16-mixed"
    if cfg.trainer.precision:
        return cfg.trainer.precision
    return "bf16-mixed" if on_gpu else "32-true"


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
    # Evaluation benchmarks validated on next to the synthetic clips, logged as val_<name>/<metric> (entries as in
    # configs/eval/*.yaml, one query mode each; docs/evaluation.md).
    val_benchmarks: list[BenchmarkConfig] = field(default_factory=list)


def _validate(cfg: TrainConfig) -> None:
    checks = [
        (cfg.model.variant in ("online", "offline"), f"model.variant must be 'online' or 'offline', got {cfg.model.variant!r}"),
        (cfg.data.resolution is None or (len(cfg.data.resolution) == 2
                                          and all(r % 4 == 0 and r > 0 for r in cfg.data.resolution)),
         f"data.resolution must be [H, W] with multiples of 4, got {cfg.data.resolution}"),
        (cfg.data.clip_len >= 2, f"data.clip_len must be >= 2, got {cfg.data.clip_len}"),
        (cfg.data.clip_len_min is None or 2 <= cfg.data.clip_len_min <= cfg.data.clip_len,
         f"data.clip_len_min must be in [2, data.clip_len], got {cfg.data.clip_len_min}"),
        (cfg.logger.kind in ("wandb", "csv", "none"), f"logger.kind must be wandb|csv|none, got {cfg.logger.kind!r}"),
        (cfg.logger.mode in ("offline", "online", "disabled"),
         f"logger.mode must be offline|online|disabled, got {cfg.logger.mode!r}"),
        (cfg.data.num_tracks > 0 and cfg.data.batch_size > 0, "data.num_tracks and data.batch_size must be > 0"),
        (cfg.trainer.max_steps > 0, f"trainer.max_steps must be > 0, got {cfg.trainer.max_steps}"),
        (cfg.model.arch.initial_logits is None or len(cfg.model.arch.initial_logits) == 2
         and all(math.isfinite(v) for v in cfg.model.arch.initial_logits),
         f"model.arch.initial_logits must be [visibility, confidence] logits, got {cfg.model.arch.initial_logits}"),
        (math.isfinite(cfg.model.loss_visible_weight) and cfg.model.loss_visible_weight > 0,
         f"model.loss_visible_weight must be a finite number > 0 (1: the recipe), got {cfg.model.loss_visible_weight}"),
        (cfg.model.loss_conf_radius is None or math.isfinite(cfg.model.loss_conf_radius) and cfg.model.loss_conf_radius > 0,
         f"model.loss_conf_radius must be a finite number > 0 (or null: the recipe's 12), got {cfg.model.loss_conf_radius}"),
        (cfg.model.loss_coord_scale is None or math.isfinite(cfg.model.loss_coord_scale) and cfg.model.loss_coord_scale > 0,
         f"model.loss_coord_scale must be a finite number > 0 (or null: 512 / training width), got "
         f"{cfg.model.loss_coord_scale}"),
        (math.isfinite(cfg.optim.vis_conf_lr_scale) and cfg.optim.vis_conf_lr_scale > 0,
         f"optim.vis_conf_lr_scale must be a finite number > 0, got {cfg.optim.vis_conf_lr_scale}"),
    ]
    if cfg.model.variant == "online":
        shortest = cfg.data.clip_len_min or cfg.data.clip_len
        checks.append((shortest > cfg.model.window_len // 2,
                       f"online model needs clips longer than window_len // 2 = {cfg.model.window_len // 2} frames, "
                       f"got data.clip_len(_min) = {shortest}"))
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    check_budget_config(cfg.trainer)
    if cfg.data.resolution is not None:
        check_model_input(cfg.data.resolution, cfg.model.arch)
    _validate_data(cfg.data)
    from .evaluation.config import EvalConfigError, check_val_benchmarks

    try:
        check_val_benchmarks(cfg.val_benchmarks, cfg.checkpoint.monitor)
    except EvalConfigError as exc:
        raise ConfigError(str(exc)) from None


def check_budget_config(trainer: Any) -> None:
    """trainer.time_budget_min and trainer.precision=fastest on the CPU are measured in the one process that trains
    (lightning_modules/time_budget.py): refuse them where several processes train, and a budget that is not a
    positive number of minutes (one line)."""
    if trainer.precision == FASTEST and trainer.accelerator == "cpu" and not (
            str(trainer.devices) in ("1", "auto") and trainer.num_nodes == 1):
        raise ConfigError("trainer.precision=fastest is measured in one CPU process: it needs trainer.devices=1 and "
                          f"trainer.num_nodes=1 on the CPU, got {trainer.devices} and {trainer.num_nodes} (name a "
                          "precision: 32-true or bf16-mixed)")
    if trainer.time_budget_min is None:
        return
    if not (math.isfinite(trainer.time_budget_min) and trainer.time_budget_min > 0):
        raise ConfigError(f"trainer.time_budget_min must be a number of minutes > 0 (or null), got "
                          f"{trainer.time_budget_min}")
    single = trainer.accelerator == "cpu" and str(trainer.devices) in ("1", "auto") and trainer.num_nodes == 1
    if not single:
        raise ConfigError("trainer.time_budget_min measures the step of one CPU process: it needs "
                          "trainer.accelerator=cpu, trainer.devices=1 and trainer.num_nodes=1, got "
                          f"{trainer.accelerator}, {trainer.devices} and {trainer.num_nodes} (set "
                          "trainer.time_budget_min=null and a trainer.max_steps)")


def check_model_input(input_size: Any, arch: ArchConfig, note: str = "",
                      error: type[ConfigError] = ConfigError) -> None:
    """The model's input size (H, W) (data.resolution: the training crop) must be a size the model takes: multiples
    of 4, large enough for every correlation level of `arch` and for the encoder (tracker.model.input_size_problem).
    `note` says where the size came from; `error`: the exception class to raise (one line naming the key)."""
    import inspect

    from tracker.model import CoTracker3Base, input_size_problem

    levels = arch.corr_levels
    if levels is None:
        levels = inspect.signature(CoTracker3Base.__init__).parameters["corr_levels"].default
    h, w = (int(v) for v in input_size)
    problem = input_size_problem(h, w, int(levels))
    if problem:
        raise error(f"data.resolution={[h, w]}{note} is too small for the model: {problem}")


DEFAULT_SHARDS = "data/shards/default/shard-*.tar"


def recorded_input_size(cfg: Any) -> tuple[int, int]:
    """The input size a resolved config records (its data.resolution): (H, W). ValueError when unresolved."""
    if cfg.data.resolution is None:
        raise ValueError("data.resolution is unresolved: use data_plan.resolved_config(cfg, build_data_plan(cfg))")
    h, w = (int(v) for v in cfg.data.resolution)
    return h, w


def data_sources(data: DataConfig) -> dict[str, SourceConfig]:
    """The named training sources: `data.sources`, or the `data.shards` shorthand as one source named "default"."""
    if data.sources:
        return dict(data.sources)
    return {"default": SourceConfig(path=data.shards or DEFAULT_SHARDS, format="shards", val_path=data.val_shards,
                                    num_val=data.num_val_shards)}


def _validate_data(data: DataConfig) -> None:
    """Data-section checks that need no file access (data_plan.build_data_plan checks the data itself)."""
    from datagen.formats import READERS

    if data.sources and (data.shards or data.val_shards):
        key = "data.shards" if data.shards else "data.val_shards"
        raise ConfigError(f"{key} and data.sources are exclusive: put the path into a source instead, e.g. "
                          f"data.sources.<name>.path=... (or data.sources.<name>.val_path=...) (docs/data_sources.md)")
    sources = data_sources(data)
    for name, src in sources.items():
        key = f"data.sources.{name}"
        if not src.path:
            raise ConfigError(f"{key}.path is empty")
        if src.format != "auto" and src.format not in READERS:
            raise ConfigError(f"{key}.format must be auto|{'|'.join(READERS)}, got {src.format!r}")
        if not math.isfinite(src.weight) or src.weight < 0:  # NaN passes `< 0`; inf makes the shares NaN
            raise ConfigError(f"{key}.weight must be a finite number >= 0, got {src.weight}")
        if src.num_val < 0:
            raise ConfigError(f"{key}.num_val must be >= 0, got {src.num_val}")
        if src.min_tracks is not None and src.min_tracks < 1:
            raise ConfigError(f"{key}.min_tracks must be >= 1, got {src.min_tracks}")
        source_augment(data, src, name)  # unknown keys / wrong types
    total = sum(s.weight for s in sources.values())
    if not total > 0:
        raise ConfigError("data.sources: at least one source needs a weight > 0")
    if not math.isfinite(total):
        raise ConfigError(f"data.sources: the weights add up to {total}; use smaller numbers (only their ratios "
                          "matter)")
    if data.global_batch_size is not None and (data.global_batch_size <= 0
                                               or data.global_batch_size % data.batch_size):
        raise ConfigError(f"data.global_batch_size={data.global_batch_size} must be a positive multiple of "
                          f"data.batch_size={data.batch_size}")
    if data.max_consecutive_failures < 1:
        raise ConfigError(f"data.max_consecutive_failures must be >= 1, got {data.max_consecutive_failures}")


def source_augment(data: DataConfig, src: SourceConfig, name: str = "?") -> AugmentConfig:
    """data.augment with the source's `augment` overrides applied (typed; ConfigError naming the key when bad)."""
    base = data.augment if isinstance(data.augment, DictConfig) else OmegaConf.structured(data.augment)
    overrides = OmegaConf.to_container(src.augment) if OmegaConf.is_config(src.augment) else dict(src.augment)
    if not overrides:
        return OmegaConf.to_object(base) if OmegaConf.is_config(base) else base
    try:
        merged = OmegaConf.merge(base, overrides)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"bad data.sources.{name}.augment.{getattr(exc, 'key', '')}: {msg}") from None
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def load_train_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Schema defaults <- YAML file <- dotted `key=value` overrides -> validated `TrainConfig` (typed DictConfig).

    Raises ConfigError (one line naming the file or override and the key) on a missing or unparsable file, a
    malformed override, an unknown key, a wrong type or an invalid value (tracker.common.config_loading).
    """
    cfg = merge_config(OmegaConf.structured(TrainConfig), path, overrides, example="trainer.max_steps=200")
    resolve_model(cfg)  # type: ignore[arg-type]
    _validate(cfg)  # type: ignore[arg-type]
    return cfg  # type: ignore[return-value]


def _same(a: Any, b: Any) -> bool:
    """Config value vs checkpoint value: lists and tuples alike, 4 == 4.0."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def resolve_model(cfg: TrainConfig) -> None:
    """Fill model.window_len and, with model.init_from, the whole architecture from that checkpoint (read with
    tracker.checkpoint, weights_only); keys the config sets must agree with it. ConfigError (one line) otherwise."""
    import inspect

    from tracker.checkpoint import CheckpointError, default_window_len, model_arch, read_checkpoint, resolve_variant
    from tracker.model import CoTracker3Base

    m = cfg.model
    if not m.init_from:
        if m.window_len is None:
            m.window_len = default_window_len(m.variant)
        return
    try:
        ckpt = read_checkpoint(m.init_from)
        variant = resolve_variant(m.variant, ckpt)
        arch = model_arch(ckpt, variant)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        raise ConfigError(f"model.init_from: {' '.join(str(exc).split())}") from None
    defaults = {k: p.default for k, p in inspect.signature(CoTracker3Base.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    arch = {**defaults, **arch}
    conflicts = []
    if m.window_len is not None and m.window_len != arch["window_len"]:
        conflicts.append(f"model.window_len={m.window_len} (checkpoint: {arch['window_len']})")
    m.window_len = int(arch.pop("window_len"))
    fields = [k for k in ArchConfig.__dataclass_fields__ if k != "extra"]
    for key, value in arch.items():
        value = list(value) if isinstance(value, tuple) else value
        where = m.arch if key in fields else m.arch.extra
        name = f"model.arch.{key}" if key in fields else f"model.arch.extra.{key}"
        current = where.get(key) if key not in fields else getattr(m.arch, key)
        if current is None and key not in fields and _same(value, defaults.get(key)):
            continue  # a constructor keyword the config has no field for, at its default (stride)
        if current is not None and not _same(OmegaConf.to_container(current) if OmegaConf.is_config(current)
                                             else current, value):
            conflicts.append(f"{name}={current} (checkpoint: {value})")
        elif key in fields:
            setattr(m.arch, key, value)
        else:
            where[key] = value
    if conflicts:
        raise ConfigError(f"model.init_from={m.init_from} fixes the architecture; these keys disagree with it: "
                          f"{'; '.join(conflicts)} (unset them to take the checkpoint's values)")


def to_container(cfg: TrainConfig) -> dict[str, Any]:
    """Plain resolved dict (stored in checkpoints as hyper-parameters)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[arg-type,return-value]


def from_container(data: dict[str, Any]) -> TrainConfig:
    """Inverse of `to_container` (e.g. a checkpoint's hyper-parameters) -> typed config; unknown keys rejected."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise omegaconf_error(exc, "stored config does not match the schema") from None
    return cfg  # type: ignore[return-value]
