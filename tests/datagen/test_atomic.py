"""datagen.atomic: a write is all or nothing (the old file stays when a writer fails half-way), no temporary file
is left behind, and temporary names are unique per host and process (hidden ones start with a dot)."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from datagen.atomic import atomic_file, tmp_path_for, write_atomic


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
