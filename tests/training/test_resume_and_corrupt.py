"""Resume continues step/optimizer/scheduler; corrupt shards or samples are skipped, counted and warned about."""
from __future__ import annotations

import io
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.config import load_train_config
from lightning_modules.train import run_training

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"


def _ckpt(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_resume_continues_step_optimizer_and_schedule(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    # The recipe's schedule runs 100 steps past max_steps, so the run can be extended (tiny_cpu anneals to its end).
    first = run_training(load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "a", steps=4,
                                                                optim__extra_total_steps=100)))
    assert first.global_step == 4
    a = _ckpt(first.last_checkpoint)
    assert a["global_step"] == 4 and a["hyper_parameters"]["config"]["trainer"]["max_steps"] == 4
    second = run_training(load_train_config(TINY, tiny_overrides(
        moving_shards, tmp_path / "b", steps=8, resume=first.last_checkpoint, optim__extra_total_steps=100)))
    assert second.global_step == 8 and len(second.train_losses) == 4  # only the 4 new steps ran
    b = _ckpt(second.last_checkpoint)
    assert b["global_step"] == 8
    adam_a = next(iter(a["optimizer_states"][0]["state"].values()))
    adam_b = next(iter(b["optimizer_states"][0]["state"].values()))
    assert float(adam_a["step"]) == 4 and float(adam_b["step"]) == 8
    sched_a, sched_b = a["lr_schedulers"][0], b["lr_schedulers"][0]
    assert sched_a["last_epoch"] == 4 and sched_b["last_epoch"] == 8
    assert sched_b["total_steps"] == sched_a["total_steps"]  # the restored schedule, not a new one
    # Recompute the schedule: the resumed lr is what the uninterrupted schedule gives at step 8.
    from lightning_modules.config import OptimConfig
    from lightning_modules.schedule import make_optimizer_and_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    optim = OptimConfig(**a["hyper_parameters"]["config"]["optim"])  # the run's own (tiny_cpu's lr, ...)
    opt, sched = make_optimizer_and_scheduler([p], optim, 4)
    for _ in range(8):
        opt.step()
        sched.step()
    assert b["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
    # The loss curve continues (same scale, no restart from a fresh model).
    assert np.isfinite(second.train_losses).all()
    assert np.mean(second.train_losses) < 2.0 * np.mean(first.train_losses) + 0.5



@pytest.mark.slow
def test_periodic_and_validation_saves_share_one_last_ckpt(moving_shards: Path, tmp_path: Path,
                                                           tiny_overrides) -> None:
    """With checkpoint.every_n_train_steps two ModelCheckpoint callbacks save `last` (every step here, and at the
    validation of step 2): one last.ckpt, which resume=auto finds (Lightning's version counter used to make the
    second writer save last-v1.ckpt, newer than the last.ckpt that a resume read)."""
    from lightning_modules.train import resolve_resume

    run_dir = tmp_path / "run"
    overrides = tiny_overrides(moving_shards, run_dir, steps=3, checkpoint__every_n_train_steps=1,
                               trainer__val_check_interval=2)
    result = run_training(load_train_config(TINY, overrides))
    assert result.global_step == 3
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("last*")) == ["last.ckpt"]
    resume = resolve_resume(load_train_config(TINY, overrides + ["resume=auto"]), run_dir)
    assert resume == str(run_dir / "checkpoints" / "last.ckpt") and _ckpt(resume)["global_step"] == 3

def _members(shard: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(shard) as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]


def _write(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))


@pytest.mark.slow
def test_corrupt_samples_are_skipped_counted_and_warned(moving_shards: Path, tmp_path: Path, caplog, tiny_overrides) -> None:
    good = sorted(moving_shards.glob("shard-*.tar"))
    members = _members(good[0])
    keys = sorted({name.split(".")[0] for name, _ in members})
    assert len(keys) == 2
    bad_dir = tmp_path / "shards"
    bad_dir.mkdir()
    # Shard 0: the second sample's tracks.npy is garbage bytes.
    garbled = [(n, b"\x93NUMPY garbage" if n == f"{keys[1]}.tracks.npy" else d) for n, d in members]
    _write(bad_dir / "shard-000000.tar", garbled)
    # Shard 1: cut in the middle of the second sample's video.
    _write(tmp_path / "full.tar", members)
    raw = (tmp_path / "full.tar").read_bytes()
    with tarfile.open(tmp_path / "full.tar") as tf:
        cut = next(m for m in tf.getmembers() if m.name.startswith(keys[1]) and "video" in m.name)
    (bad_dir / "shard-000001.tar").write_bytes(raw[: cut.offset_data + cut.size // 2])
    caplog.set_level(logging.WARNING, logger="lightning_modules.data")
    result = run_training(load_train_config(TINY, tiny_overrides(
        bad_dir, tmp_path / "run", steps=5, data__val_shards=str(good[1]))))
    assert result.global_step == 5 and np.isfinite(result.train_losses).all()
    assert result.skipped_corrupt >= 2
    warned = [r.getMessage() for r in caplog.records if "skipping corrupt data" in r.getMessage()]
    assert warned and any(keys[1] in w or "tracks.npy" in w or "shard-000001" in w for w in warned)


# ---------------------------------------------------------------------------------------- bad resume checkpoints
class _Payload:
    """Unpickling this with plain pickle (torch.load(weights_only=False)) would run `touch marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _bad_checkpoints(folder: Path, marker: Path) -> dict[str, Path]:
    """A crafted training checkpoint whose unpickling runs a command, random bytes, and a plain state dict."""
    import os

    folder.mkdir(parents=True, exist_ok=True)
    evil, junk, plain = folder / "evil.ckpt", folder / "junk.ckpt", folder / "weights.pth"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "optimizer_states": [], "global_step": 3,
                "hyper_parameters": {"config": _Payload(marker)}}, evil)
    junk.write_bytes(os.urandom(4096))
    torch.save({"fnet.conv1.weight": torch.zeros(2)}, plain)
    return {"evil": evil, "junk": junk, "plain": plain}


@pytest.mark.parametrize(("which", "reason"), [
    ("evil", "it refers to posix.system, which is not tensor data"),
    ("junk", "not a PyTorch checkpoint"),
    ("plain", "not a training checkpoint (no state_dict, optimizer_states, global_step); to start a new run from its "
              "weights, use model.init_from="),
    ("missing", "file not found"),
])
def test_bad_resume_checkpoint_is_refused_before_anything_runs(tmp_path: Path, tiny_overrides, which: str,
                                                               reason: str) -> None:
    """resume=<file>: read with tracker.checkpoint's loader before the data, the model or Lightning start; the
    payload never runs; nothing is written into the run dir but its lock."""
    from lightning_modules.checkpoint_io import ResumeError

    marker = tmp_path / "pwned"
    path = _bad_checkpoints(tmp_path / "files", marker).get(which, tmp_path / "nowhere.ckpt")
    run_dir = tmp_path / "run"
    cfg = load_train_config(TINY, tiny_overrides(tmp_path / "no-data", run_dir, steps=2, resume=str(path)))
    with pytest.raises(ResumeError) as err:
        run_training(cfg)
    assert str(err.value).startswith(f"cannot resume from {path}: {reason}"), str(err.value)
    assert err.value.exit_code == 2 and "\n" not in str(err.value) and "weights_only=False" not in str(err.value)
    assert not marker.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == [".trackforge.lock"]


def test_crafted_last_ckpt_with_resume_auto_is_one_line(tmp_path: Path, tiny_overrides) -> None:
    """`train resume=auto` finding a crafted last.ckpt in the run dir (the command line, a real process): one
    `error:` line, exit status 2, no traceback, no advice to load with weights_only=False, the payload never ran."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    _bad_checkpoints(tmp_path / "files", marker)["evil"].rename(run_dir / "checkpoints" / "last.ckpt")
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config", str(TINY),
                           *tiny_overrides(tmp_path / "no-data", run_dir, steps=2), "resume=auto"], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"error: cannot resume from {run_dir / 'checkpoints' / 'last.ckpt'}: it refers to "
                               "posix.system"), lines
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr
    assert not marker.exists()


@pytest.mark.slow
def test_resume_with_another_architecture_is_one_line(tmp_path: Path, tiny_overrides, tiny_checkpoint,
                                                      moving_shards: Path) -> None:
    """A real checkpoint of the tiny online model resumed by a config with another hidden size: refused once the
    model is built, before fit, naming the mismatch (Lightning's strict load printed a page of keys)."""
    from lightning_modules.checkpoint_io import ResumeError

    ckpt = tiny_checkpoint("online")
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "run", steps=4, resume=str(ckpt),
                                                 model__arch__hidden_size=32))
    with pytest.raises(ResumeError, match=r"its weights do not fit the configured model \(mis-shaped keys") as err:
        run_training(cfg)
    assert str(err.value).startswith(f"cannot resume from {ckpt}: ") and "\n" not in str(err.value)
    assert "more)" in str(err.value)  # at most a few keys are named
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".trackforge.lock"]  # config.yaml not written


@pytest.mark.slow
def test_resume_with_another_optimizer_layout_is_one_line(tmp_path: Path, tiny_overrides, tiny_checkpoint,
                                                          moving_shards: Path) -> None:
    """tiny_cpu's optimizer has two parameter groups (the visibility/confidence head at its own lr scale); resumed
    with optim.vis_conf_lr_scale=1 (one group, as runs from before the scale) it is refused before fit with one line
    (Lightning's optimizer load said only "loaded state dict has a different number of parameter groups")."""
    from lightning_modules.checkpoint_io import ResumeError

    ckpt = tiny_checkpoint("online")
    assert len(_ckpt(ckpt)["optimizer_states"][0]["param_groups"]) == 2
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "run", steps=4, resume=str(ckpt),
                                                 optim__vis_conf_lr_scale=1))
    with pytest.raises(ResumeError, match=r"its optimizer has 2 parameter group\(s\), this config makes 1") as err:
        run_training(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".trackforge.lock"]


@pytest.mark.slow
def test_resume_past_the_schedule_end_is_one_line(tmp_path: Path, tiny_overrides, tiny_checkpoint,
                                                  moving_shards: Path) -> None:
    """tiny_cpu anneals its learning rate to the last step (optim.extra_total_steps: 0): extending a finished run by
    resuming it with a larger max_steps would step the restored OneCycle past its end (torch's "Tried to step 3
    times" mid-run). Refused before fit with one line naming the limit."""
    from lightning_modules.checkpoint_io import ResumeError

    ckpt = tiny_checkpoint("online")  # 2 steps of tiny_cpu: schedule of 2 steps
    assert _ckpt(ckpt)["lr_schedulers"][0]["total_steps"] == 2
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, tmp_path / "run", steps=4, resume=str(ckpt)))
    with pytest.raises(ResumeError, match=r"with trainer.max_steps=4: its learning-rate schedule ends at step 2 "
                                          r".*trainer.max_steps <= 2") as err:
        run_training(cfg)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".trackforge.lock"]  # config.yaml not written
