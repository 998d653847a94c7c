"""Colour conversions shared by the materials (people, animal coats) and the world light: one formula each."""
from __future__ import annotations

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec.709 luminance weights of linear RGB


def srgb_to_linear(c):
    """sRGB-encoded values (any shape, 0..1) -> linear light (float64)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def luminance(rgb) -> float:
    """The Rec.709 luminance of one (r, g, b) colour."""
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
