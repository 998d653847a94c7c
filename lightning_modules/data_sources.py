"""The configured training sources, opened: readers for training and validation items plus their metadata.

`open_sources(data)` opens every entry of `data.sources` (or the `data.shards` shorthand) through
`datagen.formats`, lists its items, splits off the validation items and reads the metadata (dataset.json / first
sequence) once. Nothing here depends on the clip settings; data_plan turns these into the run's `DataPlan`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import OmegaConf

from datagen.formats import SourceError, SourceInfo, TrackSource, open_source
from tracker.common.errors import one_line

from .config import DataConfig, SourceConfig, data_sources
from .data_failures import DataError


@dataclass(frozen=True)
class OpenedSource:
    """One configured source, opened: its training and validation readers, weight and metadata."""

    name: str
    train: TrackSource
    val: Optional[TrackSource]  # None: num_val=0 and no val_path (the source does not validate)
    weight: float  # as configured (the mixture normalises the weights)
    info: SourceInfo  # of the training items
    val_info: Optional[SourceInfo]  # of the validation items (the same metadata unless val_path is set)
    spec: SourceConfig  # its entry of data.sources

    def describe(self) -> str:
        """e.g. "shards, 3 shard(s), 24 frames of 256x256 (from data/x/dataset.json)" ("?" where unknown)."""
        i = self.info
        size = f"{i.height}x{i.width}" if i.height else "?x?"
        frames = i.num_frames if i.num_frames is not None else "?"
        return (f"{self.train.format}, {len(self.train.items)} {self.train.item_noun}(s), {frames} frames of {size}"
                + (f" (from {i.origin})" if i.origin else ""))


def plain_data(data: Any) -> DataConfig:
    """The data section as a plain DataConfig dataclass (a new object when given an OmegaConf node): cheap attribute
    access in the hot loop and picklable into DataLoader workers."""
    return OmegaConf.to_object(data) if OmegaConf.is_config(data) else data


def _split(name: str, spec: SourceConfig, source: TrackSource) -> tuple[TrackSource, Optional[TrackSource]]:
    """(training, validation) readers: an explicit val_path, or the last `num_val` items held out."""
    items = source.items
    if spec.val_path:
        val = open_source(spec.val_path, source.format)
        held = set(val.items)
        return source.subset([i for i in items if i not in held] or items), val
    if spec.num_val == 0:
        return source, None
    if len(items) <= spec.num_val:
        rank_zero_warn(f"data source {name!r}: only {len(items)} {source.item_noun}(s): validating on training data")
        return source, source.subset(items[-spec.num_val:])
    return source.subset(items[:-spec.num_val]), source.subset(items[-spec.num_val:])


def open_sources(data: DataConfig) -> list[OpenedSource]:
    """Open every configured source (in config order, weight 0 included), list its items and read its metadata.
    Raises DataError (one line) for a missing, unrecognisable or unreadable source."""
    out = []
    for name, spec in data_sources(plain_data(data)).items():
        try:
            source = open_source(spec.path, spec.format)
            train, val = _split(name, spec, source)
            info = train.info()
            val_info = None if val is None else (val.info() if spec.val_path else info)
        except (SourceError, FileNotFoundError, ValueError) as err:  # CorruptSampleError is a ValueError
            raise DataError(f"data source {name!r}: {one_line(err, 300)}") from None
        out.append(OpenedSource(name, train, val, float(spec.weight), info, val_info, spec))
    return out
