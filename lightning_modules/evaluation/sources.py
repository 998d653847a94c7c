"""Benchmark -> TrackSample stream through the readers of datagen.formats (one per on-disk format: TAP-Vid
pickles, our shards, sparse keypoint .npz files, the CoTracker3 Kubric layout)."""
from __future__ import annotations

from typing import Any, Iterator

from datagen.formats.sample import TrackSample
from tracker.common.errors import UserError, one_line


class EvalError(UserError):
    """Bad evaluation input (missing file, unknown format, unreadable data, unreadable checkpoint); one line."""

    exit_code = 2


def resolve_format(bench: Any) -> str:
    """The reader a benchmark uses ("auto": detected from its path). EvalError when it cannot be told."""
    from datagen.formats import detect_format

    if bench.format != "auto":
        return bench.format
    try:
        return detect_format(bench.path)
    except (FileNotFoundError, ValueError) as exc:
        raise EvalError(f"benchmark {bench.name}: {one_line(exc)}") from None


def open_benchmark(bench: Any, fmt: str | None = None) -> Iterator[TrackSample]:
    """The samples of a BenchmarkConfig (name, path, format; `fmt`: its resolve_format when known), the first
    `max_videos` only, in the reader's order.
    A missing path, an unknown format or an unreadable video ends the evaluation with EvalError (one line): a
    benchmark score over silently skipped videos would not be comparable."""
    from datagen.formats import open_source

    try:
        for i, sample in enumerate(open_source(bench.path, fmt or resolve_format(bench))):
            if bench.max_videos is not None and i >= bench.max_videos:
                return
            yield sample
    except (FileNotFoundError, ValueError) as exc:  # SourceError, SourceNotFoundError, CorruptSampleError
        raise EvalError(f"benchmark {bench.name}: {one_line(exc)}") from None
