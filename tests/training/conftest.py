"""Fixtures for the training tests: tiny configs, a tiny trained checkpoint, benchmark files made from the rendered
test data (moving_shards, in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tiny_overrides(shards: Path, run_dir: Path, *, steps: int, logger: str = "csv", **extra: object) -> list[str]:
    """A very small online model and data setting for CPU tests (each step well under a second)."""
    base = {
        "name": "test",
        "run_dir": str(run_dir),
        "data.shards": f"{shards}/shard-*.tar",
        "data.num_val_shards": 1,
        "data.resolution": "[64,64]",
        "data.clip_len": 12,
        "data.num_tracks": 48,
        "data.min_tracks": 8,
        "data.num_workers": 0,
        "data.shuffle_buffer": 2,
        "data.epoch_samples": 20,
        "data.val_clips": 2,
        "data.val_num_tracks": 64,
        "data.augment.scale_range": "[0.9,1.1]",
        "data.augment.eraser_size": "[2,12]",
        "data.augment.pad_max": 4,
        "data.augment.crop_jitter": 3,
        "model.window_len": 8,
        "model.arch.hidden_size": 64,
        "model.arch.num_heads": 4,
        "model.arch.time_depth": 1,
        "model.arch.space_depth": 1,
        "model.arch.num_virtual_tracks": 8,
        "model.arch.latent_dim": 32,
        "model.arch.corr_levels": 2,
        "model.arch.corr_radius": 2,
        "model.arch.corr_hidden": 64,
        "model.arch.corr_dim": 32,
        "model.arch.encoder_dims": "[16,24,32,32]",
        "model.arch.encoder_fuse_dim": 64,
        "model.arch.model_resolution": "[64,64]",
        "trainer.max_steps": steps,
        "trainer.val_check_interval": steps,
        "trainer.accelerator": "cpu",
        "trainer.devices": 1,
        "trainer.threads": 1,
        "trainer.enable_progress_bar": "false",
        "logger.kind": logger,
        "logger.video_every_n_steps": steps,
    }
    base.update({k.replace("__", "."): v for k, v in extra.items()})
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="session")
def tiny_overrides():
    """The function building small test configs: tiny_overrides(shards, run_dir, steps=..., **extra)."""
    return _tiny_overrides


@pytest.fixture(scope="session")
def tiny_checkpoint(moving_shards: Path, tmp_path_factory):
    """tiny_checkpoint(variant) -> last.ckpt of a real 2-step Trainer run of the tiny test model ("online" or
    "offline"), trained once per session and variant (about 5 s each on 2 cores)."""
    from lightning_modules.config import load_train_config
    from lightning_modules.train import run_training

    made: dict[str, Path] = {}

    def get(variant: str = "online") -> Path:
        if variant not in made:
            run_dir = tmp_path_factory.mktemp(f"tiny-{variant}") / "run"
            cfg = load_train_config(REPO_ROOT / "configs" / "train" / "tiny_cpu.yaml", _tiny_overrides(
                moving_shards, run_dir, steps=2, model__variant=variant,
                data__shards=f"{moving_shards}/shard-000000.tar", data__val_shards=f"{moving_shards}/shard-000001.tar"))
            made[variant] = Path(run_training(cfg).last_checkpoint)
        return made[variant]

    return get


@pytest.fixture(scope="session")
def benchmarks(moving_shards: Path, tmp_path_factory) -> dict[str, Path]:
    """The 2 held-out clips of the rendered test data, 6 tracks each, written as: a TAP-Vid pickle (video 0 uint8,
    video 1 JPEG bytes), one shard, sparse .npz files (every other frame unlabelled, with an object area), and a
    one-video two-track pickle (for single-point mode, one model call per query)."""
    import io
    import pickle

    import numpy as np
    from PIL import Image

    from datagen.formats.sample import TrackSample
    from datagen.formats import open_source, writer

    root = tmp_path_factory.mktemp("bench")
    samples = []
    for s in open_source(str(moving_shards / "shard-000001.tar")):
        keep = np.flatnonzero(s.visibility[0])[:6]  # visible in frame 0: "first" queries them all
        samples.append(TrackSample(video=s.video, tracks=s.tracks[:, keep], visibility=s.visibility[:, keep],
                                   key=s.key))
    records = {}
    for i, s in enumerate(samples):
        video = s.video
        if i == 1:
            video = []
            for frame in s.video:
                buf = io.BytesIO()
                Image.fromarray(frame).save(buf, format="JPEG", quality=95)
                video.append(buf.getvalue())
        records[s.key] = {"video": video, "points": (s.tracks / np.float32(s.width - 1)).transpose(1, 0, 2),
                          "occluded": ~s.visibility.T}
    (root / "tapvid.pkl").write_bytes(pickle.dumps(records))
    # Single-point mode runs the model once per query: one video, two tracks.
    writer("tapvid")([TrackSample(video=samples[0].video, tracks=samples[0].tracks[:, :2],
                                  visibility=samples[0].visibility[:, :2], key="two")], root / "two.pkl")
    writer("shards")(samples[:1], root / "shards")
    sparse = []
    for s in samples:
        tracks = s.tracks.copy()
        tracks[1::2, ::2] = np.nan  # even tracks labelled on even frames only
        sparse.append(TrackSample(video=s.video, tracks=tracks, visibility=s.visibility, key=s.key,
                                  meta={"seg_area": [400.0] * s.num_frames}))
    writer("sparse_npz")(sparse, root / "sparse")
    return {"tapvid": root / "tapvid.pkl", "shards": root / "shards", "sparse": root / "sparse",
            "two": root / "two.pkl"}


@pytest.fixture(scope="session")
def davis_folder(tmp_path_factory) -> Path:
    """A tiny DAVIS root (tests/conftest.write_davis_sequence), 8 frames of 48x64 each: "goat" (animals) and
    "parkour" (people) with single-object 0/255 masks, "kite" (no group: other) with a two-object palette mask."""
    from tests.conftest import moving_square_video, write_davis_sequence

    root = tmp_path_factory.mktemp("davis")
    write_davis_sequence(root, "goat", *moving_square_video(T=8, H=48, W=64, size=16, step=2, seed=1))
    write_davis_sequence(root, "parkour", *moving_square_video(T=8, H=48, W=64, size=14, step=3, seed=2))
    video, masks = moving_square_video(T=8, H=48, W=64, size=14, x0=30, y0=4, step=1, seed=3)
    masks[:, 30:44, 6:20] = 2  # a second object that stays
    write_davis_sequence(root, "kite", video, masks, palette=True)
    return root
