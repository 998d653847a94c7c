"""Real training processes under real signals and kills (issue 13): SIGTERM/SIGINT always end a run within a
bounded time with one `error:` line and exit status 128 + signal (checkpointing at a step boundary when one is
reachable), a SIGKILLed run resumes with its metrics.csv rows intact, a second run into a busy run dir is refused,
and a checkpoint write that fails (file size limit, like a full disk) leaves the previous checkpoint intact."""
from __future__ import annotations

import csv
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 3.0  # TRACKFORGE_STOP_GRACE_S where the watchdog must end the run (default 10 s)
CLEAN_GRACE_S = 60.0  # where a clean stop at a step boundary is expected, even on a very busy machine
START_TIMEOUT_S = 240  # imports, model and validation clips on 2 busy cores


def _env(grace_s: float = GRACE_S) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", TRACKFORGE_STOP_GRACE_S=str(grace_s))
    return env


def _launch(overrides: list[str], log: Path, grace_s: float = GRACE_S) -> subprocess.Popen:
    """`python -m lightning_modules train` in its own session (so that leftovers can be found), output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "lightning_modules", "train", "--config",
                                 "configs/train/tiny_cpu.yaml", *overrides], cwd=REPO, env=_env(grace_s), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for(what: str, cond, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    _kill_session(proc)
    pytest.fail(f"{what} did not happen (exit {proc.poll()}):\n{log.read_text(errors='replace')[-3000:]}")


def _session(proc: subprocess.Popen) -> list[int]:
    """Live processes of the run's session (the run, its DataLoader workers, DDP ranks, W&B service)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[-1].split()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and fields[0] != "Z" and int(fields[3]) == proc.pid:  # field 6 of stat: session id
            found.append(int(entry))
    return found


def _kill_session(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _stop(proc: subprocess.Popen, sig: int, log: Path, budget_s: float, group: bool = False) -> tuple[int, float]:
    """Send `sig` (to the whole process group, as a terminal, `timeout` or Slurm do, with `group`); the run must
    be gone within budget_s, leaving no process behind."""
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        code = proc.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        pytest.fail(f"{signal.Signals(sig).name} did not stop the run within {budget_s} s:\n"
                    f"{log.read_text(errors='replace')[-3000:]}")
    took = time.monotonic() - t0
    time.sleep(0.3)
    leftovers = _session(proc)
    if leftovers:
        _kill_session(proc)
        pytest.fail(f"processes left behind after the stop: {leftovers}")
    return code, took


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "csv" / "metrics.csv"
    return list(csv.DictReader(path.open(newline=""))) if path.is_file() else []


def _train_steps(rows: list[dict[str, str]]) -> list[int]:
    return [int(r["step"]) for r in rows if r.get("train/loss")]


def _error_lines(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error:")]


def _unchanged_for(path: Path, seconds: float):
    """A condition: `path` has not changed for `seconds` (the run makes no progress)."""
    state = {"mtime": None, "since": time.monotonic()}

    def check() -> bool:
        mtime = path.stat().st_mtime_ns
        if mtime != state["mtime"]:
            state.update(mtime=mtime, since=time.monotonic())
        return time.monotonic() - state["since"] >= seconds

    return check


def _pipe_reader_started(proc: subprocess.Popen) -> bool:
    """The run has started the command of the pipe shard: it is reading a stream that never delivers."""
    for pid in _session(proc):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"600"]:
                return True
        except OSError:
            pass
    return False


def _blocking_shards(tmp_path: Path, good: Path, copies: int) -> str:
    """A shard pattern: `copies` links to a good shard plus a WebDataset `pipe:` shard whose command never writes
    a byte (reading it blocks in read() for ever, without a failure the stream could count)."""
    folder = tmp_path / "shards"
    folder.mkdir()
    for i in range(copies):
        (folder / f"shard-good{i}.tar").symlink_to(good)
    return ",".join([f"{folder}/*.tar"] * bool(copies) + ["pipe:sleep 600"])


@pytest.mark.slow
def test_sigint_stops_a_run_whose_stream_blocks_before_the_first_step(moving_shards: Path, tmp_path: Path,
                                                                     tiny_overrides) -> None:
    """The only training shard never delivers a byte: the stream blocks before training starts."""
    shards = _blocking_shards(tmp_path, moving_shards / "shard-000000.tar", copies=0)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _launch(tiny_overrides(moving_shards, run_dir, steps=50, data__shards=shards,
                                  data__val_shards=str(moving_shards / "shard-000001.tar"), data__num_workers=1),
                   log)
    _wait_for("a read of the pipe shard", lambda: _pipe_reader_started(proc), proc, log)
    time.sleep(1.0)
    code, took = _stop(proc, signal.SIGINT, log, budget_s=GRACE_S + 10)
    assert code == 128 + signal.SIGINT, log.read_text()[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 1 and errors[0].startswith("error: stopped by SIGINT"), errors
    assert "Traceback" not in log.read_text(errors="replace")
    print(f"SIGINT with a blocked stream: exit {code} after {took:.1f} s")



# A real fit whose train_dataloader() (called after Lightning registered its SIGTERM handler, before the first step)
# sends SIGTERM to its own process, with the stop handling of the `train` command.
EARLY_SIGTERM = r"""
import os, signal, sys
import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset
from lightning_modules import stop_signals
from lightning_modules.cli import install_stop_handling

install_stop_handling()


class Module(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def training_step(self, batch, batch_idx):
        return self.w(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        os.kill(os.getpid(), signal.SIGTERM)
        return DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)


try:
    L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(Module())
except stop_signals.StopRequested as stop:
    print(f"error: stopped by {stop_signals.signal_name(stop.signum)}", file=sys.stderr)
    sys.exit(128 + stop.signum)
print("not stopped")
"""


@pytest.mark.slow
def test_sigterm_before_the_first_step_prints_only_our_line() -> None:
    """Lightning's SIGTERM handler, in place from the start of fit until the training loop starts, logged
    `[rank: 0] Received SIGTERM: 15` next to our one-line error."""
    proc = subprocess.run([sys.executable, "-c", EARLY_SIGTERM], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    assert "Received SIGTERM" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()][-1] == "error: stopped by SIGTERM", proc.stderr

@pytest.mark.slow
def test_sigterm_while_the_stream_blocks_mid_training_ends_after_the_grace_period(
        moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    """A few steps train, then the stream blocks for ever on the pipe shard (seed 42 picks it after a few steps):
    SIGTERM asks for a stop at the next step boundary, which never comes; the watchdog ends the run GRACE_S
    later."""
    shards = _blocking_shards(tmp_path, moving_shards / "shard-000000.tar", copies=8)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _launch(tiny_overrides(moving_shards, run_dir, steps=100, seed=42, data__shards=shards,
                                  data__val_shards=str(moving_shards / "shard-000001.tar"),
                                  trainer__log_every_n_steps=1), log)
    _wait_for("a training step", lambda: _train_steps(_rows(run_dir)), proc, log)
    _wait_for("the stream to block", _unchanged_for(run_dir / "csv" / "metrics.csv", 2.0), proc, log, timeout=60)
    code, took = _stop(proc, signal.SIGTERM, log, budget_s=GRACE_S + 10)
    assert code == 128 + signal.SIGTERM
    assert GRACE_S - 0.5 < took < GRACE_S + 10, took
    text = log.read_text(errors="replace")
    assert "received SIGTERM: stopping after the current training step" in text, text[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 1 and errors[0].startswith("error: stopped by SIGTERM at step "), errors
    assert f"no clean stop within {GRACE_S:g} s" in errors[0]
    print(f"SIGTERM with a stream blocked mid-training: exit {code} after {took:.1f} s")


@pytest.mark.slow
def test_sigterm_at_a_step_boundary_checkpoints_and_the_run_resumes(moving_shards: Path, tmp_path: Path,
                                                                    tiny_overrides) -> None:
    """SIGTERM to the whole process group, DataLoader worker included (as `timeout` or Slurm send it)."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    overrides = tiny_overrides(moving_shards, run_dir, steps=200, trainer__log_every_n_steps=1, data__num_workers=1)
    proc = _launch(overrides, log, grace_s=CLEAN_GRACE_S)
    _wait_for("two training steps", lambda: len(_train_steps(_rows(run_dir))) >= 2, proc, log)
    code, took = _stop(proc, signal.SIGTERM, log, budget_s=CLEAN_GRACE_S, group=True)
    assert code == 128 + signal.SIGTERM, log.read_text()[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 1 and errors[0].startswith("error: stopped by SIGTERM at step "), errors
    step = int(errors[0].split("at step ")[1].split()[0])
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"(saved {last})" in errors[0]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == step >= 2
    assert _train_steps(_rows(run_dir)) == list(range(step))
    # Continue from that checkpoint: resume=auto picks it, the run ends at max_steps, every step logged once.
    done = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                           "configs/train/tiny_cpu.yaml", *tiny_overrides(moving_shards, run_dir, steps=step + 2,
                                                                           trainer__log_every_n_steps=1,
                                                                           data__num_workers=1),
                           "resume=auto"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == step + 2
    assert _train_steps(_rows(run_dir)) == list(range(step + 2))


@pytest.mark.slow
def test_csv_rows_survive_a_kill_and_resume(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    """SIGKILL after a checkpoint: the resumed run's metrics.csv keeps the first run's rows up to the checkpoint
    and logs every later step exactly once (Lightning's CSVLogger deleted the file on resume)."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    overrides = tiny_overrides(moving_shards, run_dir, steps=10, trainer__log_every_n_steps=1,
                               checkpoint__every_n_train_steps=2, trainer__val_check_interval=4)
    proc = _launch(overrides, log)
    # Step index 5's row is logged right after the step-6 checkpoint is written: kill once it is there.
    _wait_for("step 5", lambda: any(s >= 5 for s in _train_steps(_rows(run_dir))), proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = {int(r["step"]): r["train/loss"] for r in _rows(run_dir) if r.get("train/loss")}
    resumed_from = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                              weights_only=True)["global_step"]
    assert resumed_from >= 6 and set(range(resumed_from)) <= set(first)
    done = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                           "configs/train/tiny_cpu.yaml", *overrides, "resume=auto"], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = _rows(run_dir)
    assert _train_steps(rows) == list(range(10))
    after = {int(r["step"]): r["train/loss"] for r in rows if r.get("train/loss")}
    assert all(after[s] == first[s] for s in range(resumed_from)), "rows from before the kill changed"
    # Validations at steps 4 and 8 (logged at step index 3 and 7), plus the final one, each once.
    assert [int(r["step"]) for r in rows if r.get("val/average_jaccard")] == [3, 7, 10]


@pytest.mark.slow
def test_second_run_into_a_busy_run_dir_is_refused(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    """Two runs into one run dir mixed their checkpoints (last-v1.ckpt, ...) and metrics rows. The holder here is
    a process holding the run dir's lock as a training run does (tracker.common.output_lock, tested with
    killed holders in tests/datagen) and stands for a first training run, which takes seconds to start."""
    run_dir = tmp_path / "run"
    hold = ("import sys, time\nfrom tracker.common.output_lock import folder_lock\n"
            "with folder_lock(sys.argv[1], 'training'):\n    print('HELD', flush=True)\n    time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, str(run_dir)], cwd=REPO, env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        second = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                                 "configs/train/tiny_cpu.yaml", *tiny_overrides(moving_shards, run_dir, steps=4)],
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
        lines = [line for line in second.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith(f"error: {run_dir} is in use: pid {holder.pid} "), lines
        assert not (run_dir / "config.yaml").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.slow
def test_failed_checkpoint_write_keeps_the_previous_checkpoint(moving_shards: Path, tmp_path: Path,
                                                              tiny_overrides) -> None:
    """After the first periodic checkpoint, cap the process's file size below a checkpoint's (the kernel then
    fails the write with EFBIG, as a full disk fails it with ENOSPC): one error line, the previous last.ckpt is
    intact and no partial file is left."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _launch(tiny_overrides(moving_shards, run_dir, steps=200, checkpoint__every_n_train_steps=2), log)
    last = run_dir / "checkpoints" / "last.ckpt"
    _wait_for("the first checkpoint", last.is_file, proc, log)
    before = last.read_bytes()
    limit = len(before) // 2
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (limit, limit))
    try:
        code = proc.wait(timeout=120)
    finally:
        _kill_session(proc)
    assert code == 1, log.read_text()[-3000:]
    errors = _error_lines(log)
    assert errors == [f"error: cannot write checkpoint {last}: File too large (the previous checkpoint there, "
                      f"if any, is unchanged)"], log.read_text()[-3000:]
    assert last.read_bytes() == before
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 2
    assert not list(last.parent.glob(".*tmp-*"))


@pytest.mark.slow
@pytest.mark.ddp
def test_sigterm_stops_both_ddp_ranks_at_the_same_step(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    """SIGTERM to rank 0 of a 2-process gloo run: the ranks agree on the step, save one checkpoint together and
    both exit; nothing hangs in a collective."""
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    proc = _launch(tiny_overrides(moving_shards, run_dir, steps=200, trainer__log_every_n_steps=1,
                                  data__val_clips=1) + ["trainer.devices=2", "trainer.strategy=ddp"], log,
                   grace_s=CLEAN_GRACE_S)
    _wait_for("two training steps", lambda: len(_train_steps(_rows(run_dir))) >= 2, proc, log)
    code, took = _stop(proc, signal.SIGTERM, log, budget_s=CLEAN_GRACE_S)
    assert code == 128 + signal.SIGTERM, (code, took, log.read_text()[-3000:])
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 2, errors  # rank 0 (signalled) and rank 1 (stopped with it), same step and checkpoint
    step = int(errors[0].split("at step ")[1].split()[0])
    assert {e.split("at step ")[1] for e in errors} == {f"{step} (saved {run_dir / 'checkpoints' / 'last.ckpt'})"}
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)["global_step"] == step


# ------------------------------------------------------------------------------------------ kill at a random step
# Every step is an epoch of its own (data.epoch_samples=1, batch 1): the training stream is seeded from the global
# step at each epoch start (lightning_modules.train_stream.StreamSeed), so a run resumed at step k draws the clips an
# uninterrupted run draws from step k on, and the two must end with the same weights.
KILL_STEPS = 6


def _kill_overrides(tiny_overrides, shards: Path, run_dir: Path) -> list[str]:
    return tiny_overrides(shards, run_dir, steps=KILL_STEPS, seed=7, data__epoch_samples=1, data__val_clips=1,
                          checkpoint__every_n_train_steps=1, trainer__log_every_n_steps=1)


def _train(overrides: list[str], log: Path) -> subprocess.CompletedProcess:
    with log.open("ab") as out:
        return subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                               "configs/train/tiny_cpu.yaml", *overrides], cwd=REPO, env=_env(CLEAN_GRACE_S),
                              stdout=out, stderr=subprocess.STDOUT, timeout=600)


def _weights(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return int(ckpt["global_step"]), ckpt["state_dict"]


@pytest.fixture(scope="module")
def uninterrupted(moving_shards: Path, tmp_path_factory, tiny_overrides) -> Path:
    """last.ckpt of the run the killed ones must reproduce (same settings, never interrupted)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    log = run_dir.parent / "train.log"
    done = _train(_kill_overrides(tiny_overrides, moving_shards, run_dir), log)
    assert done.returncode == 0, log.read_text(errors="replace")[-3000:]
    return run_dir / "checkpoints" / "last.ckpt"


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "seed"), [(signal.SIGKILL, 1), (signal.SIGTERM, 3)], ids=["SIGKILL-1", "SIGTERM-3"])
def test_killed_at_a_random_step_resumes_to_the_uninterrupted_weights(moving_shards: Path, tmp_path: Path,
                                                                     tiny_overrides, uninterrupted: Path,
                                                                     sig: int, seed: int) -> None:
    """A run gets `sig` at a seeded random time after a random training step (the whole session: DataLoader
    workers and all); `resume=auto` finishes it; the final checkpoint is at the same step with the same weights
    (on CPU, one thread each; compared with a tolerance) as the uninterrupted run's, and no temporary is left."""
    import random

    rng = random.Random(seed)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    overrides = _kill_overrides(tiny_overrides, moving_shards, run_dir)
    proc = _launch(overrides, log, grace_s=CLEAN_GRACE_S)
    after = rng.randint(1, KILL_STEPS - 2)
    _wait_for(f"training step {after}", lambda: len(_train_steps(_rows(run_dir))) >= after, proc, log)
    time.sleep(rng.uniform(0.0, 0.5))
    code, _ = _stop(proc, sig, log, budget_s=CLEAN_GRACE_S, group=True)
    assert code in (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig, 0), log.read_text()[-3000:]
    killed_at = _weights(run_dir / "checkpoints" / "last.ckpt")[0] if (run_dir / "checkpoints" / "last.ckpt"
                                                                         ).is_file() else 0
    done = _train(overrides + ["resume=auto"], log)
    assert done.returncode == 0, log.read_text(errors="replace")[-3000:]
    step, weights = _weights(run_dir / "checkpoints" / "last.ckpt")
    ref_step, ref_weights = _weights(uninterrupted)
    assert step == ref_step == KILL_STEPS and weights.keys() == ref_weights.keys()
    for key, value in ref_weights.items():
        torch.testing.assert_close(weights[key], value, rtol=1e-5, atol=1e-6, msg=f"{key} (killed at {killed_at})")
    assert _train_steps(_rows(run_dir)) == list(range(KILL_STEPS))  # every step logged once
    assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]
    print(f"{signal.Signals(sig).name} after {after} logged step(s), checkpoint at step {killed_at}: resumed to the "
          "same weights")
