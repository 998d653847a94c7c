"""Predictors against the official predictor outputs (fixtures/cotracker3/ref_predictor.safetensors) and the
`track` convenience function on small models.

The 384x512 references are expensive on CPU (each model call costs several CPU-seconds), so each predictor case
runs once per module, both models share one frame-feature cache (their encoders are identical in the fixtures, so
every distinct frame is encoded once), and only one case per predictor runs by default; the other official cases
are marked `slow` (run them with `-m slow`).

Note on the official `rawcall0` tensors: the official predictor slices, corrects and rescales its outputs *in
place*, and the slices alias the raw model output, so in the stored references the user tracks (first 12 columns)
of `rawcall0` already hold the final, rescaled positions (and the backward-merged visibility); only the support
columns are raw. We compare accordingly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import tracker.common.prediction
from tracker.model import CoTracker3Offline, CoTracker3Online, FrameFeatureCache
from tracker.predictor import (
    EvaluationPredictor,
    OfflinePredictor,
    OnlinePredictor,
    Prediction,
    grid_points,
    track,
)

COORD, PROB = 2e-4, 1e-5
N_USER = 12


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol:.3g}"


@pytest.fixture(scope="module")
def ref(cotracker3_fixtures):
    return load_file(cotracker3_fixtures / "ref_predictor.safetensors")


@pytest.fixture(scope="module")
def clip0(cotracker3_fixtures):
    inputs = load_file(cotracker3_fixtures / "inputs.safetensors")
    return inputs["video_uint8"][:1].float(), inputs["queries_txy"][:1]


@pytest.fixture(scope="module")
def models(cotracker3_fixtures):
    out = {}
    for kind, cls in (("offline", CoTracker3Offline), ("online", CoTracker3Online)):
        model = cls()
        weights = load_file(cotracker3_fixtures / f"weights_{kind}.safetensors")
        model.load_state_dict({k: v.float() for k, v in weights.items()})
        out[kind] = model.eval()
    fnet = [m.fnet.state_dict() for m in out.values()]
    shared = all(torch.equal(fnet[0][k], fnet[1][k]) for k in fnet[0])
    cache = FrameFeatureCache()
    out["offline"].feature_cache = cache
    out["online"].feature_cache = cache if shared else FrameFeatureCache()
    return out


@pytest.fixture(scope="module")
def off_queries_bwd(models, clip0):
    return OfflinePredictor(models["offline"])(*clip0, backward_tracking=True)


@pytest.fixture(scope="module")
def off_grid4_f7_bwd(models, clip0):
    return OfflinePredictor(models["offline"])(clip0[0], grid_size=4, grid_query_frame=7, backward_tracking=True)


def _online_case(models, clip0, case):
    video, queries = clip0
    pred = OnlinePredictor(models["online"])
    support = case == "queries_support"
    kwargs = dict(grid_size=4) if case == "grid4" else dict(queries=queries)
    assert pred(video, is_first_step=True, add_support_grid=support, **kwargs) is None
    return [pred(video[:, s : s + 16], add_support_grid=support) for s in (0, 8)]


# ------------------------------------------------------------------------------------------------------------------


def test_grids_match_reference(cotracker3_fixtures):
    misc = load_file(cotracker3_fixtures / "ref_misc.safetensors")
    assert torch.equal(grid_points(6, (384, 512)), misc["grid6_384x512"])
    assert torch.equal(grid_points(5, (384, 512)), misc["grid5_384x512"])
    assert torch.equal(grid_points(8, (50, 50), (40, 100)), misc["local_grid8_extent50_center_y40_x100"])
    assert grid_points(1, (384, 512)).tolist() == [[[256.0, 192.0]]]


def test_offline_queries_backward(off_queries_bwd, ref):
    out = off_queries_bwd
    p = "pred_off_queries_bwd_"
    assert len(out.raw) == 2 and out.raw[0].coords.shape == (1, 20, 48, 2)  # 12 queries + 6x6 support grid
    bwd = out.raw[1]
    close(bwd.coords, ref[p + "rawcall1_coords"], COORD)
    close(bwd.vis, ref[p + "rawcall1_vis"], PROB)
    close(bwd.conf, ref[p + "rawcall1_conf"], PROB)
    fwd = out.raw[0]
    close(fwd.coords[:, :, N_USER:], ref[p + "rawcall0_coords"][:, :, N_USER:], COORD)
    close(fwd.vis[:, :, N_USER:], ref[p + "rawcall0_vis"][:, :, N_USER:], PROB)
    close(fwd.conf, ref[p + "rawcall0_conf"], PROB)
    close(out.vis_prob, ref[p + "rawcall0_vis"][:, :, :N_USER], PROB)  # merged in place officially
    close(out.tracks, ref[p + "rawcall0_coords"][:, :, :N_USER], COORD)
    close(out.tracks, ref[p + "tracks"], COORD)
    assert out.visible.dtype == torch.bool
    assert torch.equal(out.visible, ref[p + "visible"])


def test_offline_queries_forward_only(off_queries_bwd, models, clip0, ref):
    """Post-processing of the forward call alone (no backward tracking) gives the official forward-only result."""
    pred = OfflinePredictor(models["offline"])
    out = pred.finish(off_queries_bwd.raw[:1], off_queries_bwd.queries, N_USER)
    tracks = out.tracks * torch.tensor([159 / 511, 119 / 383])
    p = "pred_off_queries_"
    close(off_queries_bwd.raw[0].coords[:, :, N_USER:], ref[p + "rawcall0_coords"][:, :, N_USER:], COORD)
    close(tracks, ref[p + "tracks"], COORD)
    close(out.vis_prob, ref[p + "rawcall0_vis"][:, :, :N_USER], PROB)
    assert torch.equal(out.visible, ref[p + "visible"])
    # query correction: each query frame reports the query itself
    queries = clip0[1]
    t = queries[0, :, 0].long()
    close(tracks[0, t, torch.arange(N_USER)], queries[0, :, 1:], 1e-4)
    assert out.visible[0, t, torch.arange(N_USER)].all()


@pytest.mark.slow
def test_offline_grid_backward(off_grid4_f7_bwd, ref):
    out = off_grid4_f7_bwd
    p = "pred_off_grid4_f7_bwd_"
    assert out.queries[0, :, 0].eq(7).all() and out.queries.shape == (1, 16, 3)  # no support grid
    close(out.raw[1].coords, ref[p + "rawcall1_coords"], COORD)
    close(out.raw[1].vis, ref[p + "rawcall1_vis"], PROB)
    close(out.raw[1].conf, ref[p + "rawcall1_conf"], PROB)
    close(out.raw[0].conf, ref[p + "rawcall0_conf"], PROB)
    close(out.vis_prob, ref[p + "rawcall0_vis"], PROB)
    close(out.tracks, ref[p + "tracks"], COORD)
    assert torch.equal(out.visible, ref[p + "visible"])


@pytest.mark.slow
def test_offline_grid_forward(models, clip0, ref):
    out = OfflinePredictor(models["offline"])(clip0[0], grid_size=4)
    p = "pred_off_grid4_"
    close(out.raw[0].vis, ref[p + "rawcall0_vis"], PROB)
    close(out.raw[0].conf, ref[p + "rawcall0_conf"], PROB)
    close(out.tracks, ref[p + "tracks"], COORD)
    assert torch.equal(out.visible, ref[p + "visible"])


def test_evaluation_predictor_joint(models, clip0, ref):
    tracks, vis_conf = EvaluationPredictor(models["offline"])(*clip0)
    close(tracks, ref["evalpred_off_grid5_tracks"], COORD)
    close(vis_conf, ref["evalpred_off_grid5_vis_times_conf"], PROB)


@pytest.mark.slow
def test_evaluation_predictor_single_point(models, clip0, ref):
    """Single-point mode treats every query independently, so checking one query (frame 7) suffices."""
    video, queries = clip0
    idx = [5]
    tracks, vis_conf = EvaluationPredictor(models["offline"], single_point=True)(video, queries[:, idx])
    close(tracks, ref["evalpred_off_single_point_tracks"][:, :, idx], COORD)
    close(vis_conf, ref["evalpred_off_single_point_vis_times_conf"][:, :, idx], PROB)


@pytest.mark.slow
def test_evaluation_predictor_online_model(models, clip0, ref):
    tracks, vis_conf = EvaluationPredictor(models["online"])(*clip0)
    close(tracks, ref["evalpred_on_grid5_tracks"], COORD)
    close(vis_conf, ref["evalpred_on_grid5_vis_times_conf"], PROB)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("queries_support", marks=pytest.mark.slow),
        "queries_nosupport",  # what the TAP-Vid evaluation does
        pytest.param("grid4", marks=pytest.mark.slow),
    ],
)
def test_online_predictor(models, clip0, ref, case):
    outs = _online_case(models, clip0, case)
    for k, out in enumerate(outs):
        p = f"pred_on_{case}_call{k}_"
        close(out.raw[0].coords, ref[p + "raw_coords"], COORD)
        close(out.raw[0].vis, ref[p + "raw_vis"], PROB)
        close(out.raw[0].conf, ref[p + "raw_conf"], PROB)
        close(out.tracks, ref[p + "tracks"], COORD)
        assert torch.equal(out.visible, ref[p + "visible"])
        assert torch.equal(out.visible, out.vis_prob * out.conf_prob > 0.6)


# ------------------------------------------------------------------------------------------------------------------
# track() on small models (model resolution 32x48)

TINY = dict(hidden_size=32, num_heads=4, time_depth=2, space_depth=1, num_virtual_tracks=8, latent_dim=16,
            corr_levels=2, corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16),
            encoder_fuse_dim=16, model_resolution=(32, 48))


@pytest.fixture(scope="module")
def tiny_video():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(10, 24, 40, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return CoTracker3Offline(window_len=8, **TINY).eval(), CoTracker3Online(window_len=8, **TINY).eval()


def test_track_offline_numpy_queries(tiny_models, tiny_video):
    offline, _ = tiny_models
    queries = np.array([[0, 3.0, 4.0], [5, 39.0, 23.0], [9, 20.5, 11.25]], dtype=np.float32)
    calls = []
    pred = track(offline, tiny_video, queries, chunk_callback=lambda done, total: calls.append((done, total)))
    assert isinstance(pred, Prediction) and Prediction is tracker.common.prediction.Prediction  # one type
    assert pred.visibility is pred.visible  # the name track's callers have used
    assert pred.tracks.shape == (1, 10, 3, 2) and pred.tracks.dtype == torch.float32
    assert pred.visibility.shape == (1, 10, 3) and pred.visibility.dtype == torch.bool
    assert pred.confidence.shape == (1, 10, 3) and pred.confidence.dtype == torch.float32
    assert ((pred.confidence > 0) & (pred.confidence < 1)).all()
    t = torch.tensor([0, 5, 9])
    close(pred.tracks[0, t, torch.arange(3)], torch.from_numpy(queries[:, 1:]), 1e-4)  # query correction
    assert pred.visibility[0, t, torch.arange(3)].all()
    assert calls[-1] == (10, 10)
    # same as the predictor on the equivalent (B, T, 3, H, W) tensor, batched over two identical clips
    video = torch.from_numpy(tiny_video).permute(0, 3, 1, 2)[None].float().expand(2, -1, -1, -1, -1)
    direct = OfflinePredictor(offline)(video, torch.from_numpy(queries)[None].expand(2, -1, -1))
    close(direct.tracks[:1], pred.tracks, 1e-5)
    close(direct.tracks[1:], pred.tracks, 1e-4)


def test_track_offline_backward_only_changes_frames_before_query(tiny_models, tiny_video):
    offline, _ = tiny_models
    queries = torch.tensor([[4, 10.0, 10.0], [0, 30.0, 5.0]])
    fwd = track(offline, tiny_video, queries)
    both = track(offline, tiny_video, queries, backward_tracking=True)
    assert torch.equal(both.tracks[0, 4:, 0], fwd.tracks[0, 4:, 0])
    assert torch.equal(both.tracks[0, :, 1], fwd.tracks[0, :, 1])
    assert not torch.equal(both.tracks[0, :4, 0], fwd.tracks[0, :4, 0])


def test_track_grid_with_mask_and_dense(tiny_models, tiny_video):
    offline, _ = tiny_models
    mask = np.zeros((24, 40), dtype=np.uint8)
    mask[:, :20] = 1
    full = track(offline, tiny_video, grid_size=4, grid_query_frame=2)
    assert full.tracks.shape == (1, 10, 16, 2)
    masked = track(offline, tiny_video, grid_size=4, grid_query_frame=2, segm_mask=mask)
    assert masked.tracks.shape == (1, 10, 8, 2)
    assert (masked.tracks[0, 2, :, 0] < 20).all()
    dense = track(offline, tiny_video[:, :16, :24])  # 16x24 -> step 1: every pixel
    assert dense.tracks.shape == (1, 10, 16 * 24, 2)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(24.0), indexing="ij")
    close(dense.tracks[0, 0], torch.stack([xs, ys], dim=-1).reshape(-1, 2), 1e-4)


def test_track_online_streams_in_chunks(tiny_models, tiny_video):
    _, online = tiny_models
    queries = torch.tensor([[0, 3.0, 4.0], [6, 30.0, 20.0]])
    calls = []
    pred = track(online, tiny_video, queries, chunk_callback=lambda d, t: calls.append((d, t)))
    assert pred.tracks.shape == (1, 10, 2, 2) and pred.visibility.dtype == torch.bool
    assert calls == [(8, 10), (10, 10)]  # chunks [0, 8) and [4, 10) of the window-8 model
    both = track(online, tiny_video, queries, backward_tracking=True)
    assert torch.equal(both.tracks[0, 6:, 1], pred.tracks[0, 6:, 1])
    grid = track(online, torch.from_numpy(tiny_video).permute(0, 3, 1, 2)[None], grid_size=3)
    assert grid.tracks.shape == (1, 10, 9, 2)


def test_track_rejects_bad_inputs(tiny_models, tiny_video):
    offline, _ = tiny_models
    with pytest.raises(ValueError, match="query frames"):
        track(offline, tiny_video, np.array([[10, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="video"):
        track(offline, tiny_video[0])


def test_offline_support_grid_rule(tiny_models, tiny_video):
    """Support grid (6x6 at frame 0) for explicit queries or with a mask; none for queries + grid_size (spec 12)."""
    offline, _ = tiny_models
    video = torch.from_numpy(tiny_video).permute(0, 3, 1, 2)[None].float()
    queries = torch.tensor([[[1, 5.0, 5.0], [3, 20.0, 10.0]]])
    pred = OfflinePredictor(offline)
    with_support = pred(video, queries)
    assert with_support.queries.shape == (1, 2 + 36, 3) and with_support.queries[0, 2:, 0].eq(0).all()
    assert with_support.tracks.shape == (1, 10, 2, 2)
    assert pred(video, queries, grid_size=3).queries.shape == (1, 2, 3)
    mask = torch.ones(1, 1, 24, 40)
    assert pred(video, grid_size=3, segm_mask=mask).queries.shape == (1, 9 + 36, 3)
