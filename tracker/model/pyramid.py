"""The feature pyramid of the default implementation and the window-gather sampling it serves.

Why a second sampler: the reference samples every 7x7 patch with `grid_sample` (four texel reads per point and
channel, output channel-major) and then permutes 2401-wide correlation rows around. Here the maps are stored
channels-last, so a patch position costs one contiguous read of a C-vector: each (track, frame) takes one
K x K integer window (K = 2r + 2) and the bilinear weights are applied afterwards, to the features themselves
(support patches) or, cheaper, to their correlations with the support patch (the local correlation), since
bilinear interpolation is linear. Rows come out in (b, n, s) order, the order the transformer wants.

Border clamping (spec 2.4) without per-sample clamps: every level is padded with PAD = 2r + 2 replicated pixels
per side and a position is clamped to [-(r + 1), size + r] before its window is taken, so a sample beyond the border
reads replicated values only, which is what the align-corners / border sampler returns there.

Interpolation weights come from each sample point's coordinate after the same normalise / unnormalise round trip
that `grid_sample` performs (clipped like it), so they equal the reference's bit for bit; what differs is only the
order of the sums (about 1e-7 relative).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .sampling import grid_sample_coordinate


def pyramid_pad(radius: int) -> int:
    """Replicated border (pixels per side) that keeps every sampling window of radius `radius` inside a level."""
    return 2 * radius + 2


def pyramid_min_side(levels: int, stride: int = 4) -> int:
    """The smallest input side (pixels) whose stride-`stride` feature map keeps at least one pixel on every one of
    `levels` levels (each level average-pools the previous one by 2, flooring): stride * 2^(levels - 1)."""
    return stride * 2 ** (max(int(levels), 1) - 1)


@dataclass
class FeaturePyramid:
    """levels: per level (B, T, h_l + 2 pad, w_l + 2 pad, C) replicate-padded channels-last features;
    sizes: the unpadded (h_l, w_l); start / length: the frames [start, start + length) a window view covers."""

    levels: list[torch.Tensor]
    sizes: list[tuple[int, int]]
    pad: int
    start: int = 0
    length: int = 0

    @classmethod
    def empty(cls, batch: int, frames: int, channels: int, size: tuple[int, int], num_levels: int, pad: int,
              *, dtype: torch.dtype, device: torch.device) -> FeaturePyramid:
        sizes = [tuple(size)]
        for _ in range(num_levels - 1):
            sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))  # average pooling floors odd sizes
        levels = [torch.empty(batch, frames, h + 2 * pad, w + 2 * pad, channels, dtype=dtype, device=device)
                  for h, w in sizes]
        return cls(levels, sizes, pad, 0, frames)

    def write(self, first: int, fmap: torch.Tensor) -> None:
        """Store the level-0 features fmap (M, C, h_0, w_0) of the flattened (b-major) frames [first, first + M)
        and their average-pooled levels (pooled maps are not re-normalised, spec 4)."""
        for lvl, level in enumerate(self.levels):
            if lvl:
                fmap = F.avg_pool2d(fmap, 2, stride=2)
            padded = F.pad(fmap, (self.pad,) * 4, mode="replicate")
            level.flatten(0, 1)[first : first + fmap.shape[0]].copy_(padded.permute(0, 2, 3, 1))

    def window(self, start: int, length: int) -> FeaturePyramid:
        """View of frames [start, start + length) of this pyramid (no copy)."""
        return replace(self, start=self.start + start, length=length)


def _gather_windows(level: torch.Tensor, size: tuple[int, int], pad: int, frames: torch.Tensor, xy: torch.Tensor,
                    radius: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer windows around sample positions and the bilinear weights of the patch points inside them.

    level (B, T, hp, wp, C); frames (B, R) absolute frame indices (long); xy (B, R, 2) positions in level units.
    Returns windows (B, R, K, K, C) with K = 2r + 2, indexed (x, y) (x-major like the patches, spec pitfall 1),
    and weights wx, wy (B, R, 2r + 1): patch point k interpolates between window entries k and k + 1 with weight w_k.
    """
    B, T, hp, wp, C = level.shape
    h, w = size
    K = 2 * radius + 2
    limits = xy.new_tensor([w + radius, h + radius])
    inside = torch.minimum(torch.maximum(torch.nan_to_num(xy), limits.new_tensor(-radius - 1.0)), limits)
    corner = inside.floor() - radius  # window entry 0, unpadded units
    cx, cy = corner.long().unbind(-1)
    batch = torch.arange(B, device=xy.device)[:, None]
    base = ((batch * T + frames) * hp + cy + pad) * wp + cx + pad  # (B, R) flat index of the window's first pixel
    steps = torch.arange(K, device=xy.device)
    offsets = (steps[:, None] + steps[None, :] * wp).reshape(-1)  # x outer, y inner
    index = (base[..., None] + offsets).reshape(-1)
    windows = level.reshape(-1, C).index_select(0, index).view(B, -1, K, K, C)
    # Weights from the sample points' coordinates exactly as grid_sample sees them (round trip, border clip).
    offs = torch.arange(-radius, radius + 1, device=xy.device, dtype=xy.dtype)
    points = xy[..., None, :] + offs[:, None]  # (B, R, P, 2) as in the reference: position + offset
    weights = grid_sample_coordinate(points, (w, h)) - (corner[..., None, :] + (offs[:, None] + radius))
    weights = weights.clamp(0, 1)  # beyond the border both window entries hold the same replicated value
    return windows, weights[..., 0], weights[..., 1]


def _lerp_xy(values: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor, x_dim: int) -> torch.Tensor:
    """Bilinear combination over the window axes x_dim (size K) and x_dim + 1 (size K) -> P x P (P = K - 1).

    wx, wy broadcast against `values` with the window axes at x_dim and x_dim + 1."""
    P = values.shape[x_dim] - 1
    wx, wy = wx.to(values.dtype), wy.to(values.dtype)
    vx = torch.lerp(values.narrow(x_dim, 0, P), values.narrow(x_dim, 1, P), wx)
    return torch.lerp(vx.narrow(x_dim + 1, 0, P), vx.narrow(x_dim + 1, 1, P), wy)


def support_patches(pyramid: FeaturePyramid, lvl: int, frames: torch.Tensor, xy: torch.Tensor,
                    radius: int) -> torch.Tensor:
    """(2r+1)^2 support patch of every query at its own frame: frames (B, N) indices into the pyramid's window
    (clamped to it, like the reference's border clamp in time), xy (B, N, 2) level units -> (B, P*P, N, C), x-major."""
    frames = frames.clamp(0, pyramid.length - 1) + pyramid.start
    windows, wx, wy = _gather_windows(pyramid.levels[lvl], pyramid.sizes[lvl], pyramid.pad, frames, xy, radius)
    patch = _lerp_xy(windows, wx[..., :, None, None], wy[..., None, :, None], x_dim=2)  # (B, N, P, P, C)
    return patch.flatten(2, 3).transpose(1, 2).contiguous()


def local_correlation(pyramid: FeaturePyramid, lvl: int, support: torch.Tensor, coords: torch.Tensor,
                      radius: int) -> torch.Tensor:
    """The 4-D correlation of the local patches at the current positions with the support patches.

    support (B, n, C, P*P) for a block of n tracks (contiguous: one matrix per track); coords (B, n, S, 2) in
    this level's units for the S frames of the pyramid's window. Returns (B, n, S, P^4) with columns (target dx,
    target dy, support dx, support dy) row-major (spec pitfall 2): equal to the reference's rows, reordered (b, n, s).
    """
    B, n, S, _ = coords.shape
    C, PP = support.shape[-2:]
    frames = (pyramid.start + torch.arange(S, device=coords.device)).expand(B, n, S).reshape(B, n * S)
    windows, wx, wy = _gather_windows(pyramid.levels[lvl], pyramid.sizes[lvl], pyramid.pad, frames,
                                      coords.reshape(B, n * S, 2), radius)
    K = windows.shape[2]
    # One matrix product per track: its S*K*K window vectors against its P*P support vectors.
    corr = torch.bmm(windows.view(B * n, S * K * K, C), support.reshape(B * n, C, PP).to(windows.dtype))
    corr = corr.view(B, n, S, K, K, PP)
    wx = wx.view(B, n, S, -1)[..., :, None, None]
    wy = wy.view(B, n, S, -1)[..., None, :, None]
    return _lerp_xy(corr, wx, wy, x_dim=3).reshape(B, n, S, -1)
