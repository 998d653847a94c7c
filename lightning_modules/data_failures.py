"""How the training data fails: one-line errors, and the skip-and-count log that bounds a failing source.

`DataError` is what a user sees (a ConfigError, so the CLI prints the one line without a traceback); `StreamError`
is raised inside a training stream and becomes a DataError in the main process (train_stream.TrainLoader);
`FailureLog` counts one stream's failed attempts per source and raises StreamError at the bound.
"""
from __future__ import annotations

import logging
import math
import time
from collections import Counter

from tracker.common.errors import one_line

from .config import ConfigError

# The name the data module has always logged under: log filters and tests (caplog) select these warnings by it.
log = logging.getLogger("lightning_modules.data")


class DataError(ConfigError):
    """The training data cannot serve this configuration (missing source, clip longer than the videos, no usable
    clip, no validation clip); the message is one line. A ConfigError, so the CLI prints it without a traceback."""


class StreamError(RuntimeError):
    """A source of the training stream keeps failing (raised inside the stream; becomes a DataError)."""


class FailureLog:
    """Skip-and-count for one source of one stream, with rate-limited warnings and a bound.

    `fail(item, kind, err)` counts a failed attempt (kind: "unreadable", "few_tracks", "too_short"); unreadable
    data is warned about (the first 3, then at powers of two or once a minute, each line with the running count).
    `consecutive` failures without a usable clip raise StreamError with one line naming the source, its failing
    items and the reasons. `ok()` resets the run of failures.
    """

    WARN_FIRST, WARN_EVERY_S = 3, 60.0
    REASONS = {"unreadable": "unreadable", "few_tracks": "too few candidate tracks", "too_short": "too short"}

    def __init__(self, name: str = "", noun: str = "shard", limit: int | None = None) -> None:
        self.name, self.noun, self.limit = name, noun, limit
        self.count = 0  # unreadable items/samples so far (the `skipped` counter the module logs)
        self.consecutive = 0
        self.kinds: Counter[str] = Counter()  # of the current run of failures
        self.items: dict[str, None] = {}
        self.last = ""
        self._last_warn = -math.inf
        self._suppressed = 0

    def fail(self, item: str, kind: str, err: BaseException | str) -> None:
        msg = one_line(err, 300) if isinstance(err, str) else f"{type(err).__name__}: {one_line(err, 300)}"
        self.consecutive += 1
        self.kinds[kind] += 1
        self.last = msg
        if item and len(self.items) < 5:
            self.items.setdefault(item)
        if kind == "unreadable":
            self.count += 1
            now = time.monotonic()
            if (self.count <= self.WARN_FIRST or self.count & (self.count - 1) == 0
                    or now - self._last_warn >= self.WARN_EVERY_S):
                extra = f", {self._suppressed} similar warning(s) not shown" if self._suppressed else ""
                log.warning("skipping corrupt data (%d so far in this stream%s): %s", self.count, extra, msg)
                self._last_warn, self._suppressed = now, 0
            else:
                self._suppressed += 1
        if self.limit is not None and self.consecutive >= self.limit:
            raise StreamError(self.message())

    def ok(self) -> None:
        self.consecutive = 0
        self.kinds.clear()
        self.items.clear()

    def reasons(self) -> str:
        """The current run of failures by kind, most frequent first, e.g. "3 unreadable, 1 too short"."""
        return ", ".join(f"{n} {self.REASONS.get(k, k)}" for k, n in self.kinds.most_common())

    def message(self) -> str:
        items = ", ".join(self.items) + (" ..." if len(self.items) >= 5 else "")
        return (f"training data: source {self.name!r} gave no usable clip in {self.consecutive} consecutive attempts "
                f"({self.reasons()}); {self.noun}s: {items or '-'}; last: {self.last} "
                f"(fix or remove that data, or raise data.max_consecutive_failures)")
