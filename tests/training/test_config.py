"""Training configuration: YAML files load, overrides apply, bad keys/types fail with one clear line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lightning_modules.config import ConfigError, arch_kwargs, from_container, load_train_config, to_container

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs" / "train").glob("*.yaml"))


def test_all_train_configs_load() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"tiny_cpu", "cotracker3_online", "cotracker3_offline"} <= names
    for path in CONFIGS:
        cfg = load_train_config(path)
        assert cfg.trainer.max_steps > 0


def test_recipe_configs_follow_the_spec() -> None:
    on = load_train_config(REPO / "configs/train/cotracker3_online.yaml")
    off = load_train_config(REPO / "configs/train/cotracker3_offline.yaml")
    assert (on.model.window_len, on.data.clip_len, on.data.num_tracks) == (16, 64, 384)
    assert (off.model.window_len, off.data.clip_len_min, off.data.clip_len, off.data.num_tracks) == (60, 30, 59, 512)
    assert off.data.random_stride and off.data.candidates_last_frame and not on.data.random_stride
    for cfg in (on, off):
        assert list(cfg.data.resolution) == [384, 512] and arch_kwargs(cfg.model.arch) == {}
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.trainer.max_steps) == (5e-4, 5e-4, 50000)
        assert cfg.trainer.gradient_clip_val == 1.0 and cfg.model.train_iters == 4


def test_overrides_and_round_trip() -> None:
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml",
                            ["trainer.max_steps=7", "data.shards=x/*.tar", "model.arch.hidden_size=96",
                             "trainer.devices=2", "resume=auto"])
    assert cfg.trainer.max_steps == 7 and cfg.data.shards == "x/*.tar" and cfg.trainer.devices == 2
    assert arch_kwargs(cfg.model.arch)["hidden_size"] == 96 and cfg.resume == "auto"
    again = from_container(to_container(cfg))
    assert to_container(again) == to_container(cfg)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("trainer.max_stepz=3", "trainer.max_stepz"),
        ("model.arch.hiden_size=3", "model.arch.hiden_size"),
        ("trainer.max_steps=many", "trainer.max_steps"),
        ("data.num_tracks=1.5", "data.num_tracks"),
        ("model.variant=sideways", "model.variant"),
        ("data.resolution=[30,40]", "data.resolution"),
    ],
)
def test_bad_override_names_the_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config(REPO / "configs/train/tiny_cpu.yaml", [override])
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


def test_bad_key_in_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_steps: 3\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="trainer.learning_rate"):
        load_train_config(bad)


def test_cli_reports_config_error_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "train", "--config", "configs/train/tiny_cpu.yaml",
         "trainer.max_stepz=3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "trainer.max_stepz" in lines[0], proc.stderr


def test_resume_auto_uses_last_ckpt_of_the_run_dir(tmp_path: Path, monkeypatch) -> None:
    from lightning_modules.train import resolve_resume, resolve_run_dir

    monkeypatch.delenv("TRACKFORGE_RUN_DIR", raising=False)
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", [f"run_dir={tmp_path / 'r'}", "resume=auto"])
    run = resolve_run_dir(cfg)
    assert run == tmp_path / "r" and resolve_resume(cfg, run) is None  # first start of a requeued job
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    assert resolve_resume(cfg, run) == str(run / "checkpoints" / "last.ckpt")


def test_trainer_uses_slurm_environment_with_requeue(tmp_path: Path, monkeypatch) -> None:
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from lightning_modules.train import build_trainer

    for key, value in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "train",
                       "SLURM_JOB_ID": "123", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
                       "SLURM_NODELIST": "localhost"}.items():
        monkeypatch.setenv(key, value)
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml",
                            ["trainer.enable_progress_bar=false", "trainer.num_nodes=1", "trainer.devices=1",
                             "trainer.strategy=ddp", "trainer.accelerator=cpu"])
    trainer, _ = build_trainer(cfg, tmp_path, [], False)
    env = trainer.strategy.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue
    assert trainer.num_nodes == 1
