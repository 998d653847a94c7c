"""Evaluation sources as validation sets in a real (tiny) Trainer run: logged under their names, the checkpoint
ranked by the metric the config names, config errors caught before anything runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lightning_modules.config import ConfigError, load_train_config
from lightning_modules.train import run_training

REPO = Path(__file__).resolve().parents[2]


def _val_benchmarks(benchmarks) -> str:
    return (f"val_benchmarks=[{{name: davis_like, path: '{benchmarks['tapvid']}'}}, "
            f"{{name: badja_like, format: sparse_npz, path: '{benchmarks['sparse']}', max_videos: 1}}]")


@pytest.mark.slow
def test_benchmarks_validate_log_and_rank(moving_shards, benchmarks, tiny_overrides, tmp_path) -> None:
    run_dir = tmp_path / "run"
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", [
        *tiny_overrides(moving_shards, run_dir, steps=2, checkpoint__save_top_k=1),
        _val_benchmarks(benchmarks), "checkpoint.monitor=val_badja_like/pck"])
    result = run_training(cfg)
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    logged = {k for r in rows for k, v in r.items() if v}
    for prefix in ("val", "val_davis_like", "val_davis_like_zero_motion", "val_badja_like",
                   "val_badja_like_zero_motion"):
        assert {f"{prefix}/average_jaccard", f"{prefix}/delta_avg", f"{prefix}/occlusion_accuracy"} <= logged
    assert "val_badja_like/pck" in logged and "val_davis_like/pck" not in logged  # PCK needs an object area
    final = result.final
    assert set(final) == {"model", "zero_motion", "davis_like", "davis_like_zero_motion", "badja_like",
                          "badja_like_zero_motion"}
    assert all(0 <= v <= 1 for part in final.values() for v in part.values())
    # The top-1 checkpoint is named by (and ranked on) the configured metric.
    (best,) = [p for p in (run_dir / "checkpoints").glob("step*.ckpt")]
    assert best.name.startswith("step0000002-val_badja_like-pck")
    assert json.loads((run_dir / "final_metrics.json").read_text())["final"]["badja_like"] == final["badja_like"]
    _same_as_evaluation(result, cfg)


def _same_as_evaluation(result, cfg) -> None:
    """The final validation scores of each benchmark are what `make eval` gives the last checkpoint (same
    protocol, predictor, iterations and resolution; means over the videos of all ranks)."""
    from lightning_modules.evaluation.config import load_eval_config
    from lightning_modules.evaluation.suite import run_suite

    suite = load_eval_config(None, ["cache=false", "progress=false", f"iters={cfg.model.val_iters}"],
                             extra_benchmarks=[dict(b) for b in cfg.val_benchmarks],
                             checkpoint=result.last_checkpoint)
    for row in run_suite(suite)["results"]:
        for part, suffix in (("model", ""), ("zero_motion", "_zero_motion")):
            logged = result.final[row["benchmark"] + suffix]
            assert logged == pytest.approx(row[part], abs=1e-6), (row["benchmark"], part)


@pytest.mark.slow
@pytest.mark.ddp
def test_benchmarks_split_over_ddp_ranks(moving_shards, benchmarks, tiny_overrides, tmp_path) -> None:
    """2 gloo processes: the 2 TAP-Vid videos split one per rank, the single sparse video leaves rank 1 a filler;
    the gathered means equal a single-process evaluation of the final checkpoint."""
    import os
    import subprocess
    import sys

    from lightning_modules.train import TrainResult

    run_dir = tmp_path / "ddp"
    overrides = [*tiny_overrides(moving_shards, run_dir, steps=2), _val_benchmarks(benchmarks),
                 "trainer.devices=2", "trainer.strategy=ddp"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config",
                           "configs/train/tiny_cpu.yaml", *overrides], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((run_dir / "final_metrics.json").read_text())
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", overrides)
    _same_as_evaluation(TrainResult(run_dir=run_dir, global_step=2, final=summary["final"],
                                    last_checkpoint=summary["last_checkpoint"]), cfg)


def test_monitor_and_benchmarks_are_checked_at_config_time(tmp_path) -> None:
    cfg = REPO / "configs/train/tiny_cpu.yaml"
    bench = "val_benchmarks=[{name: davis, path: d.pkl}]"
    assert load_train_config(cfg, [bench, "checkpoint.monitor=val_davis/average_jaccard"]).val_benchmarks[0].name \
        == "davis"
    for overrides, words in (
            ([bench, "checkpoint.monitor=val_kinetics/average_jaccard"], "'val_kinetics/average_jaccard' is not"),
            ([bench, "checkpoint.monitor=val_davis/aj"], "is not a metric validation logs"),
            (["checkpoint.monitor=val/pck"], "is not a metric validation logs"),
            (["val_benchmarks=[{name: davis, path: d.pkl, query_modes: [first, strided]}]"], "one query mode"),
            (["val_benchmarks=[{name: 'da vis', path: d.pkl}]"], "letters, digits"),
            (["val_benchmarks=[{name: davis}]"], "val_benchmarks[0].path is required")):
        with pytest.raises(ConfigError) as err:
            load_train_config(cfg, overrides)
        assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.slow
def test_davis_masks_as_a_validation_set(moving_shards, davis_folder, tiny_overrides, tmp_path) -> None:
    """A DAVIS root validates with mask consistency (overall and per group), no TAP-Vid metrics; the checkpoint is
    ranked by a group's score; the logged numbers are what `make eval` gives the last checkpoint."""
    run_dir = tmp_path / "run"
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", [
        *tiny_overrides(moving_shards, run_dir, steps=2, checkpoint__save_top_k=1),
        f"val_benchmarks=[{{name: davis, path: '{davis_folder}', max_frames: 6, "
        "groups: {animals: [goat], people: [parkour]}}]",
        "checkpoint.monitor=val_davis/mask_consistency_animals"])
    result = run_training(cfg)
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    logged = {k for r in rows for k, v in r.items() if v}
    keys = {"mask_consistency", "mask_consistency_animals", "mask_consistency_people", "mask_consistency_other"}
    for prefix in ("val_davis", "val_davis_zero_motion"):
        assert {f"{prefix}/{k}" for k in keys} <= logged
        assert not any(k.startswith(f"{prefix}/") and "mask_consistency" not in k for k in logged)
    assert set(result.final["davis"]) == keys and all(0 <= v <= 1 for v in result.final["davis"].values())
    (best,) = [p for p in (run_dir / "checkpoints").glob("step*.ckpt")]
    assert best.name.startswith("step0000002-val_davis-mask_consistency_animals")
    from lightning_modules.evaluation.config import load_eval_config
    from lightning_modules.evaluation.suite import run_suite

    suite = load_eval_config(None, ["cache=false", "progress=false", f"iters={cfg.model.val_iters}"],
                             extra_benchmarks=[dict(b) for b in cfg.val_benchmarks],
                             checkpoint=result.last_checkpoint)
    (row,) = run_suite(suite)["results"]
    for part, suffix in (("model", ""), ("zero_motion", "_zero_motion")):
        logged_scores = result.final["davis" + suffix]
        assert logged_scores["mask_consistency"] == pytest.approx(row[part]["mask_consistency"], abs=1e-6)
        for group, g in row["groups"].items():
            assert logged_scores[f"mask_consistency_{group}"] == pytest.approx(g[part]["mask_consistency"], abs=1e-6)
