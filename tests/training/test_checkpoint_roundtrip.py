"""Checkpoints written by real (tiny) Trainer runs load everywhere a checkpoint is accepted: tracker.load_tracker,
`python -m tracker track`, model.init_from, with their architecture, window length and kind, through
torch.load(weights_only=True) and nothing else."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import tracker
from tracker.checkpoint import CheckpointError, read_checkpoint

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ["online", "offline"]


def _module_weights(path: Path) -> dict[str, torch.Tensor]:
    sd = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_checkpoints_are_plain_data(tiny_checkpoint, variant) -> None:
    """weights_only=True needs no allow-listed class for what training writes (config, loops, callbacks,
    optimizer and scheduler states), for every checkpoint of the run."""
    path = tiny_checkpoint(variant)
    for ckpt in sorted(path.parent.glob("*.ckpt")):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt) == [], ckpt
        obj = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert {"optimizer_states", "lr_schedulers", "callbacks", "loops", "hyper_parameters"} <= obj.keys()
    meta = torch.load(path, map_location="cpu", weights_only=True)["trackforge"]
    assert meta["variant"] == variant and meta["input_resolution"] == [64, 64]
    assert meta["arch"]["window_len"] == 8 and meta["arch"]["hidden_size"] == 64


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_load_tracker_rebuilds_the_trained_model(tiny_checkpoint, variant) -> None:
    path = tiny_checkpoint(variant)
    model = tracker.load_tracker(None, path)  # kind from the file
    cls = tracker.CoTracker3Online if variant == "online" else tracker.CoTracker3Offline
    assert type(model) is cls and model.window_len == 8 and model.model_resolution == (64, 64)
    trained = _module_weights(path)
    assert model.state_dict().keys() == trained.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    assert type(tracker.load_tracker(variant, path)) is cls
    other = "offline" if variant == "online" else "online"
    with pytest.raises(CheckpointError, match=f"holds an {variant} model, but variant '{other}'"):
        tracker.load_tracker(other, path)


@pytest.mark.slow
def test_checkpoint_without_metadata_reads_its_config(tiny_checkpoint, tmp_path) -> None:
    """Checkpoints written before the "trackforge" record: the stored config (model.arch with unset keys and
    `extra`, model.window_len, model.variant, data.resolution) defines the model."""
    obj = torch.load(tiny_checkpoint("online"), map_location="cpu", weights_only=True)
    meta = obj.pop("trackforge")
    assert obj["hyper_parameters"]["config"]["model"]["arch"]["mlp_ratio"] is None  # what tripped the old loader
    old = tmp_path / "old.ckpt"
    torch.save(obj, old)
    ckpt = read_checkpoint(old)
    assert ckpt.origin == "trackforge-config" and ckpt.kind == "online" and ckpt.input_resolution == (64, 64)
    model = tracker.load_tracker(None, old)
    assert model.arch == meta["arch"]


@pytest.mark.slow
def test_init_from_takes_architecture_and_window_from_the_checkpoint(tiny_checkpoint, moving_shards,
                                                                       tiny_overrides, tmp_path) -> None:
    from lightning_modules.config import ConfigError, load_train_config
    from lightning_modules.module import build_model

    path = tiny_checkpoint("offline")
    # The tiny test config without its model keys: everything about the model comes from the checkpoint.
    overrides = [o for o in tiny_overrides(moving_shards, tmp_path / "ft", steps=1)
                 if not o.startswith(("model.arch.", "model.window_len"))]
    cfg = load_train_config(None, [*overrides, f"model.init_from={path}", "model.variant=offline"])
    assert cfg.model.window_len == 8 and cfg.model.arch.hidden_size == 64
    assert list(cfg.model.arch.encoder_dims) == [16, 24, 32, 32] and list(cfg.model.arch.model_resolution) == [64, 64]
    model = build_model(cfg)
    trained = _module_weights(path)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
    with pytest.raises(ConfigError, match=r"model.arch.hidden_size=32 \(checkpoint: 64\)"):
        load_train_config(None, [*overrides, f"model.init_from={path}", "model.variant=offline",
                                 "model.arch.hidden_size=32"])
    with pytest.raises(ConfigError, match=r"model.window_len=16 \(checkpoint: 8\)"):
        load_train_config(None, [*overrides, f"model.init_from={path}", "model.variant=offline", "model.window_len=16"])
    with pytest.raises(ConfigError, match="holds an offline model"):
        load_train_config(None, [*overrides, f"model.init_from={path}", "model.variant=online"])


@pytest.mark.slow
def test_track_cli_with_a_trained_checkpoint(tiny_checkpoint, shared_dir, tmp_path) -> None:
    """The acceptance round trip: tiny training run, then `python -m tracker track bear.mp4 --checkpoint
    runs/<run>/checkpoints/last.ckpt --variant online` writes its npz and overlay (first 24 frames: the CPU
    budget; the whole clip takes the same path)."""
    clip = shared_dir / "data" / "bear.mp4"
    if not clip.is_file():
        pytest.skip(f"demo clip not found at {clip}")
    out, viz = tmp_path / "bear.npz", tmp_path / "bear.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-m", "tracker", "track", str(clip), "--checkpoint",
                           str(tiny_checkpoint("online")), "--variant", "online", "--max-frames", "24", "--out", str(out),
                           "--viz", str(viz)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    d = np.load(out)
    assert d["tracks"].shape == (24, 100, 2) and d["visibility"].shape == (24, 100)  # default 10x10 grid
    assert np.isfinite(d["tracks"]).all()
    from tracker.video import read_video

    frames, _ = read_video(viz)
    assert frames.shape == (24, 480, 854, 3)


@pytest.mark.slow
def test_track_cli_keep_aspect_runs_the_model_at_the_videos_aspect_ratio(tiny_checkpoint, shared_dir, tmp_path,
                                                                         capsys) -> None:
    """`track --keep-aspect` on 854x480 video with a model trained at 64x64: the model sees 64x112 frames (the
    video's aspect ratio at the short side 64), the grid is laid out at that size, and the result is what the
    Python API gives with the same input size (and not what it gives at 64x64)."""
    clip = shared_dir / "data" / "bear.mp4"
    if not clip.is_file():
        pytest.skip(f"demo clip not found at {clip}")
    import tracker
    from tracker.cli import grid_query_array, main
    from tracker.predictor import track
    from tracker.video import read_video

    ckpt, out = tiny_checkpoint("online"), tmp_path / "aspect.npz"
    assert main(["track", str(clip), "--checkpoint", str(ckpt), "--max-frames", "16", "--grid", "3", "--out", str(out),
                 "--keep-aspect"]) in (0, None)
    assert "model input 112x64 (the video's aspect ratio)" in capsys.readouterr().out
    frames, _ = read_video(clip, max_frames=16)
    model = tracker.load_tracker(None, ckpt).eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    with np.load(out) as d, torch.no_grad():
        np.testing.assert_allclose(d["queries"], grid_query_array(3, 0, 480, 854, (64, 112)), atol=1e-4)
        aspect = track(model, frames, grid_size=3, input_size=(64, 112))
        assert set(seen) == {(64, 112)}
        np.testing.assert_allclose(aspect.tracks[0].numpy(), d["tracks"], atol=1e-3)
        square = track(model, frames, grid_size=3)
        assert np.abs(square.tracks[0].numpy() - d["tracks"]).max() > 1.0
