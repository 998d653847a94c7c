"""generate_dataset / CLI with real renders: kill-and-resume, determinism, retries, timeouts, task slicing,
complete, preview and stats."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from datagen.config import load_data_config
from datagen.pipeline.generate import available_cpus, generate_dataset
from datagen.pipeline.layout import derive_seed
from datagen.formats.shard_io import iter_tar_samples
from datagen.formats.shards import read_shards
from tests.conftest import procs_mentioning

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "data" / "tiny.yaml"
# Tracks rendered with different thread counts or CPUs agree to this (measured: 3.8e-6 px on Intel, 0 on AMD).
TRACK_ATOL_PX = 1e-4
pytestmark = pytest.mark.slow


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "datagen", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _timings(out: Path) -> list[dict]:
    """scene_timings.jsonl: the timings and run facts kept out of meta.json (last line per scene wins)."""
    lines = [json.loads(ln) for ln in (out / "scene_timings.jsonl").read_text().splitlines()]
    return list({r["key"]: r for r in lines}.values())


def test_kill_and_resume_keeps_finished_scenes_and_is_deterministic(tmp_path, tiny_shards):
    out = tmp_path / "data"
    args = ["generate", "--config", TINY, "--out", out, "--workers", "1", "--no-progress", "generate.num_scenes=2"]
    proc = subprocess.Popen([sys.executable, "-m", "datagen", *map(str, args)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    scene0 = out / ".work" / "scenes" / "scene-000000.tar"
    deadline = time.monotonic() + 240
    while not scene0.exists():
        assert proc.poll() is None, "generate exited before the first scene finished"
        assert time.monotonic() < deadline, "first scene did not finish in time"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # scene 1 is in flight now
    proc.wait()
    time.sleep(1.0)
    assert not procs_mentioning(str(out)), "scene processes outlived the killed generator"
    assert not list(out.glob("shard-*")), "a shard file exists although its scenes were not all finished"
    before = {k: v for k, v in next(iter_tar_samples(scene0)).items() if k != "__url__"}

    cfg = load_data_config(TINY, ["generate.num_scenes=2"])
    report = generate_dataset(cfg, out, workers=1, progress=False)
    assert report.scenes_reused == 1 and report.scenes_rendered == 1 and report.shards_written == [0]
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.tar"]
    assert not list((out / ".work" / "scenes").iterdir())
    raws = list(iter_tar_samples(out / "shard-000000.tar"))
    assert [r["__key__"] for r in raws] == ["scene-000000", "scene-000001"]
    assert {k: v for k, v in raws[0].items() if k != "__url__"} == before  # the finished scene was kept as is

    # Determinism: the same (base_seed, scene index, attempt) rendered in other processes/runs gives the same
    # tracks. (A scene that crashed in one of the runs was retried with another attempt's seed: skip it.) The two
    # runs use different render thread counts (1 vs 2 workers): Cycles/Embree may build its ray-tracing structure
    # differently then, and on some CPUs (Intel) a few rendered depths differ in the last float bits, moving a few
    # tracks by ~1e-6 px. Byte-identity holds for the same machine, settings and thread count (test_pipeline_faults);
    # across thread counts and CPUs the promise is a tolerance (docs/datagen_pipeline.md).
    resumed = list(read_shards(str(out / "shard-000000.tar")))
    reference = list(read_shards(str(tiny_shards / "shard-000000.tar")))
    same = [(a, b) for a, b in zip(resumed, reference) if a.meta["attempt"] == b.meta["attempt"]]
    assert same, "every scene needed a retry in one of the runs"
    # Parallel scenes share the CPUs: 1 worker renders with all of them, tiny.yaml's 2 workers with half each
    # (and the results agree across thread counts, below).
    cpus = available_cpus()
    assert {r["render_threads"] for r in _timings(out)} == {cpus}
    assert {r["render_threads"] for r in _timings(tiny_shards)} == {max(1, cpus // 2)}
    assert not {"timings", "render_threads"} & {k for r in resumed + reference for k in r.meta}
    for a, b in same:
        index, attempt = int(a.key[-6:]), a.meta["attempt"]
        assert a.meta["seed"] == b.meta["seed"] == derive_seed(0, index, attempt)
        np.testing.assert_allclose(a.tracks, b.tracks, rtol=0, atol=TRACK_ATOL_PX)
        np.testing.assert_allclose(a.tracks3d, b.tracks3d, rtol=1e-5, atol=1e-5)
        # A point exactly at the depth-test margin may flip; more than 0.1 % would be a real difference.
        assert (a.visibility != b.visibility).mean() <= 1e-3
        assert np.abs(a.video.astype(int) - b.video).mean() < 1.0

    # A third run has nothing to do.
    again = generate_dataset(cfg, out, progress=False)
    assert again.shards_skipped == [0] and again.scenes_rendered == 0


def test_failing_scene_is_retried_with_a_new_seed(tmp_path):
    cfg = load_data_config(TINY, ["generate.num_scenes=1", "generate.scenes_per_shard=1",
                                  "generate.debug_fail_scenes=[0]", "scene.num_humans=0", "scene.num_animals=0",
                                  "scene.resolution=[32,32]", "scene.num_frames=3", "scene.num_tracks=64"])
    with pytest.warns(RuntimeWarning, match="scene 0 attempt 0 .* failed: exit code 1: RuntimeError: injected"):
        report = generate_dataset(cfg, tmp_path, progress=False)
    new_seed = derive_seed(0, 0, 1)
    assert new_seed != derive_seed(0, 0, 0)
    assert len(report.retries) == 1 and report.retries[0]["seed"] == derive_seed(0, 0, 0)
    assert report.shards_written == [0] and not report.failed_scenes
    log = (tmp_path / "generate.log").read_text()
    assert f"retrying with seed {new_seed}" in log
    assert "Traceback" in (tmp_path / ".work" / "logs" / "scene-000000-a0.log").read_text()  # failed log kept
    (sample,) = read_shards(str(tmp_path / "shard-000000.tar"))
    assert sample.meta["seed"] == new_seed and sample.meta["attempt"] == 1
    assert sample.video.shape == (3, 32, 32, 3)


def test_timeouts_exhaust_retries_with_clear_error(tmp_path):
    proc = _cli("generate", "--config", TINY, "--out", tmp_path, "--no-progress", "generate.num_scenes=1",
                "generate.timeout_s=0.5", "generate.max_retries=1")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 scene(s) failed after 2 attempt(s): [0]"), proc.stderr
    assert "Traceback" not in proc.stderr
    log = (tmp_path / "generate.log").read_text()
    assert log.count("timed out after 0.5s") == 2
    assert f"retrying with seed {derive_seed(0, 0, 1)}" in log
    assert not list(tmp_path.glob("shard-*"))
    assert not procs_mentioning(str(tmp_path))


def test_task_slicing_complete_and_slurm_env(tmp_path, tiny_shards):
    out = tmp_path / "data"
    out.mkdir()
    shutil.copy(tiny_shards / "dataset.json", out)
    shutil.copy(tiny_shards / "shard-000000.tar", out)
    # SLURM array 3..4 -> this is task 0 of 2, which owns shard 0 only (already there): nothing to render.
    proc = _cli("generate", "--config", TINY, "--out", out, env={
        "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "2"})
    assert proc.returncode == 0, proc.stderr
    assert "task 0/2: 0 shard(s) written, 1 already done, 0 scene(s) rendered" in proc.stdout
    assert not (out / "shard-000001.tar").exists()
    proc = _cli("complete", "--config", TINY, "--out", out)
    assert proc.returncode == 1 and "1 of 2 shard(s) missing" in proc.stdout and "shard-000001.tar" in proc.stdout
    shutil.copy(tiny_shards / "shard-000001.tar", out)
    assert _cli("complete", "--config", TINY, "--out", out).returncode == 0
    # the same folder under another config is not complete, and generate refuses to mix data sets
    assert _cli("complete", "--config", TINY, "--out", out, "generate.base_seed=5").returncode == 1
    proc = _cli("generate", "--config", TINY, "--out", out, "generate.base_seed=5")
    assert proc.returncode == 1 and "different config" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("generate", "--config", TINY, "--out", out, "--task-index", "2", "--num-tasks", "2")
    assert proc.returncode == 2 and "--task-index" in proc.stderr


def test_manifest_has_resolved_config(tiny_shards):
    manifest = json.loads((tiny_shards / "dataset.json").read_text())
    cfg = load_data_config(TINY, [])
    assert manifest["config"] == cfg.to_dict() and manifest["content_hash"] == cfg.content_hash()
    assert manifest["shards"] == ["shard-000000.tar", "shard-000001.tar"]
    assert not list((tiny_shards / ".work" / "scenes").iterdir())


def test_preview_writes_readable_mp4(tmp_path, tiny_shards):
    from tracker.video import read_video

    out = tmp_path / "preview.mp4"
    proc = _cli("preview", tiny_shards / "shard-000000.tar", "--out", out, "--sample", 1, "--scale", 2)
    assert proc.returncode == 0, proc.stderr
    frames, fps = read_video(out)
    assert frames.shape == (6, 128, 128, 3) and fps == pytest.approx(12)
    raw = list(read_shards(str(tiny_shards / "shard-000000.tar")))[1].video
    upscaled = np.repeat(np.repeat(raw, 2, axis=1), 2, axis=2).astype(int)
    diff = np.abs(frames.astype(int) - upscaled).max(-1)
    assert (diff > 60).mean() > 0.01  # tracks are drawn over the frames
    assert np.median(diff) < 20  # ... which are still the sample's frames
    proc = _cli("preview", tiny_shards / "shard-000000.tar", "--out", out, "--sample", 5)
    assert proc.returncode == 1 and "out of range" in proc.stderr and "Traceback" not in proc.stderr


def test_stats(tiny_shards):
    proc = _cli("stats", tiny_shards / "shard-*.tar", "--json")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)
    samples = list(read_shards(str(tiny_shards / "shard-*.tar")))
    assert stats["shards"] == 2 and stats["samples"] == 3
    assert stats["frames"] == [6] and stats["resolution"] == ["64x64"] and stats["tracks_per_sample"] == [512]
    vis = [s.visibility.mean() for s in samples]
    assert stats["visibility_ratio"]["mean"] == pytest.approx(np.mean(vis))
    steps = [np.linalg.norm(np.diff(s.tracks, axis=0), axis=-1)[s.visibility[1:] & s.visibility[:-1]]
             for s in samples]
    assert stats["motion_px_per_frame"]["mean"] == pytest.approx(np.concatenate(steps).mean(), rel=1e-5)
    shares = stats["category_share"]
    assert {"object", "human", "animal"} <= set(shares) and all(shares[k] > 0 for k in ("object", "human", "animal"))
    assert sum(shares.values()) == pytest.approx(1.0)
    table = _cli("stats", tiny_shards / "shard-*.tar")
    assert table.returncode == 0 and "visibility ratio" in table.stdout and "human" in table.stdout
