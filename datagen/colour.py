"""Colour conversions shared by the materials (people, animal coats) and the world light: one formula each."""
from __future__ import annotations

import colorsys

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec.709 luminance weights of linear RGB


def srgb_to_linear(c):
    """sRGB-encoded values (any shape, 0..1) -> linear light (float64)."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c):
    """Linear light (any shape, 0..1) -> sRGB-encoded values (float64); the inverse of srgb_to_linear."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, None)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def luminance(rgb) -> float:
    """The Rec.709 luminance of one (r, g, b) colour."""
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def shade(rgb, value: float = 1.0, sat: float = 1.0) -> tuple[float, float, float, float]:
    """Linear `rgb` with its HSV value scaled by `value` and its saturation by `sat` (both capped at 1), as RGBA
    for a node socket."""
    h, s, v = colorsys.rgb_to_hsv(*rgb[:3])
    return (*colorsys.hsv_to_rgb(h, min(s * sat, 1.0), min(v * value, 1.0)), 1.0)
