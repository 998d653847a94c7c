"""Sinusoidal time embedding and displacement encoding of the tokens (spec section 7)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

NUM_FREQS = 10  # displacement encoding frequencies 2^0 .. 2^9
DISP_DIM = 4 + 2 * 4 * NUM_FREQS  # 84


def time_embedding_table(length: int, dim: int) -> torch.Tensor:
    """(1, length, dim): [sin(p w_k) for k < dim/2, cos(p w_k) ...], w_k = 10000^(-k/(dim/2)), float64 -> float32."""
    half = dim // 2
    omega = 1.0 / 10000 ** (np.arange(half, dtype=np.float64) / half)
    arg = np.arange(length, dtype=np.float64)[:, None] * omega[None]
    table = np.concatenate([np.sin(arg), np.cos(arg)], axis=1)
    return torch.from_numpy(table).float()[None]


def resample_time_embedding(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linear (align_corners=False) resampling of a (1, W, D) table to (1, length, D); identity when W == length."""
    if table.shape[1] == length:
        return table
    return F.interpolate(table.float().permute(0, 2, 1), size=length, mode="linear").permute(0, 2, 1).to(table.dtype)


def displacement_encoding(coords: torch.Tensor, scale: tuple[float, float], time_dim: int = 1) -> torch.Tensor:
    """coords (B, S, N, 2) feature units (time on `time_dim`; (B, N, S, 2) with time_dim=2) -> the same leading shape
    with 84 values: the encoding of forward/backward frame differences.

    scale = (model W, model H) / stride: the differences are divided by the *model* resolution (pitfall 7).
    """
    S = coords.shape[time_dim]
    zero = torch.zeros_like(coords.narrow(time_dim, 0, 1))
    fwd = torch.cat([coords.narrow(time_dim, 0, S - 1) - coords.narrow(time_dim, 1, S - 1), zero], dim=time_dim)
    bwd = torch.cat([zero, coords.narrow(time_dim, 1, S - 1) - coords.narrow(time_dim, 0, S - 1)], dim=time_dim)
    div = torch.tensor(scale, dtype=coords.dtype, device=coords.device)
    u = torch.cat([fwd / div, bwd / div], dim=-1)  # (..., 4)
    freqs = 2.0 ** torch.arange(NUM_FREQS, dtype=coords.dtype, device=coords.device)
    z = (u[..., None, :] * freqs[:, None]).flatten(-2)  # index 4*s + c: frequency-major
    # cos as sin(z + pi/2) like the reference, for bit-level agreement.
    return torch.cat([u, torch.sin(torch.cat([z, z + 0.5 * math.pi], dim=-1))], dim=-1)
