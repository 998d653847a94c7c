"""Training configuration: YAML files load, overrides apply, bad keys/types fail with one clear line."""
from __future__ import annotations

import os
import signal
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
        ("model.loss_conf_radius=0", "model.loss_conf_radius"),
        ("model.loss_conf_radius=.nan", "model.loss_conf_radius"),
        ("model.loss_visible_weight=0", "model.loss_visible_weight"),
        ("model.loss_visible_weight=.inf", "model.loss_visible_weight"),
        ("model.arch.initial_logits=[1.0]", "model.arch.initial_logits"),
        ("model.loss_coord_scale=-1", "model.loss_coord_scale"),
        ("optim.vis_conf_lr_scale=.nan", "optim.vis_conf_lr_scale"),
        ("optim.vis_conf_lr_scale=0", "optim.vis_conf_lr_scale"),
    ],
)
def test_bad_override_names_the_key(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config(REPO / "configs/train/tiny_cpu.yaml", [override])
    msg = str(info.value)
    assert needle in msg and "\n" not in msg


@pytest.mark.parametrize(("weights", "message"), [
    ({"a": ".nan"}, "data.sources.a.weight must be a finite number >= 0, got nan"),
    ({"a": "1", "b": ".inf"}, "data.sources.b.weight must be a finite number >= 0, got inf"),
    ({"a": "-.inf"}, "data.sources.a.weight must be a finite number >= 0, got -inf"),
    ({"a": "-1"}, "data.sources.a.weight must be a finite number >= 0, got -1.0"),
    ({"a": "0", "b": "0"}, "data.sources: at least one source needs a weight > 0"),
    ({"a": "1e308", "b": "1e308"}, "data.sources: the weights add up to inf"),
])
def test_mixture_weights_must_be_finite_with_a_positive_sum(weights: dict[str, str], message: str) -> None:
    """NaN weights used to train silently without the source, infinite ones to crash the stream (NaN shares)."""
    overrides = [o for name, w in weights.items() for o in (f"data.sources.{name}.path=x/{name}",
                                                             f"data.sources.{name}.weight={w}")]
    with pytest.raises(ConfigError) as info:
        load_train_config(REPO / "configs/train/tiny_cpu.yaml", overrides)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    ok = load_train_config(REPO / "configs/train/tiny_cpu.yaml", ["data.sources.a.path=x", "data.sources.a.weight=0.5",
                                                                  "data.sources.b.path=y", "data.sources.b.weight=0"])
    assert ok.data.sources.a.weight == 0.5


@pytest.mark.parametrize(("resolution", "levels", "fits"), [
    ("[8,8]", 4, False), ("[16,16]", 3, False), ("[16,20]", 3, True), ("[28,32]", 4, False), ("[32,32]", 4, True),
    ("[16,16]", 1, False), ("[4,32]", 1, True), ("[4,32]", 2, False),
])
def test_resolution_must_be_one_the_model_takes(resolution: str, levels: int, fits: bool) -> None:
    """The config's judgement is the model's rule (tracker.model.input_size_problem, checked against the layers
    in tests/tracker/test_model_input_size.py), with the configured number of correlation levels."""
    overrides = [f"data.resolution={resolution}", f"model.arch.corr_levels={levels}"]
    if fits:
        assert load_train_config(REPO / "configs/train/tiny_cpu.yaml", overrides).data.resolution
        return
    with pytest.raises(ConfigError, match=r"data.resolution=\[\d+, \d+\] is too small for the model: "):
        load_train_config(REPO / "configs/train/tiny_cpu.yaml", overrides)


def test_resolution_taken_from_the_data_is_checked_too(tmp_path: Path) -> None:
    """data.resolution unset: the frame size of the data becomes the crop; 8x8 frames are refused in one line
    before any model is built (real shards written by the shards writer)."""
    import numpy as np

    from datagen.formats.sample import TrackSample
    from datagen.formats import writer
    from lightning_modules.data_failures import DataError
    from lightning_modules.data_plan import build_data_plan

    rng = np.random.default_rng(0)
    samples = [TrackSample(video=rng.integers(0, 255, (12, 8, 8, 3), dtype=np.uint8),
                           tracks=rng.uniform(0, 7, (12, 16, 2)).astype(np.float32),
                           visibility=np.ones((12, 16), bool), key=f"s{i}") for i in range(2)]
    writer("shards")(samples, tmp_path / "tiny8", samples_per_shard=1)
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml",
                            ["data.resolution=null", f"data.shards={tmp_path / 'tiny8'}/shard-*.tar",
                             "data.clip_len=12", "model.arch.model_resolution=null"])
    with pytest.raises(DataError, match=r"data.resolution=\[8, 8\] \(unset: the frame size of the data\) is too "
                                        r"small for the model: both sides must be at least 16"):
        build_data_plan(cfg)


def test_bad_key_in_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_steps: 3\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="trainer.learning_rate"):
        load_train_config(bad)


@pytest.mark.parametrize(("config_text", "override", "needles"), [
    (None, "trainer.max_stepz=3", ["override 'trainer.max_stepz=3'", "did you mean 'trainer.max_steps'"]),
    (None, "trainer.max_steps=many", ["bad value for 'trainer.max_steps'"]),
    (None, "model.arch.encoder_dims=[32", ["override 'model.arch.encoder_dims=[32'", "not valid YAML"]),
    ("trainer:\n  max_steps: [3\n", None, ["bad.yaml: YAML syntax error at line 3"]),
    ("- trainer\n- data\n", None, ["bad.yaml: the top level must be a mapping", "got a list"]),
    ("", "data.resolution=[30,40]", ["data.resolution must be [H, W] with multiples of 4"]),
    ("", "data.resolution=[8,8]", ["data.resolution=[8, 8] is too small for the model", "4 correlation levels"]),
    ("", "data.sources={a: {path: x, weight: .nan}}", ["data.sources.a.weight must be a finite number >= 0, got nan"]),
    ("MISSING", None, ["config file not found", "bad.yaml"]),
])
def test_cli_reports_config_errors_in_one_line(tmp_path: Path, config_text, override, needles) -> None:
    """Each broken config is one `error:` line naming the file or override, exit status 2, no traceback."""
    config = REPO / "configs/train/tiny_cpu.yaml"
    if config_text is not None:
        config = tmp_path / "bad.yaml"
        if config_text != "MISSING":
            config.write_text(config_text)
    overrides = [override] if override else []
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_modules", "train", "--config", str(config), *overrides], cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert all(n in lines[0] for n in needles), lines[0]


def test_cli_one_line_for_our_errors_traceback_for_bugs(monkeypatch, capsys) -> None:
    """Any of our error types (tracker.common.errors.UserError) is one line with its exit status; anything
    else is a bug and propagates with its traceback. (`eval` is used: `train` installs process-wide signal
    handlers, which must not land in the pytest process.)"""
    import lightning_modules.evaluation.cli as evaluate
    from lightning_modules.cli import main
    from tracker.common.output_lock import OutputBusyError

    args = ["eval", "--checkpoint", "x.ckpt", "--data", "y.pkl"]

    def locked(_args) -> None:
        raise OutputBusyError("runs/x is in use:\npid 1 on host")

    monkeypatch.setattr(evaluate, "run", locked)
    assert main(args) == 1
    assert capsys.readouterr().err == "error: runs/x is in use: pid 1 on host\n"

    def bug(_args) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(evaluate, "run", bug)
    with pytest.raises(ZeroDivisionError):
        main(args)


def test_resume_auto_uses_last_ckpt_of_the_run_dir(tmp_path: Path, monkeypatch) -> None:
    import torch

    from lightning_modules.train import resolve_resume, resolve_run_dir

    monkeypatch.delenv("TRACKFORGE_RUN_DIR", raising=False)
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", [f"run_dir={tmp_path / 'r'}", "resume=auto"])
    run = resolve_run_dir(cfg)
    assert run == tmp_path / "r" and resolve_resume(cfg, run) is None  # first start of a requeued job
    (run / "checkpoints").mkdir(parents=True)
    last = run / "checkpoints" / "last.ckpt"
    torch.save({"global_step": 1}, last)
    assert resolve_resume(cfg, run) == str(last)
    # A requeue signal makes Lightning write <run_dir>/hpc_ckpt_<n>.ckpt, newer than last.ckpt: resume from it.
    hpc = run / "hpc_ckpt_1.ckpt"
    torch.save({"global_step": 2}, hpc)
    os.utime(last, ns=(10**18, 10**18))
    os.utime(hpc, ns=(2 * 10**18, 2 * 10**18))
    assert resolve_resume(cfg, run) == str(hpc)
    # ... but a last.ckpt written after it (periodic save after the restart) wins.
    os.utime(last, ns=(3 * 10**18, 3 * 10**18))
    assert resolve_resume(cfg, run) == str(last)
    # A newest checkpoint cut short (killed or disk full during a write) is skipped for the next complete one.
    last.write_bytes(last.read_bytes()[:-100])
    os.utime(last, ns=(3 * 10**18, 3 * 10**18))
    assert resolve_resume(cfg, run) == str(hpc)


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
    # The requeue is lightning_modules.slurm_requeue's (at a step boundary), never Lightning's in-handler save.
    assert isinstance(env, SLURMEnvironment) and not env.auto_requeue
    assert trainer.num_nodes == 1


def test_periodic_last_checkpoint_is_a_separate_callback(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lightning_modules.train import build_trainer

    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml",
                            ["trainer.enable_progress_bar=false", "checkpoint.every_n_train_steps=50"])
    trainer, topk = build_trainer(cfg, tmp_path, [], False)
    ckpts = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert len(ckpts) == 2 and topk in ckpts
    periodic = next(c for c in ckpts if c is not topk)
    # Top-k ranks validation Jaccard only at validations; the periodic one refreshes last.ckpt and nothing else.
    assert topk.monitor == "val/average_jaccard" and topk.save_last
    assert periodic.monitor is None and periodic.save_top_k == 0 and periodic.save_last
    assert periodic._every_n_train_steps == 50 and topk._every_n_train_steps == 0


def test_requeue_signal_after_fit_is_ignored_under_slurm() -> None:
    """The signal --signal=USR1@90 sends may arrive after fit: the default action would kill the finished job
    (exit 138). Run in a child process, which really receives the signal."""
    code = (
        "import os, signal, time\n"
        "from lightning_modules.train import ignore_requeue_signal\n"
        "ignore_requeue_signal()\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "time.sleep(0.2)\n"
        "print('alive')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train",
           "SLURM_JOB_ID": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "requeue signal ignored" in proc.stdout and proc.stdout.strip().endswith("alive")
    # Outside SLURM nothing is installed: the signal keeps its default action (terminates, exit -SIGUSR1).
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGUSR1
