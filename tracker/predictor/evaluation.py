"""The TAP-Vid evaluation predictor (spec 14): every query in one model call with a global grid ("joint"), or
each query alone with a local grid around it and the global grid ("single point")."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..memory import check_tracking_memory
from ..model import CoTracker3Base, TrackerOutput
from .grids import grid_points, grid_queries
from .inference import check_precision, inference_context, model_device, resize_frames, to_input_px, to_model_px


class EvaluationPredictor:
    """TAP-Vid evaluation wrapper: joint mode (all queries + global grid in one call) or single-point mode.
    Returns (tracks (1, T, N, 2) input pixels, visibility x confidence (1, T, N))."""

    def __init__(
        self,
        model: CoTracker3Base,
        *,
        interp_shape: Sequence[int] = (384, 512),
        grid_size: int = 5,
        local_grid_size: int = 8,
        single_point: bool = False,
        num_uniformly_sampled_pts: int = 0,
        iters: int = 6,
        local_extent: int = 50,
        generator: torch.Generator | None = None,
        precision: str = "fp32",
        memory_check: bool = True,
    ):
        self.model = model
        self.precision = check_precision(precision)
        self.memory_check = memory_check
        self.interp_shape = tuple(interp_shape)
        self.grid_size = grid_size
        self.local_grid_size = local_grid_size
        self.single_point = single_point
        self.num_uniformly_sampled_pts = num_uniformly_sampled_pts
        self.iters = iters
        self.local_extent = local_extent
        self.generator = generator

    def _global_grid(self, device) -> torch.Tensor:
        return grid_queries(self.grid_size, self.interp_shape, 0, 1, device=device)

    def __call__(self, video: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (1, T, 3, H, W) 0..255; queries (1, N, 3) (t, x, y) input pixels."""
        B, T, _, H, W = video.shape
        if B != 1:
            raise ValueError("the evaluation predictor takes one video at a time (B = 1)")
        N = queries.shape[1]
        if self.memory_check:
            per_call = (1 + self.local_grid_size**2 if self.single_point else N + self.num_uniformly_sampled_pts)
            check_tracking_memory(
                self.model, num_frames=T, num_points=per_call + self.grid_size**2, input_hw=(H, W),
                mode="online_windows" if self.model.kind == "online" else "offline",
                cached_frames=T if self.single_point else 0, precision=self.precision,
                device=model_device(self.model), what="the evaluation predictor tracking",
                model_hw=self.interp_shape)
        with inference_context(self.model, self.precision):
            return self._predict(video, queries)

    def _predict(self, video: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _, H, W = video.shape
        N = queries.shape[1]
        video_m = resize_frames(video, self.interp_shape, model_device(self.model))
        q = to_model_px(queries.to(video_m), (H, W), self.interp_shape)
        if self.single_point:
            with self.model.cached_features(max_frames=max(T, 1)):
                results = [self._one_point(video_m, q[:, i : i + 1]) for i in range(N)]
            tracks = torch.cat([r.coords[:, :, :1] for r in results], dim=2)
            vis = torch.cat([r.vis[:, :, :1] * r.conf[:, :, :1] for r in results], dim=2)
        else:
            extra = [q]
            if self.grid_size > 0:
                extra.append(self._global_grid(q.device))
            if self.num_uniformly_sampled_pts > 0:
                extra.append(self._uniform_points(T, q.device))
            out = self.model(video_m, torch.cat(extra, dim=1), iters=self.iters)
            tracks, vis = out.coords[:, :, :N], out.vis[:, :, :N] * out.conf[:, :, :N]
        return to_input_px(tracks.float(), (H, W), self.interp_shape), vis.float()

    def _one_point(self, video_m: torch.Tensor, query: torch.Tensor) -> TrackerOutput:
        parts = [query]
        if self.local_grid_size > 0:
            local = grid_points(self.local_grid_size, (self.local_extent, self.local_extent),
                                (query[0, 0, 2].item(), query[0, 0, 1].item()), device=query.device)
            parts.append(torch.cat([torch.zeros_like(local[..., :1]), local], dim=-1))
        if self.grid_size > 0:
            parts.append(self._global_grid(query.device))
        return self.model(video_m, torch.cat(parts, dim=1), iters=self.iters)

    def _uniform_points(self, T: int, device) -> torch.Tensor:
        h, w = self.interp_shape
        n = self.num_uniformly_sampled_pts
        u = torch.rand(n, 3, generator=self.generator)
        pts = torch.stack([(u[:, 0] * T).floor().clamp(max=T - 1), u[:, 1] * (w - 1), u[:, 2] * (h - 1)], dim=-1)
        return pts[None].to(device)
