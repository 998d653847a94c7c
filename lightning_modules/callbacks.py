"""Training callbacks: the prediction-vs-ground-truth video of a validation clip (W&B), metrics.csv rows that follow
the checkpoints across resumes, and the clean stop at a step boundary on SIGTERM/SIGINT."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import Callback


def side_by_side(sample: dict[str, np.ndarray]) -> np.ndarray:
    """Two panels (left ground truth, right prediction) with the same colour per track -> uint8 (L, H, 2W+4, 3).

    sample: video uint8 (L, H, W, 3), gt_tracks / pred_tracks (L, N, 2) px, gt_vis / pred_vis (L, N) bool.
    """
    from tracker.viz import draw_tracks, track_colors

    video = sample["video"]
    colors = track_colors(sample["gt_tracks"], sample["gt_vis"], video.shape[2])
    left = draw_tracks(video, sample["gt_tracks"], sample["gt_vis"], colors=colors)
    right = draw_tracks(video, sample["pred_tracks"], sample["pred_vis"], colors=colors)
    gap = np.full((*video.shape[:2], 4, 3), 255, dtype=np.uint8)
    return np.concatenate([left, gap, right], axis=2)


class TrackVideoLogger(Callback):
    """Every `every_n_steps` optimizer steps (at a validation), render the first validation clip as GT | prediction,
    write it as an mp4 under <run_dir>/media and log it to W&B as `val/tracks_video`.

    The mp4 is encoded with PyAV (tracker.video.write_video) and handed to wandb.Video as a file: wandb.Video on a
    raw NumPy array needs moviepy, whose pins would downgrade Pillow.
    """

    def __init__(self, every_n_steps: int, fps: int, media_dir: Path) -> None:
        self.every = int(every_n_steps)
        self.fps = int(fps)
        self.media_dir = Path(media_dir)
        self.last_step: int | None = None
        self.written: list[Path] = []

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        sample = getattr(pl_module, "viz_sample", None)
        step = int(trainer.global_step)
        if self.every <= 0 or sample is None or trainer.global_rank != 0 or trainer.sanity_checking:
            return
        if self.last_step is not None and step - self.last_step < self.every:
            return
        from tracker.video import write_video

        self.last_step = step
        path = write_video(self.media_dir / f"val_tracks_step{step:07d}.mp4", side_by_side(sample), self.fps)
        self.written.append(Path(path))
        for logger in trainer.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_video("val/tracks_video", [str(path)], step=step,
                                 caption=["left: ground truth, right: prediction"])


def step_progress_bar():
    """Rich progress bar labelled with the step budget: runs are bounded by max_steps, and the stock label reads
    "Epoch 1/-2" when max_epochs is unbounded."""
    from lightning.pytorch.callbacks import RichProgressBar

    class StepProgressBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            max_steps = self.trainer.max_steps
            text = f"epoch {current_epoch}" + (f" of max_steps={max_steps}" if max_steps > 0 else "")
            return f"{text:{len(self.validation_description)}}"

    return StepProgressBar()


class CSVRowsFollowCheckpoints(Callback):
    """A resume drops the metrics.csv rows logged after the checkpoint it restores (the resumed run logs those
    steps again), so the file holds every step once. See lightning_modules.loggers.ResumableCSVLogger."""

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        from .loggers import ResumableCSVLogger

        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.drop_rows_from(int(checkpoint.get("global_step", 0)))


class _NoSigtermNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Received SIGTERM" not in record.getMessage()


def quiet_lightning_sigterm_notice() -> None:
    """Drop Lightning's `[rank: N] Received SIGTERM: 15` info line. Between the start of fit and the first training
    step (and during trainer.validate) Lightning's own SIGTERM handler runs before ours and logs it; our stop line
    already says what happened (`error: stopped by SIGTERM ...`). Lightning's other signal messages (SLURM requeue)
    stay. Idempotent."""
    logger = logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector")
    if not any(isinstance(f, _NoSigtermNotice) for f in logger.filters):
        logger.addFilter(_NoSigtermNotice())


class GracefulStop(Callback):
    """SIGTERM/SIGINT during training stop the run at the next step boundary, with a checkpoint.

    The signal handler (lightning_modules.stop_signals) only records the request. At the end of every training
    step (and validation batch during fit) the ranks agree whether any of them was signalled (one boolean
    all-reduce in DDP, like the flag Lightning broadcasts every step); if so, Lightning's own stop flag is set on
    every rank, its loop raises `SIGTERMException` at the end of that same step, and this callback saves
    `last_path` (all ranks take part, rank 0 writes) unless that step is already saved. Lightning's flag must not
    be set from the handler: its loop also reads it rank-locally after each step, so a rank signalled a step
    earlier than the others would stop alone and leave them waiting in a collective. Lightning's own SIGTERM
    handler is replaced while the loop runs for the same reason (it broadcasts from inside the handler). The wait
    is bounded by the stop watchdog: a data loader or collective that blocks ends the process after the grace
    period, without a new checkpoint.
    """

    def __init__(self, last_path: Path) -> None:
        self.last_path = Path(last_path)
        self.requested: int | None = None  # the stop signal this rank received
        self.start_step: int | None = None
        self.saved_step: int | None = None  # global step of the newest checkpoint this process wrote
        self.checkpoint: Path | None = None  # written by this callback on a stop
        self._trainer = None
        self.active = False

    def describe(self) -> str:
        """' at step N (...)' for the stop line (also called from the watchdog thread)."""
        trainer = self._trainer
        if trainer is None:
            return " before the first training step"
        step = int(trainer.global_step)
        if self.checkpoint is not None:
            return f" at step {step} (saved {self.checkpoint})"
        if self.saved_step is not None:
            return f" at step {step} (newest checkpoint: step {self.saved_step})"
        return f" at step {step} (no checkpoint written by this run)"

    def _defer(self, signum: int) -> str:
        from .stop_signals import grace_seconds, signal_name

        self.requested = signum
        return (f"received {signal_name(signum)}: stopping after the current training step (at most "
                f"{grace_seconds():g} s; a second signal stops at once)")

    def _agree_to_stop(self, trainer) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False)
        if stop:
            # Lightning's stop flag: its loop raises SIGTERMException at the end of this step (or val batch).
            trainer._signal_connector.received_sigterm = True

    def on_train_start(self, trainer, pl_module) -> None:
        from . import stop_signals

        self._trainer = trainer
        self.start_step = int(trainer.global_step)
        self.active = stop_signals.installed()  # the CLI installed them; a library caller keeps its own handlers
        if not self.active:
            return
        stop_signals.install_handlers()  # after Lightning registered its own SIGTERM handler for this fit
        stop_signals.tolerate_child_deaths_while_stopping()  # after the first DataLoader iterator (workers) exists
        stop_signals.set_deferral(self._defer)
        stop_signals.set_note(self.describe)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.active:
            self._agree_to_stop(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.active and trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._agree_to_stop(trainer)

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.active and trainer.state.fn != "fit":  # trainer.validate(): no step to finish, a signal stops at once
            from . import stop_signals

            stop_signals.install_handlers()

    def on_train_end(self, trainer, pl_module) -> None:
        from . import stop_signals

        stop_signals.set_deferral(None)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.saved_step = int(trainer.global_step)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        from . import stop_signals

        from .checkpoint_io import CheckpointWriteError

        stop_signals.set_deferral(None)
        # Only SIGTERMException comes at an agreed step boundary; any other exception (e.g. a DataLoader worker
        # killed by the same signal) may have cut a step half-way: no checkpoint of that state.
        if not self.active or not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        # On every rank, also those never signalled: the launching rank terminates the others when it exits.
        stop_signals.stopping()
        delay_child_observer(stop_signals.grace_seconds())
        step = int(trainer.global_step)
        if step == self.start_step or step == self.saved_step:
            return  # nothing new since the restored or the newest saved checkpoint
        newest = self.saved_step
        try:
            trainer.save_checkpoint(self.last_path, weights_only=False)
        except CheckpointWriteError as err:  # e.g. the disk is full: stop all the same, with the older checkpoint
            self.saved_step = newest
            print(f"warning: {err}", file=sys.stderr)
            return
        self.checkpoint = self.last_path


def delay_child_observer(grace_s: float) -> None:
    """On an agreed stop, keep Lightning's DDP launcher from killing this rank for the others' orderly exit.

    Rank 0 of a run started by Lightning's subprocess launcher watches the ranks it launched from a thread
    (`_ChildProcessObserver`, a look every 5 s) and SIGKILLs them all, itself included, as soon as one has exited
    with a non-zero status. On an agreed stop every rank exits with 128 + SIGTERM; rank 0 writes the checkpoint
    and finishes last, so a look between the two exits killed it (seen in CI: rank 0 ended by -9, without its
    stop line). From here on rank 0 ends its children itself (stop_signals.exit_now), so the watcher's looks are
    ignored for `grace_s` seconds; after that it acts as before (a rank 0 that hangs while stopping still ends).
    No-op in processes without that thread (rank > 0, torchrun, srun, a single process)."""
    import threading
    import time

    deadline = time.monotonic() + grace_s
    for thread in threading.enumerate():
        look = getattr(thread, "_run", None)
        if type(thread).__name__ != "_ChildProcessObserver" or not callable(look):
            continue

        def delayed(look=look) -> bool:  # -> True: the watcher stops looking
            return look() if time.monotonic() >= deadline else False

        thread._run = delayed  # the instance attribute shadows the method its loop calls
