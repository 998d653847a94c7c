"""slurm/datagen.sbatch and slurm/train.sbatch on a REAL local Slurm cluster (see conftest.py).

The array renders a tiny data set (2 tasks, 4 one-scene shards of 64x64, 8 frames, 2 spp); each task must write
exactly its own block of shards; deleting a shard and resubmitting the array rebuilds only that shard. Then
train.sbatch runs 2 srun tasks (DDP over gloo on CPU) through Lightning's SLURM environment, is sent the
requeue signal (what --signal=SIGUSR1@90 delivers before the time limit), requeues itself and resumes from its
checkpoint to the end. Selected with `-m slurm`; skipped (with the reason) where Slurm cannot be installed.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
NUM_TASKS = 2
NUM_SHARDS = 4

TINY_DATA = """\
# 4 one-scene shards -> task 0 owns shards 0-1, task 1 owns shards 2-3
scene:
  resolution: [64, 64]
  num_frames: 8
  samples_per_pixel: 2
  num_tracks: 128
  num_static_objects: [1, 2]
  num_tossed_objects: [1, 1]
  render_timeout_s: 120
generate:
  num_scenes: 4
  scenes_per_shard: 1
  max_retries: 1
"""


def _job_env(extra: dict) -> dict:
    """--export list for sbatch: the whole environment plus the script's parameters."""
    return {"SBATCH_EXPORT": "ALL," + ",".join(f"{k}={v}" for k, v in extra.items())}


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else f"({path} missing)"


@pytest.fixture(scope="module")
def data_job(slurm_cluster, tmp_path_factory):
    """Submits datagen.sbatch as a 2-task array once; returns its paths and finished task records."""
    work = tmp_path_factory.mktemp("datagen")
    config = work / "tiny.yaml"
    config.write_text(TINY_DATA)
    out, logs = work / "shards", work / "logs"
    logs.mkdir()
    params = {"DATA_CONFIG": config, "DATA_DIR": out, "PYTHON": sys.executable}
    t0 = time.monotonic()
    job = slurm_cluster.sbatch(f"--array=0-{NUM_TASKS - 1}", f"--output={logs}/%x-%A_%a.out",
                               "slurm/datagen.sbatch", cwd=REPO, env=_job_env(params))
    tasks = slurm_cluster.wait(job, timeout=240)
    return {"job": job, "tasks": tasks, "out": out, "logs": logs, "config": config, "params": params,
            "elapsed": time.monotonic() - t0}


def _task_logs(data_job, job: str) -> dict[int, str]:
    return {i: _read(data_job["logs"] / f"trackforge-datagen-{job}_{i}.out") for i in range(NUM_TASKS)}


def _written_shards(log: str) -> set[int]:
    return {int(m) for m in re.findall(r"shard (\d+) written", log)}


def test_local_cluster_runs_batch_and_multi_task_steps(slurm_cluster, tmp_path):
    """The test cluster itself: a batch job, and one srun step with 2 tasks that see their ranks."""
    job = slurm_cluster.sbatch("-n", "2", f"--output={tmp_path}/%j.out", "--wrap",
                               "srun bash -c 'echo rank=$SLURM_PROCID of=$SLURM_NTASKS node=$SLURMD_NODENAME'")
    (task,) = slurm_cluster.wait(job, timeout=60)
    log = _read(tmp_path / f"{job}.out")
    assert task.state == "COMPLETED", log
    assert sorted(re.findall(r"rank=(\d) of=2", log)) == ["0", "1"], log


def test_datagen_array_tasks_write_only_their_own_shards(data_job):
    from datagen.formats.shards import read_shards

    job, out = data_job["job"], data_job["out"]
    logs = _task_logs(data_job, job)
    assert [t.state for t in data_job["tasks"]] == ["COMPLETED"] * NUM_TASKS, logs
    assert sorted(p.name for p in out.glob("shard-*.tar")) == [f"shard-{s:06d}.tar" for s in range(NUM_SHARDS)]
    for i in range(NUM_TASKS):
        # Each task's own generation log (written by the task only) names the shards it produced.
        own = {s for s in range(NUM_SHARDS) if (s * NUM_TASKS) // NUM_SHARDS == i}
        gen_log = _read(out / f"generate-task{i:04d}.log")
        assert _written_shards(gen_log) == own, gen_log
        assert f"array task {i}/{NUM_TASKS}" in logs[i] and f"task {i}/{NUM_TASKS}: {len(own)} shard(s) written" \
            in logs[i], logs[i]
    # Complete, readable shards: one sample each, the scene that belongs to the shard.
    for s in range(NUM_SHARDS):
        samples = list(read_shards(str(out / f"shard-{s:06d}.tar")))
        assert [x.key for x in samples] == [f"scene-{s:06d}"]
        assert samples[0].video.shape == (8, 64, 64, 3)
        assert samples[0].tracks.shape[0] == 8
    done = subprocess.run([sys.executable, "-m", "datagen", "complete", "--config", str(data_job["config"]),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"datagen array (2 tasks, 4 scenes): {data_job['elapsed']:.1f}s")


def test_datagen_array_rerun_rebuilds_only_missing_shard(slurm_cluster, data_job):
    out = data_job["out"]
    victim = out / "shard-000001.tar"
    victim.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    t0 = time.monotonic()
    # This time config and output folder are script arguments (as `make slurm-data` passes them).
    job = slurm_cluster.sbatch(f"--array=0-{NUM_TASKS - 1}", f"--output={data_job['logs']}/%x-%A_%a.out",
                               "slurm/datagen.sbatch", "--config", str(data_job["config"]), "--out", str(out),
                               cwd=REPO, env=_job_env({"PYTHON": sys.executable}))
    tasks = slurm_cluster.wait(job, timeout=180)
    logs = _task_logs(data_job, job)
    assert [t.state for t in tasks] == ["COMPLETED"] * NUM_TASKS, logs
    assert victim.is_file()
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert {n: after[n] for n in before} == before, "a finished shard was rewritten"
    assert "task 0/2: 1 shard(s) written, 1 already done, 1 scene(s) rendered" in logs[0], logs[0]
    assert "task 1/2: 0 shard(s) written, 2 already done, 0 scene(s) rendered" in logs[1], logs[1]
    print(f"datagen array rerun (1 missing shard): {time.monotonic() - t0:.1f}s")


# ------------------------------------------------------------------------------------------------ training
MAX_STEPS = 6


def _train_overrides(shards: Path, run_dir: Path) -> list[str]:
    """The tiny CPU config shrunk to 64x64 8-frame clips: a few DDP steps, validation at the end only."""
    return [
        # One held-out shard and one validation clip for 2 ranks: rank 1 validates a filler (no deadlock).
        f"data.shards={shards}/shard-*.tar", "data.num_val_shards=1",
        "data.resolution=[64,64]", "data.clip_len=8", "data.num_tracks=32", "data.min_tracks=8",
        "data.val_clips=1", "data.val_num_tracks=32", "data.num_workers=0", "data.augment.enabled=false",
        "trainer.accelerator=cpu", "trainer.strategy=ddp", f"trainer.max_steps={MAX_STEPS}",
        f"trainer.val_check_interval={MAX_STEPS}", "trainer.threads=1", "trainer.enable_progress_bar=false",
        "logger.kind=csv", "logger.video_every_n_steps=0", f"run_dir={run_dir}",
    ]


def _wait_for_text(path: Path, text: str, count: int, job_tasks, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _read(path).count(text) >= count:
            return
        tasks = job_tasks()
        if tasks and tasks[0].state not in ("PENDING", "RUNNING", "CONFIGURING"):
            break
        time.sleep(0.2)
    raise AssertionError(f"{text!r} x{count} did not appear in {path} (job: {job_tasks()}):\n{_read(path)[-4000:]}")


def test_train_ddp_requeues_on_signal_and_resumes(slurm_cluster, data_job, tmp_path):
    """2 srun tasks -> DDP over gloo; SIGUSR1 (sent by --signal=SIGUSR1@90 before the time limit) -> Lightning
    saves an HPC checkpoint and requeues the job -> the same job restarts and resumes from it to max_steps."""
    t0 = time.monotonic()
    log = tmp_path / "train.out"
    run_dir = tmp_path / "run"
    params = {"PYTHON": sys.executable}
    try:
        socket.gethostbyname(slurm_cluster.node)
    except OSError:  # the node name does not resolve here: rendezvous on loopback instead
        params["MASTER_ADDR"] = "127.0.0.1"
    # Chain after a (no-op: all shards exist) rerun of the data array, as a real pipeline would.
    data = slurm_cluster.sbatch(f"--array=0-{NUM_TASKS - 1}", f"--output={tmp_path}/%x-%A_%a.out",
                                "slurm/datagen.sbatch", cwd=REPO, env=_job_env(data_job["params"]))
    job = slurm_cluster.sbatch(f"--dependency=afterok:{data}", "--kill-on-invalid-dep=yes", "--ntasks-per-node=2",
                               "--cpus-per-task=1", f"--output={log}",
                               "slurm/train.sbatch", "--config", "configs/train/tiny_cpu.yaml",
                               *_train_overrides(data_job["out"], run_dir), cwd=REPO, env=_job_env(params))
    # Both ranks have installed the requeue handler. Slurm signals the ranks independently (90 s before the limit);
    # the hardest case is a signal that only one rank has seen yet: send it to rank 1 alone. Both ranks must
    # still agree to save at the same step (a checkpoint from inside the handler hung the job in a collective)
    # and rank 0, never signalled, must requeue.
    _wait_for_text(log, "SLURM requeue on SIGUSR1 enabled", 2, lambda: slurm_cluster.tasks(job), timeout=240)
    pids = dict(re.findall(r"\[rank (\d+)\] SLURM requeue on SIGUSR1 enabled \(pid (\d+)\)", _read(log)))
    os.kill(int(pids["1"]), signal.SIGUSR1)
    (task,) = slurm_cluster.wait(job, timeout=240)
    text = _read(log)
    assert [t.state for t in slurm_cluster.tasks(data)] == ["COMPLETED"] * NUM_TASKS
    assert task.state == "COMPLETED", text[-6000:]
    assert task.restarts == 1, text[-6000:]
    # The log (appended across the requeue) shows both starts, 2 DDP ranks, the requeue and the resume.
    assert "restart 0: 1 node(s) x 2 task(s)" in text and "restart 1: 1 node(s) x 2 task(s)" in text, text[-6000:]
    assert text.count("All distributed processes registered. Starting with 2 processes") == 2, text[-6000:]
    assert "requeued SLURM job" in text, text[-6000:]
    hpc = sorted(run_dir.glob("hpc_ckpt_*.ckpt"))
    assert hpc, f"no HPC checkpoint in {run_dir}: {sorted(p.name for p in run_dir.iterdir())}"
    # resume=auto takes the newest checkpoint: the HPC one written on the signal, or the last.ckpt the ranks
    # wrote together at the step boundary after the requeue's SIGTERM when a step ended in between (no periodic
    # last.ckpt before step 6). (A later restore is the final validation loading the just-saved last.ckpt.)
    restored = re.findall(r"Restoring states from the checkpoint path at (\S+)", text)
    assert restored, text[-6000:]
    first = Path(restored[0]).resolve()
    if first != hpc[-1].resolve():
        assert first == (run_dir / "checkpoints" / "last.ckpt").resolve(), restored
        assert "stopped by SIGTERM at step" in text and "(saved " in text, text[-6000:]
    assert all(Path(p).name == "last.ckpt" for p in restored[1:]), restored
    summary = json.loads((run_dir / "final_metrics.json").read_text())
    assert summary["global_step"] == MAX_STEPS
    assert all(0.0 <= v <= 1.0 for v in summary["final"]["model"].values()), summary
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == MAX_STEPS
    print(f"train.sbatch 2 tasks, requeue + resume: {time.monotonic() - t0:.1f}s")
