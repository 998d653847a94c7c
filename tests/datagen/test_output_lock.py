"""tracker.common.output_lock across real processes: a holder blocks a second one, a killed holder does not (not even
while a child it forked lives on), and two takers in one process conflict."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.common.output_lock import LOCK_NAME, OutputBusyError, folder_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\n"
        "from tracker.common.output_lock import folder_lock\n"
        "with folder_lock(sys.argv[1], 'testing'):\n"
        "    print('HELD', flush=True)\n"
        "    time.sleep(600)\n")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "HELD"
    return proc


def test_second_process_is_refused_while_the_holder_lives(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(OutputBusyError) as info:
            with folder_lock(tmp_path, "second"):
                pass
        msg = str(info.value)
        assert f"pid {holder.pid}" in msg and "testing" in msg and "\n" not in msg, msg
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert f"pid {holder.pid}" in (tmp_path / LOCK_NAME).read_text()  # the file stays, the lock does not
    with folder_lock(tmp_path, "after a kill"):
        assert f"pid {os.getpid()}" in (tmp_path / LOCK_NAME).read_text()


def test_forked_child_does_not_keep_a_killed_holders_lock(tmp_path: Path) -> None:
    """flock locks belong to the open file, which fork shares: a forked child (a DataLoader worker of a training
    run) that outlives its SIGKILLed parent must not keep the folder locked."""
    code = HOLD.replace("    print('HELD', flush=True)\n",
                        "    import os\n"
                        "    child = os.fork()\n"
                        "    if child == 0:\n"
                        "        time.sleep(600)\n"
                        "        os._exit(0)\n"
                        "    print('HELD', child, flush=True)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    word, child = holder.stdout.readline().split()
    assert word == "HELD"
    try:
        with pytest.raises(OutputBusyError):
            with folder_lock(tmp_path, "second"):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        os.kill(int(child), 0)  # the forked child is still alive ...
        with folder_lock(tmp_path, "after a kill"):  # ... and holds nothing
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
        try:
            os.kill(int(child), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_two_takers_in_one_process_conflict(tmp_path: Path) -> None:
    """A second lock on the same folder in the same process is refused (POSIX record locks would grant it), and
    reading the lock file does not drop the holder's lock."""
    with folder_lock(tmp_path, "first") as path:
        assert f"pid {os.getpid()}" in path.read_text() and "(first: " in path.read_text()
        with pytest.raises(OutputBusyError) as info:
            with folder_lock(tmp_path, "second"):
                pass
        assert str(info.value).startswith(f"{tmp_path} is in use: pid {os.getpid()} on host "), info.value
    with folder_lock(tmp_path, "third"):  # released at the end of the block
        pass
