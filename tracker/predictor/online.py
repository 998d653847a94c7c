"""The online predictor (spec 13): the online model streamed over a video one chunk (window) at a time."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch

from ..memory import check_tracking_memory
from ..model import CoTracker3Online
from .grids import grid_queries, mask_grid
from .inference import inference_context, model_device, resize_frames, set_shared_options, to_input_px, to_model_px
from .outputs import PredictorOutput


class OnlinePredictor:
    """Streaming predictor around the online model: a first call registers the queries, then one call per chunk
    (frames [ind, ind + window) for ind = 0, step, ...). Visible = vis x conf > 0.6; no query correction.

    Memory does not grow with the clip length except for the outputs: each call encodes one window (overlapping
    frames come from a two-window feature cache in `track_video`) and `track_video` also takes an iterable of
    chunks, so a clip never has to be in memory at once. precision / memory_check / input_size: as
    `OfflinePredictor`."""

    def __init__(self, model: CoTracker3Online, *, support_grid_size: int = 6, iters: int = 6, threshold: float = 0.6,
                 precision: str = "fp32", memory_check: bool = True,
                 input_size: tuple[int, int] | None = None):
        if not isinstance(model, CoTracker3Online):
            raise TypeError("OnlinePredictor needs a CoTracker3Online model")
        set_shared_options(self, model, support_grid_size, iters, threshold, precision, memory_check, input_size)
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
        device = model_device(self.model)
        if is_first_step:
            self.model.reset_online()
            if queries is not None:
                q = to_model_px(queries.to(device).float(), (H, W), self.interp_shape)
                self.N = q.shape[1]
                if add_support_grid:
                    support = grid_queries(self.support_grid_size, self.interp_shape, 0, q.shape[0], device=q.device)
                    q = torch.cat([q, support], dim=1)
            elif grid_size > 0:
                q = grid_queries(grid_size, self.interp_shape, grid_query_frame, B, device=device)
                if segm_mask is not None:
                    q = mask_grid(q, segm_mask, self.interp_shape)
                self.N = q.shape[1]
            else:
                raise ValueError("give queries or a grid_size > 0")
            if self.memory_check:
                check_tracking_memory(self.model, num_frames=self.model.window_len, num_points=q.shape[1],
                                      input_hw=(H, W), batch=B, mode="online_stream", cached_frames=2 * self.step,
                                      precision=self.precision, device=device, what="the online predictor tracking",
                                      model_hw=self.interp_shape)
            self.queries = q
            return None
        if self.queries is None:
            raise RuntimeError("call with is_first_step=True (and the queries) first")
        with inference_context(self.model, self.precision):
            chunk = resize_frames(video_chunk, self.interp_shape, device)
            raw = self.model(chunk, self.queries, iters=self.iters, is_online=True)
        n = self.N if add_support_grid else raw.coords.shape[2]
        vis, conf = raw.vis[:, :, :n].float(), raw.conf[:, :, :n].float()
        tracks = to_input_px(raw.coords[:, :, :n].float(), (H, W), self.interp_shape)
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
        with self.model.cached_features(max_frames=2 * S), inference_context(self.model, self.precision):
            for ind, chunk in stream_windows(video, S, self.step):
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


def stream_windows(video: torch.Tensor | Iterable[torch.Tensor], S: int, step: int
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
