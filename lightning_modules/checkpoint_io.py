"""Writing Lightning checkpoints so that a crash, a kill or a full disk never leaves a broken newest checkpoint.

Lightning's TorchCheckpointIO writes through an fsspec transaction whose temporary file lives in the system
temporary folder; when that is another file system than the run dir (a node-local /tmp, a shared run dir), the
final move is a copy: a kill or a full disk during it leaves a truncated `last.ckpt` in place of the previous one,
and the temporary folder must hold a whole checkpoint. `AtomicCheckpointIO` writes `.<name>.tmp-<host>-<pid>` next
to the target, fsyncs and renames (tracker.common.atomic): the target is either the old or the new checkpoint. A write that
fails (e.g. no space left) removes the partial file and raises `CheckpointWriteError` (one line). `newest_resumable` skips checkpoints
that are not complete zip archives (torch's format), e.g. ones truncated before this existed.

Reading a checkpoint to resume from: `read_resume_checkpoint` reads it with the one loader of tracker.checkpoint
(torch.load(weights_only=True): a file that would run code is refused before anything is called) and checks that
it is a training checkpoint, and `check_resume_fits` that its weights fit the model, before `trainer.fit` is
started: every problem is one line `cannot resume from X: ...` (ResumeError, exit status 2).
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional

from lightning.pytorch.plugins.io import TorchCheckpointIO

from tracker.common.atomic import TMP_MARK, remove_leftovers, write_atomic
from tracker.common.errors import UserError

# What Lightning needs to resume a run (a weights-only or official file has no optimizer state).
RESUME_KEYS = ("state_dict", "optimizer_states", "global_step")


class CheckpointWriteError(UserError):
    """A checkpoint could not be written (disk full, permissions); the previous file is unchanged."""


class ResumeError(UserError):
    """The checkpoint given to resume from cannot be used (unreadable, refused, not a training checkpoint, another
    architecture): one line naming it; usage error, exit status 2."""

    exit_code = 2


def read_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint `path` as tracker.checkpoint.load_file reads it (weights_only=True), checked to be a training
    checkpoint Lightning can resume from; ResumeError (one line) otherwise."""
    from tracker.checkpoint import CheckpointError, load_file

    try:
        ckpt = load_file(path)
    except FileNotFoundError:
        raise ResumeError(f"cannot resume from {path}: file not found") from None
    except CheckpointError as err:
        raise ResumeError(f"cannot resume from {path}: {err.reason}") from None
    missing = [k for k in RESUME_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise ResumeError(f"cannot resume from {path}: not a training checkpoint (no {', '.join(missing)}); to start "
                          f"a new run from its weights, use model.init_from={path}")
    return ckpt


def check_resume_fits(path: str | Path, ckpt: dict[str, Any], model, optim_groups: int | None = None,
                      max_steps: int | None = None) -> None:
    """ResumeError unless the tracker weights of `ckpt` (read_resume_checkpoint) load strictly into `model`, its
    optimizer has `optim_groups` parameter groups (when given: the configured optimizer's) and its learning-rate
    schedule reaches `max_steps` (when given: the configured trainer.max_steps)."""
    from tracker.checkpoint import CheckpointError, parse_checkpoint, weights_mismatch

    try:
        parts = weights_mismatch(model, parse_checkpoint(ckpt, path).state_dict, max_keys=3)
    except CheckpointError as err:
        raise ResumeError(f"cannot resume from {path}: {err.reason}") from None
    if parts:
        raise ResumeError(f"cannot resume from {path}: its weights do not fit the configured model ({'; '.join(parts)})"
                          "; resume with the run's own config")
    saved = [len(o.get("param_groups", [])) for o in ckpt.get("optimizer_states", []) if isinstance(o, dict)]
    if optim_groups is not None and saved and saved[0] != optim_groups:
        raise ResumeError(f"cannot resume from {path}: its optimizer has {saved[0]} parameter group(s), this config "
                          f"makes {optim_groups} (optim.vis_conf_lr_scale: 1 makes one group, any other value two); "
                          "resume with the run's own optim settings")
    # The OneCycle schedule is restored with the checkpoint (its length fixed by the first run's max_steps +
    # optim.extra_total_steps); stepping past its end is torch's "Tried to step N times" error mid-run.
    scheds = ckpt.get("lr_schedulers") or [{}]
    total = scheds[0].get("total_steps") if isinstance(scheds[0], dict) else None
    if max_steps is not None and isinstance(total, int) and max_steps > total:
        raise ResumeError(f"cannot resume from {path} with trainer.max_steps={max_steps}: its learning-rate schedule "
                          f"ends at step {total} (the first run's max_steps + optim.extra_total_steps); resume with "
                          f"trainer.max_steps <= {total}, or start a new run from its weights (model.init_from=...)")


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        if "://" in str(path):  # remote storage: Lightning's own (fsspec) path
            return super().save_checkpoint(checkpoint, path, storage_options)
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Serialise in memory first (as Lightning does): torch.save reports a failed file write as an opaque
        # RuntimeError, a plain write as an OSError with its errno (ENOSPC, EFBIG, EACCES...).
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:  # the partial file is removed on any failure
            write_atomic(path, buffer.getbuffer(), fsync=True, hidden=True)
        except OSError as err:
            raise CheckpointWriteError(f"cannot write checkpoint {path}: {err.strerror or err} (the previous "
                                       f"checkpoint there, if any, is unchanged)") from None


def remove_partial_writes(folder: Path) -> list[Path]:
    """Delete `.*.tmp-*` leftovers of writes killed half-way (call only while holding the run dir's lock)."""
    return remove_leftovers(folder, f".*{TMP_MARK}*")


def is_complete(path: Path) -> bool:
    """A torch checkpoint is a zip archive: complete iff its end-of-archive record is there."""
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def newest_resumable(candidates: Iterable[Path]) -> tuple[Optional[Path], list[Path]]:
    """(newest complete checkpoint by modification time or None, the incomplete ones skipped)."""
    skipped = []
    for path in sorted((p for p in candidates if p.is_file()), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        if is_complete(path):
            return path, skipped
        skipped.append(path)
    return None, skipped
