"""Atomic file writes: a reader (another process, a rerun after a kill) sees the old file or the new one, never half.

`atomic_file(path)` yields a file object on a temporary file next to `path` (same file system, so the final
rename is atomic); when the block ends without an exception the file is closed (with `fsync=True`: flushed to
disk first, for files that later steps trust blindly: shards, checkpoints) and renamed over `path`; on any
exception the temporary file is deleted. `write_atomic(path, data)` writes bytes or text that way, `write_json(path,
data)` indented JSON (NaN and infinities as null, `json_safe`: json.dumps would write NaN, which is not JSON).

Temporary names: `<name>.tmp-<host>-<pid>` (`tmp_path_for`), unique also on a file system shared by many hosts;
with `hidden=True`, `.<name>.tmp-<host>-<pid>` (checkpoints, run-dir files, caches: out of sight in listings).
Leftovers of a killed writer match `<name>.tmp-*` / `.*.tmp-*`; whoever owns the folder deletes them while holding
its lock (datagen.generate, lightning_modules.checkpoint_io.remove_partial_writes).
"""
from __future__ import annotations

import json
import math
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

TMP_MARK = ".tmp-"


def tmp_path_for(path: str | os.PathLike, hidden: bool = False) -> Path:
    """``<path>.tmp-<host>-<pid>`` (``.<name>.tmp-<host>-<pid>`` when hidden): a name no other process writes."""
    path = Path(path)
    return path.with_name(f"{'.' if hidden else ''}{path.name}{TMP_MARK}{socket.gethostname()}-{os.getpid()}")


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False, hidden: bool = False,
                **open_kwargs) -> Iterator[IO]:
    """Open a temporary file next to `path` for writing (`mode`: "wb", "w", ...; `open_kwargs` go to open()),
    and rename it to `path` when the block succeeds (fsync'ed first with `fsync`); delete it on failure. The parent
    folder must exist."""
    path = Path(path)
    tmp = tmp_path_for(path, hidden)
    try:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; a leftover after a failure


def write_atomic(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False, hidden: bool = False) -> Path:
    """Write `data` (bytes, or text as UTF-8) to `path` atomically (see atomic_file); returns the path."""
    with atomic_file(path, "wb", fsync=fsync, hidden=hidden) as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def json_safe(obj: Any) -> Any:
    """A copy of `obj` (dicts, lists, tuples, floats, ...) with NaN and infinities as None, so that the JSON is valid."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, data: Any, *, sort_keys: bool = False) -> Path:
    """`data` as indented JSON (json_safe) to `path`, atomically; returns the path."""
    return write_atomic(path, json.dumps(json_safe(data), indent=2, sort_keys=sort_keys) + "\n")
