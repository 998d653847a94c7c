"""The training stream: batches of augmented clips from the plan's weighted mixture of sources.

Per DDP rank and DataLoader worker (seeded by rank, worker and start step, so ranks see different random streams
and a resumed run gets a fresh but reproducible one): every clip first draws its source by weight; each source
resamples its items (shards, sequences) uniformly with replacement, reads their raw records into its own seeded
shuffle buffer and decodes late (`TrackSource.decode` -> TrackSample); `make_train_clip` applies the recipe with
the source's own clip settings. Unreadable items/samples are skipped, counted and warned about (data_failures); a
source that yields no usable clip in `data.max_consecutive_failures` consecutive attempts ends the run with a
one-line DataError naming it, instead of cycling for ever.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from .augment import Clip, choose_clip_length, make_train_clip
from .data_failures import DataError, FailureLog, StreamError
from .data_plan import DataPlan, ResolvedSource


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


def _batch(clips: list[Clip], failures: list[FailureLog], dropped: int, stream_id: int, counts: np.ndarray) -> dict:
    """The clips stacked into one batch with the stream's counters (MixtureStream's docstring has the keys)."""
    return {
        "video": torch.stack([c.video for c in clips]),
        "tracks": torch.stack([c.tracks for c in clips]),
        "visibility": torch.stack([c.visibility for c in clips]),
        "keys": [c.key for c in clips],
        "skipped": torch.tensor(sum(f.count for f in failures)),
        "dropped": torch.tensor(dropped),
        "stream": torch.tensor(stream_id % (2**62)),
        "source_counts": torch.from_numpy(counts.copy()),
    }


class MixtureStream(IterableDataset):
    """Batches from the plan's weighted mixture of sources (one stream per DDP rank and DataLoader worker).

    Batch: video uint8 (B, L, 3, H, W) with (H, W) = plan.input_size; tracks float32 (B, L, N, 2) pixels; visibility
    bool (B, L, N); keys list[str] ("<source>/<key>" with several sources); skipped: unreadable data skipped so far
    by this stream; dropped: clips with too few tracks; stream: stream id; source_counts int64 (S,): clips per
    source so far in this stream, in plan.sources order. One clip length per batch (the offline recipe's random
    length), so batches stack. When a source keeps failing, the stream yields a final {"__error__": message}
    (raised as DataError by `TrainLoader` in the main process, so the message survives DataLoader workers intact)
    and ends.
    """

    def __init__(self, plan: DataPlan, seed_fn: StreamSeed) -> None:
        super().__init__()
        self.plan = plan
        self.seed_fn = seed_fn
        self.error: Optional[str] = None

    def __iter__(self) -> Iterator[dict]:
        if self.error is not None:  # `with_epoch` re-iterates an ended stream: report again, read nothing
            yield {"__error__": self.error}
            return
        plan, settings = self.plan, self.plan.settings
        sources, names = plan.training_sources, plan.source_names
        stream_id = self.seed_fn()
        rng = np.random.default_rng(stream_id)
        weights = np.array([s.weight for s in sources], dtype=np.float64)
        weights /= weights.sum()
        failures = [FailureLog(s.name, s.train.item_noun, settings.max_consecutive_failures) for s in sources]
        records = [_raw_records(s, np.random.default_rng([stream_id, j]), settings.shuffle_buffer, failures[j])
                   for j, s in enumerate(sources)]
        index = [names.index(s.name) for s in sources]
        counts = np.zeros(len(names), dtype=np.int64)
        dropped = 0
        several = len(names) > 1
        clips: list[Clip] = []
        length = choose_clip_length(rng, plan.clip_len, plan.clip_len_min)
        try:
            while True:
                j = int(rng.choice(len(sources), p=weights)) if len(sources) > 1 else 0
                src, fail = sources[j], failures[j]
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
                if len(clips) == settings.batch_size:
                    yield _batch(clips, failures, dropped, stream_id, counts)
                    clips = []
                    length = choose_clip_length(rng, plan.clip_len, plan.clip_len_min)
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
