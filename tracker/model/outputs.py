"""Output containers of the tracker models (the contract the training code is written against)."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainOutput:
    """Per-window, per-iteration predictions (only returned with is_train=True).

    coords: one (I, B, S_w, N, 2) tensor per window, pixels of the model input;
    vis, conf: one (I, B, S_w, N) tensor of probabilities per window;
    window_starts: first frame of each window; valid: (B, T, N) bool supervision mask.
    """

    coords: list[torch.Tensor]
    vis: list[torch.Tensor]
    conf: list[torch.Tensor]
    window_starts: list[int]
    valid: torch.Tensor


@dataclass
class TrackerOutput:
    """coords (B, T, N, 2) pixels (x, y); vis, conf (B, T, N) probabilities; train only when is_train."""

    coords: torch.Tensor
    vis: torch.Tensor
    conf: torch.Tensor
    train: TrainOutput | None = None
