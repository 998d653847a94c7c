"""Real DDP: 2 CPU processes over gloo through the CLI; ranks train on different data; one consistent model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_modules.module import weights_digest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_cpu_processes(moving_shards: Path, tmp_path: Path, tiny_overrides) -> None:
    run_dir = tmp_path / "ddp"
    # One validation clip for two ranks: rank 1 only runs a filler step (val_clips.rank_val_clips).
    overrides = tiny_overrides(moving_shards, run_dir, steps=4, data__log_keys="true", data__val_clips=1)
    overrides += ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                           "configs/train/tiny_cpu.yaml", *overrides],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    keys = {r: (run_dir / "keys" / f"rank{r}.txt").read_text().split("\n") for r in (0, 1)}
    rows = {r: [line.split() for line in keys[r] if line.strip()] for r in (0, 1)}
    assert [row[0] for row in rows[0]] == [row[0] for row in rows[1]] == ["0", "1", "2", "3"]
    # Different data on every step: the augmented clips' fingerprints differ between the ranks.
    for row0, row1 in zip(rows[0], rows[1]):
        assert row0[1:] != row1[1:]
    # One model: both ranks end with identical weights, and the checkpoint holds exactly them.
    digests = {r: (run_dir / "keys" / f"weights_rank{r}.txt").read_text().strip() for r in (0, 1)}
    assert digests[0] == digests[1]
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    state = [v for k, v in ckpt["state_dict"].items() if k.startswith("model.")]
    assert weights_digest(state) == digests[0]
    summary = json.loads((run_dir / "final_metrics.json").read_text())
    assert summary["global_step"] == 4
    for which in ("model", "zero_motion"):
        assert all(0.0 <= v <= 1.0 for v in summary["final"][which].values()), summary
