"""`make slurm-data` / `make slurm-train` hand the job scripts exactly the config and overrides that
`make data` / `make train` hand the Python CLIs (checked on `make -n`, so no Slurm is needed)."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VARS = ["DATA_CONFIG=cfg/data.yaml", "DATA_DIR=out/shards", "TRAIN_CONFIG=cfg/train.yaml",
        "ARGS=a.b=1 c=[2,3]", "SLURM_ARGS=--array=0-3 --cpus-per-task=2", "SLURM_LOG_DIR=lg"]


def _command(target: str, marker: str) -> list[str]:
    """The words of the recipe line of `target` that contains `marker` (continuation lines joined)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "--no-print-directory", target, *VARS], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.replace("\\\n", " ")
    lines = [ln for ln in out.splitlines() if marker in ln]
    assert len(lines) == 1, out
    return shlex.split(lines[0])


def _after(words: list[str], marker: str) -> list[str]:
    return words[words.index(marker) + 1:]


def test_slurm_data_passes_the_same_config_and_overrides_as_make_data():
    local = _after(_command("data", "datagen generate"), "generate")
    words = _command("slurm-data", "slurm/datagen.sbatch")
    assert words[0] == "sbatch"
    assert "--output=lg/%x-%A_%a.out" in words and "--array=0-3" in words and "--cpus-per-task=2" in words
    # sbatch options come before the script, the CLI arguments after it.
    assert words.index("--array=0-3") < words.index("slurm/datagen.sbatch")
    assert _after(words, "slurm/datagen.sbatch") == local == [
        "--config", "cfg/data.yaml", "--out", "out/shards", "a.b=1", "c=[2,3]"]


def test_slurm_train_passes_the_same_config_and_overrides_as_make_train():
    local = _after(_command("train", "lightning_modules train"), "train")
    words = _command("slurm-train", "slurm/train.sbatch")
    assert words[0] == "sbatch" and "--output=lg/%x-%j.out" in words
    assert _after(words, "slurm/train.sbatch") == local == ["--config", "cfg/train.yaml", "a.b=1", "c=[2,3]"]
