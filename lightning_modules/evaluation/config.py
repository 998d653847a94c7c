"""Typed evaluation-suite config: OmegaConf dataclasses, YAML files in configs/eval/, `key=value` overrides.

    benchmarks:                       # scored in this order
      - name: davis                   # results and validation logs use it (val_davis/...)
        format: tapvid                # a reader of datagen.formats (auto: detected from the path)
        path: data/tapvid/tapvid_davis.pkl
        query_modes: [first, strided] # first | strided | given (the sample's own query frames)
        max_videos: null              # only the first N videos
        max_frames: null              # only the first N frames of each video
        groups: null                  # mask benchmarks (DAVIS): {group: [video, ...]} for per-group means;
                                      # null: evaluation.groups.DEFAULT_GROUPS; unlisted videos: "other"
    modes: [joint]                    # predictor modes: joint | single_point (the published numbers' protocol)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tracker.common.config_loading import merge_config, omegaconf_error
from tracker.common.errors import ConfigError

from .groups import check_groups, group_names
from .mask_scoring import METRIC as MASK_METRIC
from .predict import PREDICT_MODES
from .protocol import QUERY_MODES
from .scoring import MONITOR_NAMES


class EvalConfigError(ConfigError):
    """A bad evaluation config or benchmark (one line, naming the key; exit status 2)."""


@dataclass
class BenchmarkConfig:
    name: str = MISSING
    path: str = MISSING
    format: str = "auto"
    query_modes: list[str] = field(default_factory=lambda: ["first"])
    max_videos: Optional[int] = None
    max_frames: Optional[int] = None
    groups: Optional[dict[str, list[str]]] = None  # mask benchmarks: group -> video names (None: DEFAULT_GROUPS)


@dataclass
class EvalConfig:
    checkpoint: Optional[str] = None  # our .ckpt, an official .pth, or a variant name (downloaded once)
    variant: Optional[str] = None  # None: the checkpoint's recorded kind, else from the file name
    benchmarks: list[BenchmarkConfig] = field(default_factory=list)
    modes: list[str] = field(default_factory=lambda: ["joint"])
    iters: int = 6
    grid_size: int = 5  # global support grid (offline models, and every model in single-point mode)
    resolution: Optional[list[int]] = None  # model input (H, W); None: the checkpoint's training resolution
    # Give each video the model input of its own aspect ratio, with the short side of `resolution`
    # (tracker.common.pixels.aspect_input_size), instead of resizing every video to `resolution`. None: only on mask
    # benchmarks (real video that no protocol fixes a size for: a 16:9 DAVIS video squeezed into a square model
    # input loses its shapes); point benchmarks keep their protocol's fixed size (TAP-Vid: 256x256 -> resolution).
    keep_aspect: Optional[bool] = None
    device: str = "cpu"
    out: Optional[str] = None  # folder for eval.json / eval.md; None: runs/eval/<checkpoint name>
    cache_dir: Optional[str] = None  # None: <TRACKFORGE_CACHE or ~/.cache/trackforge>/eval-predictions
    cache: bool = True
    progress: bool = True


def validate_benchmarks(benchmarks: list[Any], where: str = "benchmarks") -> None:
    """Names unique and usable as log prefixes, query modes known; EvalConfigError otherwise."""
    import re

    for i, b in enumerate(benchmarks):
        for key in ("name", "path"):
            try:
                value = getattr(b, key)
            except OmegaConfBaseException:  # MISSING in a typed config
                value = None
            if not value or value == "???":
                raise EvalConfigError(f"{where}[{i}].{key} is required")
    names = [b.name for b in benchmarks]
    for i, b in enumerate(benchmarks):
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(b.name)):
            raise EvalConfigError(f"{where}[{i}].name must be letters, digits, _ or -, got {b.name!r}")
        if names.count(b.name) > 1:
            raise EvalConfigError(f"{where}: two benchmarks are named {b.name!r}")
        bad = [m for m in b.query_modes if m not in QUERY_MODES]
        if bad or not b.query_modes:
            raise EvalConfigError(f"{where}[{i}].query_modes must be a non-empty list of {QUERY_MODES}, got "
                                  f"{list(b.query_modes)}")
        for key in ("max_videos", "max_frames"):
            if getattr(b, key) is not None and getattr(b, key) < 1:
                raise EvalConfigError(f"{where}[{i}].{key} must be >= 1, got {getattr(b, key)}")
        problem = check_groups(getattr(b, "groups", None), f"{where}[{i}].groups")
        if problem:
            raise EvalConfigError(problem)


SYNTHETIC_PREFIXES = ("val", "val_zero_motion")


def log_prefixes(name: str) -> tuple[str, str]:
    """(model, zero-motion) log prefixes of a validation benchmark."""
    return f"val_{name}", f"val_{name}_zero_motion"


def check_val_benchmarks(benchmarks: Sequence[Any], monitor: str) -> None:
    """Config-time checks: benchmark entries valid with exactly one query mode each, and `monitor` a metric that
    validation logs (`val/<m>`, `val_zero_motion/<m>`, `val_<name>/<m>`, `val_<name>_zero_motion/<m>`).
    Raises EvalConfigError (one line)."""
    validate_benchmarks(list(benchmarks), where="val_benchmarks")
    for i, b in enumerate(benchmarks):
        if len(b.query_modes) != 1:
            raise EvalConfigError(f"val_benchmarks[{i}].query_modes: validation scores one query mode per benchmark, "
                                  f"got {list(b.query_modes)} (add the benchmark twice under two names for two modes)")
    prefixes = [*SYNTHETIC_PREFIXES, *(p for b in benchmarks for p in log_prefixes(b.name))]
    prefix, _, metric = monitor.partition("/")
    # Mask benchmarks (DAVIS) log mask_consistency and mask_consistency_<group>; which benchmark has masks is known
    # only once its files are read, so any benchmark may name them (as any may name pck).
    mask_names = {MASK_METRIC, *(f"{MASK_METRIC}_{g}" for b in benchmarks
                                 if prefix in log_prefixes(b.name) for g in group_names(b.groups))}
    bench_only = {"pck", *mask_names}
    if prefix not in prefixes or metric not in {*MONITOR_NAMES, *mask_names} or (
            metric in bench_only and prefix in SYNTHETIC_PREFIXES):
        raise EvalConfigError(f"checkpoint.monitor={monitor!r} is not a metric validation logs: use <set>/<metric> "
                              f"with <set> in {prefixes} and <metric> in {list(MONITOR_NAMES)} (pck: benchmarks with "
                              f"an object area only; {MASK_METRIC}[_<group>]: benchmarks with object masks only)")


def load_eval_config(path: Optional[str | Path] = None, overrides: list[str] | tuple[str, ...] = (),
                     extra_benchmarks: list[dict[str, Any]] = (), **values: Any) -> EvalConfig:
    """Schema defaults <- YAML file (+ `extra_benchmarks` appended to its list) <- `values` (CLI flags; None =
    not given) <- dotted `key=value` overrides -> validated EvalConfig. EvalConfigError (one line, naming the key)
    on an unknown key, a wrong type or an invalid value."""
    try:
        cfg = merge_config(OmegaConf.structured(EvalConfig), path, (), example="modes=[joint,single_point]")
        for bench in extra_benchmarks:
            cfg.benchmarks.append(OmegaConf.merge(OmegaConf.structured(BenchmarkConfig), bench))
        extra = {k: v for k, v in values.items() if v is not None}
        if extra:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(extra))
    except OmegaConfBaseException as exc:  # a CLI flag of the wrong type
        raise omegaconf_error(exc, "eval options") from None
    cfg = merge_config(cfg, None, overrides, example="modes=[joint,single_point]")
    try:
        cfg = OmegaConf.to_object(cfg)  # also reports MISSING benchmark keys
    except OmegaConfBaseException as exc:
        raise omegaconf_error(exc, str(path or "eval config")) from None
    if not cfg.benchmarks:
        raise EvalConfigError("no benchmarks to score (give --bench CONFIG.yaml or --data PATH)")
    validate_benchmarks(cfg.benchmarks)
    bad = [m for m in cfg.modes if m not in PREDICT_MODES]
    if bad or not cfg.modes:
        raise EvalConfigError(f"modes must be a non-empty list of {PREDICT_MODES}, got {list(cfg.modes)}")
    if cfg.iters < 1 or cfg.grid_size < 0:
        raise EvalConfigError(f"iters must be >= 1 and grid_size >= 0, got {cfg.iters} and {cfg.grid_size}")
    if cfg.resolution is not None and (len(cfg.resolution) != 2 or any(r < 8 or r % 4 for r in cfg.resolution)):
        raise EvalConfigError(f"resolution must be [H, W], multiples of 4, got {list(cfg.resolution)}")
    return cfg
