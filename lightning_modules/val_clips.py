"""Validation clips: the first `data.val_clips` decodable samples of the sources' validation items (interleaved over
sources), prepared deterministically once at the plan's input size and split over the DDP ranks."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

from torch.utils.data import Dataset

from .augment import Clip, make_eval_clip
from .data_failures import DataError, FailureLog
from .data_plan import DataPlan, ResolvedSource


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


def load_val_clips(plan: DataPlan, seed: int) -> tuple[list[Clip], int]:
    """The first `val_clips` usable samples of the sources' validation items (taking one from each source in turn),
    prepared by `make_eval_clip`: the first plan.val_clip_len frames at plan.input_size, data.val_num_tracks
    tracks, clip i seeded with seed + i. Returns (clips, number of unreadable items/samples skipped). Raises
    DataError (one line, with the reasons) when there is none."""
    settings = plan.settings
    failures = FailureLog()
    length = plan.val_clip_len
    several = len(plan.sources) > 1
    streams = [(s, _val_samples(s, failures)) for s in plan.sources if s.val is not None]
    if not streams:
        raise DataError("no validation data: every source has num_val=0 and no val_path")
    clips: list[Clip] = []
    i = 0
    while streams and len(clips) < settings.val_clips:
        for src, stream in list(streams):
            if len(clips) >= settings.val_clips:
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
            clip = make_eval_clip(sample, plan.input_size, length, settings.val_num_tracks, seed + i)
            i += 1
            if clip is None:
                failures.fail(item, "few_tracks", f"{sample.key}: no visible track")
                continue
            if several:
                clip.key = f"{src.name}/{clip.key}"
            clips.append(clip)
    if not clips:
        where = ", ".join(f"{s.name}: {', '.join(s.val.items[:3])}" for s in plan.sources if s.val is not None)
        raise DataError(f"no usable validation clips in {where} ({failures.reasons() or 'no samples'}; last: "
                        f"{failures.last or '-'}); val_clip_len={length}")
    return clips, failures.count
