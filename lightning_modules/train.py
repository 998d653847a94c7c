"""`run_training(cfg)`: run dir, logger, callbacks, Trainer (CPU/GPU, DDP, SLURM requeue), resume, final report."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from .config import FASTEST, TrainConfig, precision_of

RUN_DIR_ENV = "TRACKFORGE_RUN_DIR"  # shared by the DDP processes Lightning re-launches from the CLI


@dataclass
class TrainResult:
    run_dir: Path
    global_step: int
    final: dict[str, dict[str, float]] = field(default_factory=dict)  # {"model": {...}, "zero_motion": {...}}
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    train_losses: list[float] = field(default_factory=list)
    skipped_corrupt: int = 0
    wall_s: float = 0.0


def _latest_run_with_last(name: str, root: Path = Path("runs")) -> Path | None:
    runs = sorted(root.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    runs = [r for r in runs if (r / "checkpoints" / "last.ckpt").is_file()]
    return runs[-1] if runs else None


def resolve_run_dir(cfg: TrainConfig) -> Path:
    """<run_dir> if set; else (resume=auto) the newest runs/<name>-* holding a last.ckpt; else a new timestamped
    runs/<name>-YYYYmmdd-HHMMSS. DDP children inherit the parent's choice through $TRACKFORGE_RUN_DIR."""
    if os.environ.get(RUN_DIR_ENV):
        return Path(os.environ[RUN_DIR_ENV])
    if cfg.run_dir:
        return Path(cfg.run_dir)
    if cfg.resume == "auto" and (found := _latest_run_with_last(cfg.name)) is not None:
        return found
    return Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_resume(cfg: TrainConfig, run_dir: Path) -> str | None:
    """resume=auto -> the newest complete one of <run_dir>/checkpoints/last.ckpt and <run_dir>/hpc_ckpt_<n>.ckpt
    (the one written on a SLURM requeue signal, usually ahead of last.ckpt); a path -> that path."""
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        from .checkpoint_io import newest_resumable

        newest, broken = newest_resumable([run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")])
        for path in broken:
            print(f"warning: skipping incomplete checkpoint {path} (truncated write?)", file=sys.stderr)
        return str(newest) if newest is not None else None
    if not Path(cfg.resume).is_file():
        from .checkpoint_io import ResumeError

        raise ResumeError(f"cannot resume from {cfg.resume}: file not found")
    return cfg.resume


def is_rank_zero_process() -> bool:
    """Whether this process will be global rank 0, before the Trainer exists: SLURM task 0 under SLURM, RANK 0
    under torchrun, else local rank 0 of node 0 (the process that launches the other local ranks)."""
    env = os.environ
    # Lightning's SLURM detection (SLURMEnvironment.detect() also warns when srun exists but is unused).
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return env.get("SLURM_PROCID", "0") == "0"
    if "RANK" in env:
        return env["RANK"] == "0"
    return env.get("LOCAL_RANK", "0") == "0" and env.get("NODE_RANK", "0") == "0"


def ignore_requeue_signal() -> None:
    """After fit, a SLURM requeue signal (SIGUSR1, sent shortly before the time limit) must neither kill the
    finished job (default action: exit 138) nor requeue it from the final validation, which would re-register
    Lightning's handler if none were installed."""
    import signal

    from lightning.pytorch.plugins.environments import SLURMEnvironment

    if SLURMEnvironment.detect() and hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda signum, frame: print("training finished: requeue signal ignored",
                                                                  flush=True))


class _LossRecorder:
    """Collects the per-step training loss on rank 0 (for the run summary and tests)."""

    def __init__(self) -> None:
        from lightning.pytorch.callbacks import Callback

        class _CB(Callback):
            def __init__(cb) -> None:
                cb.losses: list[float] = []

            def on_train_batch_end(cb, trainer, pl_module, outputs, batch, batch_idx) -> None:
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                if loss is not None:
                    cb.losses.append(float(loss.detach()))

        self.callback = _CB()


def build_trainer(cfg: TrainConfig, run_dir: Path, callbacks: list, logger) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from .checkpoint_io import AtomicCheckpointIO

    plugins: list = [AtomicCheckpointIO()]

    if SLURMEnvironment.detect():
        # Requeue on SIGUSR1 is ours (slurm_requeue.SlurmRequeue): Lightning's checkpoints from inside the handler.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    # There is one last.ckpt (resume=auto reads it), whoever writes it: Lightning's version counter would make a
    # callback that finds another one's last.ckpt write last-v1.ckpt instead. Writes replace it atomically.
    ckpt = ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"), monitor=cfg.checkpoint.monitor, mode="max",
        save_top_k=cfg.checkpoint.save_top_k, save_last=True, auto_insert_metric_name=False,
        # Named by the ranked metric, e.g. step0001000-val_davis-average_jaccard0.4321.ckpt
        filename="step{step:07d}-" + cfg.checkpoint.monitor.replace("/", "-") + "{" + cfg.checkpoint.monitor + ":.4f}",
        enable_version_counter=False,
    )
    all_callbacks = [ckpt, *callbacks]
    if cfg.checkpoint.every_n_train_steps:
        # A separate callback only refreshes last.ckpt: top-k at a training step would rank a stale val metric.
        all_callbacks.insert(1, ModelCheckpoint(
            dirpath=str(run_dir / "checkpoints"), monitor=None, save_top_k=0, save_last=True,
            every_n_train_steps=cfg.checkpoint.every_n_train_steps, enable_version_counter=False,
        ))
    if logger:
        all_callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.trainer.enable_progress_bar:
        from .callbacks import step_progress_bar

        all_callbacks.append(step_progress_bar())
    devices = cfg.trainer.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    trainer = L.Trainer(
        default_root_dir=str(run_dir),
        max_steps=cfg.trainer.max_steps,
        accelerator=cfg.trainer.accelerator,
        devices=OmegaConf.to_container(devices) if OmegaConf.is_config(devices) else devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=cfg.trainer.strategy,
        precision=precision_of(cfg),
        gradient_clip_val=cfg.trainer.gradient_clip_val,
        gradient_clip_algorithm="norm",
        val_check_interval=min(cfg.trainer.val_check_interval, cfg.trainer.max_steps),
        check_val_every_n_epoch=None,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        num_sanity_val_steps=cfg.trainer.num_sanity_val_steps,
        enable_progress_bar=cfg.trainer.enable_progress_bar,
        logger=logger,
        callbacks=all_callbacks,
        plugins=plugins,
        use_distributed_sampler=False,  # the WebDataset stream splits by rank itself
        enable_model_summary=False,
    )
    return trainer, ckpt


def print_report(final: dict[str, dict[str, float]], title: str = "validation (TAP-Vid metrics, 256x256 raster)") -> None:
    """Rich table: model vs zero-motion baseline, x100 like the papers; a set without a metric (TAP-Vid metrics of a
    mask benchmark, mask consistency of the synthetic clips) shows "-"."""
    import math

    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for name in final:
        table.add_column(name, justify="right")
    keys = ["average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
            *dict.fromkeys(k for m in final.values() for k in m if k.startswith("mask_consistency"))]
    labels = {"average_pts_within_thresh": "delta_avg"}

    def cell(value: float | None) -> str:
        return "-" if value is None or not math.isfinite(value) else f"{100 * value:.2f}"

    for k in keys:
        table.add_row(labels.get(k, k), *[cell(final[n].get(k)) for n in final])
    Console().print(table)


def run_training(cfg: TrainConfig) -> TrainResult:
    """Train with `cfg`; returns the summary (rank 0 has the complete picture).

    The launching (global rank 0) process holds `<run_dir>/.trackforge.lock` for the whole run: a second training
    into the same run dir stops with one line naming the holder (tracker.common.output_lock). A run dir that cannot take
    new files (read-only, full) and a checkpoint that cannot be resumed from stop the run before it starts, with
    one line (exit status 2).
    """
    import contextlib

    from tracker.common.atomic import check_writable
    from tracker.common.output_lock import folder_lock

    if cfg.trainer.threads:
        torch.set_num_threads(cfg.trainer.threads)
    run_dir = resolve_run_dir(cfg)
    check_writable(run_dir)  # a read-only or full location: one line now, not a traceback at the first write
    run_dir.mkdir(parents=True, exist_ok=True)
    set_env = RUN_DIR_ENV not in os.environ
    os.environ[RUN_DIR_ENV] = str(run_dir)
    rank_zero = is_rank_zero_process()
    try:
        with folder_lock(run_dir, "training") if rank_zero else contextlib.nullcontext():
            return _train_in(cfg, run_dir, rank_zero)
    finally:
        if set_env:
            os.environ.pop(RUN_DIR_ENV, None)
        if cfg.logger.kind == "wandb":
            import wandb

            if wandb.run is not None:
                wandb.finish()


def _train_in(cfg: TrainConfig, run_dir: Path, rank_zero: bool) -> TrainResult:
    import lightning as L

    from . import stop_signals

    from .callbacks import CSVRowsFollowCheckpoints, GracefulStop, TrackVideoLogger
    from tracker.common.atomic import write_json

    from .checkpoint_io import check_resume_fits, read_resume_checkpoint, remove_partial_writes
    from .config import to_container
    from .data_plan import build_data_plan, resolved_config
    from .data_stats import DataStatsLogger
    from .evaluation.validation import make_datamodule
    from .global_batch import apply_global_batch
    from .loggers import make_logger
    from .module import TrackerModule
    from .slurm_requeue import SlurmRequeue
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    t0 = time.perf_counter()
    last_path = run_dir / "checkpoints" / "last.ckpt"
    if rank_zero:  # no other writer can be active: the lock is ours
        for tmp in remove_partial_writes(run_dir) + remove_partial_writes(last_path.parent):
            print(f"removed {tmp} (a write killed half-way)", file=sys.stderr)
    resume = resolve_resume(cfg, run_dir)
    # Read with tracker.checkpoint's loader before anything starts: a bad file is one line, not Lightning's traceback.
    resume_ckpt = read_resume_checkpoint(resume) if resume else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    plan = build_data_plan(cfg)  # the sources opened once; data-dependent settings decided (input size, clip checks)
    # What the run records (config.yaml, the checkpoints' hyper-parameters, the logger): the config with the plan's
    # concrete values, a new object; the caller's `cfg` stays as given. Everything below reads this or the plan.
    run_cfg = resolved_config(cfg, plan)
    log = print if rank_zero else lambda *_: None
    measured = None
    if run_cfg.trainer.precision == FASTEST:  # measured here; config.yaml and the checkpoints record the choice
        from .time_budget import choose_precision

        run_cfg.trainer.precision, measured = choose_precision(run_cfg, resume_ckpt, log=log)
    budget = None
    if run_cfg.trainer.time_budget_min is not None:  # the steps that fit this machine, before anything is built
        from .time_budget import fit_to_budget

        budget = fit_to_budget(run_cfg, resume_ckpt, log=log, costs=measured)
        run_cfg.trainer.max_steps = budget.steps
    module = TrackerModule(to_container(run_cfg), run_dir=str(run_dir))
    if resume_ckpt is not None:  # before the run dir's config.yaml is replaced by this (maybe mistaken) config
        groups = len(module.configure_optimizers()["optimizer"].param_groups)
        check_resume_fits(resume, resume_ckpt, module.model, groups, run_cfg.trainer.max_steps)
        del resume_ckpt  # Lightning reads the file again (weights_only) in fit
    if rank_zero:
        OmegaConf.save(run_cfg, run_dir / "config.yaml", resolve=True)
    stop_cb = GracefulStop(last_path)
    stop_signals.set_note(stop_cb.describe)  # for the stop line of a signal before the training loop starts
    dm = make_datamodule(run_cfg, plan)  # with run_cfg.val_benchmarks: validates on them too
    logger = make_logger(run_cfg, run_dir, rank_zero=rank_zero)
    recorder = _LossRecorder().callback
    video_cb = TrackVideoLogger(run_cfg.logger.video_every_n_steps, run_cfg.logger.video_fps, run_dir / "media")
    stats_cb = DataStatsLogger(plan.source_names, run_cfg.data.batch_size)
    callbacks = [recorder, video_cb, stats_cb, stop_cb, CSVRowsFollowCheckpoints()]
    if budget is not None:
        from .time_budget import deadline_stop

        callbacks.append(deadline_stop(budget.deadline, reserve_s=budget.costs.val_s if budget.costs else 0.0))
    if run_cfg.trainer.slurm_auto_requeue and SLURMEnvironment.detect():
        requeue_cb = SlurmRequeue(run_dir)
        requeue_cb.install()  # before fit: a signal during setup is acted upon at the first step boundary
        callbacks.append(requeue_cb)
    trainer, ckpt = build_trainer(run_cfg, run_dir, callbacks, logger)
    stats_cb.effective_batch = apply_global_batch(trainer, run_cfg)  # data.global_batch_size via accumulation
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)  # no code from checkpoint files
    ignore_requeue_signal()
    # last.ckpt is the final state, whether or not the last step fell on a validation or a save interval.
    trainer.save_checkpoint(last_path, weights_only=False)  # full state: resumable
    last_val = getattr(module, "last_val", None)
    if last_val is None or last_val["step"] != trainer.global_step:
        # An explicit ckpt_path: without one, under SLURM Lightning would restore the older hpc_ckpt_<n>.ckpt.
        trainer.validate(module, datamodule=dm, ckpt_path=str(last_path), verbose=False, weights_only=True)
        last_val = module.last_val
    final = {"model": last_val["model"], "zero_motion": last_val["zero_motion"], **last_val.get("benchmarks", {})}
    result = TrainResult(
        run_dir=run_dir, global_step=int(trainer.global_step), final=final,
        best_checkpoint=ckpt.best_model_path or None,
        last_checkpoint=str(last_path),
        train_losses=recorder.losses, skipped_corrupt=sum(module._streams.values()),
        wall_s=time.perf_counter() - t0,
    )
    if trainer.is_global_zero:
        summary = {"global_step": result.global_step, "final": final, "best_checkpoint": result.best_checkpoint,
                   "last_checkpoint": result.last_checkpoint, "skipped_corrupt": result.skipped_corrupt,
                   "wall_s": result.wall_s}
        write_json(run_dir / "final_metrics.json", summary)  # atomic; NaN (nothing to score) as null
        print_report(final, f"{run_cfg.name}: step {result.global_step} validation (TAP-Vid, 256x256) x100")
        print(f"run dir: {run_dir}  checkpoint: {result.last_checkpoint}")
    return result
