"""Predictors around the CoTracker3 models (spec sections 12-14) and the `track` convenience function.

All predictors resize the video to the model resolution (align-corners bilinear, no re-quantisation), scale query
coordinates by (W'-1)/(W-1), (H'-1)/(H-1), and scale the predicted positions back (spec 2.5).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .malloc import recycled_large_blocks
from .memory import check_tracking_memory
from .model import (
    CoTracker3Base,
    CoTracker3Offline,
    CoTracker3Online,
    TrackerOutput,
    compile_hot_paths,
    reference_enabled,
)
from .model.sampling import resize_video

PRECISIONS = ("fp32", "bf16")
RESIZE_CHUNK = 16  # frames converted to float and resized at a time (no full-resolution float copy of the clip)


# --------------------------------------------------------------------------------------------------------------
# results


@dataclass
class PredictorOutput:
    """tracks (B, T, N, 2) input pixels; visible (B, T, N) bool after the predictor's threshold;
    vis_prob, conf_prob (B, T, N) model probabilities for the returned tracks; raw: the model calls
    (model-resolution pixels, all tracks including support points), in call order; queries: what the model was
    given (B, N', 3) (t, x, y) in model pixels, support points included."""

    tracks: torch.Tensor
    visible: torch.Tensor
    vis_prob: torch.Tensor
    conf_prob: torch.Tensor
    raw: list[TrackerOutput] = field(default_factory=list)
    queries: torch.Tensor | None = None


@dataclass
class Prediction:
    """Result of `track`: tracks (B, T, N, 2) float32 input pixels (x, y), visibility (B, T, N) bool,
    confidence (B, T, N) float32 probability."""

    tracks: torch.Tensor
    visibility: torch.Tensor
    confidence: torch.Tensor


# --------------------------------------------------------------------------------------------------------------
# grids and coordinate helpers


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


def _to_model_px(queries: torch.Tensor, size_in: tuple[int, int], size_model: tuple[int, int]) -> torch.Tensor:
    (H, W), (h, w) = size_in, size_model
    q = queries.clone()
    q[..., 1:] *= q.new_tensor([(w - 1) / (W - 1), (h - 1) / (H - 1)])
    return q


def _to_input_px(tracks: torch.Tensor, size_in: tuple[int, int], size_model: tuple[int, int]) -> torch.Tensor:
    (H, W), (h, w) = size_in, size_model
    return tracks * tracks.new_tensor([(W - 1) / (w - 1), (H - 1) / (h - 1)])


def _mask_grid(grid: torch.Tensor, segm_mask: torch.Tensor, size_model: tuple[int, int]) -> torch.Tensor:
    """Keep grid queries (B, M, 3) (model px) where the (first) mask, resized by nearest, is non-zero."""
    mask = _as_mask(segm_mask).to(grid.device)
    mask = F.interpolate(mask.float(), size=tuple(size_model), mode="nearest")[0, 0]
    keep = mask[grid[0, :, 2].round().long(), grid[0, :, 1].round().long()].bool()
    return grid[:, keep]


def _as_mask(segm_mask) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(segm_mask)) if not isinstance(segm_mask, torch.Tensor) else segm_mask
    while m.ndim < 4:
        m = m[None]
    return m


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def _inference(model: torch.nn.Module, precision: str) -> contextlib.ExitStack:
    """The context of every predictor call: no autograd; on CPU (default implementation) large blocks recycled by
    malloc (see tracker.malloc); bf16 autocast when asked for (outputs then differ from float32 by ~1e-2 px)."""
    device = _model_device(model)
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if device.type == "cpu" and not reference_enabled():
        stack.enter_context(recycled_large_blocks())
    if precision == "bf16":
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def _resize_frames(video: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """video (B, T, 3, H, W) 0..255 of any dtype and device -> float32 (B, T, 3, h, w) on `device`, resized
    (align-corners bilinear) RESIZE_CHUNK frames at a time, so no float copy of the input resolution is made."""
    B, T = video.shape[:2]
    if tuple(video.shape[-2:]) == tuple(size):
        return video.to(device=device, dtype=torch.float32)
    out = torch.empty(B, T, 3, *size, device=device)
    for t in range(0, T, RESIZE_CHUNK):
        out[:, t : t + RESIZE_CHUNK] = resize_video(video[:, t : t + RESIZE_CHUNK].to(device).float(), size)
    return out


def _check_frames(queries: torch.Tensor, T: int) -> None:
    t = queries[..., 0]
    if t.numel() and (t.min() < 0 or t.max() >= T):
        raise ValueError(f"query frames must lie in [0, {T - 1}], got range [{t.min().item()}, {t.max().item()}]")


def _merge_backward(fwd: TrackerOutput, bwd: TrackerOutput, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Use the time-reversed run (flipped back) for frames before each query frame. frames: (B, N)."""
    T = fwd.coords.shape[1]
    before = torch.arange(T, device=frames.device)[None, :, None] < frames[:, None, :]
    return (
        torch.where(before[..., None], bwd.coords.flip(1), fwd.coords),
        torch.where(before, bwd.vis.flip(1), fwd.vis),
        torch.where(before, bwd.conf.flip(1), fwd.conf),
    )


def _reverse_queries(queries: torch.Tensor, T: int) -> torch.Tensor:
    q = queries.clone()
    q[..., 0] = T - q[..., 0] - 1
    return q


def _set_options(predictor, model: CoTracker3Base, support_grid_size: int, iters: int, threshold: float,
                 precision: str, memory_check: bool) -> None:
    """The options both predictors share (the model, its input resolution, the support grid, iterations, the
    visibility threshold, the precision and the memory check)."""
    predictor.model = model
    predictor.interp_shape = tuple(model.model_resolution)
    predictor.support_grid_size = support_grid_size
    predictor.iters = iters
    predictor.threshold = threshold
    predictor.precision = _check_precision(precision)
    predictor.memory_check = memory_check


# --------------------------------------------------------------------------------------------------------------
# offline predictor (spec 12)


class OfflinePredictor:
    """Offline model at model resolution with a support grid, backward tracking, query correction (threshold 0.9).

    precision: "fp32" (default; reproduces the official outputs) or "bf16" (autocast). memory_check: estimate the
    request's memory first and refuse it with InsufficientMemoryError (one line) if it does not fit."""

    def __init__(self, model: CoTracker3Base, *, support_grid_size: int = 6, iters: int = 6, threshold: float = 0.9,
                 precision: str = "fp32", memory_check: bool = True):
        _set_options(self, model, support_grid_size, iters, threshold, precision, memory_check)

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
                                  device=_model_device(self.model), what="the offline predictor tracking")
        with _inference(self.model, self.precision), (
            self.model.cached_features(max_frames=max(T, 1)) if many_calls else contextlib.nullcontext()
        ):
            video_m = _resize_frames(video, self.interp_shape, _model_device(self.model))
            if dense:
                return self._dense(video_m, (H, W), grid_query_frame, backward_tracking, progress)
            if queries is not None:
                q = _to_model_px(queries.to(video_m), (H, W), self.interp_shape)
            else:
                q = grid_queries(grid_size, self.interp_shape, grid_query_frame, B, device=video_m.device)
                if segm_mask is not None:
                    q = _mask_grid(q, segm_mask, self.interp_shape)
            # Official rule: support grid for explicit queries (grid_size 0) or with a mask; not for queries + grid.
            add_support = grid_size == 0 or segm_mask is not None
            out = self._sparse(video_m, q, add_support, backward_tracking)
        if progress is not None:
            progress(T, T)
        out.tracks = _to_input_px(out.tracks, (H, W), self.interp_shape)
        return out

    def _sparse(self, video_m: torch.Tensor, q: torch.Tensor, add_support: bool, backward: bool) -> PredictorOutput:
        """video_m at model resolution; q (B, N, 3) model pixels. Tracks returned in model pixels."""
        T = video_m.shape[1]
        _check_frames(q, T)
        n = q.shape[1]
        if add_support:
            support = grid_queries(self.support_grid_size, self.interp_shape, 0, q.shape[0], device=q.device)
            q = torch.cat([q, support], dim=1)
        raw = [self.model(video_m, q, iters=self.iters)]
        if backward:
            raw.append(self.model(video_m.flip(1), _reverse_queries(q, T), iters=self.iters))
        return self.finish(raw, q, n)

    def finish(self, raw: list[TrackerOutput], q: torch.Tensor, n: int) -> PredictorOutput:
        """Post-process model outputs (forward call, optional backward call on the reversed video) for queries
        q (B, N', 3) in model pixels of which the first n are the user's: backward merge, support removal,
        threshold, query correction. Positions stay in model pixels."""
        coords, vis, conf = raw[0].coords, raw[0].vis, raw[0].conf
        if len(raw) > 1:
            coords, vis, conf = _merge_backward(raw[0], raw[1], q[..., 0])
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
        H, W = size_in
        B, T = video_m.shape[:2]
        step = max(W // 80, 1)
        gw, gh = W // step, H // step
        xs = torch.arange(gw, device=video_m.device).repeat(gh) * step
        ys = torch.arange(gh, device=video_m.device).repeat_interleave(gw) * step
        parts = []
        for offset in range(step * step):
            pts = torch.stack([torch.full_like(xs, frame), xs + offset % step, ys + offset // step], dim=-1)
            q = _to_model_px(pts.float()[None].expand(B, -1, -1), size_in, self.interp_shape)
            parts.append(self._sparse(video_m, q, False, backward))
            if progress is not None:
                progress(offset + 1, step * step)
        return PredictorOutput(
            _to_input_px(torch.cat([p.tracks for p in parts], dim=2), size_in, self.interp_shape),
            torch.cat([p.visible for p in parts], dim=2),
            torch.cat([p.vis_prob for p in parts], dim=2),
            torch.cat([p.conf_prob for p in parts], dim=2),
            [r for p in parts for r in p.raw],
            torch.cat([p.queries for p in parts], dim=1),
        )


# --------------------------------------------------------------------------------------------------------------
# online predictor (spec 13)


class OnlinePredictor:
    """Streaming predictor around the online model: a first call registers the queries, then one call per chunk
    (frames [ind, ind + window) for ind = 0, step, ...). Visible = vis x conf > 0.6; no query correction.

    Memory does not grow with the clip length except for the outputs: each call encodes one window (overlapping
    frames come from a two-window feature cache in `track_video`) and `track_video` also takes an iterable of
    chunks, so a clip never has to be in memory at once. precision / memory_check: as `OfflinePredictor`."""

    def __init__(self, model: CoTracker3Online, *, support_grid_size: int = 6, iters: int = 6, threshold: float = 0.6,
                 precision: str = "fp32", memory_check: bool = True):
        if not isinstance(model, CoTracker3Online):
            raise TypeError("OnlinePredictor needs a CoTracker3Online model")
        _set_options(self, model, support_grid_size, iters, threshold, precision, memory_check)
        self.step = model.window_len // 2
        self.queries: torch.Tensor | None = None
        self.N = 0

    def __call__(
        self,
        video_chunk: torch.Tensor,
        is_first_step: bool = False,
        queries: torch.Tensor | None = None,
        grid_size: int = 5,
        grid_query_frame: int = 0,
        add_support_grid: bool = False,
        segm_mask: torch.Tensor | None = None,
    ) -> PredictorOutput | None:
        """video_chunk (B, T_c, 3, H, W) 0..255, any dtype (on the first step only its size is used); queries
        (B, N, 3) (t, x, y) input pixels with absolute frame indices. Returns None on the first step, else the
        tracks of all frames so far."""
        B, _, _, H, W = video_chunk.shape
        device = _model_device(self.model)
        if is_first_step:
            self.model.reset_online()
            if queries is not None:
                q = _to_model_px(queries.to(device).float(), (H, W), self.interp_shape)
                self.N = q.shape[1]
                if add_support_grid:
                    support = grid_queries(self.support_grid_size, self.interp_shape, 0, q.shape[0], device=q.device)
                    q = torch.cat([q, support], dim=1)
            elif grid_size > 0:
                q = grid_queries(grid_size, self.interp_shape, grid_query_frame, B, device=device)
                if segm_mask is not None:
                    q = _mask_grid(q, segm_mask, self.interp_shape)
                self.N = q.shape[1]
            else:
                raise ValueError("give queries or a grid_size > 0")
            if self.memory_check:
                check_tracking_memory(self.model, num_frames=self.model.window_len, num_points=q.shape[1],
                                      input_hw=(H, W), batch=B, mode="online_stream", cached_frames=2 * self.step,
                                      precision=self.precision, device=device, what="the online predictor tracking")
            self.queries = q
            return None
        if self.queries is None:
            raise RuntimeError("call with is_first_step=True (and the queries) first")
        with _inference(self.model, self.precision):
            chunk = _resize_frames(video_chunk, self.interp_shape, device)
            raw = self.model(chunk, self.queries, iters=self.iters, is_online=True)
        n = self.N if add_support_grid else raw.coords.shape[2]
        vis, conf = raw.vis[:, :, :n].float(), raw.conf[:, :, :n].float()
        tracks = _to_input_px(raw.coords[:, :, :n].float(), (H, W), self.interp_shape)
        return PredictorOutput(tracks, vis * conf > self.threshold, vis, conf, [raw], self.queries)

    def track_video(
        self,
        video: torch.Tensor | Iterable[torch.Tensor],
        queries: torch.Tensor | None = None,
        *,
        grid_size: int = 5,
        grid_query_frame: int = 0,
        add_support_grid: bool = False,
        segm_mask: torch.Tensor | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> PredictorOutput:
        """Run the official usage pattern over a whole video: chunks video[ind : ind + window] for ind = 0, step,
        ... while ind < T - step (a single call for T <= step).

        video: (B, T, 3, H, W) 0..255 (any dtype, any device), or an iterable of such chunks of any lengths (a
        stream: at most one window of frames is held; progress then reports the frames seen so far as total)."""
        S = self.model.window_len
        total = video.shape[1] if isinstance(video, torch.Tensor) else None
        out = None
        # Overlapping chunks share frames: a small cache encodes each frame once. One inference context for the
        # whole stream, so that malloc's recycled blocks survive from one chunk to the next.
        with self.model.cached_features(max_frames=2 * S), _inference(self.model, self.precision):
            for ind, chunk in _stream_windows(video, S, self.step):
                if ind == 0:
                    self(chunk[:, :1], is_first_step=True, queries=queries, grid_size=grid_size,
                         grid_query_frame=grid_query_frame, add_support_grid=add_support_grid, segm_mask=segm_mask)
                out = self(chunk, add_support_grid=add_support_grid)
                if progress is not None:
                    done = ind + chunk.shape[1]
                    progress(done, total or done)
        if out is None:
            raise ValueError("the video has no frames")
        return out


def _stream_windows(video: torch.Tensor | Iterable[torch.Tensor], S: int, step: int
                    ) -> Iterator[tuple[int, torch.Tensor]]:
    """(ind, frames [ind, ind + S)) for ind = 0, step, ... while ind < T - step (at least one window), from a
    (B, T, ...) tensor or an iterable of (B, t, ...) chunks, holding at most S + one chunk of frames."""
    if isinstance(video, torch.Tensor):
        T = video.shape[1]
        for ind in range(0, max(T - step, 1), step):
            yield ind, video[:, ind : ind + S]
        return
    ind, buffer, emitted = 0, None, False
    for chunk in video:
        buffer = chunk if buffer is None else torch.cat([buffer, chunk], dim=1)
        while buffer.shape[1] >= S:
            yield ind, buffer[:, :S]
            emitted = True
            buffer, ind = buffer[:, step:], ind + step
    if buffer is not None and (buffer.shape[1] > step or not emitted):
        yield ind, buffer


# --------------------------------------------------------------------------------------------------------------
# evaluation predictor (spec 14)


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
        self.precision = _check_precision(precision)
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
                mode="online_windows" if isinstance(self.model, CoTracker3Online) else "offline",
                cached_frames=T if self.single_point else 0, precision=self.precision,
                device=_model_device(self.model), what="the evaluation predictor tracking")
        with _inference(self.model, self.precision):
            return self._predict(video, queries)

    def _predict(self, video: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _, H, W = video.shape
        N = queries.shape[1]
        video_m = _resize_frames(video, self.interp_shape, _model_device(self.model))
        q = _to_model_px(queries.to(video_m), (H, W), self.interp_shape)
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
        return _to_input_px(tracks.float(), (H, W), self.interp_shape), vis.float()

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


# --------------------------------------------------------------------------------------------------------------
# convenience entry point


def _video_tensor(video) -> torch.Tensor:
    """The video as a (B, T, 3, H, W) tensor without copying it: dtype and device are kept, the predictors move and
    convert it chunk by chunk."""
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"numpy video must be (T, H, W, 3) uint8, got {tuple(video.shape)}")
        video = video.permute(0, 3, 1, 2)[None]
    if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[2] != 3:
        raise ValueError("video must be np.uint8 (T, H, W, 3) or a tensor (B, T, 3, H, W) with values 0..255")
    return video


def _query_tensor(queries, batch: int, device) -> torch.Tensor | None:
    if queries is None:
        return None
    q = torch.as_tensor(np.asarray(queries) if not isinstance(queries, torch.Tensor) else queries)
    q = q.to(device=device, dtype=torch.float32)
    if q.ndim == 2:
        q = q[None].expand(batch, -1, -1)
    if q.ndim != 3 or q.shape[-1] != 3 or q.shape[0] != batch:
        raise ValueError(f"queries must be (N, 3) or (B, N, 3) as (t, x, y), got {tuple(q.shape)}")
    return q


def track(
    model: CoTracker3Base,
    video,
    queries=None,
    *,
    grid_size: int = 0,
    grid_query_frame: int = 0,
    segm_mask=None,
    backward_tracking: bool = False,
    chunk_callback: Callable[[int, int], None] | None = None,
    precision: str = "fp32",
    compile: bool = False,
    memory_check: bool = True,
) -> Prediction:
    """Track points through a video with the predictor that fits the model.

    video: np.uint8 (T, H, W, 3) or tensor (B, T, 3, H, W) in 0..255; queries: (N, 3) or (B, N, 3) as (t, x, y)
    input pixels, or None with grid_size > 0 (grid at grid_query_frame, optionally inside segm_mask (H, W)),
    or None and grid_size 0: dense tracking (offline) / the 5x5 default grid (online).
    Offline models: offline predictor (support grid, threshold vis > 0.9, query correction); confidence is the
    model's confidence probability. Online models: streaming over chunks (visible = vis x conf > 0.6; support grid
    added for explicit queries); backward tracking runs the streaming model on the reversed video for the
    frames before each query. chunk_callback(frames_done, total) reports progress.

    Speed and memory (docs/tracker_model.md): precision "fp32" (default, reproduces the official outputs) or "bf16"
    (autocast; for GPUs); compile=True compiles the model's hot paths with torch.compile (opt-in: the first calls
    pay the compilation); memory_check estimates the request's memory first and raises
    tracker.memory.InsufficientMemoryError (a ValueError, one line) if it does not fit.
    Returns Prediction with tracks (B, T, N, 2) float32, visibility (B, T, N) bool, confidence (B, T, N) float32
    (CPU tensors).
    """
    device = _model_device(model)
    v = _video_tensor(video)
    q = _query_tensor(queries, v.shape[0], device)
    if compile:
        compile_hot_paths(model)
    options = dict(precision=precision, memory_check=memory_check)
    if isinstance(model, CoTracker3Online):
        out = _track_online(OnlinePredictor(model, **options), v, q, grid_size, grid_query_frame, segm_mask,
                            backward_tracking, chunk_callback)
    elif isinstance(model, CoTracker3Offline):
        out = OfflinePredictor(model, **options)(v, q, segm_mask=segm_mask, grid_size=grid_size,
                                                 grid_query_frame=grid_query_frame,
                                                 backward_tracking=backward_tracking, progress=chunk_callback)
    else:
        raise TypeError(f"unsupported model type {type(model).__name__}")
    return Prediction(out.tracks.float().cpu(), out.visible.cpu(), out.conf_prob.float().cpu())


def _track_online(pred: OnlinePredictor, v, q, grid_size, grid_query_frame, segm_mask, backward, callback
                  ) -> PredictorOutput:
    kwargs = dict(queries=q, grid_size=grid_size or 5, grid_query_frame=grid_query_frame,
                  add_support_grid=q is not None, segm_mask=segm_mask)
    T = v.shape[1]
    total = 2 * T if backward else T
    fwd = pred.track_video(v, progress=callback and (lambda d, _t: callback(d, total)), **kwargs)
    if not backward:
        return fwd
    frames = pred.queries[:, : fwd.tracks.shape[2], 0]
    if q is not None:
        kwargs["queries"] = _reverse_queries(q, T)
    else:
        kwargs["grid_query_frame"] = T - 1 - grid_query_frame
    bwd = pred.track_video(v.flip(1), progress=callback and (lambda d, _t: callback(T + d, total)), **kwargs)
    before = torch.arange(T, device=frames.device)[None, :, None] < frames[:, None, :]
    pick = lambda f, b: torch.where(before if f.ndim == 3 else before[..., None], b.flip(1), f)  # noqa: E731
    return PredictorOutput(
        pick(fwd.tracks, bwd.tracks), pick(fwd.visible, bwd.visible), pick(fwd.vis_prob, bwd.vis_prob),
        pick(fwd.conf_prob, bwd.conf_prob), fwd.raw + bwd.raw, fwd.queries,
    )
