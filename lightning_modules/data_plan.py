"""The run's data plan: the training sources resolved once, against the config, into an immutable `DataPlan`.

`build_data_plan(cfg)` opens the sources (data_sources), checks the settings that must agree with the data and
decides the data-dependent ones; the data module, the stream and the validation clips read the plan, the model
its values as recorded in the resolved config (a checkpoint must rebuild the model on its own). The TrainConfig is never edited: `resolved_config(cfg, plan)` is a new config holding the plan's
values under the user's keys, which is what a run dir's config.yaml, the checkpoints' hyper-parameters and the
logger record (concrete values, as they always have).

The model's input size has one name in lightning_modules code, `input_size`: (H, W) in pixels, the training crop,
the size of the validation clips and what the model sees in benchmark validation and evaluation (mask benchmarks:
its short side, at each video's aspect ratio). Its other names:

    data.resolution               YAML and the recorded config (unset in YAML: the sources' frame size)
    model.arch.model_resolution   YAML and the recorded config: the size the architecture's displacement encoding
                                  is scaled for (the tracker's constructor keyword); `arch_input_size` in the plan,
                                  the input size unless set otherwise (fine-tuning weights trained at another size)
    input_resolution              checkpoints' tracker metadata (tracker.checkpoint), evaluation's LoadedModel,
                                  eval.json and TrackerRunner's keyword
    interp_shape                  tracker.EvaluationPredictor's keyword
    --resolution / resolution     the evaluation CLI / suite config override

Checkpoints of older runs load unchanged: they record data.resolution (and input_resolution) just the same.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional

from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import OmegaConf

from .config import ArchConfig, DataConfig, TrainConfig, check_model_input, source_augment
from .data_failures import DataError
from .data_sources import OpenedSource, open_sources, plain_data


@dataclass(frozen=True)
class ResolvedSource(OpenedSource):
    """An opened source with the clip settings its clips are cut with."""

    cfg: DataConfig  # the plan's settings with this source's augment, random_stride and min_tracks


@dataclass(frozen=True)
class DataPlan:
    """What a run trains and validates on, decided once from the config and the data (see module docstring).

    arch_input_size: (H, W) the architecture's displacement scale (model.arch.model_resolution, resolved)
    sources:         every configured source in config order, weight 0 included (its share of clips is logged)
    settings:        the data section as the run records it (data.resolution = the input size), a private plain
                     copy: clip lengths, batching, workers, shuffle buffer, failure bound, validation counts
    The input size and the clip lengths are read from `settings` (properties below), so they cannot disagree.
    """

    arch_input_size: tuple[int, int]
    sources: tuple[ResolvedSource, ...]
    settings: DataConfig

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) the model's input size: training crop and validation clip size."""
        h, w = (int(v) for v in self.settings.resolution)
        return h, w

    @property
    def clip_len(self) -> int:
        """Frames of a training clip (offline recipe: the longest; clip_len_min the shortest, or None)."""
        return self.settings.clip_len

    @property
    def clip_len_min(self) -> Optional[int]:
        return self.settings.clip_len_min

    @property
    def val_clip_len(self) -> int:
        """Frames of a validation clip (data.val_clip_len, else clip_len)."""
        return self.settings.val_clip_len or self.settings.clip_len

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    @property
    def training_sources(self) -> list[ResolvedSource]:
        """The sources clips are drawn from (weight > 0)."""
        return [s for s in self.sources if s.weight > 0]


def source_clip_config(settings: DataConfig, src: OpenedSource) -> DataConfig:
    """data.* as one source's clips see it: with its own augment, random_stride and min_tracks (a new object)."""
    spec = src.spec
    return replace(settings, augment=source_augment(settings, spec, src.name),
                   random_stride=settings.random_stride if spec.random_stride is None else spec.random_stride,
                   min_tracks=settings.min_tracks if spec.min_tracks is None else spec.min_tracks)


def check_clip_lengths(data: DataConfig, sources: list[OpenedSource]) -> None:
    """data.clip_len (and the validation clip length) must not exceed the frames any used source has: DataError
    naming the key, the source and its data otherwise (checked, never clamped)."""
    val_len = data.val_clip_len or data.clip_len
    for src in sources:
        frames = src.info.num_frames
        if src.weight > 0 and frames is not None and data.clip_len > frames:
            raise DataError(f"data.clip_len={data.clip_len} exceeds the {frames} frames of data source {src.name!r} "
                            f"({src.describe()}): lower data.clip_len or use longer videos (scene.num_frames)")
        frames = src.val_info.num_frames if src.val_info is not None else None
        if frames is not None and val_len > frames:
            key = "data.val_clip_len" if data.val_clip_len else "data.clip_len"
            note = "" if data.val_clip_len else " (also the validation clip length)"
            raise DataError(f"{key}={val_len}{note} exceeds the {frames} frames of data source {src.name!r} "
                            f"({src.describe()}): set data.val_clip_len <= {frames}")


def decide_input_size(cfg: TrainConfig, sources: list[OpenedSource]) -> tuple[int, int]:
    """data.resolution as configured, else the frame size of the used sources (they must agree, multiples of 4, a
    size the model takes): DataError otherwise."""
    if cfg.data.resolution is not None:
        h, w = (int(v) for v in cfg.data.resolution)
        return h, w
    used = [s for s in sources if s.weight > 0]
    sizes = {(s.info.height, s.info.width) for s in used}
    if len(sizes) != 1 or None in next(iter(sizes)):
        listed = ", ".join(f"{s.name}: {s.info.height}x{s.info.width}" for s in used)
        raise DataError(f"data.resolution is unset and the sources' frame sizes differ or are unknown ({listed}): "
                        "set data.resolution=[H,W]")
    (h, w), = sizes
    if h % 4 or w % 4:
        raise DataError(f"data.resolution is unset and the frames are {h}x{w}, not multiples of 4: "
                        "set data.resolution=[H,W]")
    check_model_input((h, w), cfg.model.arch, " (unset: the frame size of the data)", DataError)
    return h, w


def warn_upsampled(sources: list[ResolvedSource], input_size: tuple[int, int]) -> None:
    """Warn about a used source whose frames are smaller than the crop even at its largest augmentation scale:
    every one of its clips is upsampled (allowed: a deliberate choice, but rarely meant)."""
    crop_h, crop_w = input_size
    for src in sources:
        h, w = src.info.height, src.info.width
        if src.weight <= 0 or h is None:
            continue
        most = max(src.cfg.augment.scale_range) if src.cfg.augment.enabled else 1.0
        if crop_h > h * most or crop_w > w * most:
            rank_zero_warn(f"data source {src.name!r}: its {h}x{w} frames are smaller than the {crop_h}x{crop_w} "
                           f"training crop even at the largest augmentation scale {most:g}: every clip is upsampled "
                           "(render larger frames or lower data.resolution)")


def decide_arch_input_size(arch: ArchConfig, input_size: tuple[int, int]) -> tuple[int, int]:
    """model.arch.model_resolution, unset: the input size (the model works at its training size). A set one that
    differs from the input size is warned about (intended only when fine-tuning weights trained at that size)."""
    if arch.model_resolution is None:
        return input_size
    h, w = (int(v) for v in arch.model_resolution)
    if [h, w] != list(input_size):
        rank_zero_warn(f"model.arch.model_resolution={list(arch.model_resolution)} differs from the training crop "
                       f"data.resolution={list(input_size)}: the model's displacement scale does not match its input "
                       "(intended only when fine-tuning weights trained at that resolution)")
    return h, w


def build_data_plan(cfg: TrainConfig) -> DataPlan:
    """Open the sources, check the config against them and decide the data-dependent settings; prints one line
    per source. `cfg` is read, never edited. Raises DataError (one line) for a source that cannot serve the
    config: missing or unreadable, clips longer than its videos, an undecidable or unusable input size.

    Called once per process: listing a large folder of sequences takes a while, and every consumer (data module,
    stream workers, validation clips, the recorded config) then shares these readers and values.
    """
    data = plain_data(cfg.data)
    opened = open_sources(data)
    check_clip_lengths(data, opened)
    input_size = decide_input_size(cfg, opened)
    settings = replace(data, resolution=list(input_size))
    sources = tuple(ResolvedSource(**{f.name: getattr(s, f.name) for f in fields(s)},
                                   cfg=source_clip_config(settings, s)) for s in opened)
    warn_upsampled(list(sources), input_size)
    arch_input_size = decide_arch_input_size(cfg.model.arch, input_size)
    plan = DataPlan(arch_input_size=arch_input_size, sources=sources, settings=settings)
    total = sum(s.weight for s in sources)
    h, w = input_size
    for s in sources:
        rank_zero_info(f"data source {s.name!r}: weight {s.weight / total:.0%}, {s.describe()}; "
                       f"clips of {plan.clip_len} frames at {h}x{w}")
    return plan


def resolved_config(cfg: TrainConfig, plan: DataPlan) -> TrainConfig:
    """A new config: `cfg` with the plan's data-dependent values under the user's keys (data.resolution,
    model.arch.model_resolution), what the run records. `cfg` is not edited."""
    return OmegaConf.merge(cfg, {"data": {"resolution": list(plan.input_size)},  # type: ignore[return-value]
                                 "model": {"arch": {"model_resolution": list(plan.arch_input_size)}}})

