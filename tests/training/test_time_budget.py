"""trainer.time_budget_min: the steps that fit a wall-clock budget, measured on this machine (time_budget.py)."""
from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lightning_modules.config import ConfigError, load_train_config
from lightning_modules.time_budget import (STARTED_ENV, StepCosts, TimeBudgetError, deadline_stop, started_at,
                                           steps_that_fit)
from lightning_modules.train import run_training

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"


def _cost(steps: int, c: StepCosts, every: int) -> float:
    return steps * c.step_s + math.ceil(steps / every) * c.val_s


def test_steps_that_fit_count_every_validation_and_the_last() -> None:
    c = StepCosts(step_s=1.0, val_s=10.0)
    # 60 steps: 60 s + 3 validations (20, 40, 60) = 90 s; 61 steps need a 4th validation at the end: 101 s.
    assert steps_that_fit(100.0, c, val_every=20, cap=10_000) == 60
    assert steps_that_fit(101.0, c, val_every=20, cap=10_000) == 61
    assert steps_that_fit(100.0, c, val_every=20, cap=25) == 25  # the configured max_steps caps it
    assert steps_that_fit(10.5, c, val_every=20, cap=10_000) == 0  # a validation alone does not leave a step
    assert steps_that_fit(-5.0, c, val_every=20, cap=10_000) == 0
    for seconds in (37.0, 250.0, 1234.5, 3600.0):  # the largest that fits: one more does not
        for every in (1, 7, 400):
            s = steps_that_fit(seconds, StepCosts(2.3, 14.0), every, 100_000)
            assert _cost(s, StepCosts(2.3, 14.0), every) <= seconds < _cost(s + 1, StepCosts(2.3, 14.0), every)


def test_start_time_comes_from_make_or_is_now(monkeypatch) -> None:
    now = time.time()
    monkeypatch.delenv(STARTED_ENV, raising=False)
    assert started_at(now)[0] == now
    monkeypatch.setenv(STARTED_ENV, str(int(now) - 600))
    assert started_at(now) == (int(now) - 600, f"${STARTED_ENV}")
    for bad in ("yesterday", "nan", "inf", str(now + 3600)):
        monkeypatch.setenv(STARTED_ENV, bad)
        with pytest.raises(TimeBudgetError, match=STARTED_ENV):
            started_at(now)


def test_fastest_precision_is_measured_and_recorded(moving_shards: Path, tmp_path: Path, tiny_overrides,
                                                    capsys) -> None:
    """trainer.precision=fastest: both CPU precisions are timed before training, the faster one trains and
    config.yaml records it (so a resumed run keeps it)."""
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "p", steps=3,
                                                 trainer__precision="fastest"))
    result = run_training(cfg)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("precision:"))
    timed = {p: float(line.split(f"{p} ")[1].split(" s")[0]) for p in ("32-true", "bf16-mixed")}
    chosen = line.rsplit("so ", 1)[1].split(" ")[0]
    # The line rounds to 10 ms, so two close timings may print alike: the chosen one printed no longer than the other.
    assert timed[chosen] == min(timed.values()) and all(t > 0 for t in timed.values())
    assert yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())["trainer"]["precision"] == chosen
    assert result.global_step == 3 and all(math.isfinite(x) for x in result.train_losses)
    # resumed: the recorded choice, not measured again
    resumed = run_training(load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "p", steps=3,
                                                                  resume="auto", trainer__precision="fastest")))
    out = capsys.readouterr().out
    assert f"precision: {chosen}, as the resumed run chose" in out and " s a step" not in out
    assert resumed.global_step == 3
    with pytest.raises(ConfigError, match="trainer.precision=fastest is measured in one CPU process"):
        load_train_config(TINY, ["trainer.precision=fastest", "trainer.accelerator=cpu", "trainer.devices=2"])


@pytest.mark.parametrize("overrides, match", [
    (["trainer.time_budget_min=0"], "time_budget_min must be a number of minutes > 0"),
    (["trainer.time_budget_min=5", "trainer.devices=2"], "needs trainer.accelerator=cpu, trainer.devices=1"),
    (["trainer.time_budget_min=5", "trainer.num_nodes=2"], "trainer.num_nodes=1"),
    (["trainer.time_budget_min=5", "trainer.accelerator=gpu"], "one CPU process"),
])
def test_a_budget_is_for_one_cpu_process(overrides, match) -> None:
    with pytest.raises(ConfigError, match=match):
        load_train_config(TINY, overrides)


def test_budget_sets_the_steps_and_a_resumed_run_keeps_them(moving_shards: Path, tmp_path: Path, tiny_overrides,
                                                            monkeypatch, capsys) -> None:
    monkeypatch.setenv(STARTED_ENV, str(time.time()))
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "a", steps=10_000,
                                                 trainer__val_check_interval=4, trainer__time_budget_min=0.5))
    first = run_training(cfg)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("time budget:"))
    fitted = int(line.split(" steps fit")[0].rsplit(" ", 1)[1])
    assert 0 < fitted < 10_000  # measured: a tiny step is well under a second, 30 s are not 10,000 of them
    recorded = yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["trainer"]
    assert recorded["max_steps"] == fitted and recorded["time_budget_min"] == 0.5
    ckpt = torch.load(first.last_checkpoint, map_location="cpu", weights_only=True)
    assert ckpt["lr_schedulers"][0]["total_steps"] == fitted + ckpt["hyper_parameters"]["config"]["optim"][
        "extra_total_steps"]  # the schedule was built for the fitted steps: it anneals to the last one
    # The stop at the deadline may end it early, never late: the run's own start-up (the Trainer, the first batches;
    # seconds) is inside a 30 s budget and outside the measured steps (seen: 73 of 80 as the first training test of
    # a process).
    assert 0.75 * fitted <= first.global_step <= fitted

    monkeypatch.setenv(STARTED_ENV, str(time.time()))
    resumed = run_training(load_train_config(TINY, tiny_overrides(
        moving_shards, tmp_path / "a", steps=10_000, resume="auto", trainer__val_check_interval=4,
        trainer__time_budget_min=30)))
    assert f"resuming a run sized for {fitted} steps" in capsys.readouterr().out
    # Not re-measured or extended: it ends at the recorded step (training what the deadline stop left, if anything).
    assert resumed.global_step == fitted and len(resumed.train_losses) == fitted - first.global_step


def test_a_spent_budget_is_one_line(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    env = {**os.environ, STARTED_ENV: str(int(time.time()) - 3600)}
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config", str(TINY),
                           *tiny_overrides(moving_shards, tmp_path / "run", steps=100, trainer__time_budget_min=30)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "trainer.time_budget_min=30 leaves -30" in err[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def _fit_slowly(callbacks: list, val_s: float | None = None):
    """A real Lightning fit of a 100,000-step run whose steps take ~20 ms (and, with val_s, a validation of that
    long every 10 steps); returns the Trainer."""
    import lightning as L

    class Slow(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            time.sleep(0.02)
            return ((self.w - batch[0]) ** 2).mean()

        def validation_step(self, batch, batch_idx):
            time.sleep(val_s)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(100_000, 1)), batch_size=1)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(1, 1)), batch_size=1)
    trainer = L.Trainer(max_steps=100_000, val_check_interval=10 if val_s else None, num_sanity_val_steps=0,
                        limit_val_batches=1 if val_s else 0, callbacks=callbacks, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)
    trainer.fit(Slow(), data, val if val_s else None)
    return trainer


def test_deadline_stop_ends_a_real_fit_in_time() -> None:
    trainer = _fit_slowly([deadline_stop(time.time() + 1.5, reserve_s=0.5)])
    assert 0 < trainer.global_step < 100_000  # stopped at the deadline, not at max_steps (~35 min of steps)


def test_deadline_stop_keeps_room_for_the_longest_validation_seen() -> None:
    """A resumed run measures no validation before it starts (reserve 0): the callback keeps room for the longest
    validation it has seen, so the run stops early enough for the final one."""
    import lightning as L

    class StopTime(L.Callback):  # after DeadlineStop in the list: sees the step at which it asked to stop
        stopped_at: float | None = None

        def on_train_batch_end(self, trainer, *args) -> None:
            if trainer.should_stop and self.stopped_at is None:
                self.stopped_at = time.time()

    deadline = time.time() + 6.0  # Trainer set-up takes 1-3 s of it; the first validation comes 0.2 s in
    stop, seen = deadline_stop(deadline, reserve_s=0.0), StopTime()
    trainer = _fit_slowly([stop, seen], val_s=0.6)
    assert stop.reserve_s >= 0.6
    assert seen.stopped_at is not None, "never stopped"
    assert seen.stopped_at <= deadline - 0.5, (deadline - seen.stopped_at, trainer.global_step)  # room for one more
