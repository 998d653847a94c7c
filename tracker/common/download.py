"""Downloads: the one way TrackForge fetches a file (official checkpoints, Kubric asset manifests and archives).

Atomic (tracker.common.atomic: a hidden temporary file in the same folder, flushed to disk, then renamed; removed on
any failure, an interrupt included) and bounded: a server that sends nothing for `stall_s` seconds, or closes the
connection before the length it announced, is a one-line DownloadError naming the URL, not a hang or a truncated
file kept. Nothing here runs in tests against the internet: they use file:// URLs and a local HTTP server.
"""
from __future__ import annotations

import contextlib
import http.client
import urllib.error
import urllib.request
from pathlib import Path

from tracker.common.atomic import atomic_file

# It bounds each blocking socket operation (connect, every read), not the whole transfer.
DOWNLOAD_STALL_S = 60.0


class DownloadError(OSError):
    """A download failed: unreachable, stalled, or cut short (one line naming the URL); nothing was kept."""


def download(url: str, dest: Path, *, progress: bool = True, stall_s: float = DOWNLOAD_STALL_S) -> Path:
    """Fetch `url` (http(s):// or file://) to `dest` atomically (tracker.common.atomic: a hidden temporary file in
    the same folder, flushed to disk, then renamed; removed on any failure, an interrupt included). Raises
    DownloadError when the server cannot be reached, sends nothing for `stall_s` seconds, or closes the connection
    before the length it announced."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=stall_s) as resp, atomic_file(dest, "wb", fsync=True,
                                                                                 hidden=True) as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            got = 0
            with _progress_bar(total, dest.name, progress) as bar:  # closed on errors too (no stale bar line)
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    got += len(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            if total is not None and got != total:
                raise http.client.IncompleteRead(b"", total - got)
    except TimeoutError:
        raise DownloadError(f"download of {url} stalled: nothing received for {stall_s:g} s; nothing kept, run "
                            "again") from None
    except http.client.IncompleteRead as err:
        raise DownloadError(f"download of {url} was cut short ({err.expected} bytes missing); nothing kept, run "
                            "again") from None
    except urllib.error.URLError as err:
        reason = "timed out" if isinstance(err.reason, TimeoutError) else err.reason
        raise DownloadError(f"cannot download {url}: {reason}") from None
    return dest


def _progress_bar(total: int | None, name: str, wanted: bool):
    """A tqdm bar as a context manager, or a null context (yielding None) when not wanted or tqdm is missing."""
    try:
        from tqdm import tqdm  # optional; the download works without a bar
    except ImportError:
        wanted = False
    if not wanted:
        return contextlib.nullcontext()
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}")
