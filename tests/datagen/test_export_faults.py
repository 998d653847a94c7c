"""`python -m datagen export` under faults: real export processes SIGKILLed or SIGTERMed at seeded random moments
while they write, then run again. The rerun must remove what the killed one left (only its own temporaries) and
end with exactly the files of an uninterrupted export; the official CoTracker3 loader, which lists every folder,
must find only complete sequences. The source: real shards of synthetic clips (8 clips, 24 frames of 96x96)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from datagen.formats.sample import TrackSample
from datagen.formats import open_source, writer

REPO = Path(__file__).resolve().parents[2]
TEMPORARY = {"cotracker3_kubric": ".*.tmp-*", "shards": "shard-*.tar.tmp-*"}  # what a writer has in flight


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    samples = [TrackSample(video=rng.integers(0, 256, (24, 96, 96, 3), dtype=np.uint8),
                           tracks=rng.uniform(0, 95, (24, 32, 2)).astype(np.float32),
                           visibility=rng.random((24, 32)) > 0.2, key=f"clip-{i:02d}", meta={"fps": 12})
               for i in range(8)]
    out = tmp_path_factory.mktemp("source") / "shards"
    writer("shards")(samples, out, samples_per_shard=2)
    return out


def _export(fmt: str, source: Path, out: Path) -> subprocess.Popen:
    args = ["--samples-per-shard", "2"] if fmt == "shards" else []
    return subprocess.Popen([sys.executable, "-m", "datagen", "export", fmt, str(source), str(out), "--no-progress",
                             *args], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _first_temporary(fmt: str, out: Path, proc: subprocess.Popen, timeout: float = 120) -> float:
    """Wait until the export has something in flight (a temporary in `out`); returns that moment."""
    deadline = time.monotonic() + timeout
    while not (out.is_dir() and list(out.glob(TEMPORARY[fmt]))):
        assert proc.poll() is None, f"export ended ({proc.returncode}) before writing anything: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.002)
    return time.monotonic()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """Each format exported without interruption, and how long it wrote (first temporary to exit)."""
    made = {}
    for fmt in TEMPORARY:
        out = tmp_path_factory.mktemp(f"reference-{fmt}") / "out"
        proc = _export(fmt, source, out)
        start = _first_temporary(fmt, out, proc)
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
        made[fmt] = (out, time.monotonic() - start)
    return made


@pytest.mark.parametrize(("fmt", "sig", "seed"), [
    ("cotracker3_kubric", signal.SIGKILL, 1), ("cotracker3_kubric", signal.SIGKILL, 2),
    ("cotracker3_kubric", signal.SIGTERM, 3), ("shards", signal.SIGKILL, 4), ("shards", signal.SIGTERM, 5)],
    ids=["kubric-SIGKILL-1", "kubric-SIGKILL-2", "kubric-SIGTERM-3", "shards-SIGKILL-4", "shards-SIGTERM-5"])
def test_killed_export_then_rerun_is_identical(source, reference, tmp_path, fmt, sig, seed):
    rng = random.Random(seed)
    ref_out, writing_s = reference[fmt]
    out = tmp_path / "out"
    proc = _export(fmt, source, out)
    start = _first_temporary(fmt, out, proc)
    time.sleep(max(0.0, start + rng.uniform(0.0, writing_s) - time.monotonic()))
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    assert code in (-sig, 0), proc.stderr.read()
    left = sorted(p.name for p in out.glob(TEMPORARY[fmt]))
    rerun = _export(fmt, source, out)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "a temporary was left behind"
    files = _files(out)
    assert files.pop(".trackforge.lock", None) is not None  # the export's lock file, hidden and never a folder
    expected = _files(ref_out)
    expected.pop(".trackforge.lock")
    assert files.keys() == expected.keys()
    assert all(files[k] == expected[k] for k in expected), "a file differs from the uninterrupted export"
    if fmt == "cotracker3_kubric":  # the official loader: every folder of the root is a sequence
        listed = sorted(f for f in os.listdir(out) if os.path.isdir(out / f))
        assert listed == [f"clip-{i:02d}" for i in range(8)]
    print(f"{fmt}: {signal.Signals(sig).name} (exit {code}) left {left or 'nothing'}; the rerun matched")


def test_rerun_removes_only_its_own_stale_temporaries_and_the_reader_skips_hidden_folders(source, tmp_path):
    """What a killed export leaves (hidden `.<seq>.tmp-<host>-<pid>` folders, also of another host) is removed by
    the next export into the folder; other hidden folders and files that only look similar stay. Before that
    rerun, the reader already ignores the leftovers."""
    out = tmp_path / "out"
    writer("cotracker3_kubric")(list(open_source(str(source)))[:1], out)
    stale = [out / ".clip-05.tmp-otherhost-4242", out / ".clip-06.tmp-thishost-1"]
    for folder in stale:
        (folder / "frames").mkdir(parents=True)
        (folder / "frames" / "000.png").write_bytes(b"half a png")
        (folder / f"{folder.name.split('.tmp-')[0][1:]}.npy").write_bytes(b"")
    keep = [out / ".snapshots", out / "notes.tmp-1", out / ".tmp-plain"]
    keep[0].mkdir()
    keep[1].write_text("not ours")
    keep[2].write_text("not ours either: no name before the mark")
    assert [Path(p).name for p in open_source(str(out)).items] == ["clip-00"]
    proc = _export("cotracker3_kubric", source, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)
    assert [Path(p).name for p in open_source(str(out)).items] == [f"clip-{i:02d}" for i in range(8)]
