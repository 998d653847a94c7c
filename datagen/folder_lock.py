"""Advisory lock per output folder: a second process writing into the same folder stops with one line.

`folder_lock(folder, purpose)` takes an exclusive POSIX record lock (`fcntl.lockf`) on `<folder>/.trackforge.lock`
and writes who holds it (pid, host, start time, purpose) into the file. A second process gets `FolderLockedError`
naming the holder. The kernel releases the lock when the holder exits, however it dies, so a stale file (holder
killed) never blocks; POSIX locks are not inherited by forked children (DataLoader workers cannot keep it alive)
and are the locks NFS implements. Without `fcntl` (Windows) the lock is a no-op.
"""
from __future__ import annotations

import errno
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import UserError

LOCK_NAME = ".trackforge.lock"


class FolderLockedError(UserError):
    """Another live process holds the folder's lock."""


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


@contextmanager
def folder_lock(folder: str | Path, purpose: str) -> Iterator[Path]:
    """Hold `<folder>/.trackforge.lock` for the duration of the block; raise FolderLockedError if held."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield Path(folder) / LOCK_NAME
        return
    path = Path(folder) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EAGAIN):  # held by a live process
                raise FolderLockedError(f"{folder} is in use: {_holder(fd)} (lock file {path}); wait for it to "
                                        f"end or use another folder") from None
            # A file system without locks (some FUSE mounts): go on, unprotected, rather than refuse to run.
            print(f"warning: cannot lock {path} ({err.strerror}): a concurrent {purpose} into {folder} would go "
                  f"unnoticed", file=sys.stderr)
            yield path
            return
        info = (f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')} "
                f"({purpose}: {' '.join(sys.argv)[:300]})\n")
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield path
        finally:
            try:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            except OSError:
                pass
    finally:
        os.close(fd)  # the file stays: unlinking it would race with the next process opening it
