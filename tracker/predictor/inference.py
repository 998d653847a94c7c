"""What every predictor call shares: the precision, the inference context, frame resizing and the conversion of
positions between the input frames and the model's resolution.

Pixel convention (spec 2.5, tracker.common.pixels): positions are (x, y) pixels with aligned corners, so a point
moves from an (H, W) input frame to the model's (h, w) frame as x * (w - 1) / (W - 1), y * (h - 1) / (H - 1), and
back by the inverse factors; tracker.common.pixels.rescale_xy is the one place that rule is written.
"""
from __future__ import annotations

import contextlib

import torch

from tracker.common.pixels import rescale_xy

from ..malloc import recycled_large_blocks
from ..model import CoTracker3Base, reference_enabled
from ..model.sampling import resize_video

PRECISIONS = ("fp32", "bf16")
RESIZE_CHUNK = 16  # frames converted to float and resized at a time (no full-resolution float copy of the clip)


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS, else ValueError."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's (first) parameter: where the predictors put frames and queries."""
    return next(model.parameters()).device


def inference_context(model: torch.nn.Module, precision: str) -> contextlib.ExitStack:
    """The context of every predictor call: no autograd; on CPU (default implementation) large blocks recycled by
    malloc (see tracker.malloc); bf16 autocast when asked for (outputs then differ from float32 by ~1e-2 px)."""
    device = model_device(model)
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    if device.type == "cpu" and not reference_enabled():
        stack.enter_context(recycled_large_blocks())
    if precision == "bf16":
        stack.enter_context(torch.autocast(device.type, dtype=torch.bfloat16))
    return stack


def resize_frames(video: torch.Tensor, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """video (B, T, 3, H, W) 0..255 of any dtype and device -> float32 (B, T, 3, h, w) on `device`, resized
    (align-corners bilinear) RESIZE_CHUNK frames at a time, so no float copy of the input resolution is made."""
    B, T = video.shape[:2]
    if tuple(video.shape[-2:]) == tuple(size):
        return video.to(device=device, dtype=torch.float32)
    out = torch.empty(B, T, 3, *size, device=device)
    for t in range(0, T, RESIZE_CHUNK):
        out[:, t : t + RESIZE_CHUNK] = resize_video(video[:, t : t + RESIZE_CHUNK].to(device).float(), size)
    return out


def to_model_px(queries: torch.Tensor, size_in: tuple[int, int], size_model: tuple[int, int]) -> torch.Tensor:
    """queries (..., 3) (t, x, y) with (x, y) in pixels of size_in (H, W) frames -> a copy with (x, y) in pixels of
    the model's size_model (h, w) frames; t unchanged."""
    q = queries.clone()
    q[..., 1:] = rescale_xy(q[..., 1:], size_in, size_model)
    return q


def to_input_px(tracks: torch.Tensor, size_in: tuple[int, int], size_model: tuple[int, int]) -> torch.Tensor:
    """tracks (..., 2) (x, y) in pixels of the model's size_model (h, w) frames -> pixels of size_in (H, W)."""
    return rescale_xy(tracks, size_model, size_in)


def set_shared_options(predictor, model: CoTracker3Base, support_grid_size: int, iters: int, threshold: float,
                       precision: str, memory_check: bool, input_size: tuple[int, int] | None = None) -> None:
    """Set the options the offline and online predictors share on `predictor`: model, interp_shape (the frames'
    size (h, w) in the model: input_size, default the model's own model_resolution), support_grid_size, iters,
    threshold (visibility), precision, memory_check."""
    predictor.model = model
    predictor.interp_shape = tuple(int(v) for v in (input_size or model.model_resolution))
    predictor.support_grid_size = support_grid_size
    predictor.iters = iters
    predictor.threshold = threshold
    predictor.precision = check_precision(precision)
    predictor.memory_check = memory_check
