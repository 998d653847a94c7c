"""Training from several sources: a weighted mixture of our shards and a CoTracker3 Kubric folder in a real Trainer
(shares logged, global batch by accumulation), DDP with two sources, configs checked against the data (clip length,
resolution), and streams that can never yield a clip ending with one line instead of cycling for ever."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lightning_modules.config import ConfigError, load_train_config

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "train" / "tiny_cpu.yaml"


@pytest.fixture(scope="module")
def kubric_dir(moving_shards: Path, tmp_path_factory) -> Path:
    """The moving shards exported to the official CoTracker3 Kubric layout (4 sequences)."""
    from datagen.formats import open_source, writer

    out = tmp_path_factory.mktemp("kubric")
    assert writer("cotracker3_kubric")(open_source(str(moving_shards)), out) == 4
    return out


def _mixture(moving_shards: Path, kubric_dir: Path, weights=(0.7, 0.3)) -> list[str]:
    return ["data.shards=null",
            f"data.sources.ours.path={moving_shards}", f"data.sources.ours.weight={weights[0]}",
            f"data.sources.kub.path={kubric_dir}", f"data.sources.kub.weight={weights[1]}",
            "data.sources.kub.num_val=1", "data.sources.kub.augment.pad_max=0"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TRACKFORGE_RUN_DIR"))}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return env


# ---------------------------------------------------------------------------------------------- mixtures
@pytest.mark.slow
def test_mixture_stream_draws_sources_by_weight(moving_shards, kubric_dir, tmp_path, tiny_overrides):
    from lightning_modules.data_plan import build_data_plan
    from lightning_modules.train_stream import MixtureStream, StreamSeed

    plan = build_data_plan(load_train_config(TINY, tiny_overrides(moving_shards, tmp_path, steps=1)
                                             + _mixture(moving_shards, kubric_dir)
                                             + ["data.num_tracks=8", "data.augment.enabled=false"]))
    sources = plan.sources
    assert [(s.name, s.train.format, len(s.train.items)) for s in sources] == [
        ("ours", "shards", 1), ("kub", "cotracker3_kubric", 3)]
    assert sources[1].cfg.augment.pad_max == 0 and sources[0].cfg.augment.pad_max == 4  # per-source override
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than the work
    try:
        batches = list(zip(range(200), MixtureStream(plan, StreamSeed(0, 0))))
    finally:
        torch.set_num_threads(threads)
    counts = batches[-1][1]["source_counts"].numpy()
    assert counts.sum() == 200 and abs(counts[0] / 200 - 0.7) < 0.08, counts
    keys = {b["keys"][0].split("/")[0] for _, b in batches}
    assert keys == {"ours", "kub"}


@pytest.mark.slow
def test_mixture_trains_in_a_real_trainer_with_shares_and_global_batch(moving_shards, kubric_dir, tmp_path,
                                                                       tiny_overrides):
    from lightning_modules.train import run_training

    run_dir = tmp_path / "run"
    cfg = load_train_config(TINY, tiny_overrides(moving_shards, run_dir, steps=3, data__log_keys="true")
                            + _mixture(moving_shards, kubric_dir, (0.5, 0.5))
                            + ["data.global_batch_size=2", "trainer.log_every_n_steps=1", "data.resolution=null",
                               "model.arch.model_resolution=null"])
    result = run_training(cfg)
    assert result.global_step == 3 and np.isfinite(result.train_losses).all()
    # Gradient accumulation reached the global batch of 2 on one process: 2 batches per optimizer step.
    rows = [line.split() for line in (run_dir / "keys" / "rank0.txt").read_text().splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "1", "1", "2", "2"]
    prefixes = {r[1].split("/")[0] for r in rows}
    assert prefixes == {"ours", "kub"}
    saved = load_train_config(run_dir / "config.yaml")  # the resolved config: the data decided the resolution
    assert list(saved.data.resolution) == [64, 64] and list(saved.model.arch.model_resolution) == [64, 64]
    assert cfg.data.resolution is None and cfg.model.arch.model_resolution is None  # the caller's config: as given
    metrics = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    shares = [(float(m["data/share/ours"]), float(m["data/share/kub"])) for m in metrics if m.get("data/share/ours")]
    assert shares and all(abs(a + b - 1) < 1e-6 for a, b in shares) and 0 < shares[-1][0] < 1
    assert {float(m["data/effective_batch"]) for m in metrics if m.get("data/effective_batch")} == {2.0}


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_with_two_sources(moving_shards, kubric_dir, tmp_path, tiny_overrides):
    run_dir = tmp_path / "ddp"
    overrides = tiny_overrides(moving_shards, run_dir, steps=3, data__log_keys="true", data__val_clips=2)
    overrides += _mixture(moving_shards, kubric_dir, (0.5, 0.5))
    overrides += ["trainer.devices=2", "trainer.strategy=ddp", "trainer.accelerator=cpu", "data.global_batch_size=2"]
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config", str(TINY), *overrides],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "effective batch: 2 clips per optimizer step = 1 per device x 2 process(es) x 1 accumulated" in proc.stderr
    rows = {r: [line.split() for line in (run_dir / "keys" / f"rank{r}.txt").read_text().splitlines()]
            for r in (0, 1)}
    assert [row[0] for row in rows[0]] == [row[0] for row in rows[1]] == ["0", "1", "2"]
    for row0, row1 in zip(rows[0], rows[1]):
        assert row0[1:] != row1[1:]  # each rank its own stream
    seen = {row[1].split("/")[0] for r in (0, 1) for row in rows[r]}
    assert seen == {"ours", "kub"}
    digests = {r: (run_dir / "keys" / f"weights_rank{r}.txt").read_text() for r in (0, 1)}
    assert digests[0] == digests[1]


# ---------------------------------------------------------------------------------------------- config vs data
def test_clip_len_longer_than_the_videos_is_an_error(moving_shards, kubric_dir, tmp_path, tiny_overrides):
    from lightning_modules.data_failures import DataError
    from lightning_modules.data_plan import build_data_plan

    base = tiny_overrides(moving_shards, tmp_path, steps=1)
    with pytest.raises(DataError, match=r"data.clip_len=16 exceeds the 12 frames of data source 'default' "
                                        r"\(shards, 1 shard\(s\), 12 frames of 64x64 \(from .*dataset.json\)\)"):
        build_data_plan(load_train_config(TINY, base + ["data.clip_len=16"]))
    with pytest.raises(DataError, match=r"data.clip_len=13 exceeds the 12 frames of data source 'kub' "
                                        r"\(cotracker3_kubric, 3 sequence\(s\), 12 frames of 64x64"):
        build_data_plan(load_train_config(TINY, base + _mixture(moving_shards, kubric_dir)
                                          + ["data.sources.ours.weight=0", "data.clip_len=13",
                                             "data.val_clip_len=12"]))
    with pytest.raises(DataError, match=r"data.clip_len=13 \(also the validation clip length\) exceeds the 12 "
                                        r"frames of data source 'ours'"):
        build_data_plan(load_train_config(TINY, base + _mixture(moving_shards, kubric_dir)
                                          + ["data.sources.ours.weight=0", "data.clip_len=13"]))
    with pytest.raises(DataError, match="data.val_clip_len=20 exceeds the 12 frames"):
        build_data_plan(load_train_config(TINY, base + ["data.val_clip_len=20"]))
    from lightning_modules.cli import main

    assert main(["train", "--config", str(TINY), *base, "data.clip_len=16"]) == 2  # one line, no traceback


def test_resolution_follows_the_data_and_mismatches_are_reported(moving_shards, tmp_path, tiny_overrides):
    from lightning_modules.data_plan import build_data_plan, resolved_config

    base = tiny_overrides(moving_shards, tmp_path, steps=1)
    cfg = load_train_config(TINY, base + ["data.resolution=null", "model.arch.model_resolution=null"])
    before = OmegaConf.to_yaml(cfg)
    plan = build_data_plan(cfg)
    assert plan.input_size == (64, 64) and plan.arch_input_size == (64, 64)
    assert list(plan.settings.resolution) == [64, 64] and all(s.cfg.resolution == [64, 64] for s in plan.sources)
    assert OmegaConf.to_yaml(cfg) == before  # the plan is built without editing the config
    resolved = resolved_config(cfg, plan)  # what the run records: concrete values under the user's keys
    assert list(resolved.data.resolution) == [64, 64] and list(resolved.model.arch.model_resolution) == [64, 64]
    assert OmegaConf.to_yaml(cfg) == before
    plan = build_data_plan(load_train_config(TINY, base + ["data.resolution=[48,48]",
                                                           "model.arch.model_resolution=null"]))
    assert plan.input_size == plan.arch_input_size == (48, 48)  # the model follows the training crop
    with pytest.warns(UserWarning, match=r"64x64 frames are smaller than the 96x128 training crop .* upsampled"):
        build_data_plan(load_train_config(TINY, base + ["data.resolution=[96,128]"]))
    with pytest.warns(UserWarning, match=r"model.arch.model_resolution=\[64, 64\] differs from the training crop"):
        plan = build_data_plan(load_train_config(TINY, base + ["data.resolution=[48,48]"]))
    assert plan.input_size == (48, 48) and plan.arch_input_size == (64, 64)


def test_sources_config_is_typed_and_the_old_shards_key_migrates(tmp_path):
    with pytest.raises(ConfigError, match="data.shards and data.sources are exclusive: .*data.sources.<name>.path"):
        load_train_config(TINY, ["data.shards=a/*.tar", "data.sources.x.path=b"])
    with pytest.raises(ConfigError, match=r"unknown config key 'data.sources.x.wieght' \(did you mean "
                                          r"'data.sources.x.weight'\?\)"):
        load_train_config(TINY, ["data.sources.x.path=b", "data.sources.x.wieght=1"])
    with pytest.raises(ConfigError, match=r"bad data.sources.x.augment.pad_maxx: Key 'pad_maxx' not in"):
        load_train_config(TINY, ["data.sources.x.path=b", "data.sources.x.augment.pad_maxx=1"])
    with pytest.raises(ConfigError, match="data.sources.x.format must be auto"):
        load_train_config(TINY, ["data.sources.x.path=b", "data.sources.x.format=movi"])
    with pytest.raises(ConfigError, match="global_batch_size=3 must be a positive multiple of data.batch_size=2"):
        load_train_config(TINY, ["data.batch_size=2", "data.global_batch_size=3"])
    from lightning_modules.config import data_sources
    from lightning_modules.data_failures import DataError
    from lightning_modules.global_batch import accumulation_steps

    legacy = load_train_config(TINY, ["data.shards=a/*.tar", "data.val_shards=b.tar"])
    (name, src), = data_sources(legacy.data).items()
    assert (name, src.path, src.format, src.val_path) == ("default", "a/*.tar", "shards", "b.tar")
    full = load_train_config(REPO / "configs/train/cotracker3_online.yaml")
    assert full.data.global_batch_size == 32 and accumulation_steps(full.data, 8) == 4
    assert accumulation_steps(full.data, 32) == 1
    with pytest.raises(DataError, match="global_batch_size=32 is not a multiple of .* 1 x 3 = 3"):
        accumulation_steps(full.data, 3)
    assert "cotracker3_kubric" in full.data.sources["kubric"].path


# ---------------------------------------------------------------------------------------------- never a clip
def _bad_folder(tmp_path: Path, moving_shards: Path) -> Path:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "shard-000000.tar").write_text("hello\n")  # not a tar
    (bad / "shard-000001.tar").write_bytes(b"")  # empty
    shutil.copy(moving_shards / "dataset.json", bad / "dataset.json")  # metadata fine, shards broken
    return bad


@pytest.mark.slow
def test_all_shards_unreadable_ends_with_one_line_in_bounded_time(moving_shards, tmp_path, tiny_overrides):
    bad = _bad_folder(tmp_path, moving_shards)
    overrides = tiny_overrides(bad, tmp_path / "run", steps=2, data__val_shards=str(moving_shards / "shard-000001.tar"),
                               data__num_workers=1)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "lightning_modules", "train", "--config", str(TINY), *overrides],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)
    took = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: training data: source 'default' gave no usable clip in 200 consecutive attempts "
                           "(200 unreadable); shards: "), last
    assert f"{bad}/shard-000000.tar" in last and f"{bad}/shard-000001.tar" in last
    assert "Traceback" not in proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "skipping corrupt data" in line]
    assert 3 <= len(warnings) <= 15, warnings  # rate-limited: 200 failures, a handful of lines with counts
    assert any("similar warning(s) not shown" in w for w in warnings)
    assert took < 120


def test_stream_that_drops_every_clip_ends_with_the_reason(moving_shards, tmp_path, tiny_overrides):
    from lightning_modules.data import TrackDataModule
    from lightning_modules.data_failures import DataError
    from lightning_modules.data_plan import build_data_plan

    plan = build_data_plan(load_train_config(TINY, tiny_overrides(
        moving_shards, tmp_path, steps=1, data__min_tracks=100000, data__max_consecutive_failures=20)))
    dm = TrackDataModule(plan, seed=0)
    with pytest.raises(DataError, match=r"source 'default' gave no usable clip in 20 consecutive attempts \(20 too "
                                        r"few candidate tracks\); shards: .*shard-000000.tar"):
        next(iter(dm.train_dataloader()))


def test_validation_without_a_usable_clip_is_one_line(moving_shards, tmp_path, tiny_overrides, capsys):
    import tarfile

    from lightning_modules.cli import main

    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()  # a valid tar without samples
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\0" * 10)
    for val, needle in ((empty, "error: no usable validation clips in default: "),
                        (garbage, "error: data source 'default': no readable sample in the first 1 shard(s) of ")):
        argv = ["train", "--config", str(TINY),
                *tiny_overrides(moving_shards, tmp_path / "run", steps=1, data__val_shards=str(val))]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(needle) and str(val) in err[0], err
