"""A camera's white balance for panorama-lit scenes: the colour cast of the light taken out of the RGB frames.

A camera (or its owner) balances for the light: under a blue sky or a tungsten ceiling a white shirt still comes
out about white. A render does not: lit by a blue-sky panorama a light skin comes out lilac, by an interior one
orange. Of the 26 offline HDRIs, several cast strongly (the luminance-normalised mean colour of @pmndrs' park is
(0.71, 0.92, 2.67), venice (0.63, 1.01, 2.04), lobby (1.19, 0.98, 0.66)).

The cast is the panorama's mean colour over the sphere (solid-angle weighted, linear RGB, normalised to luminance
1), i.e. the colour of the light a grey ball would get from it; the gains divide it out, to the power `strength`
(1: all of it, as an ideal auto white balance; less keeps some of the light's mood), within [0.5, 2] per channel.
They are applied to the linear light of the 8-bit sRGB frames, the way a camera scales its raw channels; the
ground-truth layers never pass through here. Scenes without a panorama (a sun and lamps of faint colour) keep their
colours.
"""
from __future__ import annotations

import numpy as np

from datagen.colour import LUMA, linear_to_srgb, srgb_to_linear
from datagen.scene.world_light import cos_latitude

GAIN_LIMITS = (0.5, 2.0)


def colour_cast(px: np.ndarray) -> np.ndarray:
    """(3,) mean linear colour of an equirectangular panorama px (H, W, 3), per solid angle, at luminance 1."""
    weight = cos_latitude(px.shape[0])  # (H, 1, 1) solid angle per pixel row
    mean = (px * weight).sum((0, 1)) / max(float(weight.sum()) * px.shape[1], 1e-12)
    return mean / max(float(mean @ LUMA), 1e-12)


def gains(cast: np.ndarray, strength: float) -> np.ndarray:
    """(3,) per-channel gains that take `strength` of the colour `cast` (luminance 1) out, luminance kept."""
    cast = np.maximum(np.asarray(cast, np.float64), 1e-6)
    g = (1.0 / cast) ** float(strength)
    return np.clip(g / float((g * cast) @ LUMA), *GAIN_LIMITS)


def apply(rgb: np.ndarray, g: np.ndarray) -> np.ndarray:
    """rgb: (..., 3) uint8 sRGB frames -> the same with linear light scaled by `g` (3,) per channel (clipped at
    white, as a sensor clips). Each channel maps its 256 codes through a table."""
    if rgb.dtype != np.uint8:
        raise TypeError(f"white balance takes 8-bit frames, got {rgb.dtype}")
    codes = srgb_to_linear(np.arange(256) / 255.0)
    tables = np.round(linear_to_srgb(np.clip(codes[None] * np.asarray(g)[:, None], 0.0, 1.0)) * 255.0)
    tables = tables.astype(np.uint8)  # (3, 256)
    return np.stack([tables[c][rgb[..., c]] for c in range(3)], axis=-1)
