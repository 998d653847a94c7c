"""data.global_batch_size: clips per optimizer step over all processes, reached with gradient accumulation."""
from __future__ import annotations

from typing import Any

from lightning.pytorch.utilities import rank_zero_info

from .config import DataConfig, TrainConfig
from .data_failures import DataError


def accumulation_steps(data: DataConfig, world_size: int) -> int:
    """Gradient accumulation reaching data.global_batch_size from data.batch_size clips on each of world_size
    processes (1 when unset). Raises DataError when it cannot be reached exactly."""
    if data.global_batch_size is None:
        return 1
    per_step = data.batch_size * world_size
    if data.global_batch_size % per_step:
        raise DataError(f"data.global_batch_size={data.global_batch_size} is not a multiple of data.batch_size x "
                        f"world size = {data.batch_size} x {world_size} = {per_step}: change data.batch_size or the "
                        "number of devices/nodes")
    return data.global_batch_size // per_step


def apply_global_batch(trainer: Any, cfg: TrainConfig) -> int:
    """Set the trainer's gradient accumulation for data.global_batch_size (validation interval kept in optimizer
    steps); returns the effective batch (clips per optimizer step)."""
    accum = accumulation_steps(cfg.data, trainer.world_size)
    trainer.accumulate_grad_batches = accum
    if accum > 1 and isinstance(trainer.val_check_interval, int):
        # Lightning counts the validation interval in batches; the config counts optimizer steps.
        trainer.val_check_interval = min(cfg.trainer.val_check_interval, cfg.trainer.max_steps) * accum
    effective = cfg.data.batch_size * trainer.world_size * accum
    rank_zero_info(f"effective batch: {effective} clips per optimizer step = {cfg.data.batch_size} per device x "
                   f"{trainer.world_size} process(es) x {accum} accumulated")
    return effective
