"""Every command that writes, given an output location it cannot write: `datagen generate`, `datagen export`,
training, `eval` and `tracker track`, each on a read-only file system (a tmpfs remounted read-only: the tests run
as root, where a chmod'ed folder does not stop a write) and on a full disk (a small tmpfs filled up). Each stops
before its work with one line `cannot write to <path>: <reason>` (exit status 2) and writes nothing; a complete
data set on a read-only disk too. Writes that fail later, during the work (a file size limit, as a disk that fills
up meanwhile), are one line as well and leave no temporary behind."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MOVING_OVERRIDES, TINY_DATA_CONFIG, fill_disk, read_only, small_disk

REPO = Path(__file__).resolve().parents[2]
TINY_TRAIN = REPO / "configs" / "train" / "tiny_cpu.yaml"
REASONS = {"read-only": "Read-only file system", "full": "No space left on device"}
pytestmark = pytest.mark.slow  # a tiny training run (the checkpoint) and a few real processes


@pytest.fixture(params=list(REASONS))
def blocked(request, tmp_path) -> tuple[str, Path]:
    """(how, disk): a small tmpfs that is read-only or full for the test."""
    with small_disk(tmp_path / "disk", size="8m") as disk:
        if request.param == "read-only":
            read_only(disk)
        else:
            fill_disk(disk)
        yield request.param, disk


@pytest.fixture(scope="module")
def clip(moving_shards, tmp_path_factory) -> Path:
    """A real video file: the first rendered test clip (12 frames of 64x64)."""
    from datagen.formats import open_source
    from tracker.video import write_video

    sample = next(iter(open_source(str(moving_shards))))
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", sample.video, 12.0)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    return {**env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _command(name: str, out: Path, moving_shards: Path, tiny_checkpoint, benchmarks, clip: Path, tiny_overrides
             ) -> list[str]:
    """The command line of `name` writing to `out`."""
    py = [sys.executable, "-m"]
    if name == "generate":
        return py + ["datagen", "generate", "--config", str(TINY_DATA_CONFIG), "--out", str(out), "--no-progress"]
    if name == "export":
        return py + ["datagen", "export", "cotracker3_kubric", str(moving_shards), str(out), "--no-progress"]
    if name == "train":
        return py + ["lightning_modules", "train", "--config", str(TINY_TRAIN),
                     *tiny_overrides(moving_shards, out, steps=2)]
    if name == "eval":
        return py + ["lightning_modules", "eval", "--checkpoint", str(tiny_checkpoint("online")), "--data",
                     str(benchmarks["tapvid"]), "--out", str(out)]
    assert name == "track"
    return py + ["tracker", "track", str(clip), "--checkpoint", str(tiny_checkpoint("online")), "--grid", "4",
                 "--out", str(out)]


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("name", ["generate", "export", "train", "eval", "track"])
def test_unwritable_output_is_one_line_before_any_work(name, blocked, moving_shards, tiny_checkpoint, benchmarks,
                                                       clip, tiny_overrides, tmp_path):
    how, disk = blocked
    out = disk / ("tracks.npz" if name == "track" else "out")
    before = _listing(disk)
    proc = subprocess.run(_command(name, out, moving_shards, tiny_checkpoint, benchmarks, clip, tiny_overrides),
                          cwd=tmp_path, env=_env(TRACKFORGE_CACHE=str(tmp_path / "cache")), capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    prefix = "tracker: error: " if name == "track" else "error: "
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"{prefix}cannot write to {out}: {REASONS[how]}"), lines
    assert "Traceback" not in proc.stderr
    assert "video " not in proc.stdout and "exported" not in proc.stdout  # refused before the work started
    assert _listing(disk) == before


def test_complete_data_set_on_a_read_only_disk(moving_shards, tmp_path):
    """`datagen generate` on a finished data set that was moved to a read-only disk: one line (its lock files
    cannot be made), not a traceback."""
    import shutil

    with small_disk(tmp_path / "disk", size="32m") as disk:
        out = disk / "data"
        shutil.copytree(moving_shards, out)
        read_only(disk)
        proc = subprocess.run([sys.executable, "-m", "datagen", "generate", "--config", str(TINY_DATA_CONFIG),
                               "--out", str(out), "--no-progress", *MOVING_OVERRIDES], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
            f"error: cannot write to {out}: Read-only file system"], proc.stderr


def _limited(limit: int):
    """preexec_fn: the kernel fails writes beyond `limit` bytes per file with EFBIG (as a full disk fails them with
    ENOSPC; Python ignores the SIGXFSZ that comes with it)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize(("name", "limit", "code", "line"), [
    ("export", 4096, 1, "error: cannot write to {out}: File too large (what was exported before is complete; free "
                        "space and rerun)"),
    ("track", 512, 2, "tracker: error: cannot write to {out}: File too large"),
    ("eval", 512, 2, "error: cannot write to {out}: File too large"),
], ids=["export", "track", "eval"])
def test_write_failing_during_the_work_is_one_line(name, limit, code, line, moving_shards, tiny_checkpoint,
                                                   benchmarks, clip, tiny_overrides, tmp_path):
    """The output passes the check, then a write fails half-way (files over `limit` bytes): one line, and no
    temporary left behind (a killed or failed writer's files are hidden temporaries, removed on failure). eval
    goes on without its prediction cache, which cannot be written either, and fails only at its report."""
    out = tmp_path / ("tracks.npz" if name == "track" else "out")
    proc = subprocess.run(_command(name, out, moving_shards, tiny_checkpoint, benchmarks, clip, tiny_overrides),
                          cwd=tmp_path, env=_env(TRACKFORGE_CACHE=str(tmp_path / "cache")), capture_output=True,
                          text=True, timeout=300, preexec_fn=_limited(limit))
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code and lines[-1] == line.format(out=out), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    if name == "eval":  # one warning line about the cache, then the error
        assert len(lines) == 2 and lines[0].startswith("warning: prediction cache ") and \
            lines[0].endswith("evaluating without storing predictions"), lines
    else:
        assert len(lines) == 1, lines
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name], "a temporary was left behind"
