"""Point sampling in the align-corners / border-clamp convention of CoTracker3 (spec 2.4).

Coordinates are continuous pixels of the map being sampled, integer values at cell centres. We go through
`grid_sample` exactly like the reference (scale by 2/max(size-1, 1), subtract 1) because that round trip is
what makes results bit-identical.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _normalise(coords: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Map pixel coordinates (..., len(sizes)) to grid_sample's [-1, 1] space; sizes in the same order."""
    scale = torch.tensor([2.0 / max(s - 1, 1) for s in sizes], dtype=coords.dtype, device=coords.device)
    return coords * scale - 1


def grid_sample_coordinate(coords: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The pixel coordinate `grid_sample` (align corners, border padding) really samples for `coords` (..., k), with
    sizes in the same order: our normalisation, its unnormalisation (n + 1) (size - 1) / 2 in float32 and the border
    clip. (The round trip moves coordinates by up to an ulp; samplers that must agree with grid_sample use this.)"""
    half = torch.tensor([(s - 1) / 2 for s in sizes], dtype=coords.dtype, device=coords.device)
    pix = (_normalise(coords, sizes) + 1) * half
    return torch.minimum(torch.maximum(pix, torch.zeros_like(half)), 2 * half)


def sample_points(fmap: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of `fmap` (M, C, H, W) at `xy` (M, P, Q, 2) (x, y) pixels -> (M, C, P, Q)."""
    H, W = fmap.shape[-2:]
    grid = _normalise(xy, [W, H])
    return F.grid_sample(fmap, grid, mode="bilinear", padding_mode="border", align_corners=True)


def sample_video_points(fmaps: torch.Tensor, txy: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of a feature video.

    fmaps: (B, T, C, H, W); txy: (B, P, Q, 3) as (t, x, y) with t a frame index (clamped to [0, T-1]).
    Returns (B, C, P, Q).
    """
    T, _, H, W = fmaps.shape[1:]
    grid = _normalise(txy[..., [1, 2, 0]], [W, H, T])  # grid_sample wants (x, y, t)
    out = F.grid_sample(
        fmaps.permute(0, 2, 1, 3, 4), grid.unsqueeze(3), mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.squeeze(-1)


def patch_offsets(radius: int, device: torch.device | None = None) -> torch.Tensor:
    """The (2r+1)^2 integer offsets (dx, dy) of a square patch, x-major (dx outer, dy inner): ((2r+1)^2, 2)."""
    d = torch.linspace(-radius, radius, 2 * radius + 1, device=device)
    dx, dy = torch.meshgrid(d, d, indexing="ij")
    return torch.stack([dx, dy], dim=-1).reshape(-1, 2)


def resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear align-corners resize of every frame: (B, T, C, H, W) -> (B, T, C, size[0], size[1])."""
    B, T = video.shape[:2]
    if tuple(video.shape[-2:]) == tuple(size):
        return video
    out = F.interpolate(video.reshape(B * T, *video.shape[2:]), size=tuple(size), mode="bilinear", align_corners=True)
    return out.reshape(B, T, video.shape[2], *size)
