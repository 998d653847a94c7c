"""datagen.scene.white_balance: the colour cast of a panorama, the gains that take it out, the 8-bit frames scaled
in linear light; and a real render of a scene lit by a blue panorama, with and without the camera's balance."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.colour import LUMA, srgb_to_linear
from datagen.scene import white_balance as wb


def test_cast_gains_and_frames():
    blue = np.array([0.4, 0.5, 0.8])
    pano = np.broadcast_to(blue, (16, 32, 3)).astype(np.float32)
    cast = wb.colour_cast(pano)
    np.testing.assert_allclose(cast, blue / (blue @ LUMA), rtol=1e-5)
    full = wb.gains(cast, 1.0)
    np.testing.assert_allclose(full * cast, 1.0, rtol=1e-5)  # a grey card comes out grey
    np.testing.assert_allclose(wb.gains(cast, 0.0), 1.0)  # nothing taken out
    half = wb.gains(cast, 0.5)
    assert float((half * cast) @ LUMA) == pytest.approx(1.0)  # luminance kept
    assert 1.0 < half[0] < full[0] and full[2] < half[2] < 1.0
    assert wb.gains(np.array([0.7, 0.9, 2.7]), 1.0).min() == wb.GAIN_LIMITS[0]  # within the limits
    # a pole-heavy panorama counts by solid angle: a bright top row barely moves the cast
    polar = pano.copy()
    polar[0] = [50.0, 0.0, 0.0]
    assert wb.colour_cast(polar)[0] < 3 * cast[0]

    frames = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, -1)
    np.testing.assert_array_equal(wb.apply(frames, np.ones(3)), frames)
    out = wb.apply(frames, np.array([2.0, 1.0, 0.5]))
    lin_in, lin_out = srgb_to_linear(frames / 255.0), srgb_to_linear(out / 255.0)
    mid = (lin_in[..., 0] > 0.05) & (lin_in[..., 0] < 0.45)  # not black, not clipped at white when doubled
    np.testing.assert_allclose(lin_out[mid][:, 0] / lin_in[mid][:, 0], 2.0, rtol=0.05)
    np.testing.assert_allclose(lin_out[mid][:, 2] / lin_in[mid][:, 2], 0.5, rtol=0.05)
    assert out[..., 0].max() == 255 and (out[..., 1] == frames[..., 1]).all()
    with pytest.raises(TypeError, match="8-bit"):
        wb.apply(frames.astype(np.float32), np.ones(3))


@pytest.mark.slow
def test_a_blue_panorama_lit_scene_is_balanced_in_its_rgb_only(tmp_path):
    """The same scene (seed) lit by a uniform blue panorama, rendered without and with white_balance=1: the balanced
    frames are the plain ones through the gains the metadata records (which take the panorama's blue out), far
    less blue, and tracks, visibility and 3-D tracks are unchanged."""
    pytest.importorskip("bpy")
    from PIL import Image

    from datagen.config.scene import SceneConfig
    from datagen.scene.render import render_scene

    colour = np.array([110, 140, 230], np.uint8)  # sRGB: a blue sky
    pano = tmp_path / "blue.png"
    Image.fromarray(np.broadcast_to(colour, (32, 64, 3)).copy()).save(pano)
    base = dict(resolution=[32, 32], num_frames=2, samples_per_pixel=8, num_static_objects=[2, 2],
                num_tossed_objects=[0, 0], dome_textures=[str(pano)], hdri_strength=[1.5, 1.5],
                hdri_sun_intensity=[0.0, 0.0], num_extra_lights=[0, 0], camera_motion=["static"], num_tracks=16)
    plain = render_scene(SceneConfig(**base), 3, tmp_path / "plain").sample
    balanced = render_scene(SceneConfig(**base, white_balance=1.0), 3, tmp_path / "balanced").sample

    lin = srgb_to_linear(colour / 255.0)
    expected = wb.gains(lin / (lin @ LUMA), 1.0)
    assert plain.meta["white_balance"] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(balanced.meta["white_balance"], expected, rtol=1e-3)
    again = wb.apply(plain.video, np.array(balanced.meta["white_balance"]))
    assert np.abs(again.astype(int) - balanced.video).mean() < 0.5  # the same render, balanced (float noise aside)

    def blueness(video):
        mean = srgb_to_linear(video / 255.0).reshape(-1, 3).mean(0)
        return mean[2] / mean[0]

    assert expected[2] < 0.6 < 1.5 < expected[0]  # the panorama's blue taken out, red raised
    assert blueness(balanced.video) < 0.5 * blueness(plain.video)
    np.testing.assert_array_equal(balanced.tracks, plain.tracks)
    np.testing.assert_array_equal(balanced.visibility, plain.visibility)
    np.testing.assert_array_equal(balanced.tracks3d, plain.tracks3d)
