"""Query support patches and the 4-D local correlation with its MLP (spec sections 5 and 6)."""
from __future__ import annotations

import torch

from .sampling import patch_offsets, sample_points, sample_video_points
from .transformer import Mlp


class CorrMLP(Mlp):
    """Linear (2r+1)^4 -> hidden, exact GELU, Linear hidden -> out; PyTorch default init (spec 15)."""

    def __init__(self, in_dim: int = 2401, hidden: int = 384, out_dim: int = 256) -> None:
        super().__init__(in_dim, hidden, out_dim, approximate="none")


def support_features(fmaps: torch.Tensor, frames: torch.Tensor, xy: torch.Tensor, radius: int) -> torch.Tensor:
    """Sample each query's (2r+1)^2 support patch at its own frame.

    fmaps: (B, T, C, H, W) one pyramid level; frames: (B, N) integer frame indices (clamped to the video);
    xy: (B, N, 2) positions in this level's units. Returns (B, P*P, N, C), patch index x-major (pitfall 1).
    """
    offsets = patch_offsets(radius, device=xy.device).to(xy.dtype)
    offsets = torch.cat([torch.zeros_like(offsets[:, :1]), offsets], dim=-1)  # (P*P, 3) as (0, dx, dy)
    centre = torch.cat([frames.to(xy.dtype)[..., None], xy], dim=-1)  # (B, N, 3) as (t, x, y)
    points = centre[:, None] + offsets[None, :, None]  # (B, P*P, N, 3)
    return sample_video_points(fmaps, points).permute(0, 2, 3, 1)


def local_correlation(fmaps: torch.Tensor, support: torch.Tensor, coords: torch.Tensor, radius: int) -> torch.Tensor:
    """Correlate the local patch around every current position with the query's support patch.

    fmaps: (B, S, C, H, W); support: (B, P*P, N, C); coords: (B, S, N, 2) in this level's units.
    Returns (B*S*N, P^4) with rows ordered (b, s, n) and columns (target dx, target dy, support dx, support dy)
    row-major (pitfall 2).
    """
    B, S, C, H, W = fmaps.shape
    N = coords.shape[2]
    offsets = patch_offsets(radius, device=coords.device).to(coords.dtype)
    points = coords.reshape(B * S, N, 1, 2) + offsets  # (B*S, N, P*P, 2)
    local = sample_points(fmaps.reshape(B * S, C, H, W), points).view(B, S, C, N, -1)  # (B, S, C, N, P*P)
    corr = torch.einsum("bscnp,bqnc->bsnpq", local, support)
    return corr.reshape(B * S * N, -1)
