"""Experiment loggers of a run: W&B (default, offline), CSV (`<run_dir>/csv/metrics.csv`) or none.

Both continue across resumes. W&B: the run id is kept in `<run_dir>/wandb_id.txt`. CSV: Lightning's CSVLogger
deletes an existing metrics.csv when it starts, so a resumed run lost every row from before the kill;
`ResumableCSVLogger` keeps the file, appends every row as soon as it is logged (Lightning buffers 100 steps), and
on resume drops the rows logged after the checkpoint (the resumed run logs those steps again; see
callbacks.CSVRowsFollowCheckpoints). A row carries the step index it was logged at: training step k (0-based, so
global step k + 1 once done) and the validation after it log step k, so a checkpoint of global step G covers the
rows with step < G. Lightning logs a step's row just after the checkpoint callbacks of that step ran: a kill in
that window (about a millisecond) loses that one row.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from tracker.common.atomic import atomic_file, write_atomic


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, minus the deletion of an existing metrics.csv; header rewrites are atomic."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        path = Path(self.metrics_file_path)
        if path.is_file():
            with path.open(newline="") as fh:
                header = next(csv.reader(fh), [])
            self.metrics_keys = sorted(k for k in header if k)

    def _check_log_dir_exists(self) -> None:
        pass  # keep the previous rows: this run continues them

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        _rewrite_rows(Path(self.metrics_file_path), fieldnames, keep=lambda row: True)


def _rewrite_rows(path: Path, fieldnames: list[str] | None, keep) -> int:
    """Rewrite metrics.csv atomically with the rows `keep(row)` accepts (and `fieldnames` as header, default the
    file's own); returns the number of rows dropped. A row cut short by a kill parses with missing fields."""
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = fieldnames or list(reader.fieldnames or [])
    kept = [{k: v for k, v in row.items() if k is not None} for row in rows if keep(row)]
    with atomic_file(path, "w", hidden=True, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
    return len(rows) - len(kept)


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing `<save_dir>/<name>/metrics.csv` that survives resumes (see the module docstring)."""

    @property
    def experiment(self) -> ExperimentWriter:  # type: ignore[override]
        if self._experiment is None:
            if _global_rank() != 0:
                return super().experiment  # rank_zero_experiment: a dummy on other ranks
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment

    def __init__(self, save_dir: str, name: str = "csv", version: str = "") -> None:
        super().__init__(save_dir=save_dir, name=name, version=version, flush_logs_every_n_steps=1)

    def drop_rows_from(self, global_step: int) -> int:
        """Drop the rows of the steps a resume from a checkpoint of `global_step` runs again (step >= global_step);
        returns how many were dropped. Rank 0 only; a no-op without a metrics file."""
        path = Path(self.log_dir) / ExperimentWriter.NAME_METRICS_FILE
        if _global_rank() != 0 or not path.is_file():
            return 0
        if self._experiment is not None:
            self._experiment.metrics = []  # nothing of this run is pending yet: restore happens before training

        def keep(row: dict[str, Any]) -> bool:
            try:
                return int(float(row.get("step") or "")) < global_step
            except ValueError:
                return False  # a row cut short by the kill

        return _rewrite_rows(path, None, keep)


def _global_rank() -> int:
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0))


def make_logger(cfg: Any, run_dir: Path, *, rank_zero: bool):
    """The configured logger (False for logger.kind=none). `rank_zero`: this process is global rank 0 (it alone
    creates the W&B id file; other ranks log nothing to W&B anyway)."""
    from lightning.pytorch.loggers import WandbLogger

    from .config import to_container

    kind = cfg.logger.kind
    if kind == "none":
        return False
    if kind == "csv":
        return ResumableCSVLogger(save_dir=str(run_dir), name="csv", version="")
    # A stable W&B id per run dir, so a resumed/requeued run continues the same W&B run.
    id_file = run_dir / "wandb_id.txt"
    if rank_zero and not id_file.is_file():
        import secrets

        write_atomic(id_file, secrets.token_hex(4), hidden=True)  # W&B run ids: 8 lowercase alphanumerics
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(
        project=cfg.logger.project, entity=cfg.logger.entity, name=run_dir.name, save_dir=str(run_dir),
        id=id_file.read_text().strip() if id_file.is_file() else None, mode=cfg.logger.mode,
        config=to_container(cfg),
    )
