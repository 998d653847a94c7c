"""The update transformer (spec section 8): time attention per track, space attention through virtual tracks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    """Multi-head attention with separate q and fused kv projections (all with bias), no mask."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.to_q = nn.Linear(dim, dim)
        self.to_kv = nn.Linear(dim, 2 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: (M, L, D), context: (M, L', D) (default x) -> (M, L, D)."""
        context = x if context is None else context
        q = rearrange(self.to_q(x), "m l (h d) -> m h l d", h=self.num_heads)
        k, v = (rearrange(t, "m l (h d) -> m h l d", h=self.num_heads) for t in self.to_kv(context).chunk(2, dim=-1))
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.to_out(rearrange(attn @ v, "m h l d -> m l (h d)"))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (tanh GELU in the transformer, exact GELU in the correlation MLP; pitfall 3)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, approximate: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(_ln(x))
        return x + self.mlp(_ln(x))


class CrossAttnBlock(nn.Module):
    """Pre-norm cross-attention block; the context norm is affine with eps 1e-5."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_context = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, num_heads)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), dim, approximate="tanh")

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x + self.cross_attn(_ln(x), self.norm_context(context))
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
        self.space_every = time_depth // space_depth
        # Official (misspelt) name, kept so that checkpoints load.
        self.virual_tracks = nn.Parameter(torch.randn(1, num_virtual_tracks, 1, hidden_size))
        self.input_transform = nn.Linear(in_dim, hidden_size)
        self.flow_head = nn.Linear(hidden_size, 2)
        self.vis_conf_head = nn.Linear(hidden_size, 2)
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
        B, N, S, _ = x.shape
        tokens = self.input_transform(x)
        virtual = self.virual_tracks.expand(B, -1, S, -1)
        tokens = torch.cat([tokens, virtual], dim=1)  # virtual tracks after the real ones
        j = 0
        for i, block in enumerate(self.time_blocks):
            tokens = rearrange(block(rearrange(tokens, "b n s c -> (b n) s c")), "(b n) s c -> b n s c", b=B)
            if i % self.space_every == 0 and j < len(self.space_virtual_blocks):
                space = rearrange(tokens, "b n s c -> (b s) n c")
                points, virt = space[:, :N], space[:, N:]
                virt = self.space_virtual2point_blocks[j](virt, points)
                virt = self.space_virtual_blocks[j](virt)
                points = self.space_point2virtual_blocks[j](points, virt)
                tokens = rearrange(torch.cat([points, virt], dim=1), "(b s) n c -> b n s c", b=B)
                j += 1
        tokens = tokens[:, :N]
        return torch.cat([self.flow_head(tokens), self.vis_conf_head(tokens)], dim=-1)
