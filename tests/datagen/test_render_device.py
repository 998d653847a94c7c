"""datagen.scene.cycles_device with real renders: denoising, adaptive sampling and a blurred world light change
the RGB video only (on a realistic floor; the ground-truth pass stays one plain sample per pixel centre); the
device is recorded; `gpu` without a GPU is an error before anything renders."""
from __future__ import annotations

import numpy as np
import pytest

from datagen.config.scene import SceneConfig
from datagen.scene.floors import FLOOR_SURFACES

pytestmark = pytest.mark.slow


def _cfg(**kw) -> SceneConfig:
    base = dict(resolution=[32, 32], num_frames=3, samples_per_pixel=8, num_static_objects=[1, 1],
                num_tossed_objects=[1, 1], num_tracks=64)
    return SceneConfig(**{**base, **kw})


def test_denoising_adaptive_sampling_and_world_light_blur_keep_ground_truth_exact(tmp_path):
    pytest.importorskip("bpy")
    from datagen.scene.render import render_scene

    plain = render_scene(_cfg(render_device="cpu", dome_textures=["hdri"], floor_textures=["realistic"]), 11,
                         tmp_path / "plain").sample
    fancy = render_scene(_cfg(render_device="cpu", dome_textures=["hdri"], floor_textures=["realistic"],
                              use_denoising=True, adaptive_sampling=True, adaptive_threshold=0.05,
                              adaptive_min_samples=4, world_light_blur_deg=12.0), 11, tmp_path / "fancy").sample
    assert plain.meta["assets"] == fancy.meta["assets"]  # the same floor, panorama, yaw and strength
    floor = next(a for a in plain.meta["assets"] if a.get("name") == "floor")
    assert floor["texture"] == "realistic" and floor["surface"] in FLOOR_SURFACES
    import bpy

    cycles = bpy.context.scene.cycles  # the scene just rendered: the adaptive settings reached Cycles
    assert (cycles.adaptive_threshold, cycles.adaptive_min_samples) == (pytest.approx(0.05), 4)
    np.testing.assert_array_equal(fancy.tracks, plain.tracks)
    np.testing.assert_array_equal(fancy.visibility, plain.visibility)
    np.testing.assert_array_equal(fancy.tracks3d, plain.tracks3d)
    assert fancy.meta["track_segment"] == plain.meta["track_segment"]
    assert (fancy.video != plain.video).mean() > 0.1  # the denoiser did work on the RGB pass
    assert plain.meta["render_device"] == fancy.meta["render_device"] == "CPU"


def test_gpu_without_gpu_is_an_error_and_auto_falls_back(tmp_path):
    pytest.importorskip("bpy")
    from datagen.scene.cycles_device import RenderDeviceError, find_gpus
    from datagen.scene.render import render_scene

    if find_gpus()[1]:
        pytest.skip("this machine has a GPU")
    with pytest.raises(RenderDeviceError, match="render_device=gpu but Cycles finds no GPU"):
        render_scene(_cfg(render_device="gpu", samples_per_pixel=1), 1, tmp_path / "gpu")
    assert render_scene(_cfg(render_device="auto", samples_per_pixel=1), 1,
                        tmp_path / "auto").sample.meta["render_device"] == "CPU"
