"""datagen.folder_lock across real processes: a holder blocks a second one, a killed holder does not."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.folder_lock import LOCK_NAME, FolderLockedError, folder_lock

REPO = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\n"
        "from datagen.folder_lock import folder_lock\n"
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
        with pytest.raises(FolderLockedError) as info:
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
