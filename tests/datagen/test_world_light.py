"""datagen.scene.world_light: the light a panorama casts, blurred by a given angle on the sphere with its energy
kept, a compact sun taken out as a lamp of the same direction and power (checked in a real render against the
sharp panorama), 8-bit sRGB panoramas decoded to linear light first. (That a blurred world light leaves the ground
truth exact: tests/datagen/test_render_device.py.)"""
from __future__ import annotations

import numpy as np
import pytest

from datagen.scene import world_light

W, H = 128, 64  # equirectangular: 2.8125 degrees a pixel


def _latitudes(h: int) -> np.ndarray:
    return ((np.arange(h) + 0.5) / h - 0.5) * np.pi  # row 0 at the bottom, as Blender stores images


def _light(px: np.ndarray) -> float:
    """Radiance x solid angle, summed: the light a panorama casts."""
    h, w = px.shape[:2]
    return float((px.sum(-1) * np.cos(_latitudes(h))[:, None]).sum() * (2 * np.pi / w) * (np.pi / h))


def _spread_deg(profile: np.ndarray, deg_per_px: float) -> float:
    x = np.arange(len(profile))
    mean = (profile * x).sum() / profile.sum()
    return float(np.sqrt((profile * (x - mean) ** 2).sum() / profile.sum()) * deg_per_px)


def test_blur_spreads_a_lamp_by_the_angle_asked_and_keeps_its_light():
    sigma = 12.0
    for row, col in ((32, 40), (56, 100)):  # on the equator; at 69 degrees of latitude
        px = np.zeros((H, W, 3), np.float32)
        px[row, col] = 1000.0
        out = world_light.blurred(px, sigma, width=64)
        assert out.shape == (32, 64, 3)
        assert _light(out) == pytest.approx(_light(px), rel=0.01)
        assert out.max() < 0.02 * px.max()  # spread over many pixels
        lum = out[..., 0]
        r, c = np.unravel_index(np.argmax(lum), lum.shape)
        assert abs(r - row // 2) <= 1 and min(abs(c - col // 2), 64 - abs(c - col // 2)) <= 1
        # Round on the sphere: the spread along the meridian and along the parallel (in degrees of arc, i.e.
        # degrees of longitude x cos latitude) are both about sigma, at the pole as at the equator.
        deg = 360.0 / 64
        along_meridian = _spread_deg(lum[:, c], deg)
        along_parallel = _spread_deg(np.roll(lum[r], 32 - c), deg) * np.cos(_latitudes(32)[r])
        assert along_meridian == pytest.approx(sigma, rel=0.25)
        assert along_parallel == pytest.approx(sigma, rel=0.25)


def _sky_with_sun(row: int, col: int, sun: float = 3000.0, sky: float = 0.05, h: int = H) -> np.ndarray:
    """(h, 2h, 3): a uniform sky and a 5-pixel sun (a cross) centred at (row, col)."""
    px = np.full((h, 2 * h, 3), sky, np.float32)
    for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
        px[row + dr, col + dc] = sun
    return px


def test_split_sun_finds_a_compact_sun_and_leaves_lamps_and_skies_alone():
    px = _sky_with_sun(50, 20)
    sun, rest = world_light.split_sun(px)
    assert sun is not None
    lat, lon = _latitudes(H)[50], (0.5 - 20.5 / W) * 2 * np.pi  # Blender's mapping (world_light's docstring)
    expected = [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    np.testing.assert_allclose(sun.direction, expected, atol=0.01)
    # Its light is what the 5 pixels cast above the sky; they are sky now.
    above = (px - rest).sum(-1)
    np.testing.assert_allclose(sun.irradiance, _light(px - rest) / 3, rtol=1e-3)
    assert (above > 0).sum() == 5 and np.allclose(rest, 0.05)

    # A disc 4 degrees across on a 1,024-pixel panorama (0.35 degrees a pixel) is a sun 4 degrees across, found
    # beside a brighter lone pixel (lossy compression leaves such pixels around suns).
    big = np.full((512, 1024, 3), 0.05, np.float32)
    disc = world_light.directions(512, 1024) @ np.array([0.0, 0.6, 0.8]) > np.cos(np.deg2rad(2.0))
    big[disc] = 2000.0
    big[100, 700] = 1e4  # 5x the sun's pixels
    sun, _ = world_light.split_sun(big)
    np.testing.assert_allclose(sun.direction, [0.0, 0.6, 0.8], atol=0.005)
    assert np.rad2deg(sun.angle) == pytest.approx(4.0, rel=0.1)

    # Thirty small lamps of an interior: none is a sun (each casts ~3 % of the light); an overcast sky neither.
    lamps = np.full((H, W, 3), 0.05, np.float32)
    rng = np.random.default_rng(0)
    lamps[rng.integers(40, 60, 30), rng.integers(0, W, 30)] = 40.0
    assert world_light.split_sun(lamps)[0] is None
    assert world_light.split_sun(np.full((H, W, 3), 1.0, np.float32))[0] is None
    assert world_light.split_sun(np.zeros((H, W, 3), np.float32))[0] is None  # no light at all: no NaN sun


def test_world_direction_undoes_the_worlds_yaw():
    # The world looks the panorama up at Rz(yaw) @ d: the panorama's +X is seen along Rz(-yaw) @ +X.
    np.testing.assert_allclose(world_light.world_direction(np.array([1.0, 0.0, 0.0]), np.pi / 2), [0, -1, 0],
                               atol=1e-12)
    d = np.array([0.3, -0.5, 0.81])
    np.testing.assert_allclose(world_light.world_direction(d, 0.0), d)


def test_read_linear_decodes_8_bit_srgb_and_clamps_negative_light():
    bpy = pytest.importorskip("bpy")

    img = bpy.data.images.new("grey", W, H, alpha=True, float_buffer=False)  # 8-bit, sRGB like a JPEG
    assert img.colorspace_settings.name.lower().startswith("srgb")
    px = np.full((H, W, 4), 0.5, np.float32)
    img.pixels.foreach_set(px.ravel())
    np.testing.assert_allclose(world_light.read_linear(img), 0.214, atol=0.003)  # 8-bit 128/255 in linear light

    hdr = bpy.data.images.new("ringing", W, H, alpha=True, float_buffer=True)
    px = np.ones((H, W, 4), np.float32)
    px[10:12, 20:30, :3] = -50.0  # what lossy EXR compression leaves around a sun
    hdr.pixels.foreach_set(px.ravel())
    linear = world_light.read_linear(hdr)
    assert linear.min() == 0.0 and linear[10:12, 20:30].max() == 0.0 and linear[30, 60, 0] == 1.0


def _write_exr(path, px: np.ndarray) -> None:
    """A float RGB OpenEXR of `px` (rows bottom first, as Blender stores them; EXR rows run top first)."""
    import Imath
    import OpenEXR

    h, w = px.shape[:2]
    header = OpenEXR.Header(w, h)
    header["channels"] = {c: Imath.Channel(Imath.PixelType(Imath.PixelType.FLOAT)) for c in "RGB"}
    out = OpenEXR.OutputFile(str(path), header)
    out.writePixels({c: np.ascontiguousarray(px[::-1, :, i]).tobytes() for i, c in enumerate("RGB")})
    out.close()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


@pytest.mark.slow
def test_a_panoramas_sun_made_a_lamp_lights_the_scene_as_the_sharp_panorama_does(tmp_path, monkeypatch):
    """Real renders of one scene lit by a panorama with a sun (no other light): its sharp light at many samples
    (the reference), and the blurred light at few samples, with the sun made a lamp and without (the sun blurred
    into the sky: its shadows go). The lamp's shadows and brightness match the reference."""
    pytest.importorskip("bpy")
    from datagen.config.scene import SceneConfig
    from datagen.scene.render import render_scene

    pano = tmp_path / "sun.exr"
    _write_exr(pano, _sky_with_sun(186, 120, h=256))  # 40 degrees up, 0.7 degrees a pixel (a sun of ~2 degrees)
    base = dict(resolution=[48, 48], num_frames=2, num_static_objects=[3, 3], num_tossed_objects=[0, 0],
                dome_textures=[str(pano)], hdri_strength=[1.0, 1.0], hdri_sun_intensity=[0.0, 0.0],
                num_extra_lights=[0, 0], camera_motion=["static"], num_tracks=16, motion_blur=[0.0, 0.0],
                object_scale=[2.0, 2.5], spawn_region_half=1.0)  # big objects, big shadows

    def render(name: str, **kw) -> np.ndarray:
        return render_scene(SceneConfig(**{**base, **kw}), 7, tmp_path / name).sample.video

    sharp = render_scene(SceneConfig(**base, samples_per_pixel=128), 7, tmp_path / "sharp").sample
    yaw = next(a for a in sharp.meta["assets"] if a.get("name") == "dome")["yaw"]
    assert abs(np.sin(yaw)) > 0.3  # a wrong sign of the yaw would turn the shadows
    sharp = sharp.video
    lamp = render("lamp", samples_per_pixel=16, world_light_blur_deg=12.0)
    monkeypatch.setattr(world_light, "SUN_MIN_SHARE", 2.0)  # no panorama has a sun now
    no_lamp = render("no_lamp", samples_per_pixel=16, world_light_blur_deg=12.0)

    assert lamp.mean() == pytest.approx(sharp.mean(), rel=0.02)  # as much light
    assert _psnr(lamp, sharp) > 30.0
    # Where the sun's shadows fall (the pixels the sun blurred into the sky gets wrong), the lamp gets them right.
    diff = lambda a, b: np.abs(a.astype(float) - b.astype(float)).mean(-1)  # noqa: E731
    shadows = diff(no_lamp, sharp) > 25
    assert shadows.sum() > 20
    assert diff(lamp, sharp)[shadows].mean() < 0.5 * diff(no_lamp, sharp)[shadows].mean()  # measured: 0.32
