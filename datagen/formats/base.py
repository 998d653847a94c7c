"""`TrackSource`: what every data-source reader implements (one reader per on-disk format).

A source is a path (pattern, folder, file) in one format. It is split into *items*, the units that are resampled,
held out for validation and named in errors: a shard of our WebDataset format, a sequence folder of the CoTracker3
Kubric layout, a pickle of TAP-Vid. Reading is two-staged so that a training stream can shuffle cheaply and decode
late: `iter_raw(item)` yields small picklable raw records (member bytes, a path), `decode(raw)` turns one into a
`datagen.formats.sample.TrackSample`.

Paths: a source path may list several parts separated by commas ("a/*.npz,b/c.npz"); `split_paths` gives the parts,
`first_path` the first one (what format detection looks at). Readers with one file per item of a known extension
(a file, a glob or a folder of them) subclass `FileListSource`.

Errors are one line: `SourceNotFoundError` when the path matches nothing, `CorruptSampleError` (naming the item or
sample and the reason) for an unreadable item or sample. Readers never execute code from the files they read.
"""
from __future__ import annotations

import glob
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, Optional

from datagen.formats.sample import TrackSample


class SourceError(ValueError):
    """A data source cannot be used (unknown format, inconsistent metadata, ...); the message is one line."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """The source path/pattern matches nothing."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source says about its videos without decoding them all (None: unknown).

    num_frames: the shortest video (what a clip length must not exceed); height/width: frame size in pixels
    (None when the videos differ in size); origin: where the numbers come from (for messages); num_samples: for
    progress bars.
    """

    num_items: int
    num_frames: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    origin: str = ""
    num_samples: Optional[int] = None  # videos in all items, when the metadata says


def split_paths(path: str | os.PathLike) -> list[str]:
    """The comma-separated parts of a source path, stripped, empty parts dropped ("a, ,b" -> ["a", "b"])."""
    return [part.strip() for part in str(path).split(",") if part.strip()]


def first_path(path: str | os.PathLike) -> str:
    """The first comma-separated part of a source path, stripped (empty when the path starts with a comma): what
    format detection and "not found" messages look at."""
    return str(path).split(",")[0].strip()


class TrackSource:
    """Base class of the readers in `datagen.formats` (see the package docstring for how to add one).

    A reader defines `format` (the registry name), `detect`, `list_items`, `iter_raw`, `decode` and `info`. Instances
    are plain picklable objects (they travel into DataLoader workers): a path and, once listed, the item list.
    """

    format: ClassVar[str] = ""
    item_noun: ClassVar[str] = "item"  # how errors and logs call one item ("shard", "sequence", ...)
    # What the samples are labelled with: "tracks" (point tracks) or "masks" (object masks, no tracks: DAVIS), which
    # decides how evaluation scores them before any file is read.
    labels: ClassVar[str] = "tracks"

    def __init__(self, path: str, items: Optional[list[str]] = None) -> None:
        self.path = str(path)
        self._items = list(items) if items is not None else None

    # ------------------------------------------------------------------------------ what readers implement
    @classmethod
    def detect(cls, path: str) -> bool:
        """True when `path` looks like this format (used by format "auto"); must be cheap and never raise."""
        return False

    def list_items(self) -> list[str]:
        """The sorted items of `self.path`; raises SourceNotFoundError when there are none."""
        raise NotImplementedError

    def iter_raw(self, item: str) -> Iterator[Any]:
        """Raw records of one item (cheap to hold in a shuffle buffer, picklable). Raises CorruptSampleError when the
        item itself is unreadable (records already yielded stay valid)."""
        raise NotImplementedError

    def decode(self, raw: Any) -> TrackSample:
        """One raw record -> TrackSample; raises CorruptSampleError (one line, naming the sample)."""
        raise NotImplementedError

    def info(self) -> SourceInfo:
        """Frames and frame size from metadata (or the first sample); SourceInfo(num_items) when unknown."""
        return SourceInfo(num_items=len(self.items))

    # ------------------------------------------------------------------------------ shared behaviour
    @property
    def items(self) -> list[str]:
        if self._items is None:
            self._items = self.list_items()
        return self._items

    def subset(self, items: list[str]) -> "TrackSource":
        """The same source restricted to `items` (e.g. the held-out validation items)."""
        return type(self)(self.path, items)

    def __iter__(self) -> Iterator[TrackSample]:
        """Every sample in item order; raises on the first unreadable item or sample (use the training stream for
        skip-and-count reading)."""
        for item in self.items:
            for raw in self.iter_raw(item):
                yield self.decode(raw)

    def __repr__(self) -> str:
        n = "?" if self._items is None else len(self._items)
        return f"{type(self).__name__}({self.path!r}, {n} {self.item_noun}s)"


class FileListSource(TrackSource):
    """A reader whose items are files with the extension `suffix` (".npz", ".pkl"): the path is such a file, a glob
    or a folder of them, or several of these separated by commas. Items are the matching files, in order of the
    parts, each part's matches sorted, each file once. `files_noun` names them in the "no ... matches" error."""

    suffix: ClassVar[str] = ""
    files_noun: ClassVar[str] = "file"

    @classmethod
    def detect(cls, path: str) -> bool:
        first = os.path.expanduser(first_path(path))
        if first.endswith(cls.suffix):
            return True
        return os.path.isdir(first) and bool(glob.glob(os.path.join(first, "*" + cls.suffix)))

    def list_items(self) -> list[str]:
        items = [f for part in split_paths(self.path) for f in self.files(part)]
        if not items:
            raise SourceNotFoundError(f"no {self.files_noun} matches {self.path}")
        return list(dict.fromkeys(items))

    @classmethod
    def files(cls, part: str) -> list[str]:
        """The existing files of one path part: the file itself, a glob's matches (sorted) or a folder's `*suffix`."""
        part = os.path.expanduser(part)
        if os.path.isdir(part):
            part = os.path.join(part, "*" + cls.suffix)
        files = sorted(glob.glob(part)) if glob.has_magic(part) else [part]
        return [f for f in files if os.path.isfile(f)]


@contextmanager
def export_folder(out: str | os.PathLike, leftovers: str) -> Iterator[Path]:
    """The output folder of a folder writer (`python -m datagen export`), created if needed and locked for the
    block (tracker.common.output_lock: one writer per folder; a second stops with one line naming the holder). On entry
    the temporaries of an earlier writer killed half-way, `leftovers` (a glob of the writer's own temporary
    names, e.g. `.*.tmp-*`), are deleted: nobody else can be writing them while we hold the lock. Yields the
    folder."""
    from tracker.common.atomic import remove_leftovers
    from tracker.common.output_lock import folder_lock

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out, "export"):
        remove_leftovers(out, leftovers)
        yield out
