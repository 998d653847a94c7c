"""Expected failures with a one-line message, and how a command line reports them.

A `UserError` is caused by the user's input or environment (a bad config key, a missing file, a folder another
process holds): the CLIs print `error: <message>` on stderr, no traceback, and exit with `exit_code`. Anything
else is a bug and keeps its traceback.
"""
from __future__ import annotations


def one_line(text: object, limit: int | None = None) -> str:
    """`text` (an exception or a string) with every run of whitespace, newlines included, collapsed to one space,
    cut to `limit` characters; an exception without a message gives its type name. The one helper for this, in
    datagen, lightning_modules and the tracker (its video reader and command line) alike."""
    flat = " ".join(str(text).split())[:limit]
    return flat or (type(text).__name__ if isinstance(text, BaseException) else "")


class UserError(Exception):
    """An expected failure the user can fix; the message is one line (whitespace is collapsed on creation)."""

    exit_code = 1

    def __init__(self, message: object) -> None:
        super().__init__(one_line(message))


class ConfigError(UserError, ValueError):
    """A bad configuration (config file, key, type, value or override): usage error, exit status 2."""

    exit_code = 2


class OutputNotWritableError(UserError):
    """An output location that cannot take a new file (read-only file system, no permission, disk full, a file
    where a folder belongs): found before the work starts (`tracker.common.atomic.check_writable`); usage error, exit 2."""

    exit_code = 2
