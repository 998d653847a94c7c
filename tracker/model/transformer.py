"""The update transformer (spec section 8): time attention per track, space attention through virtual tracks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from .implementation import reference_enabled
from .linear import Linear


class Attention(nn.Module):
    """Multi-head attention with separate q and fused kv projections (all with bias), no mask."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.to_q = Linear(dim, dim)
        self.to_kv = Linear(dim, 2 * dim)
        self.to_out = Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, seq_dim: int = -2) -> torch.Tensor:
        """x (..., D) with the attended sequence on axis `seq_dim` (every other axis but the last is a batch axis);
        context the same with its own sequence length (default x). Returns x's shape.

        Default: `scaled_dot_product_attention` (flash / memory-efficient kernels where available, no (L, L')
        matrix in memory). Reference implementation: the materialised softmax(q k^T / sqrt(d)) v on (M, L, D)."""
        context = x if context is None else context
        if reference_enabled():
            return self._reference(x, context, seq_dim)
        q, batch = self._heads(self.to_q(x), seq_dim)
        k, v = (self._heads(t, seq_dim)[0] for t in self.to_kv(context).chunk(2, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)  # (M, H, L, d)
        out = out.transpose(1, 2).reshape(*batch, q.shape[2], -1)
        return self.to_out(out).movedim(-2, seq_dim)

    def _heads(self, t: torch.Tensor, seq_dim: int) -> tuple[torch.Tensor, torch.Size]:
        """(..., D) with the sequence on seq_dim -> (M, heads, L, D / heads) and the batch shape of the M rows."""
        t = t.movedim(seq_dim, -2)
        batch = t.shape[:-2]
        t = t.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)
        return t.reshape(-1, *t.shape[-3:]), batch

    def _reference(self, x: torch.Tensor, context: torch.Tensor, seq_dim: int) -> torch.Tensor:
        if x.ndim != 3 or seq_dim not in (1, -2):
            raise ValueError("the reference attention takes (M, L, D) tensors")
        q = rearrange(self.to_q(x), "m l (h d) -> m h l d", h=self.num_heads)
        k, v = (rearrange(t, "m l (h d) -> m h l d", h=self.num_heads) for t in self.to_kv(context).chunk(2, dim=-1))
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.to_out(rearrange(attn @ v, "m h l d -> m l (h d)"))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (tanh GELU in the transformer, exact GELU in the correlation MLP; pitfall 3)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, approximate: str) -> None:
        super().__init__()
        self.fc1 = Linear(in_dim, hidden)
        self.fc2 = Linear(hidden, out_dim)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


def _ln(x: torch.Tensor) -> torch.Tensor:
    # Parameter-free pre-norm, eps 1e-6 (pitfall 4).
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


class AttnBlock(nn.Module):
    """Pre-norm self-attention block: x + Attn(LN x); x + MLP(LN x)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.attn = Attention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, approximate="tanh")

    def forward(self, x: torch.Tensor, seq_dim: int = -2) -> torch.Tensor:
        x = x + self.attn(_ln(x), seq_dim=seq_dim)
        return x + self.mlp(_ln(x))


class CrossAttnBlock(nn.Module):
    """Pre-norm cross-attention block; the context norm is affine with eps 1e-5."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, approximate="tanh")

    def forward(self, x: torch.Tensor, context: torch.Tensor, seq_dim: int = -2) -> torch.Tensor:
        x = x + self.cross_attn(_ln(x), self.norm_context(context), seq_dim=seq_dim)
        return x + self.mlp(_ln(x))


class UpdateFormer(nn.Module):
    """tokens (B, N, S, in_dim) -> updates (B, N, S, 4) = (dx, dy in feature units, dvis, dconf logits)."""

    def __init__(self, in_dim: int, *, hidden_size: int, num_heads: int, time_depth: int, space_depth: int,
                 num_virtual_tracks: int, mlp_ratio: float) -> None:
        """Sizes come from CoTracker3Base, which holds the official defaults."""
        super().__init__()
        if space_depth < 1 or time_depth % space_depth:
            raise ValueError(f"time_depth ({time_depth}) must be a positive multiple of space_depth ({space_depth})")
        self.num_virtual_tracks = num_virtual_tracks
        # Recompute each block's activations in the backward pass instead of storing them (training memory).
        self.activation_checkpointing = False
        self.space_every = time_depth // space_depth
        # Official (misspelt) name, kept so that checkpoints load.
        self.virual_tracks = nn.Parameter(torch.randn(1, num_virtual_tracks, 1, hidden_size))
        self.input_transform = Linear(in_dim, hidden_size)
        self.flow_head = Linear(hidden_size, 2)
        self.vis_conf_head = Linear(hidden_size, 2)
        self.time_blocks = nn.ModuleList(AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(time_depth))
        self.space_virtual_blocks = nn.ModuleList(
            AttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)
        )
        self.space_point2virtual_blocks = nn.ModuleList(
            CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)
        )
        self.space_virtual2point_blocks = nn.ModuleList(
            CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(space_depth)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Spec 15: Xavier-uniform Linear weights, zero biases, tiny heads, N(0, 1) virtual tracks."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.flow_head.weight, std=0.001)
        nn.init.trunc_normal_(self.vis_conf_head.weight, std=0.001)
        nn.init.normal_(self.virual_tracks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reference layout: tokens (B, N, S, in_dim) are rearranged to (B*N, S, C) for time attention and to
        (B*S, N, C) for space attention (what the official code does)."""
        B, N, S, _ = x.shape
        tokens = self.input_transform(x)
        virtual = self.virual_tracks.expand(B, -1, S, -1)
        tokens = torch.cat([tokens, virtual], dim=1)  # virtual tracks after the real ones
        j = 0
        for i, block in enumerate(self.time_blocks):
            tokens = rearrange(self._run(block, rearrange(tokens, "b n s c -> (b n) s c")), "(b n) s c -> b n s c", b=B)
            if i % self.space_every == 0 and j < len(self.space_virtual_blocks):
                space = rearrange(tokens, "b n s c -> (b s) n c")
                points, virt = space[:, :N], space[:, N:]
                virt = self._run(self.space_virtual2point_blocks[j], virt, points)
                virt = self._run(self.space_virtual_blocks[j], virt)
                points = self._run(self.space_point2virtual_blocks[j], points, virt)
                tokens = rearrange(torch.cat([points, virt], dim=1), "(b s) n c -> b n s c", b=B)
                j += 1
        tokens = tokens[:, :N]
        return torch.cat([self.flow_head(tokens), self.vis_conf_head(tokens)], dim=-1)

    def forward_embedded(self, points: torch.Tensor) -> torch.Tensor:
        """Default layout: projected tokens points = input_transform(tokens) (B, N, S, hidden) -> (B, N, S, 4).

        Real and virtual tracks stay separate (B, N, S, C) / (B, V, S, C) tensors and attention runs along the
        S axis (time) or the track axis (space) in place, so no token tensor is rearranged or concatenated. The
        virtual tracks enter the first time block as the same vector on every frame, so that block's output for
        them is one per track, independent of the input: it is computed once on length-1 sequences.
        """
        B, N, S, _ = points.shape
        j = 0
        for i, block in enumerate(self.time_blocks):
            points = self._run(block, points, seq_dim=2)
            if i == 0:  # (V, 1, C) sequences of length 1 -> the same output on every frame
                virt = self._run(block, self.virual_tracks[0])[None].expand(B, -1, S, -1)
            else:
                virt = self._run(block, virt, seq_dim=2)
            if i % self.space_every == 0 and j < len(self.space_virtual_blocks):
                virt = self._run(self.space_virtual2point_blocks[j], virt, points, seq_dim=1)
                virt = self._run(self.space_virtual_blocks[j], virt, seq_dim=1)
                points = self._run(self.space_point2virtual_blocks[j], points, virt, seq_dim=1)
                j += 1
        return torch.cat([self.flow_head(points), self.vis_conf_head(points)], dim=-1)

    def _run(self, block: nn.Module, *args: torch.Tensor, **kwargs) -> torch.Tensor:
        """Call a block, through activation checkpointing when enabled and gradients are being recorded."""
        if self.activation_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False, **kwargs)
        return block(*args, **kwargs)
