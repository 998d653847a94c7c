"""Parts shared by the offline and online CoTracker3 models: encoding, pyramid, support features, refinement."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import pyramid as fast
from .cache import FrameFeatureCache
from .correlation import CorrMLP, local_correlation, support_features
from .embeddings import DISP_DIM, displacement_encoding, time_embedding_table
from .encoder import BasicEncoder, encoder_input_problem
from .implementation import reference_enabled
from .pyramid import FeaturePyramid, pyramid_min_side, pyramid_pad
from .transformer import UpdateFormer

ENCODER_CHUNK = 200  # reference: frames per encoder call (memory only; no numerical effect)
# Default path: pixels per encoder call (8 frames at 384x512). Chunking bounds the encoder's temporaries (about
# 750 bytes per input pixel, 150 MB per 384x512 frame), which otherwise grow with T; it has no numerical effect.
# Larger calls amortise the convolutions' per-call work: measured 0.36 / 0.43 / 0.59 CPU-s per frame at 16 / 8 / 4
# frames per call (2 busy cores); 8 frames keep the encoder's peak near 1.2 GB.
ENCODER_CHUNK_PIXELS = 8 * 384 * 512
# Default path: (track, frame) rows per block of the correlation + its MLP + the token projection. The blocks bound
# the (rows, (2r+1)^4) correlation and the window gathers (about 33 MB at 1024 rows on CPU), whatever N and T.
CORR_BLOCK_ROWS = {"cpu": 1024, "cuda": 16384}


def input_size_problem(height: int, width: int, corr_levels: int = 4, stride: int = 4) -> str | None:
    """Why a model with `corr_levels` correlation levels cannot take (height, width) input frames, or None.

    H and W must be multiples of the stride (4); every level of the feature pyramid must keep a pixel, so each side
    must be at least stride * 2^(levels - 1) (32 for the official 4 levels); and the encoder's deepest instance
    norm needs 2 pixels (encoder_input_problem). Checked at the boundaries in tests/tracker/test_model_input_size.py.
    """
    if height % stride or width % stride:
        return f"H and W must be multiples of {stride}"
    side = pyramid_min_side(corr_levels, stride)
    if min(height, width) < side:
        return (f"both sides must be at least {side} for {corr_levels} correlation levels (the stride-{stride} "
                f"features are halved {corr_levels - 1} times)")
    return encoder_input_problem(height, width)


def _l2_normalise(raw: torch.Tensor) -> torch.Tensor:
    """Encoder output (M, C, h, w) -> features divided by their L2 norm over C (floored at 1e-6), in float32 even
    under autocast; returned as a channels-last strided (M, C, h, w) view."""
    f = raw.permute(0, 2, 3, 1).float()
    norm = torch.sqrt(torch.maximum(torch.sum(torch.square(f), dim=-1, keepdim=True), f.new_tensor(1e-12)))
    return (f / norm).permute(0, 3, 1, 2)


class CoTracker3Base(nn.Module):
    """Common CoTracker3 machinery. Subclasses implement `forward`.

    Architecture keywords default to the official values (spec section 1); override them for small models.
    """

    # "offline" or "online", set by each subclass: the one online/offline test (checkpoints record it, evaluation
    # and the command line read it) rather than a type test at every site.
    kind: str

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
        initial_logits: Sequence[float] = (0.0, 0.0),
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
            initial_logits=[float(v) for v in initial_logits],
        )
        self.window_len = window_len
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_radius = corr_radius
        self.corr_levels = corr_levels
        self.model_resolution = tuple(model_resolution)
        if len(initial_logits) != 2:
            raise ValueError(f"initial_logits must be [visibility, confidence], got {list(initial_logits)}")
        # Where every track's visibility and confidence logits start before the first iteration (official: 0,
        # i.e. 0.5). The refinement adds to them, so a model trained from scratch whose head starts near 0 keeps
        # the start; a short run that starts at the data's prior (most points visible and near the truth) begins
        # at "all visible" under visibility x confidence > 0.6 instead of "all occluded" (docs/training.md).
        self.initial_vis_logit, self.initial_conf_logit = (float(v) for v in initial_logits)
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

    def initial_vis_conf(self, like: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Starting (visibility, confidence) logits of the given shape (B, S, N), on like's device and dtype."""
        return like.new_full(shape, self.initial_vis_logit), like.new_full(shape, self.initial_conf_logit)

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
        problem = input_size_problem(*video.shape[-2:], self.corr_levels, self.stride)
        if problem:
            raise ValueError(f"the model cannot take {video.shape[-2]}x{video.shape[-1]} frames: {problem}")
        if queries.ndim != 3 or queries.shape[-1] != 3 or queries.shape[0] != video.shape[0]:
            raise ValueError(f"queries must be (B, N, 3) with B = {video.shape[0]}, got {tuple(queries.shape)}")

    def _encode_frames(self, frames: torch.Tensor, chunk: int = ENCODER_CHUNK) -> torch.Tensor:
        """frames (M, 3, H, W) in 0..255 -> L2-normalised features (M, C, H/4, W/4) (channels-last memory)."""
        frames = 2 * (frames / 255.0) - 1.0
        raw = torch.cat([self.fnet(c) for c in frames.split(chunk)], dim=0)
        self._record("fnet_raw", raw)
        return _l2_normalise(raw)

    def _encode_with_cache(self, frames: torch.Tensor, chunk: int = ENCODER_CHUNK) -> torch.Tensor:
        cache = self.feature_cache
        keys = [cache.key(f) for f in frames]
        feats = {}
        for k in keys:
            if k not in feats:
                feats[k] = cache.get(k)
        todo = [k for k, v in feats.items() if v is None]
        if todo:
            first = {k: keys.index(k) for k in todo}
            fresh = self._encode_frames(frames[[first[k] for k in todo]], chunk)
            for k, feat in zip(todo, fresh):
                feats[k] = feat
                cache.put(k, feat)
        return torch.stack([feats[k] for k in keys])

    def _use_cache(self) -> bool:
        return self.feature_cache is not None and not self.training and not torch.is_grad_enabled()

    def encode(self, video: torch.Tensor) -> FeaturePyramid | list[torch.Tensor]:
        """video (B, T, 3, H, W) in 0..255 -> the feature pyramid of corr_levels levels.

        Default: a `FeaturePyramid` (padded channels-last maps, encoded in bounded chunks of frames). Reference
        implementation: a list of maps (B, T, C, H/4/2^l, W/4/2^l). `window_of`, `support_features` and `refine`
        take the pyramid of the same implementation (the switch: tracker.model.implementation)."""
        if not reference_enabled():
            return self._encode_pyramid(video)
        B, T = video.shape[:2]
        frames = video.reshape(B * T, *video.shape[2:])
        fmap = self._encode_with_cache(frames) if self._use_cache() else self._encode_frames(frames)
        pyramid = [fmap.reshape(B, T, *fmap.shape[1:])]
        for _ in range(self.corr_levels - 1):
            pooled = F.avg_pool2d(pyramid[-1].flatten(0, 1), 2, stride=2)  # floors odd sizes, no re-normalising
            pyramid.append(pooled.reshape(B, T, *pooled.shape[1:]))
        return pyramid

    def _encode_pyramid(self, video: torch.Tensor) -> FeaturePyramid:
        B, T, _, H, W = video.shape
        frames = video.reshape(B * T, *video.shape[2:])
        chunk = max(1, ENCODER_CHUNK_PIXELS // (H * W))
        cached = self._encode_with_cache(frames, chunk) if self._use_cache() else None
        pyramid, raws = None, []
        for first in range(0, B * T, chunk):
            if cached is not None:
                fmap = cached[first : first + chunk]
            else:
                raw = self.fnet(2 * (frames[first : first + chunk] / 255.0) - 1.0)
                if self._trace is not None:
                    raws.append(raw)
                fmap = _l2_normalise(raw)
            if pyramid is None:
                pyramid = FeaturePyramid.empty(B, T, fmap.shape[1], tuple(fmap.shape[-2:]), self.corr_levels,
                                               pyramid_pad(self.corr_radius), dtype=fmap.dtype, device=fmap.device)
            pyramid.write(first, fmap)
        if raws:
            self._record("fnet_raw", torch.cat(raws))
        return pyramid

    @staticmethod
    def window_of(pyramid: FeaturePyramid | list[torch.Tensor], start: int, length: int):
        """The pyramid of frames [start, start + length) (a view), in the layout `encode` made it."""
        if not reference_enabled():
            return pyramid.window(start, length)
        return [p[:, start : start + length] for p in pyramid]

    def support_features(
        self, pyramid: FeaturePyramid | list[torch.Tensor], frames: torch.Tensor, xy: torch.Tensor
    ) -> list[torch.Tensor]:
        """Per level (B, P*P, N, C) support patches at the query frames; xy (B, N, 2) in feature units."""
        if not reference_enabled():
            feats = [fast.support_patches(pyramid, lvl, frames, xy / 2**lvl, self.corr_radius)
                     for lvl in range(self.corr_levels)]
        else:
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
        pyramid: FeaturePyramid | list[torch.Tensor],
        support: list[torch.Tensor],
        coords: torch.Tensor,
        vis: torch.Tensor,
        conf: torch.Tensor,
        iters: int,
        time_emb: torch.Tensor,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Run `iters` updates on one window.

        pyramid: the window's features (S frames); support: per level (B, P*P, N, C); coords (B, S, N, 2) feature
        units; vis, conf (B, S, N) logits; time_emb (1, S, D). Returns per-iteration lists of coords (B, S, N, 2) in
        pixels and vis / conf logits (B, S, N).
        """
        if iters < 1:
            raise ValueError("iters must be >= 1")
        self._record("time_emb", time_emb)
        if not reference_enabled():
            return self._refine_blocks(pyramid, support, coords, vis, conf, iters, time_emb)
        return self._refine_reference(pyramid, support, coords, vis, conf, iters, time_emb)

    def _displacement_scale(self) -> tuple[float, float]:
        return (self.model_resolution[1] / self.stride, self.model_resolution[0] / self.stride)

    def _refine_blocks(self, pyramid: FeaturePyramid, support, coords, vis, conf, iters, time_emb):
        """Default implementation of `refine`.

        State is kept tracks-outer, (B, N, S, .), the transformer's layout. Per iteration the correlation, its MLP,
        the tokens and their projection are computed in blocks of tracks (bounded memory, whatever N and S) and
        concatenated as (B, N, S, hidden); only the per-iteration outputs are turned back to (B, S, N, .).
        """
        B, S, N, _ = coords.shape
        supports = [s.permute(0, 2, 3, 1).contiguous() for s in support]  # (B, N, C, P*P): one matrix per track
        coords = coords.transpose(1, 2).contiguous()
        vis, conf = vis.transpose(1, 2), conf.transpose(1, 2)
        time_emb = time_emb[:, None]  # (1, 1, S, D)
        rows = CORR_BLOCK_ROWS["cuda" if coords.is_cuda else "cpu"]
        block = max(1, rows // S)
        tracing = self._trace is not None
        out_c, out_v, out_w = [], [], []
        for _ in range(iters):
            coords = coords.detach()  # each iteration trains only its own update
            disp = displacement_encoding(coords, self._displacement_scale(), time_dim=2)
            parts = [self._embed_tracks(pyramid, supports, coords, vis, conf, disp, time_emb, n, n + block, tracing)
                     for n in range(0, N, block)]
            if tracing:
                self._record_blocks(parts)
            x = torch.cat([p[0] for p in parts], dim=1)
            del parts  # the blocks are in x now
            delta = self.updateformer.forward_embedded(x)
            self._record("former_out", delta)
            coords = coords + delta[..., :2]
            vis = vis + delta[..., 2]
            conf = conf + delta[..., 3]
            out_c.append((coords * float(self.stride)).transpose(1, 2).contiguous())
            out_v.append(vis.transpose(1, 2).contiguous())
            out_w.append(conf.transpose(1, 2).contiguous())
        return out_c, out_v, out_w

    def _embed_tracks(self, pyramid, supports, coords, vis, conf, disp, time_emb, n0: int, n1: int, tracing: bool):
        """Projected tokens (B, n, S, hidden) of tracks [n0, n1); with tracing also (correlations, embeddings,
        tokens) of the block."""
        c = coords[:, n0:n1]
        corrs, embs = [], []
        for lvl in range(self.corr_levels):
            corr = fast.local_correlation(pyramid, lvl, supports[lvl][:, n0:n1], c / 2**lvl, self.corr_radius)
            corrs.append(corr)
            embs.append(self.corr_mlp(corr))
        tokens = torch.cat([vis[:, n0:n1, :, None], conf[:, n0:n1, :, None], *embs, disp[:, n0:n1]], dim=-1)
        tokens = tokens + time_emb
        x = self.updateformer.input_transform(tokens)
        return (x, corrs, embs, tokens) if tracing else (x,)

    def _record_blocks(self, parts) -> None:
        """Record a traced iteration's intermediates in the reference layouts (rows (b, s, n))."""
        for lvl in range(self.corr_levels):
            corr = torch.cat([p[1][lvl] for p in parts], dim=1)  # (B, N, S, P^4)
            self._record("corr_mlp_in", corr.transpose(1, 2).reshape(-1, corr.shape[-1]))
        emb = torch.cat([torch.cat(p[2], dim=-1) for p in parts], dim=1)
        self._record("corr_emb", emb.transpose(1, 2))
        self._record("former_in", torch.cat([p[3] for p in parts], dim=1))

    def _refine_reference(self, pyramid, support, coords, vis, conf, iters, time_emb):
        scale = self._displacement_scale()
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
