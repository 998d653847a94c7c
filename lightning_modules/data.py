"""LightningDataModule streaming WebDataset shards: resampled training stream, held-out validation clips.

Training: `wds.ResampledShards` (seeded per rank, DataLoader worker and start step, so DDP ranks see disjoint
random streams and a resumed run gets a fresh but reproducible stream) -> tar reading with a skip-and-count
handler -> seeded shuffle buffer -> `datagen.shards.decode_sample` (corrupt samples are skipped, counted and
warned about) -> `make_train_clip` (recipe augmentation) -> batches -> `with_epoch` (fixed batches per epoch and
rank, which DDP needs). Validation: the first `val_clips` samples of the held-out shards, prepared
deterministically once and split over ranks.
"""
from __future__ import annotations

import glob
import logging
import math
import os
import warnings
from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
import webdataset as wds
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from .augment import Clip, choose_clip_length, make_eval_clip, make_train_clip

log = logging.getLogger(__name__)


def expand_pattern(pattern: str) -> list[str]:
    """Shard pattern -> sorted list of shard paths/URLs.

    Comma-separated parts; each is brace-expanded; local parts with glob magic are globbed; URLs ("scheme://",
    "pipe:") are kept as they are. Raises FileNotFoundError naming the pattern when nothing matches.
    """
    from braceexpand import braceexpand

    urls: list[str] = []
    for part in [p.strip() for p in str(pattern).split(",") if p.strip()]:
        for item in braceexpand(part):
            if "://" in item or item.startswith("pipe:"):
                urls.append(item)
            elif glob.has_magic(item):
                urls += sorted(glob.glob(os.path.expanduser(item)))
            elif os.path.exists(item):
                urls.append(item)
    if not urls:
        raise FileNotFoundError(f"no shards match {pattern!r} (run `make data` or set data.shards=...)")
    return list(dict.fromkeys(urls))


def split_train_val(shards: str, val_shards: str | None, num_val: int) -> tuple[list[str], list[str]]:
    """Training and validation shard lists: an explicit validation pattern, or the last `num_val` shards held out."""
    train = expand_pattern(shards)
    if val_shards:
        val = expand_pattern(val_shards)
        return [u for u in train if u not in set(val)] or train, val
    if len(train) <= num_val:
        warnings.warn(f"only {len(train)} shard(s) in {shards!r}: validating on training data", stacklevel=2)
        return train, train[-num_val:]
    return train[:-num_val], train[-num_val:]


class SkipCounter:
    """WebDataset error handler: count and warn about a bad shard/sample, then continue (never crash the run)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: BaseException) -> bool:
        self.count += 1
        msg = " ".join(str(exn).split())[:300]
        log.warning("skipping corrupt data (%d so far in this stream): %s: %s", self.count, type(exn).__name__, msg)
        return True


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


class ClipBatcher:
    """Pipeline stage: raw tar samples -> shuffled, decoded, augmented clips -> batch dicts.

    Batch: video uint8 (B, L, 3, H, W); tracks float32 (B, L, N, 2); visibility bool (B, L, N); keys list[str];
    skipped: corrupt samples skipped so far by this stream; dropped: clips with too few tracks; stream: stream id.
    One clip length per batch (the offline recipe's random length), so batches stack.
    """

    def __init__(self, data_cfg: Any, seed_fn: StreamSeed, handler: SkipCounter) -> None:
        self.cfg = data_cfg
        self.seed_fn = seed_fn
        self.handler = handler

    def _decoded(self, src: Iterator[dict], rng: np.random.Generator) -> Iterator[dict]:
        from datagen.shards import decode_sample

        buffer: list[dict] = []
        for raw in src:
            buffer.append(raw)
            if len(buffer) < max(self.cfg.shuffle_buffer, 1):
                continue
            raw = buffer.pop(int(rng.integers(len(buffer))))
            try:
                yield decode_sample(raw)
            except Exception as exn:  # CorruptSampleError and anything a garbled member may raise
                self.handler(exn)

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        stream_id = self.seed_fn()
        rng = np.random.default_rng(stream_id)
        dropped = 0
        length = choose_clip_length(rng, self.cfg.clip_len, self.cfg.clip_len_min)
        clips: list[Clip] = []
        for sample in self._decoded(src, rng):
            clip = make_train_clip(sample, self.cfg, length, rng)
            if clip is None:
                dropped += 1
                continue
            if clips and clip.video.shape[0] != clips[0].video.shape[0]:  # source shorter than the length
                dropped += 1
                continue
            clips.append(clip)
            if len(clips) == self.cfg.batch_size:
                yield {
                    "video": torch.stack([c.video for c in clips]),
                    "tracks": torch.stack([c.tracks for c in clips]),
                    "visibility": torch.stack([c.visibility for c in clips]),
                    "keys": [c.key for c in clips],
                    "skipped": torch.tensor(self.handler.count),
                    "dropped": torch.tensor(dropped),
                    "stream": torch.tensor(stream_id % (2**62)),
                }
                clips = []
                length = choose_clip_length(rng, self.cfg.clip_len, self.cfg.clip_len_min)


def _collate_single(batch):
    return batch


class ValClips(Dataset):
    """Preloaded validation clips (map-style); items: video uint8 (L, 3, H, W), tracks (L, N, 2), visibility,
    keys, pad. The first `scored` items are the clips; further items (up to `length`) repeat them as fillers with
    pad=True, so that every DDP rank runs the same number of steps; fillers are not scored."""

    def __init__(self, clips: list[Clip], length: int | None = None, scored: int | None = None) -> None:
        self.clips = clips
        self.length = len(clips) if length is None else length
        self.scored = len(clips) if scored is None else scored

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        c = self.clips[i % len(self.clips)]
        return {"video": c.video, "tracks": c.tracks, "visibility": c.visibility, "keys": c.key,
                "pad": i >= self.scored}


def rank_val_clips(clips: list[Clip], rank: int, world: int) -> ValClips:
    """Rank `rank`'s share of the validation clips, padded to ceil(len / world) items: a rank without a step of
    its own would skip validation and leave the others waiting in the metric all-gather."""
    own = clips[rank::world]
    # With fewer clips than ranks, a rank without one repeats clip 0 unscored.
    return ValClips(own or clips[:1], length=math.ceil(len(clips) / world), scored=len(own))


def load_val_clips(urls: list[str], data_cfg: Any, seed: int) -> tuple[list[Clip], int]:
    """The first `val_clips` decodable samples of the validation shards, prepared by `make_eval_clip`.
    Returns (clips, number of corrupt samples/shards skipped)."""
    from datagen.shards import decode_sample

    handler = SkipCounter()
    clips: list[Clip] = []
    pipeline = wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=handler))
    length = data_cfg.val_clip_len or data_cfg.clip_len
    for i, raw in enumerate(pipeline):
        if len(clips) >= data_cfg.val_clips:
            break
        try:
            sample = decode_sample(raw)
        except Exception as exn:
            handler(exn)
            continue
        clip = make_eval_clip(sample, tuple(data_cfg.resolution), length, data_cfg.val_num_tracks, seed + i)
        if clip is not None:
            clips.append(clip)
    return clips, handler.count


class ShardDataModule(L.LightningDataModule):
    """Training stream + validation clips from WebDataset shards (see module docstring)."""

    def __init__(self, data_cfg: Any, seed: int = 42) -> None:
        super().__init__()
        # Plain dataclass copy: cheap attribute access in the hot loop and picklable into DataLoader workers.
        self.cfg = OmegaConf.to_object(data_cfg) if OmegaConf.is_config(data_cfg) else data_cfg
        self.seed = int(seed)
        self.train_urls, self.val_urls = split_train_val(self.cfg.shards, self.cfg.val_shards, self.cfg.num_val_shards)
        self.val_clips: list[Clip] | None = None
        self.val_skipped = 0
        self._stream_seed: StreamSeed | None = None

    def _rank_info(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.val_clips is None:
            self.val_clips, self.val_skipped = load_val_clips(self.val_urls, self.cfg, self.seed)
            if not self.val_clips:
                raise RuntimeError(f"no usable validation clips in {self.val_urls}")

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
        handler = SkipCounter()  # one counter for tar-level and sample-level errors (shared inside each worker)
        pipeline = wds.DataPipeline(
            wds.ResampledShards(self.train_urls, seed=0, worker_seed=self._stream_seed, deterministic=True),
            wds.tarfile_to_samples(handler=handler),
            ClipBatcher(self.cfg, self._stream_seed, handler),
        ).with_epoch(per_worker)
        return DataLoader(pipeline, batch_size=None, num_workers=workers, persistent_workers=False,
                          pin_memory=torch.cuda.is_available(), collate_fn=None)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_info()
        return DataLoader(rank_val_clips(self.val_clips or [], rank, world), batch_size=None, shuffle=False,
                          num_workers=0)
