"""SIGTERM and SIGINT always end the process within a bounded time, whatever its main thread is doing.

Python runs signal handlers in the main thread between bytecodes only: a main thread blocked in C (a collective
that never completes, an `open()` of a pipe without writer) or spinning in a loop whose library turned the signal
into a flag it never checks (Lightning's SIGTERM handler only sets a flag that its loop reads at step boundaries)
ignores a stop request for ever. `install()` therefore adds a watchdog that needs nothing from the main thread:
the C-level handler writes the signal number to a socket (`signal.set_wakeup_fd`), a daemon thread reads it, and
when the process is still alive `grace_s` seconds after the first stop signal (or at once on a second one) it
prints one `error:` line, terminates the process's descendants (DataLoader workers, DDP ranks it launched) and
exits with 128 + the signal number.

Within the grace period the main thread may stop cleanly. The Python-level handler asks the `deferral` hook (set
by the training loop while it runs) whether it will stop at its next step boundary (and checkpoint there); if
so it prints the hook's notice and returns, otherwise it raises `StopRequested` at once. `StopRequested` is a
BaseException so that the data pipeline's `except Exception` skip-and-count handlers cannot swallow it.

The grace period is $TRACKFORGE_STOP_GRACE_S (default 10 s: a training step plus a checkpoint; Slurm waits
KillWait, 30 s by default, between SIGTERM and SIGKILL).
"""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from typing import Callable, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE_ENV = "TRACKFORGE_STOP_GRACE_S"
DEFAULT_GRACE_S = 10.0
_CHILD_KILL_WAIT_S = 1.0  # descendants get SIGTERM, then SIGKILL after this long
# One request may arrive twice (`timeout` signals the process, then its whole group): for the watchdog, a second
# signal counts as "stop at once" only this long after the first (the main thread's handler sees such a pair once).
_SAME_REQUEST_S = 0.5


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopRequested(BaseException):
    """A stop signal arrived while nothing could finish cleanly; the CLI prints one line and exits 128 + signum."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(f"stopped by {signal_name(signum)}")


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.signum: Optional[int] = None  # the first stop signal the main thread saw
        self.stopping = False  # the process is already on its way out: signals must not interrupt that
        self.grace_s = DEFAULT_GRACE_S
        # Training loop hook: signum -> a notice (the loop stops at its next step boundary) or None (stop now).
        self.deferral: Optional[Callable[[int], Optional[str]]] = None
        # Text for the stop lines, e.g. " at step 12; newest checkpoint ..." (called from the watchdog thread too).
        self.note: Optional[Callable[[], str]] = None
        self.sockets: tuple[socket.socket, socket.socket] | None = None
        # In a forked child of a training process: its stop-signal handler (ignore while the parent lives).
        self.child_handler: Optional[Callable] = None


_state = _State()


def _write_line(text: str) -> None:
    # os.write, not print: the main thread may hold sys.stderr's lock (blocked mid-write on a full pipe).
    try:
        os.write(2, (text.rstrip("\n") + "\n").encode(errors="replace"))
    except OSError:
        pass


def grace_seconds() -> float:
    raw = os.environ.get(GRACE_ENV)
    try:
        return max(float(raw), 0.0) if raw else DEFAULT_GRACE_S
    except ValueError:
        return DEFAULT_GRACE_S


def install(grace_s: float | None = None) -> None:
    """Install the stop handlers and the watchdog (main thread only; idempotent)."""
    if _state.installed:
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("stop_signals.install() must run in the main thread")
    _state.grace_s = grace_seconds() if grace_s is None else float(grace_s)
    reader, writer = socket.socketpair()
    writer.setblocking(False)  # set_wakeup_fd needs a non-blocking fd
    signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    _state.sockets = (reader, writer)
    install_handlers()
    os.register_at_fork(after_in_child=_reset_in_child)
    threading.Thread(target=_watch, args=(reader,), name="stop-signal-watchdog", daemon=True).start()
    _state.installed = True


def install_handlers() -> None:
    """(Re)install the Python-level SIGTERM/SIGINT handlers, e.g. after a library replaced them."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _on_signal)


def set_deferral(hook: Optional[Callable[[int], Optional[str]]]) -> None:
    _state.deferral = hook


def set_note(note: Optional[Callable[[], str]]) -> None:
    _state.note = note


def installed() -> bool:
    return _state.installed


def requested() -> Optional[int]:
    """The first stop signal received (None if none)."""
    return _state.signum


def note() -> str:
    try:
        return _state.note() if _state.note is not None else ""
    except Exception:  # a note must never turn a stop into a crash
        return ""


def tolerate_child_deaths_while_stopping() -> None:
    """Once a stop was requested, do not let a SIGCHLD handler (PyTorch's raises "DataLoader worker is killed by
    signal" in the main thread, wherever it is) cut the step that the stop waits for: a signal sent to the whole
    process group (`timeout`, Slurm, a terminal) kills the workers along with it. Call after that handler is
    installed (main thread); idempotent."""
    previous = signal.getsignal(signal.SIGCHLD)
    if not callable(previous) or getattr(previous, "_stop_signals", False):
        return

    def on_sigchld(signum: int, frame) -> None:
        if _state.signum is None:
            previous(signum, frame)

    on_sigchld._stop_signals = True  # type: ignore[attr-defined]
    signal.signal(signal.SIGCHLD, on_sigchld)


def keep_worker_through_stop(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: PyTorch's worker loop installs its own SIGTERM handler (it dies unless its
    parent sent the signal) after the fork hook above made the worker ignore stop signals, so a SIGTERM sent to the
    whole process group could still kill it while the training process waits for its next batch; the step then
    fails instead of ending at the boundary with a checkpoint (seen under load). This puts the fork hook's handler
    back. No-op outside a child of a process that installed the stop handlers."""
    if _state.child_handler is None:
        return
    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, _state.child_handler)
        except (ValueError, OSError):
            pass


def stopping() -> None:
    """The process is stopping on its own (e.g. the DDP ranks agreed to stop at this step): a stop signal from now
    on must not interrupt the orderly stop (a checkpoint being written, the exit); the watchdog still bounds it."""
    _state.stopping = True


def _on_signal(signum: int, frame) -> None:
    if _state.signum is not None:
        # A second request (Python runs a handler once for deliveries that arrive together, such as `timeout`
        # signalling the process and then its group).
        _hard_exit(_state.signum, "second signal, stopped at once")
    _state.signum = signum
    if _state.stopping:
        return
    hook = _state.deferral
    notice = hook(signum) if hook is not None else None
    if notice:
        _write_line(notice)
        return
    raise StopRequested(signum)


def _watch(reader: socket.socket) -> None:
    first: Optional[int] = None
    first_at = deadline = None
    while True:
        reader.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        try:
            data = reader.recv(64)
        except socket.timeout:
            _hard_exit(first, f"no clean stop within {_state.grace_s:g} s (blocked in data loading or a "
                              f"collective?), stopped at once")
            return
        except OSError:
            return
        for signum in data:
            if signum not in STOP_SIGNALS:
                continue  # other signals with Python handlers (SIGCHLD, SIGUSR1 requeue) also write here
            if first is None:
                first, first_at = signum, time.monotonic()
                deadline = first_at + _state.grace_s
            elif time.monotonic() - first_at >= _SAME_REQUEST_S:
                _hard_exit(first, "second signal, stopped at once")
                return


def _hard_exit(signum: Optional[int], why: str) -> None:
    signum = signum or signal.SIGTERM
    _write_line(f"error: stopped by {signal_name(signum)}{note()}: {why}")
    terminate_descendants()
    os._exit(128 + signum)


def exit_now(status: int) -> None:
    """End a stopped process at once: flush stdio, terminate the descendants, `os._exit(status)`. Skips the
    interpreter's teardown, where a DataLoader joins workers that may be blocked for ever (the run has already
    saved what it could)."""
    import sys

    _state.stopping = True
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    terminate_descendants()
    os._exit(status)


def _children_map(zombies: bool = False) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces and parentheses, so split after the last ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and (zombies or fields[0] != "Z"):
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int | None = None) -> list[int]:
    """Live descendants of `pid` (default: this process), from /proc; direct multiprocessing children elsewhere."""
    root = os.getpid() if pid is None else pid
    if not os.path.isdir("/proc"):
        import multiprocessing

        return [p.pid for p in multiprocessing.active_children() if p.pid] if root == os.getpid() else []
    children, found, stack = _children_map(), [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _wait(pids: list[int], seconds: float) -> list[int]:
    """Reap our dead children until none of `pids` is alive (or time is up); returns those still alive."""
    deadline = time.monotonic() + seconds
    while True:
        _reap()
        alive = set(descendants())
        pids = [p for p in pids if p in alive]
        if not pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.02)


def terminate_descendants() -> None:
    """SIGTERM every descendant, SIGKILL those still alive after a second; reap the direct children (the process
    exits right after: zombies would wait for an init that reaps them)."""
    pids = descendants()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    for pid in _wait(pids, _CHILD_KILL_WAIT_S):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    _wait(pids, _CHILD_KILL_WAIT_S)
    if os.path.isdir("/proc"):  # the last ones may have turned into zombies after the final reap
        deadline = time.monotonic() + _CHILD_KILL_WAIT_S
        while _children_map(zombies=True).get(os.getpid()) and time.monotonic() < deadline:
            _reap()
            time.sleep(0.02)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reset_in_child() -> None:
    # A forked child (a DataLoader worker) must neither feed our watchdog's socket nor defer to a training loop it
    # does not run. A stop signal sent to the whole process group (Ctrl-C in a terminal, `timeout`, Slurm) must not
    # kill it either while the training process finishes its step: it would die under the step and take the
    # clean stop with it. So it ignores SIGTERM/SIGINT while its parent lives; the parent terminates it when it
    # stops (terminate_descendants, SIGKILL if need be). With the parent gone, the signal ends it as usual.
    # (PyTorch's DataLoader workers then install their own SIGTERM handler, which dies unless the parent sent
    # it: see tolerate_child_deaths_while_stopping for that case.)
    if not _state.installed:
        return
    _state.installed = False
    _state.deferral = None
    _state.note = None
    parent = os.getppid()

    def while_parent_lives(signum: int, frame) -> None:
        if os.getppid() != parent:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    _state.child_handler = while_parent_lives
    try:
        signal.set_wakeup_fd(-1)
        for signum in STOP_SIGNALS:
            signal.signal(signum, while_parent_lives)
    except (ValueError, OSError):
        pass
    if _state.sockets is not None:
        for sock in _state.sockets:
            sock.close()
        _state.sockets = None
