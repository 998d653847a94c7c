"""Backward tracking: the queries of a run on the time-reversed video, and the merge of its results with the
forward run's (the frames before each query frame come from the reversed run)."""
from __future__ import annotations

import torch


def reverse_queries(queries: torch.Tensor, T: int) -> torch.Tensor:
    """queries (..., 3) (t, x, y) of a T-frame video -> the same points in the time-reversed video (t -> T - 1 - t)."""
    q = queries.clone()
    q[..., 0] = T - q[..., 0] - 1
    return q


def merge_backward(forward: torch.Tensor, backward: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """One result of both runs: forward (B, T, N, ...) from the forward run, backward the same from the run on the
    reversed video (still in reversed frame order); frames (B, N) query frames. Frames before a point's query frame
    take the backward run's value (flipped back), the others the forward run's."""
    T = forward.shape[1]
    before = torch.arange(T, device=frames.device)[None, :, None] < frames[:, None, :]  # (B, T, N)
    before = before.reshape(*before.shape, *[1] * (forward.ndim - 3))  # broadcast over trailing axes, e.g. (x, y)
    return torch.where(before, backward.flip(1), forward)
