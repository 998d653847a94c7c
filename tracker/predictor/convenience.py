"""`track`: one call from a video and queries (numpy or torch) to a `Prediction`, with the predictor that fits
the model (offline or online)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tracker.common.prediction import Prediction

from ..model import CoTracker3Base, CoTracker3Offline, CoTracker3Online, compile_hot_paths
from .backward import merge_backward, reverse_queries
from .inference import model_device
from .offline import OfflinePredictor
from .online import OnlinePredictor
from .outputs import PredictorOutput


def video_tensor(video) -> torch.Tensor:
    """The video as a (B, T, 3, H, W) tensor without copying it: dtype and device are kept, the predictors move and
    convert it chunk by chunk. video: np.uint8 (T, H, W, 3) or a tensor (B, T, 3, H, W) in 0..255."""
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"numpy video must be (T, H, W, 3) uint8, got {tuple(video.shape)}")
        video = video.permute(0, 3, 1, 2)[None]
    if not isinstance(video, torch.Tensor) or video.ndim != 5 or video.shape[2] != 3:
        raise ValueError("video must be np.uint8 (T, H, W, 3) or a tensor (B, T, 3, H, W) with values 0..255")
    return video


def query_tensor(queries, batch: int, device) -> torch.Tensor | None:
    """queries (N, 3) or (B, N, 3) (t, x, y), array or tensor -> float32 (batch, N, 3) on `device` (None stays
    None); ValueError for any other shape."""
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
    input_size: tuple[int, int] | None = None,
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
    tracker.memory.InsufficientMemoryError (a ValueError, one line) if it does not fit. input_size (h, w): the
    size the frames are resized to for the model (default its model_resolution; tracker.common.pixels.
    aspect_input_size gives one that keeps the video's aspect ratio); grids are laid out at that size.
    Returns Prediction with tracks (B, T, N, 2) float32, visible (B, T, N) bool (also readable as `visibility`),
    confidence (B, T, N) float32 (CPU tensors).
    """
    device = model_device(model)
    v = video_tensor(video)
    q = query_tensor(queries, v.shape[0], device)
    if compile:
        compile_hot_paths(model)
    options = dict(precision=precision, memory_check=memory_check, input_size=input_size)
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
    """The online predictor over video v (B, T, 3, H, W): forward, and with `backward` a second run on the reversed
    video whose results fill the frames before each query frame (progress counts both runs: 2T frames)."""
    kwargs = dict(queries=q, grid_size=grid_size or 5, grid_query_frame=grid_query_frame,
                  add_support_grid=q is not None, segm_mask=segm_mask)
    T = v.shape[1]
    total = 2 * T if backward else T
    fwd = pred.track_video(v, progress=callback and (lambda d, _t: callback(d, total)), **kwargs)
    if not backward:
        return fwd
    frames = pred.queries[:, : fwd.tracks.shape[2], 0]
    if q is not None:
        kwargs["queries"] = reverse_queries(q, T)
    else:
        kwargs["grid_query_frame"] = T - 1 - grid_query_frame
    bwd = pred.track_video(v.flip(1), progress=callback and (lambda d, _t: callback(T + d, total)), **kwargs)
    return PredictorOutput(
        merge_backward(fwd.tracks, bwd.tracks, frames), merge_backward(fwd.visible, bwd.visible, frames),
        merge_backward(fwd.vis_prob, bwd.vis_prob, frames), merge_backward(fwd.conf_prob, bwd.conf_prob, frames),
        fwd.raw + bwd.raw, fwd.queries,
    )
