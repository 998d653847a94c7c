"""glibc malloc settings for CPU inference (`recycled_large_blocks`).

PyTorch allocates CPU tensors with malloc. glibc serves every request above its mmap threshold (adaptive, at most
32 MiB) with fresh mmap'ed pages that the kernel must fault in and zero on first touch, and unmaps them on free. A
forward pass of the tracker allocates and frees large temporaries (encoder activations, correlation blocks,
transformer activations: tens to hundreds of MiB) hundreds of times, so a plain process spends a large share of its
time in page faults: at 384x512, 24 frames, 292 tracks, 6 iterations we measured 8.4 million minor faults and
13.8 s of system time out of 78.7 s of CPU time (bench/bench_tracker.py reports the effect in the same process).

Inside `recycled_large_blocks()` the mmap threshold is raised so those blocks are recycled from the heap instead. On
leaving the outermost block the thresholds are set to the values an adaptive glibc process settles at (32 MiB /
64 MiB) and the free heap is handed back to the system (malloc_trim), so memory is not held after inference.

No effect where glibc's mallopt is not available (macOS, musl, Windows), and none when the environment variable
TRACKFORGE_MALLOC_TUNING=0 is set.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
INFERENCE_MMAP_THRESHOLD = 1 << 30  # requests up to 1 GiB come from (and go back to) the heap
INFERENCE_TRIM_THRESHOLD = (1 << 31) - 1  # never trim inside (mallopt takes a C int)
# What an adaptive glibc process settles at (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, trim = 2 x threshold).
RESTORED_MMAP_THRESHOLD = 32 << 20
RESTORED_TRIM_THRESHOLD = 64 << 20

_lock = threading.Lock()
_depth = 0
_libc = None


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                    _libc = lib
            except OSError:
                pass
    return _libc or None


def available() -> bool:
    """True when the tuning can take effect in this process (glibc, not disabled by the environment)."""
    return os.environ.get("TRACKFORGE_MALLOC_TUNING", "1") != "0" and _glibc() is not None


@contextlib.contextmanager
def recycled_large_blocks() -> Iterator[bool]:
    """Recycle large allocations from the heap inside the block (process-wide; nested and concurrent blocks share
    one setting, restored when the last one exits). Yields whether the tuning is active."""
    global _depth
    libc = _glibc() if available() else None
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            # Older glibc caps the threshold at 32 MiB (returns 0 for larger values): take the cap then.
            if not libc.mallopt(_M_MMAP_THRESHOLD, INFERENCE_MMAP_THRESHOLD):
                libc.mallopt(_M_MMAP_THRESHOLD, RESTORED_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, INFERENCE_TRIM_THRESHOLD)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, RESTORED_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, RESTORED_TRIM_THRESHOLD)
                libc.malloc_trim(0)
