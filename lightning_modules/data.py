"""LightningDataModule over `datagen.sources`: a weighted, resampled mixture of training sources, held-out validation.

Training, per DDP rank and DataLoader worker (seeded by rank, worker and start step, so ranks see different random
streams and a resumed run gets a fresh but reproducible one): every clip first draws its source by weight; each
source resamples its items (shards, sequences) uniformly with replacement, reads their raw records into its own
seeded shuffle buffer and decodes late (`TrackSource.decode` -> TrackSample); `make_train_clip` applies the recipe
with the source's own clip options; clips are batched and `with_epoch` fixes the batches per epoch and rank (DDP
needs equal counts). Unreadable items/samples are skipped, counted and warned about (rate-limited); a source that
yields no usable clip in `data.max_consecutive_failures` consecutive attempts ends the run with a one-line
`DataError` naming it, its bad items and the reasons, instead of cycling for ever.

Validation: the first `val_clips` decodable samples of the sources' validation items (interleaved over sources),
prepared deterministically once and split over ranks.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional

import lightning as L
import numpy as np
import torch
import webdataset as wds
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, IterableDataset

from datagen.errors import one_line
from datagen.sources import SourceError, SourceInfo, TrackSource, open_source

from .augment import Clip, choose_clip_length, make_eval_clip, make_train_clip
from .config import (ConfigError, DataConfig, SourceConfig, TrainConfig, check_model_input, data_sources,
                     source_augment)

log = logging.getLogger(__name__)


class DataError(ConfigError):
    """The training data cannot serve this configuration (missing source, clip longer than the videos, no usable
    clip, no validation clip); the message is one line. A ConfigError, so the CLI prints it without a traceback."""


# ---------------------------------------------------------------------------------------------- sources
@dataclass
class ResolvedSource:
    """One configured source, opened: its training and validation readers, weight and per-source clip config."""

    name: str
    train: TrackSource
    val: Optional[TrackSource]
    weight: float
    cfg: DataConfig  # data.* with this source's overrides (random_stride, min_tracks, augment): _source_data
    info: SourceInfo  # of the training items
    val_info: Optional[SourceInfo]  # of the validation items (the same metadata unless val_path is set)
    spec: SourceConfig  # its entry of data.sources


def _split(name: str, src_cfg: SourceConfig, source: TrackSource) -> tuple[TrackSource, Optional[TrackSource]]:
    """(training, validation) readers: an explicit val_path, or the last `num_val` items held out."""
    items = source.items
    if src_cfg.val_path:
        val = open_source(src_cfg.val_path, source.format)
        held = set(val.items)
        return source.subset([i for i in items if i not in held] or items), val
    if src_cfg.num_val == 0:
        return source, None
    if len(items) <= src_cfg.num_val:
        rank_zero_warn(f"data source {name!r}: only {len(items)} {source.item_noun}(s): validating on training data")
        return source, source.subset(items[-src_cfg.num_val:])
    return source.subset(items[:-src_cfg.num_val]), source.subset(items[-src_cfg.num_val:])


def _plain(data: Any) -> DataConfig:
    return OmegaConf.to_object(data) if OmegaConf.is_config(data) else data


def _source_data(data: DataConfig, spec: SourceConfig, name: str) -> DataConfig:
    """data.* as one source's clips see it: with its own augment, random_stride and min_tracks."""
    return replace(data, augment=source_augment(data, spec, name),
                   random_stride=data.random_stride if spec.random_stride is None else spec.random_stride,
                   min_tracks=data.min_tracks if spec.min_tracks is None else spec.min_tracks)


def resolve_sources(data: DataConfig) -> list[ResolvedSource]:
    """Open every configured source, list its items and read its metadata (dataset.json / first sequence).
    Raises DataError (one line) for a missing, unrecognisable or unreadable source."""
    data = _plain(data)
    out = []
    for name, src_cfg in data_sources(data).items():
        try:
            source = open_source(src_cfg.path, src_cfg.format)
            train, val = _split(name, src_cfg, source)
            info = train.info()
            val_info = None if val is None else (val.info() if src_cfg.val_path else info)
        except (SourceError, FileNotFoundError, ValueError) as err:  # CorruptSampleError is a ValueError
            raise DataError(f"data source {name!r}: {one_line(err, 300)}") from None
        out.append(ResolvedSource(name, train, val, float(src_cfg.weight), _source_data(data, src_cfg, name), info,
                                  val_info, src_cfg))
    return out


def _describe(src: ResolvedSource) -> str:
    i = src.info
    size = f"{i.height}x{i.width}" if i.height else "?x?"
    frames = i.num_frames if i.num_frames is not None else "?"
    return (f"{src.train.format}, {len(src.train.items)} {src.train.item_noun}(s), {frames} frames of {size}"
            + (f" (from {i.origin})" if i.origin else ""))


def check_sources(cfg: TrainConfig, sources: list[ResolvedSource]) -> None:
    """Configs that must agree with the data, checked against each other instead of clamped (in place):

    * data.clip_len (and val_clip_len) must not exceed the frames any used source has -> DataError;
    * data.resolution unset -> the sources' frame size (they must agree, multiples of 4) -> else DataError;
    * model.arch.model_resolution unset -> data.resolution (the model works at its training size);
    * an explicit data.resolution that forces every clip of a source to be upsampled, or a model_resolution that
      differs from data.resolution, is reported as a warning (a deliberate choice, e.g. fine-tuning official weights).
    """
    data = cfg.data
    val_len = data.val_clip_len or data.clip_len
    for src in sources:
        frames = src.info.num_frames
        if src.weight > 0 and frames is not None and data.clip_len > frames:
            raise DataError(f"data.clip_len={data.clip_len} exceeds the {frames} frames of data source {src.name!r} "
                            f"({_describe(src)}): lower data.clip_len or use longer videos (scene.num_frames)")
        frames = src.val_info.num_frames if src.val_info is not None else None
        if frames is not None and val_len > frames:
            key = "data.val_clip_len" if data.val_clip_len else "data.clip_len"
            note = "" if data.val_clip_len else " (also the validation clip length)"
            raise DataError(f"{key}={val_len}{note} exceeds the {frames} frames of data source {src.name!r} "
                            f"({_describe(src)}): set data.val_clip_len <= {frames}")
    used = [s for s in sources if s.weight > 0]
    if data.resolution is None:
        sizes = {(s.info.height, s.info.width) for s in used}
        if len(sizes) != 1 or None in next(iter(sizes)):
            listed = ", ".join(f"{s.name}: {s.info.height}x{s.info.width}" for s in used)
            raise DataError(f"data.resolution is unset and the sources' frame sizes differ or are unknown ({listed}): "
                            "set data.resolution=[H,W]")
        (h, w), = sizes
        if h % 4 or w % 4:
            raise DataError(f"data.resolution is unset and the frames are {h}x{w}, not multiples of 4: "
                            "set data.resolution=[H,W]")
        data.resolution = [h, w]
        check_model_input(cfg, " (unset: the frame size of the data)", DataError)
    crop_h, crop_w = (int(v) for v in data.resolution)
    for src in used:
        h, w = src.info.height, src.info.width
        if h is None:
            continue
        most = max(src.cfg.augment.scale_range) if src.cfg.augment.enabled else 1.0
        if crop_h > h * most or crop_w > w * most:
            rank_zero_warn(f"data source {src.name!r}: its {h}x{w} frames are smaller than the {crop_h}x{crop_w} "
                           f"training crop even at the largest augmentation scale {most:g}: every clip is upsampled "
                           "(render larger frames or lower data.resolution)")
    arch = cfg.model.arch
    if arch.model_resolution is None:
        arch.model_resolution = [crop_h, crop_w]
    elif [int(v) for v in arch.model_resolution] != [crop_h, crop_w]:
        rank_zero_warn(f"model.arch.model_resolution={list(arch.model_resolution)} differs from the training crop "
                       f"data.resolution={[crop_h, crop_w]}: the model's displacement scale does not match its input "
                       "(intended only when fine-tuning weights trained at that resolution)")


def resolve_data(cfg: TrainConfig) -> list[ResolvedSource]:
    """Open the sources, resolve and check the data-dependent settings of `cfg` in place (see check_sources) and
    print one line per source. Returns the opened sources for `TrackDataModule(..., sources=)`, so that a process
    lists them once (listing a large folder of sequences takes a while)."""
    sources = resolve_sources(cfg.data)
    check_sources(cfg, sources)
    total = sum(s.weight for s in sources)
    for s in sources:
        rank_zero_info(f"data source {s.name!r}: weight {s.weight / total:.0%}, {_describe(s)}; "
                       f"clips of {cfg.data.clip_len} frames at {cfg.data.resolution[0]}x{cfg.data.resolution[1]}")
    data = _plain(cfg.data)  # with the resolution now known
    return [replace(s, cfg=_source_data(data, s.spec, s.name)) for s in sources]


def resolve_data_config(cfg: TrainConfig) -> TrainConfig:
    """resolve_data(cfg) for its checks and in-place settings; returns cfg. Called before the config is saved, so
    run dirs and checkpoints record concrete values."""
    resolve_data(cfg)
    return cfg


# ---------------------------------------------------------------------------------------------- failures
class StreamError(RuntimeError):
    """A source of the training stream keeps failing (raised inside the stream; becomes a DataError)."""


class FailureLog:
    """Skip-and-count for one source of one stream, with rate-limited warnings and a bound.

    `fail(item, kind, err)` counts a failed attempt (kind: "unreadable", "few_tracks", "too_short"); unreadable
    data is warned about (the first 3, then at powers of two or once a minute, each line with the running count).
    `consecutive` failures without a usable clip raise StreamError with one line naming the source, its failing
    items and the reasons. `ok()` resets the run of failures.
    """

    WARN_FIRST, WARN_EVERY_S = 3, 60.0
    REASONS = {"unreadable": "unreadable", "few_tracks": "too few candidate tracks", "too_short": "too short"}

    def __init__(self, name: str = "", noun: str = "shard", limit: int | None = None) -> None:
        self.name, self.noun, self.limit = name, noun, limit
        self.count = 0  # unreadable items/samples so far (the `skipped` counter the module logs)
        self.consecutive = 0
        self.kinds: Counter[str] = Counter()  # of the current run of failures
        self.items: dict[str, None] = {}
        self.last = ""
        self._last_warn = -math.inf
        self._suppressed = 0

    def __call__(self, exn: BaseException) -> bool:
        """WebDataset-style handler (also used by evaluation): count and warn, then continue."""
        self.fail("", "unreadable", exn)
        return True

    def fail(self, item: str, kind: str, err: BaseException | str) -> None:
        msg = one_line(err, 300) if isinstance(err, str) else f"{type(err).__name__}: {one_line(err, 300)}"
        self.consecutive += 1
        self.kinds[kind] += 1
        self.last = msg
        if item and len(self.items) < 5:
            self.items.setdefault(item)
        if kind == "unreadable":
            self.count += 1
            now = time.monotonic()
            if (self.count <= self.WARN_FIRST or self.count & (self.count - 1) == 0
                    or now - self._last_warn >= self.WARN_EVERY_S):
                extra = f", {self._suppressed} similar warning(s) not shown" if self._suppressed else ""
                log.warning("skipping corrupt data (%d so far in this stream%s): %s", self.count, extra, msg)
                self._last_warn, self._suppressed = now, 0
            else:
                self._suppressed += 1
        if self.limit is not None and self.consecutive >= self.limit:
            raise StreamError(self.message())

    def ok(self) -> None:
        self.consecutive = 0
        self.kinds.clear()
        self.items.clear()

    def message(self) -> str:
        reasons = ", ".join(f"{n} {self.REASONS.get(k, k)}" for k, n in self.kinds.most_common())
        items = ", ".join(self.items) + (" ..." if len(self.items) >= 5 else "")
        return (f"training data: source {self.name!r} gave no usable clip in {self.consecutive} consecutive attempts "
                f"({reasons}); {self.noun}s: {items or '-'}; last: {self.last} "
                f"(fix or remove that data, or raise data.max_consecutive_failures)")


# ---------------------------------------------------------------------------------------------- training stream
class StreamSeed:
    """Picklable per-(rank, worker, start step) seed: distinct deterministic streams for every DDP rank and
    DataLoader worker; `start_step` is bumped at each epoch start and on resume so the stream moves on."""

    def __init__(self, seed: int, rank: int) -> None:
        self.seed, self.rank, self.start_step = int(seed), int(rank), 0

    def __call__(self) -> int:
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        state = np.random.SeedSequence([self.seed, self.rank, worker, self.start_step]).generate_state(1)
        return int(state[0])


def _raw_records(src: ResolvedSource, rng: np.random.Generator, buffer: int, failures: FailureLog
                 ) -> Iterator[tuple[str, Any]]:
    """(item, raw record) for ever: items drawn uniformly with replacement, records through a shuffle buffer.
    An unreadable or empty item is a failure (so a source of only bad items ends at the failure bound)."""
    items = src.train.items

    def records() -> Iterator[tuple[str, Any]]:
        while True:
            item = items[int(rng.integers(len(items)))]
            n = 0
            try:
                for raw in src.train.iter_raw(item):
                    n += 1
                    yield item, raw
            except Exception as exn:  # CorruptShardError, OSError, anything a broken file raises
                failures.fail(item, "unreadable", exn)
            else:
                if n == 0:
                    failures.fail(item, "unreadable", f"{src.train.item_noun} {item} holds no samples")

    pool: list[tuple[str, Any]] = []
    for rec in records():
        pool.append(rec)
        if len(pool) >= max(buffer, 1):
            yield pool.pop(int(rng.integers(len(pool))))


class MixtureStream(IterableDataset):
    """Batches from the weighted mixture of sources (one stream per DDP rank and DataLoader worker).

    Batch: video uint8 (B, L, 3, H, W); tracks float32 (B, L, N, 2); visibility bool (B, L, N); keys list[str]
    ("<source>/<key>" with several sources); skipped: unreadable data skipped so far by this stream; dropped: clips
    with too few tracks; stream: stream id; source_counts int64 (S,): clips per source so far in this stream.
    One clip length per batch (the offline recipe's random length), so batches stack. When a source keeps failing,
    the stream yields a final {"__error__": message} (raised as DataError by `TrainLoader` in the main process, so the
    message survives DataLoader workers intact) and ends.
    """

    def __init__(self, sources: list[ResolvedSource], data_cfg: DataConfig, seed_fn: StreamSeed) -> None:
        super().__init__()
        self.sources = [s for s in sources if s.weight > 0]
        self.names = [s.name for s in sources]  # source_counts follow the configured order (weight 0 included)
        self.cfg = data_cfg
        self.seed_fn = seed_fn
        self.error: Optional[str] = None

    def __iter__(self) -> Iterator[dict]:
        if self.error is not None:  # `with_epoch` re-iterates an ended stream: report again, read nothing
            yield {"__error__": self.error}
            return
        stream_id = self.seed_fn()
        rng = np.random.default_rng(stream_id)
        weights = np.array([s.weight for s in self.sources], dtype=np.float64)
        weights /= weights.sum()
        failures = [FailureLog(s.name, s.train.item_noun, self.cfg.max_consecutive_failures) for s in self.sources]
        records = [_raw_records(s, np.random.default_rng([stream_id, j]), self.cfg.shuffle_buffer, failures[j])
                   for j, s in enumerate(self.sources)]
        index = [self.names.index(s.name) for s in self.sources]
        counts = np.zeros(len(self.names), dtype=np.int64)
        dropped = 0
        several = len(self.names) > 1
        clips: list[Clip] = []
        length = choose_clip_length(rng, self.cfg.clip_len, self.cfg.clip_len_min)
        try:
            while True:
                j = int(rng.choice(len(self.sources), p=weights)) if len(self.sources) > 1 else 0
                src, fail = self.sources[j], failures[j]
                item, raw = next(records[j])
                try:
                    sample = src.train.decode(raw)
                except Exception as exn:  # CorruptSampleError and anything a garbled member may raise
                    fail.fail(item, "unreadable", exn)
                    continue
                if sample.num_frames < length:
                    fail.fail(item, "too_short", f"{sample.key} has {sample.num_frames} frames, a clip {length}")
                    continue
                clip = make_train_clip(sample, src.cfg, length, rng)
                if clip is None:
                    dropped += 1
                    fail.fail(item, "few_tracks", f"{sample.key}: fewer than min_tracks candidate tracks")
                    continue
                fail.ok()
                counts[index[j]] += 1
                if several:
                    clip.key = f"{src.name}/{clip.key}"
                clips.append(clip)
                if len(clips) == self.cfg.batch_size:
                    yield {
                        "video": torch.stack([c.video for c in clips]),
                        "tracks": torch.stack([c.tracks for c in clips]),
                        "visibility": torch.stack([c.visibility for c in clips]),
                        "keys": [c.key for c in clips],
                        "skipped": torch.tensor(sum(f.count for f in failures)),
                        "dropped": torch.tensor(dropped),
                        "stream": torch.tensor(stream_id % (2**62)),
                        "source_counts": torch.from_numpy(counts.copy()),
                    }
                    clips = []
                    length = choose_clip_length(rng, self.cfg.clip_len, self.cfg.clip_len_min)
        except StreamError as err:
            self.error = str(err)
            yield {"__error__": self.error}


class TrainLoader(DataLoader):
    """DataLoader that turns the stream's error record into a DataError in the main process."""

    def __iter__(self):
        for batch in super().__iter__():
            if isinstance(batch, dict) and "__error__" in batch:
                raise DataError(batch["__error__"])
            yield batch


# ---------------------------------------------------------------------------------------------- validation
class RankShare(Dataset):
    """Rank `rank`'s share of a validation list (every world-th item from `rank`), padded to ceil(len / world)
    entries: a rank without a step of its own would skip validation and leave the others waiting in the metric
    all-gather. Fillers repeat the rank's first item (item 0 when it has none) with pad=True and are not scored.
    Entries: entry(item) plus "pad"."""

    def __init__(self, items: list, rank: int, world: int, entry: Callable[[Any], dict]) -> None:
        self.own = items[rank::world] or items[:1]
        self.scored = len(items[rank::world])
        self.length = math.ceil(len(items) / world)
        self.entry = entry

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        return {**self.entry(self.own[i % len(self.own)]), "pad": i >= self.scored}


def _clip_entry(c: Clip) -> dict:
    """video uint8 (L, 3, H, W), tracks (L, N, 2), visibility (L, N), keys."""
    return {"video": c.video, "tracks": c.tracks, "visibility": c.visibility, "keys": c.key}


def rank_val_clips(clips: list[Clip], rank: int, world: int) -> RankShare:
    """Rank `rank`'s share of the preloaded validation clips (RankShare)."""
    return RankShare(clips, rank, world, _clip_entry)


def _val_samples(src: ResolvedSource, failures: FailureLog) -> Iterator[tuple[str, Any]]:
    """(item, raw) of a source's validation items in order; unreadable items are counted and skipped."""
    for item in src.val.items:
        try:
            for raw in src.val.iter_raw(item):
                yield item, raw
        except Exception as exn:
            failures.fail(item, "unreadable", exn)


def load_val_clips(sources: list[ResolvedSource], data_cfg: DataConfig, seed: int) -> tuple[list[Clip], int]:
    """The first `val_clips` usable samples of the sources' validation items (taking one from each source in turn),
    prepared by `make_eval_clip` (the first val_clip_len frames at data.resolution). Returns (clips, number of
    unreadable items/samples skipped). Raises DataError (one line, with the reasons) when there is none."""
    failures = FailureLog()
    length = data_cfg.val_clip_len or data_cfg.clip_len
    several = len(sources) > 1
    streams = [(s, _val_samples(s, failures)) for s in sources if s.val is not None]
    if not streams:
        raise DataError("no validation data: every source has num_val=0 and no val_path")
    clips: list[Clip] = []
    i = 0
    while streams and len(clips) < data_cfg.val_clips:
        for src, stream in list(streams):
            if len(clips) >= data_cfg.val_clips:
                break
            rec = next(stream, None)
            if rec is None:
                streams.remove((src, stream))
                continue
            item, raw = rec
            try:
                sample = src.val.decode(raw)
            except Exception as exn:
                failures.fail(item, "unreadable", exn)
                continue
            if sample.num_frames < length:
                failures.fail(item, "too_short", f"{sample.key} has {sample.num_frames} frames < {length}")
                continue
            clip = make_eval_clip(sample, tuple(data_cfg.resolution), length, data_cfg.val_num_tracks, seed + i)
            i += 1
            if clip is None:
                failures.fail(item, "few_tracks", f"{sample.key}: no visible track")
                continue
            if several:
                clip.key = f"{src.name}/{clip.key}"
            clips.append(clip)
    if not clips:
        where = ", ".join(f"{s.name}: {', '.join(s.val.items[:3])}" for s in sources if s.val is not None)
        reasons = ", ".join(f"{n} {FailureLog.REASONS.get(k, k)}" for k, n in failures.kinds.most_common())
        raise DataError(f"no usable validation clips in {where} ({reasons or 'no samples'}; last: "
                        f"{failures.last or '-'}); val_clip_len={length}")
    return clips, failures.count


# ---------------------------------------------------------------------------------------------- module
def accumulation_steps(data: DataConfig, world_size: int) -> int:
    """Gradient accumulation reaching data.global_batch_size from data.batch_size clips on each of world_size
    processes (1 when unset). Raises DataError when it cannot be reached exactly."""
    if data.global_batch_size is None:
        return 1
    per_step = data.batch_size * world_size
    if data.global_batch_size % per_step:
        raise DataError(f"data.global_batch_size={data.global_batch_size} is not a multiple of data.batch_size x "
                        f"world size = {data.batch_size} x {world_size} = {per_step}: change data.batch_size or the "
                        "number of devices/nodes")
    return data.global_batch_size // per_step


def apply_global_batch(trainer: Any, cfg: TrainConfig) -> int:
    """Set the trainer's gradient accumulation for data.global_batch_size (validation interval kept in optimizer
    steps); returns the effective batch (clips per optimizer step)."""
    accum = accumulation_steps(cfg.data, trainer.world_size)
    trainer.accumulate_grad_batches = accum
    if accum > 1 and isinstance(trainer.val_check_interval, int):
        # Lightning counts the validation interval in batches; the config counts optimizer steps.
        trainer.val_check_interval = min(cfg.trainer.val_check_interval, cfg.trainer.max_steps) * accum
    effective = cfg.data.batch_size * trainer.world_size * accum
    rank_zero_info(f"effective batch: {effective} clips per optimizer step = {cfg.data.batch_size} per device x "
                   f"{trainer.world_size} process(es) x {accum} accumulated")
    return effective


class DataStatsLogger(Callback):
    """Logs data/share/<source> (share of training clips so far per source, this rank) and data/effective_batch."""

    def __init__(self, names: list[str], effective_batch: int) -> None:
        self.names = names
        self.effective_batch = effective_batch
        self._counts: dict[int, np.ndarray] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not isinstance(batch, dict) or "source_counts" not in batch:
            return
        self._counts[int(batch["stream"])] = batch["source_counts"].cpu().numpy()  # cumulative per stream
        total = sum(self._counts.values())
        seen = max(int(total.sum()), 1)
        for name, n in zip(self.names, total):
            pl_module.log(f"data/share/{name}", float(n) / seen, on_step=True, on_epoch=False)
        pl_module.log("data/effective_batch", float(self.effective_batch), on_step=True, on_epoch=False)

    def shares(self) -> dict[str, float]:
        total = sum(self._counts.values()) if self._counts else np.zeros(len(self.names))
        seen = max(int(np.sum(total)), 1)
        return {n: float(c) / seen for n, c in zip(self.names, total)}


class TrackDataModule(L.LightningDataModule):
    """Training mixture + validation clips from the configured sources (see module docstring)."""

    def __init__(self, data_cfg: Any, seed: int = 42, sources: list[ResolvedSource] | None = None) -> None:
        """`sources`: what resolve_data(cfg) returned for this data config (else they are opened here)."""
        super().__init__()
        # Plain dataclass copy: cheap attribute access in the hot loop and picklable into DataLoader workers.
        self.cfg = _plain(data_cfg)
        if self.cfg.resolution is None:
            raise DataError("data.resolution is unresolved: call resolve_data_config(cfg) first")
        self.seed = int(seed)
        self.sources = resolve_sources(self.cfg) if sources is None else sources
        self.val_clips: list[Clip] | None = None
        self.val_skipped = 0
        self._stream_seed: StreamSeed | None = None

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def _rank_info(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.val_clips is None:
            self.val_clips, self.val_skipped = load_val_clips(self.sources, self.cfg, self.seed)

    def batches_per_epoch(self) -> int:
        return max(self.cfg.epoch_samples // self.cfg.batch_size, 1)

    def set_start_step(self, step: int) -> None:
        """Re-seed the training stream (called at each epoch start with the global step; also on resume)."""
        if self._stream_seed is not None:
            self._stream_seed.start_step = int(step)

    def train_dataloader(self) -> DataLoader:
        rank, _ = self._rank_info()
        self._stream_seed = StreamSeed(self.seed, rank)
        if self.trainer is not None:
            self._stream_seed.start_step = int(self.trainer.global_step)
        workers = self.cfg.num_workers
        per_worker = math.ceil(self.batches_per_epoch() / max(workers, 1))
        pipeline = wds.DataPipeline(MixtureStream(self.sources, self.cfg, self._stream_seed)).with_epoch(per_worker)
        from .stop_signals import keep_worker_through_stop

        return TrainLoader(pipeline, batch_size=None, num_workers=workers, persistent_workers=False,
                           pin_memory=torch.cuda.is_available(), collate_fn=None,
                           worker_init_fn=keep_worker_through_stop if workers else None)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_info()
        return DataLoader(rank_val_clips(self.val_clips or [], rank, world), batch_size=None, shuffle=False,
                          num_workers=0)
