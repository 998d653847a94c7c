"""Atomic file writes: a reader (another process, a rerun after a kill) sees the old file or the new one, never half.

`atomic_file(path)` yields a file object on a temporary file next to `path` (same file system, so the final
rename is atomic); when the block ends without an exception the file is closed (with `fsync=True`: flushed to
disk first, for files that later steps trust blindly: shards, checkpoints) and renamed over `path`; on any
exception the temporary file is deleted. `write_atomic(path, data)` writes bytes or text that way, `write_json(path,
data)` indented JSON (NaN and infinities as null, `json_safe`: json.dumps would write NaN, which is not JSON).
`atomic_path(path)` is the same for writers that open the file themselves by name (an FFmpeg muxer through PyAV:
given a Python file object it reports a full disk as its own callback error, not as the OSError it is).

Temporary names: `<name>.tmp-<host>-<pid>` (`tmp_path_for`), unique also on a file system shared by many hosts;
with `hidden=True`, `.<name>.tmp-<host>-<pid>` (checkpoints, run-dir files, caches: out of sight in listings).
Leftovers of a killed writer match `<name>.tmp-*` / `.*.tmp-*`; whoever owns the folder deletes them while holding
its lock (`remove_leftovers`: datagen.pipeline.generate, the export writers of datagen.formats,
lightning_modules.checkpoint_io.remove_partial_writes).

`check_writable(path)` is the one check, made by every command before its work starts (generate, export, training,
eval, tracker track), that an output location takes new files: a read-only mount, a missing permission, a disk
already full or a file where a folder belongs ends the command at once with one line
`cannot write to <path>: <reason>` (OutputNotWritableError, exit status 2) instead of a traceback after the work.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from tracker.common.errors import OutputNotWritableError

TMP_MARK = ".tmp-"
WRITE_PROBE = ".trackforge-write-check"  # check_writable's probe file (a hidden temporary name)


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
    with atomic_path(path, hidden=hidden) as tmp, open(tmp, mode, **open_kwargs) as fh:
        yield fh
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())


@contextmanager
def atomic_path(path: str | os.PathLike, *, hidden: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `path` for a writer that opens the file by name; rename what it wrote there
    to `path` when the block succeeds, delete it on failure (atomic_file writes through it). The parent folder
    must exist."""
    path = Path(path)
    tmp = tmp_path_for(path, hidden)
    try:
        yield tmp
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


def remove_leftovers(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete the entries of `folder` matching the glob `pattern` (files, or folders with their contents): the
    temporaries of writers killed half-way. Call only while no writer of that pattern is alive in the folder
    (holding its lock). Returns what was deleted."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for tmp in sorted(folder.glob(pattern)):
        if TMP_MARK not in tmp.name:  # never anything but a temporary name
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def check_writable(path: str | os.PathLike, *, is_file: bool = False) -> Path:
    """Raise OutputNotWritableError (`cannot write to <path>: <reason>`, one line, exit status 2) unless new files
    can be written where `path` goes; returns the folder probed.

    path: an output folder (it need not exist: its nearest existing ancestor must take new entries, as the
    command's mkdir will need) or, with `is_file`, an output file (its folder is probed). The probe writes one
    byte to a hidden temporary file and deletes it, so a read-only file system, a missing permission and a disk
    that is already full are all found (a disk that fills up later is each writer's own business)."""
    path = Path(path)
    if is_file and path.is_dir():
        raise OutputNotWritableError(f"cannot write to {path}: it is a folder, not a file")
    if not is_file and path.exists() and not path.is_dir():
        raise OutputNotWritableError(f"cannot write to {path}: it is a file, not a folder")
    start = path.parent if is_file else path
    folder = next(d for d in (start, *start.parents) if d.exists())  # "." or "/" at the latest
    if not folder.is_dir():
        raise OutputNotWritableError(f"cannot write to {path}: {folder} is not a folder")
    probe = tmp_path_for(folder / WRITE_PROBE)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, b"\0")  # a full disk refuses the first block, not the (empty) file
        finally:
            os.close(fd)
    except OSError as err:
        reason = err.strerror or errno.errorcode.get(err.errno or 0, "") or type(err).__name__
        where = "" if folder == start else f" (in {folder})"
        raise OutputNotWritableError(f"cannot write to {path}: {reason}{where}") from None
    finally:
        try:
            probe.unlink()
        except OSError:
            pass
    return folder
