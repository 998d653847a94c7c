"""Pixel positions between resolutions: the one rescaling helper.

Convention everywhere in TrackForge: (x, y) pixels with x = 0 at the centre of the leftmost pixel and x = W - 1 at
the centre of the rightmost one (y likewise). Resizing a frame from (H, W) to (H', W') with aligned corners maps
x to x * (W' - 1) / (W - 1); TAP-Vid's normalised points are the special case W' = 2 (x in [0, 1]).
"""
from __future__ import annotations

from typing import TypeVar

import numpy as np

Array = TypeVar("Array")  # numpy array or torch tensor


def xy_scale(size_from: tuple[int, int], size_to: tuple[int, int]) -> np.ndarray:
    """float64 (2,): the factors (sx, sy) taking (x, y) pixels of an (H, W) frame to an (H', W') frame."""
    (h0, w0), (h1, w1) = size_from, size_to
    return np.array([(w1 - 1) / max(w0 - 1, 1), (h1 - 1) / max(h0 - 1, 1)], dtype=np.float64)


def rescale_xy(xy: Array, size_from: tuple[int, int], size_to: tuple[int, int]) -> Array:
    """(..., 2) (x, y) pixels of a frame of size_from (H, W) -> the same points in a frame of size_to (H', W').
    Works on numpy arrays (float64 factors) and torch tensors (factors in the tensor's dtype); NaN stays NaN."""
    scale = xy_scale(size_from, size_to)
    if isinstance(xy, np.ndarray):
        return xy * scale
    return xy * xy.new_tensor(scale)  # type: ignore[attr-defined]


def aspect_input_size(input_size: tuple[int, int], source_hw: tuple[int, int]) -> tuple[int, int]:
    """The model input (H, W) for a video of source_hw (H, W) that keeps the video's aspect ratio: the short side of
    input_size, the long side in proportion, rounded to a multiple of 8 and never below the short side (model inputs
    must be multiples of the encoder's stride 4, tracker.model.input_size_problem). An 854x480 video with a 128x128
    model: 128x224; with the official 384x512: 384x680."""
    short = min(input_size)
    h, w = source_hw
    long = max(short, int(round(short * max(h, w) / min(h, w) / 8)) * 8)
    return (short, long) if w >= h else (long, short)
