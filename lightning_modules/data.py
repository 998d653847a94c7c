"""LightningDataModule over a `DataPlan`: the training stream of the plan's weighted mixture of sources and the
held-out validation clips.

Where each job lives:
    data_plan      sources resolved once against the config (input size, clip lengths, per-source settings)
    data_sources   opening the configured sources (readers, validation split, metadata)
    train_stream   the training mixture: seeded per rank, worker and start step; bounded failures
    val_clips      the validation clips, prepared once and split over the ranks
    data_failures  DataError and the skip-and-count failure log
    global_batch   data.global_batch_size by gradient accumulation; data_stats: source shares logged per step
"""
from __future__ import annotations

import math

import lightning as L
import torch
import webdataset as wds
from torch.utils.data import DataLoader

from .augment import Clip
from .data_plan import DataPlan
from .train_stream import MixtureStream, StreamSeed, TrainLoader
from .val_clips import load_val_clips, rank_val_clips


class TrackDataModule(L.LightningDataModule):
    """Training mixture + validation clips of `plan` (build_data_plan's), seeded with `seed`.

    Training batches: train_stream.MixtureStream; validation entries: one clip each (val_clips.rank_val_clips):
    video uint8 (L, 3, H, W) at plan.input_size, tracks (L, N, 2), visibility (L, N), keys, pad.
    """

    def __init__(self, plan: DataPlan, seed: int = 42) -> None:
        super().__init__()
        self.plan = plan
        self.seed = int(seed)
        self.val_clips: list[Clip] | None = None
        self.val_skipped = 0
        self._stream_seed: StreamSeed | None = None

    def _rank_info(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        if self.val_clips is None:
            self.val_clips, self.val_skipped = load_val_clips(self.plan, self.seed)

    def batches_per_epoch(self) -> int:
        settings = self.plan.settings
        return max(settings.epoch_samples // settings.batch_size, 1)

    def set_start_step(self, step: int) -> None:
        """Re-seed the training stream (called at each epoch start with the global step; also on resume)."""
        if self._stream_seed is not None:
            self._stream_seed.start_step = int(step)

    def train_dataloader(self) -> DataLoader:
        from .stop_signals import keep_worker_through_stop

        rank, _ = self._rank_info()
        self._stream_seed = StreamSeed(self.seed, rank)
        if self.trainer is not None:
            self._stream_seed.start_step = int(self.trainer.global_step)
        workers = self.plan.settings.num_workers
        per_worker = math.ceil(self.batches_per_epoch() / max(workers, 1))
        pipeline = wds.DataPipeline(MixtureStream(self.plan, self._stream_seed)).with_epoch(per_worker)
        return TrainLoader(pipeline, batch_size=None, num_workers=workers, persistent_workers=False,
                           pin_memory=torch.cuda.is_available(), collate_fn=None,
                           worker_init_fn=keep_worker_through_stop if workers else None)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank_info()
        return DataLoader(rank_val_clips(self.val_clips or [], rank, world), batch_size=None, shuffle=False,
                          num_workers=0)
