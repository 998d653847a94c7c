"""Mask consistency (lightning_modules.evaluation.mask_queries / mask_scoring / groups) on hand-made masks and
predictions with known answers, through the evaluation protocol (256 raster and back), and on the shared DAVIS
sequences (zero motion only)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datagen.formats.sample import TrackSample
from lightning_modules.evaluation.mask_queries import erode, grid_points, place_mask_queries
from lightning_modules.evaluation.mask_scoring import mask_consistency, mask_hits
from tests.conftest import moving_square_video

REPO = Path(__file__).resolve().parents[2]
DAVIS = REPO.parent / "shared" / "data" / "davis"


def test_erosion_keeps_pixels_whose_square_neighbourhood_is_inside():
    mask = np.zeros((12, 14), bool)
    mask[2:10, 3:12] = True
    mask[5, 6] = False  # a hole
    eroded = erode(mask, 1)
    expected = np.zeros_like(mask)
    expected[3:9, 4:11] = True
    expected[4:7, 5:8] = False  # the hole's 3x3 neighbourhood
    np.testing.assert_array_equal(eroded, expected)
    border = np.ones((5, 6), bool)  # beyond the frame counts as outside
    assert erode(border, 2).sum() == 2 and erode(border, 3).sum() == 0
    np.testing.assert_array_equal(erode(mask, 0), mask)


def test_grid_is_regular_inside_the_region_and_capped():
    region = np.zeros((100, 120), bool)
    region[10:90, 20:100] = True  # 6400 pixels
    pts = grid_points(region, 64)
    assert 0 < len(pts) <= 64 and len(pts) >= 36  # about the cap: an 8 .. 10 pixel grid
    assert region[pts[:, 1], pts[:, 0]].all()
    steps = np.diff(np.unique(pts[:, 0]))
    assert len(set(steps.tolist())) == 1 and np.unique(pts[:, 1]).size * np.unique(pts[:, 0]).size == len(pts)
    assert len(grid_points(region, 10**6)) == 6400  # spacing 1: every pixel
    assert grid_points(np.zeros((5, 5), bool), 8).shape == (0, 2)


def test_queries_per_object_at_its_first_frame_with_an_eroded_mask():
    masks = np.zeros((5, 30, 40), np.uint8)
    masks[:, 2:14, 2:14] = 1  # object 1 from frame 0
    masks[2:, 16:28, 20:36] = 3  # object 3 appears at frame 2
    masks[1, 16:28, 20:22] = 3  # ... after a 2-pixel sliver at frame 1 that the erosion removes
    masks[:, 20:23, 2:18] = 2  # object 2: 3 pixels thick, never survives an erosion of 2
    masks[:, 0, :] = 255  # void is no object
    frames, xy, objects = place_mask_queries(masks, max_points=16, erosion=2)
    assert list(np.unique(objects)) == [1, 3] and np.all(np.diff(objects) >= 0)
    assert set(frames[objects == 1]) == {0} and set(frames[objects == 3]) == {2}
    for k in (1, 3):
        sel = objects == k
        assert 8 <= sel.sum() <= 16
        inside = erode(masks[frames[sel][0]] == k, 2)
        assert inside[xy[sel, 1].astype(int), xy[sel, 0].astype(int)].all()


def _square_queries(masks):
    frames, xy, objects = place_mask_queries(masks, max_points=256, erosion=1)
    assert (frames == 0).all() and (objects == 1).all() and len(frames) > 20
    return frames, xy, objects


def test_moving_square_exact_tracking_zero_motion_and_misses():
    T, step, x0, size = 6, 2, 4, 12
    _, masks = moving_square_video(T=T, x0=x0, size=size, step=step)
    frames, xy, objects = _square_queries(masks)
    t = np.arange(T)[:, None]
    exact = xy[None] + np.stack([step * t, 0 * t], axis=-1)  # (T, Q, 2)
    assert mask_consistency(masks, frames, objects, exact) == pytest.approx(1.0)
    # Zero motion: a point at column x is inside at frame t iff x >= x0 + step * t (the square's left edge).
    zero = np.broadcast_to(xy[None], (T, len(xy), 2))
    expected = np.mean([[x >= x0 + step * tt for x in xy[:, 0]] for tt in range(1, T)])
    assert mask_consistency(masks, frames, objects, zero) == pytest.approx(expected)
    assert 0 < expected < 1
    # Frame 0 (the query frame) is never scored; frames 1..T-1 are.
    hit, scored = mask_hits(masks, frames, objects, exact)
    assert not scored[0].any() and scored[1:].all() and hit[1:].all()
    # Outside the frame, non-finite: misses (never wrapped or clipped onto the mask).
    off = exact.copy()
    off[:, ::2, 0] -= 100.0
    off[:, 1::4, 1] = np.nan
    n_ok = len(xy) - len(range(0, len(xy), 2)) - len(range(1, len(xy), 4))
    assert mask_consistency(masks, frames, objects, off) == pytest.approx(n_ok / len(xy))
    # Rounding to the nearest pixel: x + 0.49 past the right edge is still in, x + 0.5 is out (halves up).
    right = x0 + step * t[1:] + size - 1  # last column of the square at frames 1..T-1
    edge = exact[1:].copy()
    edge[..., 0] = right + 0.49
    assert mask_hits(masks, frames, objects, np.concatenate([exact[:1], edge]))[0][1:].all()
    edge[..., 0] = right + 0.5
    assert not mask_hits(masks, frames, objects, np.concatenate([exact[:1], edge]))[0][1:].any()


def test_objects_absent_frames_void_and_other_objects():
    T = 4
    masks = np.zeros((T, 30, 40), np.uint8)
    masks[:, 2:14, 2:14] = 1
    masks[:, 16:28, 20:32] = 2
    masks[2] = np.where(masks[2] == 1, 0, masks[2])  # object 1 fully occluded at frame 2
    frames, xy, objects = place_mask_queries(masks, max_points=9, erosion=1)
    stay = np.broadcast_to(xy[None], (T, len(xy), 2)).copy()
    hit, scored = mask_hits(masks, frames, objects, stay)
    assert not scored[2, objects == 1].any() and scored[2, objects == 2].all()  # absent: not scored
    assert mask_consistency(masks, frames, objects, stay) == pytest.approx(1.0)
    # Object 1's points moved onto object 2: misses (scored against their own object's mask only).
    moved = stay.copy()
    moved[:, objects == 1] = xy[objects == 2][: (objects == 1).sum()]
    n1, n2 = (objects == 1).sum(), (objects == 2).sum()
    assert mask_consistency(masks, frames, objects, moved) == pytest.approx(3 * n2 / (2 * n1 + 3 * n2))
    # A void pixel (255) under a point is no part of its object: object 1's left columns turn void at frames 1, 3.
    void = masks.copy()
    void[[1, 3], 2:14, 2:9] = 255
    kept = (xy[objects == 1, 0] >= 9).sum()
    assert 0 < kept < n1
    assert mask_consistency(void, frames, objects, stay) == pytest.approx((2 * kept + 3 * n2) / (2 * n1 + 3 * n2))
    # Nothing to score (one frame): NaN, left out of means.
    assert np.isnan(mask_consistency(masks[:1], frames, objects, stay[:1]))


def _sample(masks, video=None, key="goat"):
    T, H, W = masks.shape
    video = np.zeros((T, H, W, 3), np.uint8) if video is None else video
    return TrackSample(video=video, tracks=np.zeros((T, 0, 2), np.float32), visibility=np.zeros((T, 0), bool),
                       key=key, masks=masks)


def test_protocol_round_trip_through_the_raster():
    """Queries go to the 256 raster and predictions come back with tracker.common.pixels.rescale_xy: exact tracking in
    raster pixels scores 100, zero motion scores what it scores at the source resolution."""
    from lightning_modules.evaluation.mask_queries import EROSION
    from lightning_modules.evaluation.protocol import make_example
    from lightning_modules.evaluation.scoring import Prediction, score, zero_motion
    from tracker.common.pixels import rescale_xy

    T, step = 8, 3
    video, masks = moving_square_video(T=T, H=48, W=80, size=20, step=step)
    ex = make_example(_sample(masks, video), "first")
    assert ex.masks is not None and ex.video.shape == (T, 256, 256, 3) and ex.source_hw == (48, 80)
    frames, xy, objects = place_mask_queries(masks)
    np.testing.assert_array_equal(ex.query_objects, objects)
    np.testing.assert_allclose(rescale_xy(ex.queries[:, 1:], (256, 256), (48, 80)), xy, atol=1e-9)
    assert not ex.labelled.any() and np.isnan(ex.tracks).all()
    zero = score(ex, zero_motion(ex))
    assert set(zero) == {"mask_consistency"}
    stay = np.broadcast_to(xy[None], (T, len(xy), 2))
    assert zero["mask_consistency"] == pytest.approx(mask_consistency(masks, frames, objects, stay))
    t = np.arange(T)[:, None]
    exact = rescale_xy(xy[None] + np.stack([step * t, 0 * t], -1), (48, 80), (256, 256))
    assert score(ex, Prediction(exact, np.zeros((T, len(xy)), bool)))["mask_consistency"] == pytest.approx(1.0)
    short = make_example(_sample(masks, video), "first", max_frames=3)
    assert short.masks.shape[0] == short.num_frames == 3
    with pytest.raises(ValueError, match="'strided' needs point tracks"):
        make_example(_sample(masks, video), "strided")
    assert EROSION > 0 and make_example(_sample(np.zeros_like(masks), video), "first") is None


def test_groups_and_config_checks():
    from lightning_modules.evaluation.config import EvalConfigError, check_val_benchmarks, load_eval_config
    from lightning_modules.evaluation.groups import DEFAULT_GROUPS, group_means, group_of

    assert group_of("goat", None) == "animals" and group_of("parkour", None) == "people"
    assert group_of("bear", None) == "other" and group_of("goat", {"all": ["goat"]}) == "all"
    rows = [{"group": g, "model": {"m": m}, "zero_motion": {"m": z}}
            for g, m, z in (("animals", 0.5, 0.1), ("people", 0.9, 0.3), ("animals", 0.7, np.nan))]
    means = group_means(rows, None)
    assert list(means) == ["people", "animals"]  # config order
    assert means["animals"]["num_videos"] == 2 and means["animals"]["model"]["m"] == pytest.approx(0.6)
    assert means["animals"]["zero_motion"]["m"] == pytest.approx(0.1)  # NaN: nothing scored, left out
    import yaml

    suite = yaml.safe_load((REPO / "configs" / "eval" / "davis.yaml").read_text())
    assert suite["benchmarks"][0]["groups"] == DEFAULT_GROUPS  # the config spells out the built-in mapping
    cfg = load_eval_config(REPO / "configs" / "eval" / "davis.yaml")
    assert cfg.benchmarks[0].groups == DEFAULT_GROUPS and cfg.benchmarks[0].format == "davis"
    for groups, words in (({"dogs and cats": ["libby"]}, "group names must be"),
                          ({"a": ["libby"], "b": ["libby"]}, "'libby' is in two groups")):
        with pytest.raises(EvalConfigError, match=words):
            load_eval_config(None, [], extra_benchmarks=[{"name": "davis", "path": "x", "groups": groups}])
    bench = load_eval_config(None, [], extra_benchmarks=[{"name": "davis", "path": "x"}]).benchmarks
    for monitor in ("val_davis/mask_consistency", "val_davis/mask_consistency_people",
                    "val_davis_zero_motion/mask_consistency_other"):
        check_val_benchmarks(bench, monitor)
    for monitor in ("val/mask_consistency", "val_davis/mask_consistency_cats"):
        with pytest.raises(EvalConfigError, match="is not a metric validation logs"):
            check_val_benchmarks(bench, monitor)


def test_zero_motion_on_the_shared_davis_sequences():
    """The real DAVIS-2016 sequences (read in place): every sequence read, grouped, scored; libby's zero-motion
    score is the one docs/evaluation.md gives."""
    if not DAVIS.is_dir():
        pytest.skip(f"DAVIS sequences not found at {DAVIS} (../shared/data/davis)")
    from datagen.formats.davis import read_davis_sequence
    from lightning_modules.evaluation.mask_benchmark import evaluate_mask_benchmark
    from lightning_modules.evaluation.protocol import make_example
    from lightning_modules.evaluation.scoring import score, zero_motion

    r = evaluate_mask_benchmark(None, str(DAVIS), max_frames=4)
    assert [(v["name"], v["group"]) for v in r["per_video"]] == [
        ("blackswan", "animals"), ("breakdance", "people"), ("dance-twirl", "people"), ("goat", "animals"),
        ("libby", "animals"), ("parkour", "people")]
    assert list(r["groups"]) == ["people", "animals"] and r["num_videos"] == 6
    assert all(0 < v["num_queries"] <= 256 and 0 <= v["zero_motion"]["mask_consistency"] <= 1
               for v in r["per_video"])
    ex = make_example(read_davis_sequence(DAVIS, "libby"), "first")
    assert ex.source_hw == (480, 854) and ex.num_frames == 49
    assert 100 * score(ex, zero_motion(ex))["mask_consistency"] == pytest.approx(50.25, abs=0.01)


def test_validation_examples_and_keys_of_a_davis_folder(davis_folder):
    from lightning_modules.evaluation.config import BenchmarkConfig
    from lightning_modules.evaluation.sources import EvalError
    from lightning_modules.evaluation.validation import benchmark_keys, load_benchmark_examples

    bench = BenchmarkConfig(name="d", path=str(davis_folder), max_frames=5, groups={"animals": ["goat"]})
    (examples,) = load_benchmark_examples([bench])
    assert [ex.key for ex in examples] == ["goat", "kite", "parkour"]
    assert all(ex.masks.shape == (5, 48, 64) and ex.num_frames == 5 for ex in examples)
    assert set(examples[1].query_objects) == {1, 2}  # kite: two objects of a palette mask
    assert benchmark_keys(bench) == (("mask_consistency", "mask_consistency_animals", "mask_consistency_other"),
                                     ("mask_consistency",))
    tapvid_like = BenchmarkConfig(name="t", path=str(davis_folder / "x.pkl"))
    assert "average_jaccard" in benchmark_keys(tapvid_like)[0]
    bench.query_modes = ["strided"]
    with pytest.raises(EvalError, match="validation benchmark d: goat: query mode 'strided' needs point tracks"):
        load_benchmark_examples([bench])


def test_keep_aspect_gives_each_video_a_model_input_of_its_own_aspect_ratio():
    """TrackerRunner(keep_aspect=True): the model sees the short side of the input size and the long side in the
    source video's proportion (multiple of 8), whatever the square evaluation raster; off, the fixed input size;
    unset (the default), only mask examples keep their aspect ratio, point examples (TAP-Vid) the protocol's size."""
    import dataclasses

    import torch

    from lightning_modules.evaluation.predict import TrackerRunner
    from lightning_modules.evaluation.protocol import make_example
    from tracker import CoTracker3Online
    from tracker.common.pixels import aspect_input_size

    assert aspect_input_size((128, 128), (480, 854)) == (128, 224)
    assert aspect_input_size((384, 512), (480, 854)) == (384, 680)
    assert aspect_input_size((128, 128), (854, 480)) == (224, 128)
    video, masks = moving_square_video(T=8, H=48, W=80, size=20, step=3)
    ex = make_example(_sample(masks, video), "first")
    points = dataclasses.replace(ex, masks=None, query_objects=None)  # the same video as a point benchmark sees it
    torch.manual_seed(0)
    model = CoTracker3Online(window_len=8, hidden_size=32, num_heads=4, time_depth=1, space_depth=1,
                             num_virtual_tracks=8, latent_dim=16, corr_levels=2, corr_radius=2, corr_hidden=32,
                             corr_dim=16, encoder_dims=[8, 8, 16, 16], encoder_fuse_dim=16,
                             model_resolution=[32, 32]).eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape[-2:])))
    for keep, example, expected in ((False, ex, (32, 32)), (True, ex, (32, 56)), (None, ex, (32, 56)),
                                    (None, points, (32, 32)), (True, points, (32, 56))):
        seen.clear()
        pred = TrackerRunner(model, input_resolution=(32, 32), keep_aspect=keep)(example)
        assert set(seen) == {expected} and pred.tracks.shape == ex.tracks.shape, (keep, example.masks is None)
        assert np.isfinite(pred.tracks).all()
    # Cached predictions are kept per setting: the two kinds of input never share one; unset, a mask benchmark keeps
    # the aspect ratio and a TAP-Vid one does not.
    from lightning_modules.evaluation.config import EvalConfig
    from lightning_modules.evaluation.suite import LoadedModel, keeps_aspect, setting_name

    loaded = LoadedModel(model, "online", (32, 32), "digest", "x.ckpt")
    names = [setting_name("first", "joint", EvalConfig(), loaded, None, k) for k in (False, True)]
    assert "-aspect" not in names[0] and "-aspect" in names[1]
    assert keeps_aspect(EvalConfig(), "davis") and not keeps_aspect(EvalConfig(), "tapvid")
    assert not keeps_aspect(EvalConfig(keep_aspect=False), "davis") and keeps_aspect(EvalConfig(keep_aspect=True),
                                                                                     "tapvid")
