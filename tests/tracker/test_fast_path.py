"""The default (fast) implementation against the reference one: components, whole models, training, bf16, compile.

The official fixtures are reproduced by the default path in test_model_equivalence.py / test_predictor_equivalence.py;
here the reference path is held to the fixtures too, and both paths are compared on small models, including
inputs the fixtures do not cover (tracks far outside the frame, batches, training gradients).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tracker.model import CoTracker3Offline, CoTracker3Online, reference_implementation
from tracker.model import pyramid as fast
from tracker.model.correlation import local_correlation, support_features
from tracker.model.transformer import Attention

TINY = dict(hidden_size=32, num_heads=4, time_depth=2, space_depth=1, num_virtual_tracks=8, latent_dim=16,
            corr_levels=2, corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16),
            encoder_fuse_dim=16, model_resolution=(32, 48))


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


def _pyramid(fmap: torch.Tensor, radius: int, levels: int) -> fast.FeaturePyramid:
    B, T, C, h, w = fmap.shape
    pyr = fast.FeaturePyramid.empty(B, T, C, (h, w), levels, fast.pyramid_pad(radius), dtype=fmap.dtype,
                                    device=fmap.device)
    pyr.write(0, fmap.flatten(0, 1))
    return pyr


@pytest.mark.parametrize("radius", [1, 3])
def test_window_gather_matches_grid_sample(radius):
    """Support patches and the 4-D correlation through the window gather equal the grid_sample reference, also
    for positions on, near and far beyond the border (border clamping)."""
    g = torch.Generator().manual_seed(0)
    B, T, C, h, w, N = 2, 3, 8, 11, 14, 40
    fmap = F.normalize(torch.randn(B, T, C, h, w, generator=g), dim=2)
    xy = torch.rand(B, N, 2, generator=g) * torch.tensor([w + 30.0, h + 30.0]) - 15
    xy[0, :6] = torch.tensor([[0.0, 0.0], [w - 1.0, h - 1.0], [-0.5, 3.0], [w - 0.5, 2.0], [-1e4, 1e4], [3.25, -2.0]])
    frames = torch.randint(0, T, (B, N), generator=g)
    pyr = _pyramid(fmap, radius, 1)
    ref_support = support_features(fmap, frames, xy, radius)
    new_support = fast.support_patches(pyr, 0, frames, xy, radius)
    assert max_err(new_support, ref_support) < 1e-6

    coords = xy[:, None] + torch.randn(B, T, N, 2, generator=g)  # (B, S, N, 2), one position per frame
    ref = local_correlation(fmap, ref_support, coords, radius).view(B, T, N, -1).transpose(1, 2)
    G = ref_support.permute(0, 2, 3, 1).contiguous()  # (B, N, C, P*P)
    new = fast.local_correlation(pyr, 0, G, coords.transpose(1, 2).contiguous(), radius)
    assert max_err(new, ref) < 2e-6
    # a window view of frames [1, 3): the same rows as slicing the maps
    win = pyr.window(1, 2)
    sub = fast.local_correlation(win, 0, G, coords[:, 1:].transpose(1, 2).contiguous(), radius)
    assert max_err(sub, ref[:, :, 1:]) < 2e-6


def test_window_gather_survives_nan_positions():
    fmap = torch.randn(1, 2, 4, 6, 7)
    pyr = _pyramid(fmap, 2, 1)
    xy = torch.tensor([[[float("nan"), 2.0], [1.0, 1.0]]])
    out = fast.support_patches(pyr, 0, torch.zeros(1, 2, dtype=torch.long), xy, 2)
    assert torch.isnan(out[:, :, 0]).any() and torch.isfinite(out[:, :, 1]).all()


@pytest.mark.parametrize("shape,seq_dim", [((6, 9, 32), 1), ((2, 5, 7, 32), 2), ((2, 5, 7, 32), 1)])
def test_sdpa_attention_matches_materialised_softmax(shape, seq_dim):
    torch.manual_seed(0)
    attn = Attention(32, 4)
    x = torch.randn(shape)
    ctx = torch.randn(*shape[:seq_dim], 3, *shape[seq_dim + 1 :])  # a context of 3 along the same axis
    out = attn(x, ctx, seq_dim=seq_dim)
    # reference: move the sequence axis next to the features and flatten the others into the batch
    xs, cs = x.movedim(seq_dim, -2), ctx.movedim(seq_dim, -2)
    with reference_implementation():
        ref = attn(xs.reshape(-1, *xs.shape[-2:]), cs.reshape(-1, *cs.shape[-2:])).view(xs.shape).movedim(-2, seq_dim)
    assert out.shape == x.shape and max_err(out, ref) < 1e-6


@pytest.mark.parametrize("cls,T", [(CoTracker3Offline, 11), (CoTracker3Online, 20)])
def test_default_equals_reference_with_gradients(cls, T):
    """Same outputs (inference) and the same training outputs and gradients (train mode, B = 2) on both paths."""
    torch.manual_seed(0)
    model = cls(window_len=8, **TINY)
    g = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (2, T, 3, 32, 48), generator=g).float()
    queries = torch.tensor([[[0, 5.0, 6.0], [3, 30.0, 20.0], [T - 1, 12.0, 25.0], [1, -3.0, 40.0]],
                            [[2, 47.0, 31.0], [0, 0.0, 0.0], [5, 20.5, 15.25], [4, 60.0, -9.0]]])
    model.eval()
    with torch.no_grad():
        new = model(video, queries, iters=3)
        with reference_implementation():
            ref = model(video, queries, iters=3)
    assert max_err(new.coords, ref.coords) < 1e-4 and max_err(new.vis, ref.vis) < 1e-5

    model.train()
    grads = {}
    for name, ctx in (("new", reference_implementation(False)), ("ref", reference_implementation())):
        model.zero_grad()
        with ctx:
            out = model(video, queries, iters=2, is_train=True)
        tr = out.train
        loss = sum(c.sum() * 1e-3 for c in tr.coords) + sum(v.sum() + w.sum() for v, w in zip(tr.vis, tr.conf))
        loss.backward()
        grads[name] = (loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
    assert abs(grads["new"][0] - grads["ref"][0]) < 1e-3 * abs(grads["ref"][0])
    largest = max(g.abs().max().item() for g in grads["ref"][1].values())
    for k, ref_grad in grads["ref"][1].items():
        # (gradients that are zero up to rounding, e.g. conv biases before an instance norm, compare absolutely)
        scale = max(ref_grad.abs().max().item(), 1e-4 * largest)
        assert max_err(grads["new"][1][k], ref_grad) <= 1e-3 * scale, k


def test_reference_path_reproduces_the_fixtures(cotracker3_fixtures):
    """The reference implementation stays an honest baseline: it still reproduces the official outputs."""
    model = CoTracker3Offline()
    weights = load_file(cotracker3_fixtures / "weights_offline.safetensors")
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    model.eval()
    inputs = load_file(cotracker3_fixtures / "inputs.safetensors")
    core = load_file(cotracker3_fixtures / "ref_core.safetensors")
    with torch.no_grad(), reference_implementation():
        out = model(inputs["video_uint8"][:1].float(), inputs["queries_txy"][:1], iters=6)
    assert max_err(out.coords, core["clip0_offline_it6_coords"]) <= 2e-4
    assert max_err(out.vis, core["clip0_offline_it6_vis"]) <= 1e-5


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = CoTracker3Online(window_len=8, **TINY).train()
    video = torch.randint(0, 256, (1, 12, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 5.0, 6.0], [3, 30.0, 20.0]]])
    grads = []
    for ckpt in (False, True):
        model.updateformer.activation_checkpointing = ckpt
        model.zero_grad()
        out = model(video, queries, iters=2, is_train=True)
        sum(c.sum() for c in out.train.coords).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        assert torch.allclose(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-7), k


def _tiny_offline():
    """A seeded tiny offline model (eval mode), a 6-frame 32x48 video in 0..255 and two queries (t, x, y)."""
    torch.manual_seed(0)
    model = CoTracker3Offline(window_len=8, **TINY).eval()
    video = torch.randint(0, 256, (1, 6, 3, 32, 48)).float()
    return model, video, torch.tensor([[[0, 5.0, 6.0], [3, 30.0, 20.0]]])


def test_bf16_autocast_runs_and_stays_close():
    """The bf16 path (CUDA's default dtype for speed) is correct by construction on CPU autocast: it runs forward and
    backward, keeps coordinates in float32 and lands near the float32 result."""
    model, video, queries = _tiny_offline()
    with torch.no_grad():
        ref = model(video, queries, iters=2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(video, queries, iters=2)
    assert out.coords.dtype == torch.float32
    assert max_err(out.coords, ref.coords) < 1.0 and max_err(out.vis, ref.vis) < 0.05
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tr = model(video, queries, iters=2, is_train=True).train
    sum(c.float().sum() for c in tr.coords).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
def test_compiled_hot_paths_match():
    """torch.compile (opt-in) of the encoder, correlation MLP and transformer gives the same tracks (needs a C++
    compiler on CPU; about a minute of compilation on 2 cores)."""
    from tracker.model import compile_hot_paths

    model, video, queries = _tiny_offline()
    with torch.no_grad():
        ref = model(video, queries, iters=2)
        keys = list(model.state_dict())
        compile_hot_paths(model)
        out = model(video, queries, iters=2)
    assert list(model.state_dict()) == keys
    assert max_err(out.coords, ref.coords) < 1e-3


def test_the_switch_alone_chooses_the_path():
    """reference_implementation() is the one chooser (tracker.model.implementation): the pyramid's layout follows it,
    and so do window_of and support_features, which take the pyramid of the same implementation."""
    model, video, queries = _tiny_offline()
    frames, xy = queries[..., 0].long(), queries[..., 1:] / model.stride
    with torch.no_grad():
        pyramid = model.encode(video)
        assert isinstance(pyramid, fast.FeaturePyramid)
        assert model.window_of(pyramid, 1, 3).length == 3
        new = model.support_features(pyramid, frames, xy)
        with reference_implementation():
            pyramid = model.encode(video)
            assert isinstance(pyramid, list) and len(pyramid) == model.corr_levels
            assert model.window_of(pyramid, 1, 3)[0].shape[1] == 3
            ref = model.support_features(pyramid, frames, xy)
    assert all(max_err(a, b) < 1e-6 for a, b in zip(new, ref))
