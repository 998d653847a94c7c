"""SLURM requeue at a step boundary: SIGUSR1 (sent `--signal=SIGUSR1@90` before the time limit) -> every rank saves
`<run_dir>/hpc_ckpt_<n>.ckpt` at the end of the same training step and rank 0 runs `scontrol requeue <job>`.

Why not Lightning's `SLURMEnvironment(auto_requeue=True)`: its SIGUSR1 handler calls `trainer.save_checkpoint`
(a collective: a barrier in DDP) from inside the signal handler, i.e. wherever each rank happens to be when Python
runs it. Slurm signals the ranks independently, so one rank enters the checkpoint's barrier while another is in the
step's gradient all-reduce: the collectives do not match and the job hangs until its time limit (seen under CPU
load). Here the handler only records the request; at the end of every training step the ranks agree (one all-reduce
of a flag) whether any of them was signalled, and only then all of them save, at the same step.

The requeue makes Slurm send SIGTERM to the job; `callbacks.GracefulStop` stops every rank at the next step
boundary (with a last.ckpt when a step ended in between) and the requeued job resumes with `resume=auto` from the
newest of the two. A signal during validation is acted upon at the next training step; one after fit is ignored
(`train.ignore_requeue_signal`).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback

REQUEUE_SIGNAL = signal.SIGUSR1
_fork_hook = False
SCONTROL_TIMEOUT_S = 60  # scontrol talks to slurmctld; a controller that does not answer must not hang the step


def slurm_job_id(env: dict[str, str] | None = None) -> str:
    """The id `scontrol requeue` takes: `<array job>_<task>` for an array task, else the job id."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env["SLURM_JOB_ID"]


def next_hpc_number(run_dir: Path) -> int:
    """n + 1 for the highest <run_dir>/hpc_ckpt_<n>.ckpt there (Lightning's name, which its SLURM resume knows)."""
    numbers = [int(m.group(1)) for p in Path(run_dir).glob("hpc_ckpt_*.ckpt")
               if (m := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", p.name))]
    return max(numbers, default=0) + 1


def requeue(job_id: str) -> bool:
    """`scontrol requeue <job_id>`, bounded; prints one line either way; True when Slurm accepted it."""
    if not re.fullmatch(r"[0-9_]+", job_id):
        print(f"warning: not requeueing: unexpected SLURM job id {job_id!r}", file=sys.stderr, flush=True)
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True,
                              timeout=SCONTROL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"warning: scontrol requeue {job_id} failed: {err}", file=sys.stderr, flush=True)
        return False
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        print(f"warning: scontrol requeue {job_id} failed: {why[0]}", file=sys.stderr, flush=True)
        return False
    print(f"requeued SLURM job {job_id}", flush=True)
    return True


class SlurmRequeue(Callback):
    """Install with `install()` (main thread) before `trainer.fit`, pass as a callback.

    run_dir: where the hpc_ckpt_<n>.ckpt files go (the run dir `resume=auto` searches).
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.requested = False  # this rank received the requeue signal and has not acted on it yet

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("SlurmRequeue.install() must run in the main thread")
        # Lightning registers its own requeue handler only where none exists; this one is there first.
        signal.signal(REQUEUE_SIGNAL, self._on_signal)
        global _fork_hook
        if not _fork_hook:  # DataLoader workers (forked later) get the job's signal too: it is not theirs to act on
            os.register_at_fork(after_in_child=lambda: signal.signal(REQUEUE_SIGNAL, signal.SIG_IGN))
            _fork_hook = True
        rank = os.environ.get("SLURM_PROCID", "0")
        print(f"[rank {rank}] SLURM requeue on {signal.Signals(REQUEUE_SIGNAL).name} enabled (pid {os.getpid()})",
              flush=True)

    def _on_signal(self, signum: int, frame) -> None:
        # Only a flag: a checkpoint (a collective) from here would run at a different point on every rank.
        self.requested = True
        try:
            os.write(2, b"received SIGUSR1: saving a checkpoint and requeueing after the current training step\n")
        except OSError:
            pass

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # One all-reduce per step, on every rank, signalled or not: they all take the same branch.
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        self.requested = False
        number = int(trainer.strategy.broadcast(torch.tensor(next_hpc_number(self.run_dir)), src=0))  # rank 0's
        path = self.run_dir / f"hpc_ckpt_{number}.ckpt"  # listing names the file for all
        trainer.save_checkpoint(path, weights_only=False)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            print(f"saved {path} at step {trainer.global_step}", flush=True)
            requeue(slurm_job_id())
