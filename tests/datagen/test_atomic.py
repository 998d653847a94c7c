"""tracker.common.atomic: a write is all or nothing (the old file stays when a writer fails half-way), no temporary file
is left behind, and temporary names are unique per host and process (hidden ones start with a dot)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tracker.common.atomic import atomic_file, tmp_path_for, write_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_atomic(tmp_path / "a.json", '{"v": 1}\n')
    with pytest.raises(RuntimeError):
        with atomic_file(target, "w", fsync=True) as fh:
            fh.write('{"v": 2')
            raise RuntimeError("killed half-way")
    assert target.read_text() == '{"v": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    write_atomic(target, b"new", fsync=True, hidden=True)
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_temporary_names(tmp_path: Path) -> None:
    suffix = f".tmp-{socket.gethostname()}-{os.getpid()}"
    assert tmp_path_for(tmp_path / "shard-000000.tar") == tmp_path / f"shard-000000.tar{suffix}"
    assert tmp_path_for(tmp_path / "last.ckpt", hidden=True) == tmp_path / f".last.ckpt{suffix}"
    with atomic_file(tmp_path / "x.bin", hidden=True) as fh:
        assert Path(fh.name) == tmp_path / f".x.bin{suffix}"
        fh.write(b"x")
    assert (tmp_path / "x.bin").read_bytes() == b"x"


def test_check_writable_probes_the_folder_that_will_hold_the_output(tmp_path: Path) -> None:
    """A folder to be made is probed at its nearest existing ancestor; a file where a folder belongs (or the other
    way round) is one line; nothing is left behind. (Read-only and full disks: tests/training/test_output_faults.py,
    on real tmpfs mounts.)"""
    from tracker.common.atomic import check_writable
    from tracker.common.errors import OutputNotWritableError

    assert check_writable(tmp_path / "a" / "b" / "c") == tmp_path
    assert check_writable(tmp_path / "out.npz", is_file=True) == tmp_path
    (tmp_path / "file").write_text("x")
    for path, is_file, why in ((tmp_path / "file", False, "it is a file, not a folder"),
                               (tmp_path / "file" / "sub", False, f"{tmp_path / 'file'} is not a folder"),
                               (tmp_path, True, "it is a folder, not a file")):
        with pytest.raises(OutputNotWritableError) as err:
            check_writable(path, is_file=is_file)
        assert str(err.value) == f"cannot write to {path}: {why}" and err.value.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_remove_leftovers_deletes_only_temporary_names(tmp_path: Path) -> None:
    from tracker.common.atomic import remove_leftovers

    (tmp_path / ".seq.tmp-host-1" / "frames").mkdir(parents=True)
    (tmp_path / ".x.npz.tmp-host-2").write_bytes(b"half")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "seq").mkdir()
    removed = remove_leftovers(tmp_path, ".*")  # a broad pattern still spares names without the temporary mark
    assert sorted(p.name for p in removed) == [".seq.tmp-host-1", ".x.npz.tmp-host-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "seq"]
    assert remove_leftovers(tmp_path / "missing", ".*") == []
