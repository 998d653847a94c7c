"""`trainer.time_budget_min`: as many training steps as fit a wall-clock budget on this machine.

Why: a recipe such as cpu_hour promises one command that ends within the hour, rendering included, but the same
step takes 1.4 s on one 2-core machine and 2.5 s on another (Intel Xeon vs AMD EPYC, docs/training.md), so a fixed
trainer.max_steps either overruns the hour or leaves part of it unused. With a budget, the run measures its own
step and validation time here before training starts (a few steps of a throwaway copy of the model on random clips
of the training shapes) and sets trainer.max_steps to the steps that fit, at most the configured max_steps. The
learning-rate schedule is built for that number, so it still anneals to the last step; the resolved number is what
config.yaml and the checkpoints record, and a resumed run keeps it. `DeadlineStop` stops at the deadline should the
estimate be wrong (a slower machine mid-run); the final validation and checkpoint follow as after any stop.

The budget counts from $TRACKFORGE_STARTED_AT (seconds since the epoch; `make train` sets it before it renders
missing data, so the budget covers the whole command) or else from the moment the training process starts.
"""
from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from tracker.common.errors import ConfigError

STARTED_ENV = "TRACKFORGE_STARTED_AT"
# The Lightning loop does more than the probe (a loader process shares the cores, logging, the progress bar): its
# cpu_hour steps took 1.0x the probe's on a 2-core AMD EPYC (2.27 s against 2.28 s) and up to 1.1x on a 2-core Intel
# Xeon (1.40-1.55 s against 1.41 s); the margin covers the slower case, the deadline stop anything beyond it. With
# 16-frame clips the AMD loop took ~1.2 s against 1.03 s (x1.18): the stop then ended the run at 90 % of its
# schedule, the learning rate at 2 % of its peak, which costs less than planning every run 20 % shorter would.
LOOP_OVERHEAD = 1.1
PROBE_STEPS = 4  # timed steps after one warm-up step


class TimeBudgetError(ConfigError):
    """The budget cannot be met or read (one line, exit status 2)."""


@dataclass
class StepCosts:
    """Seconds of one training step and of one validation (its held-out clips at val_iters), measured here."""

    step_s: float
    val_s: float


@dataclass
class Budget:
    deadline: float  # time.time() at which the command should end
    steps: int  # trainer.max_steps that fit
    costs: StepCosts | None  # None: taken from the checkpoint being resumed


def started_at(now: float) -> tuple[float, str]:
    """(start time, where it came from): $TRACKFORGE_STARTED_AT when set, else `now`."""
    raw = os.environ.get(STARTED_ENV)
    if raw is None:
        return now, "the start of training"
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value > now + 60:
        raise TimeBudgetError(f"{STARTED_ENV}={raw!r} is not a start time (seconds since the epoch, not in the future)")
    return value, f"${STARTED_ENV}"


def steps_that_fit(seconds: float, costs: StepCosts, val_every: int, cap: int) -> int:
    """Largest s <= cap with s x step_s + validations(s) x val_s <= seconds, where validations(s) = ceil(s /
    val_every) (one every val_every steps, and one at the end whether or not s is a multiple); 0 if none fits."""
    def cost(steps: int) -> float:
        return steps * costs.step_s + math.ceil(steps / val_every) * costs.val_s

    lo, hi = 0, max(0, min(cap, int((seconds - costs.val_s) / costs.step_s) + 1))  # any step needs a validation
    while lo < hi:  # the cost grows with the steps: bisect for the last that fits
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= seconds else (lo, mid - 1)
    return lo


def recorded_trainer(resume_ckpt: dict | None) -> dict:
    """The trainer section of the config a checkpoint recorded ({} without one): a resumed run keeps its choices."""
    if resume_ckpt is None:
        return {}
    return resume_ckpt.get("hyper_parameters", {}).get("config", {}).get("trainer", {}) or {}


def choose_precision(cfg: Any, resume_ckpt: dict | None = None, log=print) -> tuple[str, StepCosts | None]:
    """trainer.precision=fastest: on the CPU, the precision (config.CPU_PRECISIONS) whose measured step is the
    shortest, and its costs (for the time budget); a resumed run keeps the one its checkpoint recorded (not
    measured); elsewhere bf16-mixed, not measured. Leaves `cfg` as it was."""
    from .config import CPU_PRECISIONS, precision_of

    if cfg.trainer.accelerator != "cpu" and torch.cuda.is_available():
        return precision_of(cfg), None
    recorded = recorded_trainer(resume_ckpt).get("precision")
    if recorded in CPU_PRECISIONS:
        log(f"precision: {recorded}, as the resumed run chose (trainer.precision=fastest)")
        return recorded, None
    measured = {}
    for precision in CPU_PRECISIONS:
        trial = copy.deepcopy(cfg)
        trial.trainer.precision = precision
        measured[precision] = measure_costs(trial)
    best = min(measured, key=lambda p: measured[p].step_s)
    log("precision: " + ", ".join(f"{p} {c.step_s:.2f} s a step" for p, c in measured.items()) +
        f" here, so {best} (trainer.precision=fastest)")
    return best, measured[best]


def measure_costs(cfg: Any, steps: int = PROBE_STEPS) -> StepCosts:
    """Median seconds of `steps` training steps (after one warm-up; x the batches one optimizer step accumulates) of a
    fresh copy of cfg's model on random clips of the training shapes, at the run's precision, and of one validation:
    data.val_clips held-out clips of val_clip_len frames and val_num_tracks tracks at model.val_iters. The caller's
    random state is left as it was."""
    from .config import precision_of, recorded_input_size
    from .global_batch import accumulation_steps
    from .module import build_model
    from .schedule import make_optimizer_and_scheduler
    from .step_probe import apply_gradients, forward_loss, random_clips

    hw = recorded_input_size(cfg)
    # the forward passes run as Lightning will run them: under bf16 autocast with a bf16 precision
    bf16 = precision_of(cfg).startswith("bf16")

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg).train()
        opt, sched = make_optimizer_and_scheduler(model.named_parameters(), cfg.optim, cfg.trainer.max_steps + steps)
        g = torch.Generator().manual_seed(0)
        clips = random_clips(cfg.data.batch_size, cfg.data.clip_len, cfg.data.num_tracks, hw, g)
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            with autocast():
                _, loss = forward_loss(model, cfg.model, clips)
            apply_gradients(model, opt, sched, loss, cfg.trainer.gradient_clip_val)
            if i:
                times.append(time.perf_counter() - t0)
        val = random_clips(1, cfg.data.val_clip_len or cfg.data.clip_len, cfg.data.val_num_tracks, hw, g)
        model.eval()
        with torch.no_grad(), autocast():
            t0 = time.perf_counter()
            model(val.video, torch.cat([torch.zeros_like(val.tracks[:, 0, :, :1]), val.tracks[:, 0]], dim=-1),
                  iters=cfg.model.val_iters)
            clip_s = time.perf_counter() - t0
    # An optimizer step of data.global_batch_size accumulates that many batches (one process: global / batch).
    accumulated = accumulation_steps(cfg.data, 1)
    return StepCosts(step_s=statistics.median(times) * accumulated, val_s=clip_s * cfg.data.val_clips)


def fit_to_budget(cfg: Any, resume_ckpt: dict | None, log=print, costs: StepCosts | None = None) -> Budget:
    """The Budget of a run with trainer.time_budget_min set: measured steps that fit (at most trainer.max_steps), or
    a resumed run's recorded max_steps (its schedule was built for them). TimeBudgetError if not one step fits.
    costs: already measured at cfg's precision (choose_precision), else measured here."""
    now = time.time()
    start, origin = started_at(now)
    deadline = start + 60.0 * cfg.trainer.time_budget_min
    if resume_ckpt is not None:
        recorded = int(recorded_trainer(resume_ckpt).get("max_steps", cfg.trainer.max_steps))
        log(f"time budget: resuming a run sized for {recorded} steps; it stops at the deadline "
            f"({(deadline - now) / 60:.1f} min from now) if it gets there first")
        return Budget(deadline, recorded, None)
    gone = (now - start) / 60
    spent = f"trainer.time_budget_min={cfg.trainer.time_budget_min:g} leaves {(deadline - now) / 60:.1f} min after " \
            f"the {gone:.1f} min gone since {origin}"
    if deadline <= now:  # nothing to measure
        raise TimeBudgetError(f"{spent} (a larger budget, or trainer.time_budget_min=null)")
    costs = costs or measure_costs(cfg)
    left = deadline - time.time()
    loop = StepCosts(costs.step_s * LOOP_OVERHEAD, costs.val_s)
    steps = steps_that_fit(left, loop, cfg.trainer.val_check_interval, cfg.trainer.max_steps)
    if steps < 1:
        raise TimeBudgetError(f"{spent}: not one step of {costs.step_s:.2f} s and a validation of {costs.val_s:.1f} s "
                              f"fit (a larger budget, or trainer.time_budget_min=null)")
    log(f"time budget: {cfg.trainer.time_budget_min:g} min from {origin} ({gone:.1f} min gone); here a step takes "
        f"{costs.step_s:.2f} s and a validation {costs.val_s:.1f} s, so {steps} steps fit "
        f"(trainer.max_steps {cfg.trainer.max_steps} at most)")
    return Budget(deadline, steps, costs)


def deadline_stop(deadline: float, reserve_s: float):
    """A callback that ends training in time for the validation that follows a stop (Lightning validates when a
    callback sets should_stop; train.py's final metrics): after each batch it stops unless the next step, the
    periodic validation due before it and that last validation all end by `deadline`, whatever the measured step
    time promised. A validation lasts `reserve_s` (the measured one) or the longest this run has seen if that was
    longer (a resumed run measures nothing before it starts: its reserve is what it sees). Stateless: nothing goes
    into checkpoints."""
    from lightning.pytorch.callbacks import Callback

    class DeadlineStop(Callback):
        def __init__(self) -> None:
            self.last: float | None = None
            self.recent: deque[float] = deque(maxlen=5)  # the median ignores a gap that held a validation
            self.reserve_s = float(reserve_s)
            self.val_started: float | None = None

        def on_validation_start(self, trainer, pl_module) -> None:
            self.val_started = time.time()

        def on_validation_end(self, trainer, pl_module) -> None:
            if self.val_started is not None:
                self.reserve_s = max(self.reserve_s, time.time() - self.val_started)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = time.time()
            if self.last is not None:
                self.recent.append(now - self.last)
            self.last = now
            step_s = statistics.median(self.recent) if self.recent else 0.0
            periodic = self.reserve_s if validates_after(trainer) else 0.0
            if now + periodic + step_s + self.reserve_s > deadline and not trainer.should_stop:
                trainer.should_stop = True
                print(f"time budget: stopping at step {trainer.global_step} of {trainer.max_steps} to end in time "
                      f"(the learning rate had not reached the end of its schedule)", file=sys.stderr, flush=True)

    return DeadlineStop()


def validates_after(trainer) -> bool:
    """Whether Lightning runs a periodic validation after the current training batch (train.py's trainer validates
    every val_check_batch batches counted over the run: check_val_every_n_epoch=None)."""
    every = trainer.val_check_batch
    if not isinstance(every, int) or every <= 0:
        return False
    return (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % every == 0
