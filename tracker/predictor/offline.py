"""The offline predictor (spec 12): the offline model over the whole clip at its resolution, with a support grid,
optional backward tracking, query correction and a visibility threshold of 0.9; dense tracking without queries."""
from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from ..memory import check_tracking_memory
from ..model import CoTracker3Base, TrackerOutput
from .backward import merge_backward, reverse_queries
from .grids import grid_queries, mask_grid
from .inference import inference_context, model_device, resize_frames, set_shared_options, to_input_px, to_model_px
from .outputs import PredictorOutput


def check_frames(queries: torch.Tensor, T: int) -> None:
    """ValueError unless every query frame of queries (..., 3) (t, x, y) lies in [0, T - 1]."""
    t = queries[..., 0]
    if t.numel() and (t.min() < 0 or t.max() >= T):
        raise ValueError(f"query frames must lie in [0, {T - 1}], got range [{t.min().item()}, {t.max().item()}]")


class OfflinePredictor:
    """Offline model at model resolution with a support grid, backward tracking, query correction (threshold 0.9).

    precision: "fp32" (default; reproduces the official outputs) or "bf16" (autocast). memory_check: estimate the
    request's memory first and refuse it with InsufficientMemoryError (one line) if it does not fit. input_size
    (h, w): the size frames are resized to for the model (default its model_resolution; sides multiples of 4)."""

    def __init__(self, model: CoTracker3Base, *, support_grid_size: int = 6, iters: int = 6, threshold: float = 0.9,
                 precision: str = "fp32", memory_check: bool = True,
                 input_size: tuple[int, int] | None = None):
        set_shared_options(self, model, support_grid_size, iters, threshold, precision, memory_check, input_size)

    def __call__(
        self,
        video: torch.Tensor,
        queries: torch.Tensor | None = None,
        *,
        segm_mask: torch.Tensor | None = None,
        grid_size: int = 0,
        grid_query_frame: int = 0,
        backward_tracking: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> PredictorOutput:
        """video (B, T, 3, H, W) float 0..255; queries (B, N, 3) (t, x, y) input pixels, or a grid, or neither
        (dense: every pixel of a W//80 lattice, run offset by offset)."""
        B, T, _, H, W = video.shape
        dense = queries is None and grid_size == 0
        many_calls = backward_tracking or dense
        if self.memory_check:
            if dense:
                step = max(W // 80, 1)
                points = (W // step) * (H // step)
            else:
                points = (queries.shape[1] if queries is not None else grid_size**2) + self.support_grid_size**2
            check_tracking_memory(self.model, num_frames=T, num_points=points, input_hw=(H, W), batch=B,
                                  mode="offline", cached_frames=T if many_calls else 0, precision=self.precision,
                                  device=model_device(self.model), what="the offline predictor tracking",
                                  model_hw=self.interp_shape)
        with inference_context(self.model, self.precision), (
            self.model.cached_features(max_frames=max(T, 1)) if many_calls else contextlib.nullcontext()
        ):
            video_m = resize_frames(video, self.interp_shape, model_device(self.model))
            if dense:
                return self._dense(video_m, (H, W), grid_query_frame, backward_tracking, progress)
            if queries is not None:
                q = to_model_px(queries.to(video_m), (H, W), self.interp_shape)
            else:
                q = grid_queries(grid_size, self.interp_shape, grid_query_frame, B, device=video_m.device)
                if segm_mask is not None:
                    q = mask_grid(q, segm_mask, self.interp_shape)
            # Official rule: support grid for explicit queries (grid_size 0) or with a mask; not for queries + grid.
            add_support = grid_size == 0 or segm_mask is not None
            out = self._sparse(video_m, q, add_support, backward_tracking)
        if progress is not None:
            progress(T, T)
        out.tracks = to_input_px(out.tracks, (H, W), self.interp_shape)
        return out

    def _sparse(self, video_m: torch.Tensor, q: torch.Tensor, add_support: bool, backward: bool) -> PredictorOutput:
        """video_m at model resolution; q (B, N, 3) model pixels. Tracks returned in model pixels."""
        T = video_m.shape[1]
        check_frames(q, T)
        n = q.shape[1]
        if add_support:
            support = grid_queries(self.support_grid_size, self.interp_shape, 0, q.shape[0], device=q.device)
            q = torch.cat([q, support], dim=1)
        raw = [self.model(video_m, q, iters=self.iters)]
        if backward:
            raw.append(self.model(video_m.flip(1), reverse_queries(q, T), iters=self.iters))
        return self.finish(raw, q, n)

    def finish(self, raw: list[TrackerOutput], q: torch.Tensor, n: int) -> PredictorOutput:
        """Post-process model outputs (forward call, optional backward call on the reversed video) for queries
        q (B, N', 3) in model pixels of which the first n are the user's: backward merge, support removal,
        threshold, query correction. Positions stay in model pixels."""
        fwd = raw[0]
        coords, vis, conf = fwd.coords, fwd.vis, fwd.conf
        if len(raw) > 1:
            bwd, frames = raw[1], q[..., 0]
            coords = merge_backward(fwd.coords, bwd.coords, frames)
            vis = merge_backward(fwd.vis, bwd.vis, frames)
            conf = merge_backward(fwd.conf, bwd.conf, frames)
        coords, vis, conf = coords[:, :, :n].clone(), vis[:, :, :n], conf[:, :, :n]
        visible = vis > self.threshold
        # Query correction: the query frame reports the query itself, visible.
        b = torch.arange(q.shape[0], device=q.device)[:, None]
        k = torch.arange(n, device=q.device)[None]
        t = q[:, :n, 0].long()
        coords[b, t, k] = q[:, :n, 1:]
        visible[b, t, k] = True
        return PredictorOutput(coords, visible, vis, conf, raw, q)

    def _dense(self, video_m, size_in, frame, backward, progress) -> PredictorOutput:
        """Dense tracking: video_m (B, T, 3, h, w) at model resolution; queries on every pixel of a lattice of step
        max(W // 80, 1) input pixels at `frame`, one model run per offset within the step. Tracks in input pixels."""
        H, W = size_in
        B, T = video_m.shape[:2]
        step = max(W // 80, 1)
        gw, gh = W // step, H // step
        xs = torch.arange(gw, device=video_m.device).repeat(gh) * step
        ys = torch.arange(gh, device=video_m.device).repeat_interleave(gw) * step
        parts = []
        for offset in range(step * step):
            pts = torch.stack([torch.full_like(xs, frame), xs + offset % step, ys + offset // step], dim=-1)
            q = to_model_px(pts.float()[None].expand(B, -1, -1), size_in, self.interp_shape)
            parts.append(self._sparse(video_m, q, False, backward))
            if progress is not None:
                progress(offset + 1, step * step)
        return PredictorOutput(
            to_input_px(torch.cat([p.tracks for p in parts], dim=2), size_in, self.interp_shape),
            torch.cat([p.visible for p in parts], dim=2),
            torch.cat([p.vis_prob for p in parts], dim=2),
            torch.cat([p.conf_prob for p in parts], dim=2),
            [r for p in parts for r in p.raw],
            torch.cat([p.queries for p in parts], dim=1),
        )
