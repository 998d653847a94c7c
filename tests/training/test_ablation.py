"""The data-mix ablation end to end at toy scale: `make ablation` trains two arms that differ only in their data
mixture (real Trainer runs in their own processes, equal steps) and prints their scores side by side; a rerun
trains nothing again; arms that differ in anything else are refused before anything runs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _ablation_yaml(tmp_path: Path, moving_shards: Path, benchmarks, tiny_overrides, **extra) -> Path:
    common = [o for o in tiny_overrides(moving_shards, tmp_path / "unused", steps=2)
              if not o.startswith(("data.shards=", "run_dir=", "name="))]
    shard0, shard1 = moving_shards / "shard-000000.tar", moving_shards / "shard-000001.tar"
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"benchmarks": [
        {"name": "tapvid_synth", "path": str(benchmarks["tapvid"])},
        {"name": "sparse_synth", "format": "sparse_npz", "path": str(benchmarks["sparse"])}]}))
    cfg = {
        "name": "toy", "train_config": "configs/train/tiny_cpu.yaml", "overrides": common,
        "arms": {"objects": [f"data.sources.a.path={shard0}", f"data.sources.a.val_path={shard1}"],
                 "mixed": [f"data.sources.a.path={shard0}", f"data.sources.a.val_path={shard1}",
                           "data.sources.a.weight=0.5", f"data.sources.b.path={shard1}", "data.sources.b.num_val=0",
                           "data.sources.b.weight=0.5"]},
        "eval": str(suite), "eval_overrides": [f"cache_dir={tmp_path / 'cache'}", "progress=false"],
        "out": str(tmp_path / "ablation"), **extra}
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # the first arm is the reference
    return path


def _make_ablation(config: Path) -> subprocess.CompletedProcess:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    return subprocess.run(["make", "--no-print-directory", "-o", "env", "-C", str(REPO), "ablation",
                           f"PY={sys.executable}", f"ABLATION={config}"], env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_ablation_end_to_end(moving_shards, benchmarks, tiny_overrides, tmp_path) -> None:
    config = _ablation_yaml(tmp_path, moving_shards, benchmarks, tiny_overrides)
    proc = _make_ablation(config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "ablation"
    # Two real runs with equal steps whose resolved configs differ only in the data mixture.
    configs = {}
    for arm in ("objects", "mixed"):
        assert json.loads((out / arm / "final_metrics.json").read_text())["global_step"] == 2
        configs[arm] = yaml.safe_load((out / arm / "config.yaml").read_text())
    for cfg in configs.values():
        cfg.pop("name"), cfg.pop("run_dir"), cfg["data"].pop("sources")
    assert configs["objects"] == configs["mixed"]
    # One table: the arms side by side with the difference and zero motion, per benchmark and metric.
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith("|")]
    assert table[0].split("|")[1:-1] == [" benchmark ", " queries ", " predictor ", " metric ", " objects ",
                                         " mixed ", " mixed - objects ", " zero motion "]
    assert len(table) == 2 + 3 + 4  # AJ, delta_avg, OA for TAP-Vid; plus PCK for the sparse benchmark
    summary = json.loads((out / "ablation.json").read_text())
    assert set(summary["arms"]) == {"objects", "mixed"}
    for arm in summary["arms"].values():
        assert [r["benchmark"] for r in arm["results"]] == ["tapvid_synth", "sparse_synth"]
    assert (out / "ablation.md").read_text().count("| tapvid_synth |") == 3
    # Rerun: nothing is trained or predicted again.
    again = _make_ablation(config)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("trained already") == 2 and "[ablation] train" not in again.stdout
    assert json.loads((out / "ablation.json").read_text()) == summary


def test_arms_that_differ_beyond_the_data_are_refused(moving_shards, benchmarks, tiny_overrides, tmp_path,
                                                      capsys) -> None:
    from lightning_modules.ablation import load_ablation_config, train_args
    from lightning_modules.cli import main
    from lightning_modules.config import load_train_config

    config = _ablation_yaml(tmp_path, moving_shards, benchmarks, tiny_overrides)
    cfg = load_ablation_config(config)
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(config.read_text())
    data["arms"]["mixed"].append("optim.lr=0.01")
    bad.write_text(yaml.safe_dump(data))
    assert main(["ablate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # refused before any data is read: nothing else printed
    assert len(err) == 1 and "differ only in their data mixture" in err[0] and "optim.lr" in err[0], err
    assert not (tmp_path / "ablation").exists()  # refused before anything ran
    # --print-args gives one arm's `train` arguments (what a SLURM job per arm runs).
    assert main(["ablate", "--config", str(config), "--arm", "mixed", "--print-args"]) == 0
    import shlex

    args = shlex.split(capsys.readouterr().out)
    assert args == train_args(cfg, "mixed")
    assert load_train_config(args[1], args[2:]).data.sources.b.weight == 0.5
    assert main(["ablate", "--config", str(config), "--arm", "nope", "--print-args"]) == 2
    assert "no arm 'nope'" in capsys.readouterr().err
