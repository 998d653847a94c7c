"""The rendered test data sets (tests/conftest.py: shared_data_set) are safe for concurrent pytest sessions: a
session holds its data sets (shared lock) for its whole run, so another session with other code never deletes
them; stale ones nobody holds are deleted; a data set that exists is reused, not rendered again."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HOLD = ("import fcntl, sys, time\n"
        "fh = open(sys.argv[1], 'a')\n"
        "fcntl.flock(fh, fcntl.LOCK_SH)\n"
        "print('HELD', flush=True)\n"
        "time.sleep(600)\n")
TRY = ("import fcntl, sys\n"
       "fh = open(sys.argv[1], 'a')\n"
       "try:\n"
       "    fcntl.flock(fh, (fcntl.LOCK_EX if sys.argv[2] == 'ex' else fcntl.LOCK_SH) | fcntl.LOCK_NB)\n"
       "    print('TAKEN')\n"
       "except BlockingIOError:\n"
       "    print('BUSY')\n")


def _fake(root: Path, key: str) -> Path:
    (root / key / "x").mkdir(parents=True)
    (root / f"{key}.lock").touch()
    return root / key


def test_stale_data_sets_are_deleted_only_when_no_session_holds_them(tmp_path: Path) -> None:
    from tests.conftest import _prune_stale

    held, stale, other = _fake(tmp_path, "tiny-aaaa"), _fake(tmp_path, "tiny-bbbb"), _fake(tmp_path, "moving-cccc")
    legacy = _fake(tmp_path, "0123456789abcdef")  # the layout before data sets had names
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "tiny-aaaa.lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"  # another session reads tiny-aaaa
        _prune_stale("tiny", keep="tiny-keep", root=tmp_path)
        assert held.is_dir() and not stale.exists() and not legacy.exists() and other.is_dir()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    _prune_stale("tiny", keep="tiny-keep", root=tmp_path)
    assert not held.exists() and other.is_dir()
    assert sorted(p.name for p in tmp_path.glob("*.lock")) == sorted(  # lock files are never deleted
        ["0123456789abcdef.lock", "moving-cccc.lock", "tiny-aaaa.lock", "tiny-bbbb.lock"])


@pytest.mark.slow
def test_the_session_holds_its_data_set_and_reuses_it(tiny_shards: Path) -> None:
    from tests.conftest import shared_data_set

    lock = tiny_shards.parent / f"{tiny_shards.name}.lock"

    def other_session(mode: str) -> str:
        return subprocess.run([sys.executable, "-c", TRY, str(lock), mode], capture_output=True, text=True,
                              timeout=60).stdout.strip()

    assert other_session("ex") == "BUSY"  # nobody may delete or re-render it while this session runs
    assert other_session("sh") == "TAKEN"  # ... but other sessions may read it too
    before = {p.name: p.stat().st_mtime_ns for p in tiny_shards.iterdir()}
    again = shared_data_set("tiny", [])
    assert next(again) == tiny_shards  # the same folder, not rendered again
    again.close()
    assert {p.name: p.stat().st_mtime_ns for p in tiny_shards.iterdir()} == before
    assert other_session("ex") == "BUSY"  # closing the second use kept the first one's lock
