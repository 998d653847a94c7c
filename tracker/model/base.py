"""Parts shared by the offline and online CoTracker3 models: encoding, pyramid, support features, refinement."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .cache import FrameFeatureCache
from .correlation import CorrMLP, local_correlation, support_features
from .embeddings import DISP_DIM, displacement_encoding, time_embedding_table
from .encoder import BasicEncoder
from .transformer import UpdateFormer

ENCODER_CHUNK = 200  # frames per encoder call (memory only; no numerical effect)


class CoTracker3Base(nn.Module):
    """Common CoTracker3 machinery. Subclasses implement `forward`.

    Architecture keywords default to the official values (spec section 1); override them for small models.
    """

    def __init__(
        self,
        window_len: int,
        *,
        stride: int = 4,
        latent_dim: int = 128,
        corr_radius: int = 3,
        corr_levels: int = 4,
        corr_hidden: int = 384,
        corr_dim: int = 256,
        hidden_size: int = 384,
        num_heads: int = 8,
        time_depth: int = 3,
        space_depth: int = 3,
        num_virtual_tracks: int = 64,
        mlp_ratio: float = 4.0,
        encoder_dims: Sequence[int] = (64, 96, 128, 128),
        encoder_fuse_dim: int = 256,
        model_resolution: Sequence[int] = (384, 512),
    ) -> None:
        super().__init__()
        if stride != 4:
            raise ValueError("only stride 4 is supported (the encoder downsamples by 4)")
        self.arch: dict[str, Any] = dict(
            window_len=window_len, stride=stride, latent_dim=latent_dim, corr_radius=corr_radius,
            corr_levels=corr_levels, corr_hidden=corr_hidden, corr_dim=corr_dim, hidden_size=hidden_size,
            num_heads=num_heads, time_depth=time_depth, space_depth=space_depth,
            num_virtual_tracks=num_virtual_tracks, mlp_ratio=mlp_ratio, encoder_dims=list(encoder_dims),
            encoder_fuse_dim=encoder_fuse_dim, model_resolution=list(model_resolution),
        )
        self.window_len = window_len
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_radius = corr_radius
        self.corr_levels = corr_levels
        self.model_resolution = tuple(model_resolution)
        token_dim = 2 + corr_levels * corr_dim + DISP_DIM
        self.fnet = BasicEncoder(latent_dim, encoder_dims, encoder_fuse_dim)
        self.updateformer = UpdateFormer(
            token_dim, hidden_size=hidden_size, num_heads=num_heads, time_depth=time_depth,
            space_depth=space_depth, num_virtual_tracks=num_virtual_tracks, mlp_ratio=mlp_ratio,
        )
        self.corr_mlp = CorrMLP((2 * corr_radius + 1) ** 4, corr_hidden, corr_dim)
        self.register_buffer("time_emb", time_embedding_table(window_len, token_dim), persistent=True)
        self.feature_cache: FrameFeatureCache | None = None
        self._trace: dict[str, list] | None = None

    # ----------------------------------------------------------------------------------------------------------
    # debugging / caching helpers

    @contextlib.contextmanager
    def trace(self) -> Iterator[dict[str, list]]:
        """Record intermediates of the forward passes run inside the block into the yielded dict of lists:
        fnet_raw (B*T, C, h, w), support (per level (B, P*P, N, C)), corr_mlp_in (per iteration and level,
        (B*S*N, P^4)), corr_emb (B, S, N, L*D), former_in (B, N, S, D), former_out (B, N, S, 4), time_emb."""
        self._trace = {}
        try:
            yield self._trace
        finally:
            self._trace = None

    def _record(self, name: str, value: torch.Tensor) -> None:
        if self._trace is not None:
            self._trace.setdefault(name, []).append(value.detach().clone())

    @contextlib.contextmanager
    def cached_features(self, max_frames: int = 4096) -> Iterator[FrameFeatureCache]:
        """Temporarily attach a frame-feature cache (keeps an existing one)."""
        previous = self.feature_cache
        self.feature_cache = previous if previous is not None else FrameFeatureCache(max_frames)
        try:
            yield self.feature_cache
        finally:
            self.feature_cache = previous

    def train(self, mode: bool = True):  # noqa: D102 - cached features belong to one set of weights / mode
        if self.feature_cache is not None:
            self.feature_cache.clear()
        return super().train(mode)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # noqa: D102
        if self.feature_cache is not None:
            self.feature_cache.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ----------------------------------------------------------------------------------------------------------
    # features

    def _check_inputs(self, video: torch.Tensor, queries: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[2] != 3:
            raise ValueError(f"video must be (B, T, 3, H, W), got {tuple(video.shape)}")
        if video.shape[-1] % self.stride or video.shape[-2] % self.stride:
            raise ValueError(f"video H and W must be multiples of {self.stride}, got {tuple(video.shape[-2:])}")
        if queries.ndim != 3 or queries.shape[-1] != 3 or queries.shape[0] != video.shape[0]:
            raise ValueError(f"queries must be (B, N, 3) with B = {video.shape[0]}, got {tuple(queries.shape)}")

    def _encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (M, 3, H, W) in 0..255 -> L2-normalised features (M, C, H/4, W/4)."""
        frames = 2 * (frames / 255.0) - 1.0
        raw = torch.cat([self.fnet(chunk) for chunk in frames.split(ENCODER_CHUNK)], dim=0)
        self._record("fnet_raw", raw)
        f = raw.permute(0, 2, 3, 1)
        norm = torch.sqrt(torch.maximum(torch.sum(torch.square(f), dim=-1, keepdim=True), f.new_tensor(1e-12)))
        return (f / norm).permute(0, 3, 1, 2)

    def _encode_with_cache(self, frames: torch.Tensor) -> torch.Tensor:
        cache = self.feature_cache
        keys = [cache.key(f) for f in frames]
        feats = {}
        for k in keys:
            if k not in feats:
                feats[k] = cache.get(k)
        todo = [k for k, v in feats.items() if v is None]
        if todo:
            first = {k: keys.index(k) for k in todo}
            fresh = self._encode_frames(frames[[first[k] for k in todo]])
            for k, feat in zip(todo, fresh):
                feats[k] = feat
                cache.put(k, feat)
        return torch.stack([feats[k] for k in keys])

    def encode(self, video: torch.Tensor) -> list[torch.Tensor]:
        """video (B, T, 3, H, W) in 0..255 -> pyramid: corr_levels maps (B, T, C, H/4/2^l, W/4/2^l)."""
        B, T = video.shape[:2]
        frames = video.reshape(B * T, *video.shape[2:])
        use_cache = self.feature_cache is not None and not self.training and not torch.is_grad_enabled()
        fmap = self._encode_with_cache(frames) if use_cache else self._encode_frames(frames)
        pyramid = [fmap.reshape(B, T, *fmap.shape[1:])]
        for _ in range(self.corr_levels - 1):
            pooled = F.avg_pool2d(pyramid[-1].flatten(0, 1), 2, stride=2)  # floors odd sizes, no re-normalising
            pyramid.append(pooled.reshape(B, T, *pooled.shape[1:]))
        return pyramid

    def support_features(
        self, pyramid: list[torch.Tensor], frames: torch.Tensor, xy: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per level (B, P*P, N, C) support patches at the query frames; xy (B, N, 2) in feature units."""
        feats = [support_features(f, frames, xy / 2**lvl, self.corr_radius) for lvl, f in enumerate(pyramid)]
        for f in feats:
            self._record("support", f)
        return feats

    # ----------------------------------------------------------------------------------------------------------
    # iterative refinement of one window (spec section 9)

    def _correlation_embedding(self, pyramid, support, coords: torch.Tensor) -> torch.Tensor:
        B, S, N, _ = coords.shape
        embs = []
        for lvl, (fmap, supp) in enumerate(zip(pyramid, support)):
            corr = local_correlation(fmap, supp, coords / 2**lvl, self.corr_radius)
            self._record("corr_mlp_in", corr)
            embs.append(self.corr_mlp(corr))
        emb = torch.cat(embs, dim=-1).view(B, S, N, -1)
        self._record("corr_emb", emb)
        return emb

    def refine(
        self,
        pyramid: list[torch.Tensor],
        support: list[torch.Tensor],
        coords: torch.Tensor,
        vis: torch.Tensor,
        conf: torch.Tensor,
        iters: int,
        time_emb: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Run `iters` updates on one window.

        pyramid: per level (B, S, C, h, w); support: per level (B, P*P, N, C); coords (B, S, N, 2) feature units;
        vis, conf (B, S, N) logits; time_emb (1, S, D). Returns per-iteration lists of coords (B, S, N, 2) in
        pixels and vis / conf logits (B, S, N).
        """
        if iters < 1:
            raise ValueError("iters must be >= 1")
        scale = (self.model_resolution[1] / self.stride, self.model_resolution[0] / self.stride)
        self._record("time_emb", time_emb)
        out_c, out_v, out_w = [], [], []
        for _ in range(iters):
            coords = coords.detach()  # each iteration trains only its own update
            corr = self._correlation_embedding(pyramid, support, coords)
            tokens = torch.cat([vis[..., None], conf[..., None], corr, displacement_encoding(coords, scale)], dim=-1)
            tokens = rearrange(tokens, "b s n d -> b n s d") + time_emb[:, None]
            self._record("former_in", tokens)
            delta = self.updateformer(tokens)
            self._record("former_out", delta)
            delta = rearrange(delta, "b n s d -> b s n d")
            coords = coords + delta[..., :2]
            vis = vis + delta[..., 2]
            conf = conf + delta[..., 3]
            out_c.append(coords * float(self.stride))
            out_v.append(vis)
            out_w.append(conf)
        return out_c, out_v, out_w
