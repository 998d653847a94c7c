"""The light a panorama casts, made to converge at a few samples per pixel (bpy side: `light_image`, `add_sun`).

A panorama's small bright lamps (dozens in an interior HDRI) make path-traced light converge slowly: 16 samples
speckled whole frames (docs/datagen_scenes.md, "Clean frames"). The same light spread over a few degrees
converges, but blurring a sky also blurs its sun and with it every hard shadow. So a compact sun that holds a
good share of the light is taken out of the panorama first and becomes a Blender sun lamp of the same
direction, size, colour and power (Cycles samples a lamp directly: sharp, clean shadows); the rest is blurred.
Camera rays keep seeing the sharp panorama (datagen.scene.materials.panorama_world).

Pixels are (H, W, 3) linear RGB in Blender's row order (bottom row first); a pixel's direction follows Blender's
equirectangular mapping: column u (0..1) at longitude (0.5 - u) * 2 pi from +X towards +Y, row v (0..1, from the
bottom) at latitude (v - 0.5) * pi.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datagen.colour import LUMA, srgb_to_linear

SUN_MAX_RADIUS_DEG = 4.0  # a sun is compact: its bright pixels lie within this of the brightest one
SUN_MIN_SHARE = 0.2  # ... and cast at least this share of the panorama's light (else: lamps, overcast sky)
SUN_LEVEL = 0.02  # pixels brighter than this fraction of the peak (3x3 mean), within the radius, are the sun


@dataclass
class Sun:
    direction: np.ndarray  # (3,) unit vector towards the sun, in the panorama's own frame
    angle: float  # angular diameter, radians
    irradiance: np.ndarray  # (3,) RGB light it casts on a surface facing it, per unit world strength


def cos_latitude(rows: int) -> np.ndarray:
    """(rows, 1, 1): cos latitude of each row's centre, i.e. the solid angle of its pixels (up to a constant)."""
    return np.maximum(np.cos((0.5 - (np.arange(rows) + 0.5) / rows) * np.pi), 1e-3)[:, None, None]


def directions(h: int, w: int, rows: slice = slice(None)) -> np.ndarray:
    """(h, w, 3) unit vectors of the pixel centres (bottom row first), or of `rows` of them."""
    lon = (0.5 - (np.arange(w) + 0.5) / w) * 2 * np.pi
    lat = ((np.arange(h)[rows] + 0.5) / h - 0.5) * np.pi
    lat, lon = np.meshgrid(lat, lon, indexing="ij")
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def split_sun(px: np.ndarray) -> tuple[Sun | None, np.ndarray]:
    """Take a compact sun out of the panorama `px` (H, W, 3): -> (the sun or None, the panorama without it: its
    pixels lowered to the level around them)."""
    from scipy.ndimage import uniform_filter

    h, w = px.shape[:2]
    lum = px @ LUMA
    solid = cos_latitude(h)[..., 0] * (2 * np.pi / w) * (np.pi / h)  # (h, 1) steradians per pixel
    light = float((lum * solid).sum())
    if not light > 0:
        return None, px
    # The peak of the 3x3 mean: a lone hot pixel (lossy compression rings around suns) is no sun.
    smooth = uniform_filter(lum, size=3, mode=("nearest", "wrap"))
    peak = np.unravel_index(np.argmax(smooth), lum.shape)
    # Only the rows within three radii of the peak can hold its disc and ring (about a seventh of the panorama).
    reach = int(np.ceil(3 * SUN_MAX_RADIUS_DEG / 180.0 * h)) + 1
    band = slice(max(peak[0] - reach, 0), min(peak[0] + reach + 1, h))
    sun, rest = _split_band(px[band], lum[band], solid[band], directions(h, w, band), (peak[0] - band.start, peak[1]),
                            SUN_LEVEL * float(smooth[peak]), light)
    if sun is None:
        return None, px
    out = px.copy()
    out[band] = rest
    return sun, out


def _split_band(px, lum, solid, dirs, peak: tuple[int, int], level: float,
                light: float) -> tuple[Sun | None, np.ndarray]:
    """split_sun on the rows around the peak: pixels (h, w, 3), luminance (h, w) and solid angle (h, 1) of those
    rows, their directions (h, w, 3), the peak's (row, column) among them, the luminance above which a pixel may
    belong to the sun, and the whole panorama's light."""
    cos_dist = dirs @ dirs[peak]
    bright = (cos_dist > np.cos(np.deg2rad(SUN_MAX_RADIUS_DEG))) & (lum > level)
    # The disc is centred on the sun's light, not on its brightest pixel (on a flat-topped sun: anywhere on it).
    middle = (dirs * (lum * solid * bright)[..., None]).sum((0, 1))
    cos_dist = dirs @ (middle / np.linalg.norm(middle))
    disc = cos_dist > np.cos(np.deg2rad(SUN_MAX_RADIUS_DEG))
    ring = (cos_dist > np.cos(np.deg2rad(2 * SUN_MAX_RADIUS_DEG))) & ~disc
    fill = np.median(px[ring], axis=0) if ring.any() else np.zeros(3, px.dtype)
    sun_px = disc & (lum > level)
    excess = np.clip(px - fill, 0.0, None) * (sun_px * solid)[..., None]  # (h, w, 3) light above the fill
    weight = excess @ LUMA
    if not weight.sum() >= SUN_MIN_SHARE * light:
        return None, px
    centre = (dirs * weight[..., None]).sum((0, 1))
    centre /= np.linalg.norm(centre)
    sun = Sun(centre, _angular_diameter(weight, dirs, centre, pitch=2 * np.pi / px.shape[1]), excess.sum((0, 1)))
    return sun, np.where(sun_px[..., None], np.minimum(px, fill), px)


def _angular_diameter(weight: np.ndarray, dirs: np.ndarray, centre: np.ndarray, pitch: float) -> float:
    """The diameter (radians) of a uniform disc with the rms angle of the light `weight` (h, w) about `centre`
    (2 (1 - cos) ~ angle^2), each pixel a square of side `pitch` (variance pitch^2 / 6 over two axes); a disc of
    radius R has rms R / sqrt(2). Kept within [0.5 degrees, twice the largest sun radius]."""
    rms = np.sqrt((weight * 2 * (1 - np.clip(dirs @ centre, -1, 1))).sum() / weight.sum() + pitch ** 2 / 6)
    return float(np.clip(2 * np.sqrt(2) * rms, np.deg2rad(0.5), np.deg2rad(2 * SUN_MAX_RADIUS_DEG)))


def blurred(px: np.ndarray, sigma_deg: float, width: int = 256) -> np.ndarray:
    """`px` (H, W, 3) box-averaged down by an integer factor to about `width` pixels wide and blurred by a Gaussian
    of `sigma_deg` degrees of arc: along the meridians as it is, along the parallels widened by 1 / cos(latitude),
    so that a blurred lamp stays round on the sphere; the light it casts (radiance x solid angle) is kept."""
    from scipy.ndimage import gaussian_filter1d

    h, w = px.shape[:2]
    f = max(1, w // width)  # panoramas are 2^k x 2^(k-1): otherwise the last (< f) rows and columns are left out
    h2, w2 = max(1, h // f), max(1, w // f)
    cos = cos_latitude(h2).astype(np.float32)
    small = (px * cos_latitude(h).astype(np.float32))[: h2 * f, : w2 * f].reshape(h2, f, w2, f, 3).mean(axis=(1, 3))
    small /= cos
    light = (small * cos).sum()
    small = gaussian_filter1d(small, sigma_deg * h2 / 180.0, axis=0, mode="nearest")
    sigma_col = sigma_deg * w2 / 360.0
    for row in range(h2):  # one row at a time: each latitude has its own width (h2 rows, once per scene)
        small[row] = gaussian_filter1d(small[row], min(sigma_col / cos[row, 0, 0], w2), axis=0, mode="wrap")
    # Spreading radiance along a meridian moves light into rows of another solid angle (1-2 % of a lamp's): one
    # factor gives the panorama its light back.
    return small * (light / max(float((small * cos).sum()), 1e-20))


def world_direction(direction: np.ndarray, rotation: float) -> np.ndarray:
    """(3,) the world direction that sees the panorama's `direction` when the world's mapping node turns the lookup
    by `rotation` about +Z (it looks the texture up at Rz(rotation) @ world direction)."""
    c, s = np.cos(rotation), np.sin(rotation)
    return np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) @ direction  # Rz(-rotation)


# ----------------------------------------------------------------------------------------------------- bpy side
def read_linear(image) -> np.ndarray:
    """A Blender image's pixels as (H, W, 3) float32 linear RGB >= 0: 8-bit sRGB images decoded (light, not its
    encoding, is what gets blurred and measured), float colour un-premultiplied as Cycles does, and the negative
    values lossy EXR compression leaves around suns (down to -3,890 in one HDRI) clamped, which would otherwise
    blur into a dark lobe of negative light."""
    w, h = image.size
    space = image.colorspace_settings.name
    if not image.is_float and not space.lower().startswith(("srgb", "linear", "non-color")):
        raise ValueError(f"panorama {image.filepath or image.name}: an 8-bit image in colour space {space!r} (the "
                         "world light is measured in sRGB or linear images)")
    rgba = np.empty(w * h * 4, np.float32)
    image.pixels.foreach_get(rgba)
    rgba = rgba.reshape(h, w, 4)
    px = rgba[..., :3]
    if image.is_float:
        alpha = rgba[..., 3:]
        px = np.where((alpha > 0) & (alpha < 1), px / np.maximum(alpha, 1e-6), px)
    elif space.lower().startswith("srgb"):
        px = srgb_to_linear(px)
    return np.maximum(px, 0.0).astype(np.float32)


def light_image(bpy, image, sigma_deg: float, width: int = 256, px: np.ndarray | None = None):
    """-> (a linear float Blender image: `image` without its sun, blurred by `sigma_deg`; the Sun or None).
    px: `image`'s read_linear pixels when the caller has them already."""
    sun, rest = split_sun(read_linear(image) if px is None else px)
    small = blurred(rest, sigma_deg, width)
    h2, w2 = small.shape[:2]
    rgba = np.concatenate([small, np.ones((h2, w2, 1), small.dtype)], axis=-1).astype(np.float32)
    out = bpy.data.images.new(f"{image.name}.light{sigma_deg:g}", w2, h2, alpha=True, float_buffer=True)
    out.colorspace_settings.name = "Linear Rec.709"
    out.pixels.foreach_set(rgba.ravel())
    return out, sun


def add_sun(bpy, sun: Sun, rotation: float, strength: float):
    """A Blender sun lamp for `sun` of a panorama turned by `rotation` (radians about +Z, as the world's mapping
    node turns the lookup) at world `strength`: the same direction, angular size, colour and irradiance."""
    from mathutils import Vector

    direction = world_direction(sun.direction, rotation)
    power = sun.irradiance * strength
    light = bpy.data.lights.new("panorama_sun", type="SUN")
    light.energy = float(power.max())
    light.color = tuple(float(v) for v in power / max(float(power.max()), 1e-20))
    light.angle = sun.angle
    obj = bpy.data.objects.new("panorama_sun", light)
    bpy.context.scene.collection.objects.link(obj)
    obj.rotation_mode = "QUATERNION"
    obj.rotation_quaternion = Vector(direction.tolist()).to_track_quat("Z", "Y")  # a sun shines along its -Z
    return obj
