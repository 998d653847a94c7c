"""Data sources: one reader per on-disk format, all yielding `datagen.formats.sample.TrackSample` (docs/data_sources.md).

    from datagen.formats import open_source
    src = open_source("data/shards/default")                  # format detected; or format="cotracker3_kubric"
    for sample in src: ...                                    # TrackSample, strict (first corrupt sample raises)
    src.items, src.info()                                     # shards / sequences; frames and size from metadata

Training (`lightning_modules.data_sources`), evaluation and `python -m datagen export` all read through here.

Adding a reader = one file + one line:
  1. `datagen/formats/<format>.py` with a `TrackSource` subclass (`datagen.formats.base`): set `format` and
     `item_noun`, implement `detect` (cheap, never raises), `list_items`, `iter_raw` (cheap picklable records of one
     item), `decode` (-> TrackSample, CorruptSampleError on bad data) and `info`. Convert the format's conventions to
     TrackSample's here and nowhere else: (x, y) pixel-centre pixels, visibility True = visible, NaN = unlabelled.
     Read pickles only through `datagen.formats.safe_pickle`. Optionally a `write_<format>(samples, out) -> int` writer.
     Samples with object masks instead of tracks (DAVIS): `labels = "masks"`.
  2. one line in READERS below (and in WRITERS for a writer). Entries are "module:attribute" strings so that
     importing this package stays light.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from datagen.formats.base import SourceError, SourceInfo, SourceNotFoundError, TrackSource, first_path

# format name -> "module:class" of its reader (auto-detection tries them in this order)
READERS: dict[str, str] = {
    "shards": "datagen.formats.shards:ShardSource",
    "davis": "datagen.formats.davis:DavisSource",
    "cotracker3_kubric": "datagen.formats.cotracker3_kubric:CoTracker3KubricSource",
    "tapvid": "datagen.formats.tapvid:TapVidSource",
    "sparse_npz": "datagen.formats.sparse_npz:SparseNpzSource",
}

# format name -> "module:function" writing an iterable of TrackSample to a path (`python -m datagen export --to`)
WRITERS: dict[str, str] = {
    "shards": "datagen.formats.shards:write_shards",
    "cotracker3_kubric": "datagen.formats.cotracker3_kubric:write_cotracker3_kubric",
    "tapvid": "datagen.formats.tapvid:write_tapvid_pickle",
    "sparse_npz": "datagen.formats.sparse_npz:write_sparse_npz",
}

__all__ = ["READERS", "WRITERS", "SourceError", "SourceInfo", "SourceNotFoundError", "TrackSource", "detect_format",
           "open_source", "reader_class", "writer"]


def _resolve(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(fmt: str) -> type[TrackSource]:
    if fmt not in READERS:
        raise SourceError(f"unknown data format {fmt!r} (choices: auto, {', '.join(READERS)})")
    return _resolve(READERS[fmt])


def writer(fmt: str) -> Callable[..., int]:
    if fmt not in WRITERS:
        raise SourceError(f"no writer for format {fmt!r} (choices: {', '.join(WRITERS)})")
    return _resolve(WRITERS[fmt])


def detect_format(path: str) -> str:
    """The first registered format whose reader recognises `path`; SourceNotFoundError / SourceError otherwise."""
    for fmt in READERS:
        if reader_class(fmt).detect(path):
            return fmt
    import glob
    import os

    first = first_path(path)
    if not (os.path.exists(os.path.expanduser(first)) or glob.glob(os.path.expanduser(first))):
        raise SourceNotFoundError(f"data source not found: {path}")
    raise SourceError(f"cannot tell the format of {path} (set the format explicitly: {', '.join(READERS)})")


def open_source(path: str, fmt: str = "auto") -> TrackSource:
    """A reader for `path` in format `fmt` ("auto": detected). Lists nothing yet (items are listed on first use)."""
    return reader_class(detect_format(path) if fmt == "auto" else fmt)(str(path))
