"""Training callbacks: the predicted-vs-ground-truth track video of a validation clip (W&B)."""
from __future__ import annotations

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
