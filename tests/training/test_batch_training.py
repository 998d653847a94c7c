"""Batches above one clip per device: a batch of B trains like B accumulated batches of one (loss and gradients),
with and without activation checkpointing of the update transformer, and a real Trainer run at batch size 2."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.config import load_train_config
from lightning_modules.module import build_model, recipe_loss, sample_queries
from lightning_modules.train import run_training
from tracker.losses import kubric_loss

REPO = Path(__file__).resolve().parents[2]
SMALL_ARCH = ["model.window_len=8", "model.arch.hidden_size=32", "model.arch.num_heads=4", "model.arch.time_depth=1",
              "model.arch.space_depth=1", "model.arch.num_virtual_tracks=8", "model.arch.latent_dim=16",
              "model.arch.corr_levels=2", "model.arch.corr_radius=2", "model.arch.corr_hidden=32",
              "model.arch.corr_dim=16", "model.arch.encoder_dims=[8,8,16,16]", "model.arch.encoder_fuse_dim=16",
              "model.arch.model_resolution=[32,48]", "data.clip_len=12"]


def _batch(B: int, L: int = 12, N: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    video = torch.randint(0, 256, (B, L, 3, 32, 48), generator=g).float()
    start = torch.rand(B, 1, N, 2, generator=g) * torch.tensor([47.0, 31.0])
    tracks = start + torch.cumsum(torch.randn(B, L, N, 2, generator=g), dim=1)  # random walks
    occluded = torch.linspace(0.1, 0.5, B)[:, None, None]  # clips differ in their share of visible points
    vis = torch.rand(B, L, N, generator=g) > occluded
    vis[:, 0] = True
    return video, tracks, vis


def _loss_and_grads(model, video, tracks, vis, queries, ok, iters=2):
    model.zero_grad()
    out = model(video, queries, iters=iters, is_train=True)
    loss = recipe_loss(out.train, tracks, vis, ok, coord_scale=512.0 / video.shape[-1])
    loss.total.backward()
    return loss, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("variant,checkpointing", [("online", False), ("offline", False), ("online", True)])
def test_batch_of_two_equals_two_batches_of_one(variant, checkpointing):
    overrides = [f"model.variant={variant}", f"model.activation_checkpointing={checkpointing}"]
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", SMALL_ARCH + overrides)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    assert model.updateformer.activation_checkpointing is checkpointing
    video, tracks, vis = _batch(2)
    queries, ok = sample_queries(tracks, vis, variant, torch.Generator().manual_seed(1))
    both, grads = _loss_and_grads(model, video, tracks, vis, queries, ok)
    singles = [_loss_and_grads(model, video[b : b + 1], tracks[b : b + 1], vis[b : b + 1], queries[b : b + 1],
                               ok[b : b + 1]) for b in range(2)]
    mean_total = (singles[0][0].total + singles[1][0].total) / 2
    assert torch.allclose(both.total, mean_total, rtol=1e-5), (both.total, mean_total)
    assert both.confidence.shape == (2,)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, g in grads.items():
        mean = (singles[0][1][k] + singles[1][1][k]) / 2
        assert (g - mean).abs().max().item() <= 1e-4 * max(mean.abs().max().item(), 1e-3 * largest), k
    # ... which the recipe's masked means taken jointly over both clips (weighting clips by their visible-point
    # counts, the pre-batching behaviour) would not give
    with torch.no_grad():
        tr = model(video, queries, iters=2, is_train=True).train
    scale = 512.0 / video.shape[-1]
    valid = tr.valid.float() * ok[:, None, None].float()
    windows = [slice(s, s + c.shape[2]) for s, c in zip(tr.window_starts, tr.coords)]
    joint = kubric_loss([c * scale for c in tr.coords], tr.vis, tr.conf, [tracks[:, w] * scale for w in windows],
                        [vis[:, w].float() for w in windows], [valid[:, w] for w in windows])
    assert not torch.allclose(joint.total, mean_total, rtol=1e-3), (joint.total, mean_total)


@pytest.mark.slow
def test_trainer_runs_batch_of_two_with_checkpointing(moving_shards: Path, tmp_path: Path, tiny_overrides):
    """Two optimizer steps of the real Trainer at data.batch_size=2 with activation checkpointing."""
    cfg = load_train_config(REPO / "configs/train/tiny_cpu.yaml", tiny_overrides(
        moving_shards, tmp_path / "run", steps=2, data__batch_size=2, model__activation_checkpointing="true",
        data__shards=f"{moving_shards}/shard-000000.tar", data__val_shards=f"{moving_shards}/shard-000001.tar"))
    result = run_training(cfg)
    assert result.global_step == 2 and np.isfinite(result.train_losses).all()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["hyper_parameters"]["config"]["data"]["batch_size"] == 2
    assert saved["hyper_parameters"]["config"]["model"]["activation_checkpointing"] is True
