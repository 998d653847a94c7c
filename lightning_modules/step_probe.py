"""One optimizer step of the training recipe outside Lightning, on random clips of a config's shapes.

What the training step costs on this machine is measured with it: by `bench/bench_train.py` (throughput) and by
`time_budget` (how many steps fit a wall-clock budget). A step = `sample_queries` + forward with training outputs
(model.train_iters) + the recipe loss (`module.configured_loss`) + backward + gradient clipping + AdamW + OneCycle,
as `TrackerModule.training_step` and Lightning's loop run it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RandomClips:
    """video (B, T, 3, H, W) float in [0, 255]; tracks (B, T, N, 2) px, a random walk from a uniform start;
    vis (B, T, N) bool, ~80 % visible and all visible in frame 0 (every track has a query)."""

    video: torch.Tensor
    tracks: torch.Tensor
    vis: torch.Tensor


def random_clips(batch: int, frames: int, tracks: int, hw: tuple[int, int], generator: torch.Generator,
                 device: str | torch.device = "cpu") -> RandomClips:
    """Random clips of the given shapes (their values do not change a step's cost)."""
    H, W = hw
    video = (torch.rand(batch, frames, 3, H, W, generator=generator) * 255).to(device)
    start = torch.rand(batch, 1, tracks, 2, generator=generator) * torch.tensor([W - 1, H - 1])
    walk = start + torch.cumsum(torch.randn(batch, frames, tracks, 2, generator=generator), dim=1)
    vis = torch.rand(batch, frames, tracks, generator=generator) > 0.2
    vis[:, 0] = True
    return RandomClips(video, walk.to(device), vis.to(device))


def forward_loss(model: torch.nn.Module, model_cfg, clips: RandomClips):
    """The forward half of a training step: (the model's output, its KubricLoss). model_cfg: a ModelConfig (variant,
    train_iters, loss settings). Runs under whatever autocast / implementation context the caller set."""
    from .module import configured_loss, sample_queries

    queries, ok = sample_queries(clips.tracks, clips.vis, model_cfg.variant)
    out = model(clips.video, queries, iters=model_cfg.train_iters, is_train=True)
    return out, configured_loss(model_cfg, out.train, clips.tracks, clips.vis, ok, clips.video.shape[-1])


def apply_gradients(model: torch.nn.Module, opt: torch.optim.Optimizer, sched, loss, clip_norm: float = 1.0) -> None:
    """The rest of the step, outside autocast as Lightning runs it: backward, clipping, AdamW, the schedule."""
    loss.total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)
