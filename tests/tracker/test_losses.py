"""Kubric-recipe loss terms: official numbers from the fixtures, hand-computed cases, gradients, bf16 autocast."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from tracker.losses import (
    confidence_loss,
    huber,
    kubric_loss,
    sequence_track_loss,
    visibility_bce_loss,
)


@pytest.fixture(scope="module")
def ref(cotracker3_fixtures):
    return load_file(str(cotracker3_fixtures / "ref_misc.safetensors"))


def _inputs(ref, requires_grad=False):
    # Fixture tensors are stacked over the 2 windows; the loss takes per-window lists like TrainOutput.
    coords = [c.clone().requires_grad_(requires_grad) for c in ref["loss_pred_coords"]]
    vis = [v.clone().requires_grad_(requires_grad) for v in ref["loss_vis_pred_prob"]]
    conf = [c.clone().requires_grad_(requires_grad) for c in ref["loss_conf_pred_prob"]]
    return coords, vis, conf, list(ref["loss_gt_coords"]), list(ref["loss_vis_gt"]), list(ref["loss_valids"])


def test_matches_official_loss_numbers(ref):
    coords, vis, conf, gt, gt_vis, valid = _inputs(ref)
    out = kubric_loss(coords, vis, conf, gt, gt_vis, valid)
    checks = {
        "loss_out_flow_visible_huber": out.visible_track,
        "loss_out_flow_invisible_l1": out.occluded_track,
        "loss_out_vis_bce": out.visibility,
        "loss_out_confidence": out.confidence,
        "loss_out_total_kubric_recipe": out.total,
    }
    assert out.confidence.shape == (1,)  # per-batch vector
    assert out.total.shape == ()
    for key, value in checks.items():
        expected = ref[key].reshape(value.shape)
        torch.testing.assert_close(value, expected, rtol=1e-6, atol=0, msg=key)
    # The separate functions give the same terms.
    assert torch.equal(sequence_track_loss(coords, gt, valid, gt_vis, visible_term=True), out.visible_track)
    assert torch.equal(visibility_bce_loss(vis, gt_vis), out.visibility)
    assert torch.equal(confidence_loss(coords, conf, gt, gt_vis), out.confidence)


def test_huber_values():
    e = torch.tensor([-10.0, -6.0, 0.5, 6.0, 7.0])
    torch.testing.assert_close(huber(e), torch.tensor([42.0, 18.0, 0.125, 18.0, 24.0]))


def test_track_loss_hand_computed():
    # 1 window, 2 iterations, B=1, S=1, N=3. Track 0 visible, 10 px off in x (Huber 6*(10-3)=42 -> mean over x,y
    # 21) at iteration 0 and 1 px off in x and y (0.5) at iteration 1; track 1 occluded 4 px off in y (L1 mean 2);
    # track 2 invalid (ignored).
    gt = torch.zeros(1, 1, 3, 2)
    pred = torch.zeros(2, 1, 1, 3, 2)
    pred[0, 0, 0, 0] = torch.tensor([10.0, 0.0])
    pred[1, 0, 0, 0] = torch.tensor([1.0, 1.0])
    pred[:, 0, 0, 1] = torch.tensor([0.0, 4.0])
    pred[:, 0, 0, 2] = torch.tensor([100.0, 100.0])
    vis = torch.tensor([[[1.0, 0.0, 1.0]]])
    valid = torch.tensor([[[1.0, 1.0, 0.0]]])
    visible = sequence_track_loss([pred], [gt], [valid], [vis], visible_term=True)
    # (0.8 * 21 / (1 + 1e-6) + 1.0 * 0.5 / (1 + 1e-6)) / 2
    assert visible.item() == pytest.approx((0.8 * 21 + 0.5) / (1 + 1e-6) / 2, rel=1e-6)
    occluded = sequence_track_loss([pred], [gt], [valid], [vis], visible_term=False)
    assert occluded.item() == pytest.approx((0.8 * 2 + 2) / (1 + 1e-6) / 2, rel=1e-6)
    # Two identical windows average to the same value.
    two = sequence_track_loss([pred, pred], [gt, gt], [valid, valid], [vis, vis], visible_term=True)
    assert two.item() == pytest.approx(visible.item(), rel=1e-6)


def test_confidence_loss_hand_computed():
    # 1 iteration, B=2, S=1, N=2. Target is 1 when the error is <= 12 px. BCE(p, 1) = -log p, BCE(p, 0) = -log(1-p).
    gt = torch.zeros(2, 1, 2, 2)
    pred = torch.zeros(1, 2, 1, 2, 2)
    pred[0, 0, 0, 1] = torch.tensor([12.0, 0.0])  # exactly at the threshold -> target 1
    pred[0, 1, 0, 0] = torch.tensor([12.0, 0.1])  # just beyond -> target 0
    conf = torch.full((1, 2, 1, 2), 0.75)
    vis = torch.tensor([[[1.0, 1.0]], [[1.0, 0.0]]])  # batch 1, track 1 occluded -> not counted, still divides
    out = confidence_loss([pred], [conf], [gt], [vis])
    log = torch.log(torch.tensor(0.75)).item()
    log1m = torch.log(torch.tensor(0.25)).item()
    torch.testing.assert_close(out, torch.tensor([-log, -log1m / 2]), rtol=1e-6, atol=0)


def test_kubric_loss_confidence_radius():
    # A 20 px error: outside the recipe's 12 px radius (target 0), inside a radius of 32 (target 1).
    gt = [torch.zeros(1, 1, 1, 2)]
    pred = [torch.tensor([20.0, 0.0]).view(1, 1, 1, 1, 2)]
    prob = [torch.full((1, 1, 1, 1), 0.75)]
    valid = [torch.ones(1, 1, 1)]
    recipe = kubric_loss(pred, prob, prob, gt, valid, valid)
    wide = kubric_loss(pred, prob, prob, gt, valid, valid, conf_dist_thresh=32.0)
    torch.testing.assert_close(recipe.confidence, -torch.log(torch.tensor([0.25])))
    torch.testing.assert_close(wide.confidence, -torch.log(torch.tensor([0.75])))
    torch.testing.assert_close(recipe.visible_track, wide.visible_track)  # only the confidence target changes


def test_bce_clamps_log_at_minus_100():
    vis_gt = torch.ones(1, 1, 1)
    out = visibility_bce_loss([torch.zeros(1, 1, 1, 1)], [vis_gt])
    assert out.item() == pytest.approx(100.0)


def test_gradients(ref):
    coords, vis, conf, gt, gt_vis, valid = _inputs(ref, requires_grad=True)
    out = kubric_loss(coords, vis, conf, gt, gt_vis, valid)
    out.total.backward()
    for name, tensors in (("coords", coords), ("vis", vis), ("conf", conf)):
        for t in tensors:
            assert t.grad is not None and torch.isfinite(t.grad).all(), name
            assert t.grad.abs().sum() > 0, name
    # Every iteration is supervised (gamma weighting), so every iteration gets a coordinate gradient.
    g = coords[0].grad.abs().sum(dim=(1, 2, 3, 4))
    assert (g > 0).all()
    # The confidence target is gradient-stopped: the confidence term alone gives no gradient to the coordinates.
    coords2, _, conf2, *_ = _inputs(ref, requires_grad=True)
    confidence_loss(coords2, conf2, gt, gt_vis).sum().backward()
    assert all(c.grad is None for c in coords2)
    assert all(c.grad.abs().sum() > 0 for c in conf2)
    # Invalid entries get no coordinate gradient from the track terms.
    coords3, *_ = _inputs(ref, requires_grad=True)
    sequence_track_loss(coords3, gt, valid, gt_vis, visible_term=True).backward()
    invalid = valid[0] == 0  # (B, S, N)
    assert coords3[0].grad[:, invalid].abs().sum() == 0


def test_bf16_autocast_computes_in_float32(ref):
    coords, vis, conf, gt, gt_vis, valid = _inputs(ref)
    coords16 = [c.bfloat16().requires_grad_(True) for c in coords]
    vis16 = [v.bfloat16().requires_grad_(True) for v in vis]
    conf16 = [c.bfloat16() for c in conf]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = kubric_loss(coords16, vis16, conf16, gt, gt_vis, valid)
    assert out.total.dtype == torch.float32
    out.total.backward()
    assert all(c.grad is not None and c.grad.dtype == torch.bfloat16 for c in coords16 + vis16)
    # Same result as float32 on the bf16-rounded inputs, i.e. nothing was computed in bf16.
    expected = kubric_loss(
        [c.detach().float() for c in coords16], [v.detach().float() for v in vis16],
        [c.float() for c in conf16], gt, gt_vis, valid,
    )
    torch.testing.assert_close(out.total, expected.total, rtol=1e-6, atol=0)


def test_without_vis_conf_terms(ref):
    coords, vis, conf, gt, gt_vis, valid = _inputs(ref)
    full = kubric_loss(coords, vis, conf, gt, gt_vis, valid)
    tracks_only = kubric_loss(coords, vis, conf, gt, gt_vis, valid, with_vis_conf=False)
    torch.testing.assert_close(tracks_only.total, 0.05 * full.visible_track + 0.01 * full.occluded_track)


def test_visible_weight_scales_visible_terms_and_moves_the_minimiser():
    # Hand-computed: 2 visible, 2 occluded entries at p = 0.8; visible terms count w times, the mean divides by 4.
    prob = [torch.full((1, 1, 1, 4), 0.8)]
    gt = [torch.tensor([[[1.0, 1.0, 0.0, 0.0]]])]
    log8, log2 = torch.log(torch.tensor(0.8)).item(), torch.log(torch.tensor(0.2)).item()
    for w in (1.0, 4.0):
        out = visibility_bce_loss(prob, gt, visible_weight=w)
        assert out.item() == pytest.approx((-2 * w * log8 - 2 * log2) / 4, rel=1e-6)
    # Fitting one probability to entries that are visible a fraction p of the time: the recipe's minimiser is p,
    # with weight w the odds become w p / (1 - p).
    p, w = 0.6, 4.0
    gt = [(torch.arange(10) < 6).float().view(1, 1, 10)]
    logit = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([logit], lr=2.0)
    for _ in range(400):
        opt.zero_grad()
        visibility_bce_loss([torch.sigmoid(logit).expand(1, 1, 1, 10)], gt, visible_weight=w).backward()
        opt.step()
    assert torch.sigmoid(logit).item() == pytest.approx(w * p / (w * p + 1 - p), abs=1e-3)
