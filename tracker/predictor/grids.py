"""Query grids: regular point grids over a frame, as (x, y) points or (t, x, y) queries, optionally inside a mask.

The grid rule is the official one (spec 12): a size x size lattice with a margin of w/64 on both axes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def grid_points(size: int, extent: Sequence[float], center: Sequence[float] | None = None, device=None) -> torch.Tensor:
    """A size x size grid over extent (h, w), centred at (c_y, c_x) (default the extent's centre).

    Margin w/64 on both axes; returns (1, size*size, 2) as (x, y), row-major (y outer)."""
    h, w = extent
    if size == 1:
        return torch.tensor([w / 2, h / 2], device=device)[None, None]
    cy, cx = (h / 2, w / 2) if center is None else center
    margin = w / 64
    ys = torch.linspace(margin - h / 2 + cy, h / 2 + cy - margin, size, device=device)
    xs = torch.linspace(margin - w / 2 + cx, w / 2 + cx - margin, size, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).reshape(1, -1, 2)


def grid_queries(size: int, extent: Sequence[float], frame: float = 0, batch: int = 1, device=None) -> torch.Tensor:
    """(batch, size*size, 3) queries (frame, x, y) on `grid_points(size, extent)`."""
    pts = grid_points(size, extent, device=device)
    return torch.cat([torch.full_like(pts[..., :1], float(frame)), pts], dim=-1).expand(batch, -1, -1).clone()


def mask_grid(grid: torch.Tensor, segm_mask, size_model: tuple[int, int]) -> torch.Tensor:
    """The grid queries (B, M, 3) (t, x, y) in model pixels that fall where the mask is non-zero.

    segm_mask: (H, W), (1, H, W) or (1, 1, H, W) array or tensor at any resolution; its first mask is resized to
    size_model (h, w) by nearest neighbour and read at each query's rounded position. Returns (B, M', 3)."""
    mask = _as_mask(segm_mask).to(grid.device)
    mask = F.interpolate(mask.float(), size=tuple(size_model), mode="nearest")[0, 0]
    keep = mask[grid[0, :, 2].round().long(), grid[0, :, 1].round().long()].bool()
    return grid[:, keep]


def _as_mask(segm_mask) -> torch.Tensor:
    """A mask array or tensor with leading axes added up to 4 dimensions (N, C, H, W)."""
    m = torch.as_tensor(np.asarray(segm_mask)) if not isinstance(segm_mask, torch.Tensor) else segm_mask
    while m.ndim < 4:
        m = m[None]
    return m
