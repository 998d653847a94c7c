"""Benchmark -> TrackSample stream, through the readers of datagen.sources (one per on-disk format)."""
from __future__ import annotations

from typing import Any, Iterator

from datagen.sample import TrackSample


class EvalError(RuntimeError):
    """Bad evaluation input (missing file, unknown format, unreadable data); one-line message."""


def resolve_format(bench: Any) -> str:
    """The reader a benchmark uses ("auto": detected from its path)."""
    from . import _readers

    return _readers.detect(bench.path) if bench.format == "auto" else bench.format


def open_benchmark(bench: Any) -> Iterator[TrackSample]:
    """The samples of a BenchmarkConfig (name, path, format), first `max_videos` only. EvalError on failure."""
    from datagen.shards import CorruptSampleError

    from . import _readers

    try:
        samples = _readers.read(bench.path, resolve_format(bench))
        for i, sample in enumerate(samples):
            if bench.max_videos is not None and i >= bench.max_videos:
                return
            yield sample
    except (FileNotFoundError, ValueError, CorruptSampleError) as exc:
        raise EvalError(f"benchmark {bench.name}: {' '.join(str(exc).split())}") from None
