"""Our CoTracker3 models against the official numbers (fixtures/cotracker3, random-init weights).

Tolerances follow the fixtures README (float32 on CPU, any thread count): coordinates 2e-4 px, visibility and
confidence 1e-5, transformer outputs 1e-5, encoder raw output 1e-4, support / correlation 1e-5, transformer
inputs 1e-4.
"""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tracker.model import CoTracker3Offline, CoTracker3Online
from tracker.model.embeddings import resample_time_embedding, time_embedding_table

COORD, PROB, FORMER_OUT, FNET, CORR, FORMER_IN = 2e-4, 1e-5, 1e-5, 1e-4, 1e-5, 1e-4


def close(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> None:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = (actual.float() - expected.float()).abs().max().item()
    assert err <= atol, f"max abs error {err:.3g} > {atol:.3g}"


@pytest.fixture(scope="module")
def refs(cotracker3_fixtures):
    return {
        "core": load_file(cotracker3_fixtures / "ref_core.safetensors"),
        "misc": load_file(cotracker3_fixtures / "ref_misc.safetensors"),
        "inputs": load_file(cotracker3_fixtures / "inputs.safetensors"),
    }


def _model(cls, fixtures, kind):
    model = cls()
    model.load_state_dict({k: v.float() for k, v in load_file(fixtures / f"weights_{kind}.safetensors").items()})
    return model.eval()


@pytest.fixture(scope="module")
def offline(cotracker3_fixtures):
    return _model(CoTracker3Offline, cotracker3_fixtures, "offline")


@pytest.fixture(scope="module")
def online(cotracker3_fixtures):
    return _model(CoTracker3Online, cotracker3_fixtures, "online")


@pytest.fixture(scope="module")
def clips(refs):
    """Both clips batched: video (2, 20, 3, 120, 160) float 0..255, queries (2, 12, 3)."""
    return refs["inputs"]["video_uint8"].float(), refs["inputs"]["queries_txy"]


@pytest.fixture(scope="module")
def offline_run(offline, clips):
    """One B = 2 call with 6 iterations and training outputs, intermediates traced."""
    with torch.no_grad(), offline.trace() as trace:
        out = offline(*clips, iters=6, is_train=True)
    return out, trace


@pytest.fixture(scope="module")
def online_run(online, clips):
    """Clip 0 only (B = 1) to save time: batching is covered by the offline run and the small-model tests."""
    video, queries = clips
    with torch.no_grad(), online.trace() as trace:
        out = online(video[:1], queries[:1], iters=6, is_train=True)
    return out, trace


# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["offline", "online"])
def test_state_dict_keys_match_official(cotracker3_fixtures, kind):
    listing = json.loads((cotracker3_fixtures / f"keys_{kind}.json").read_text())
    model = (CoTracker3Offline if kind == "offline" else CoTracker3Online)()
    sd = model.state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(e["key"], e["shape"]) for e in listing["keys"]]
    assert sum(p.numel() for p in model.parameters()) == listing["num_parameters"]
    assert "updateformer.virual_tracks" in sd


def test_time_embedding_tables(refs):
    for window in (60, 16):
        assert torch.equal(time_embedding_table(window, 1110), refs["misc"][f"time_emb_exact_window{window}"])


def test_offline_intermediates(offline_run, refs):
    out, tr = offline_run
    r = {k[len("clip0_offline_"):]: v for k, v in refs["core"].items() if k.startswith("clip0_offline_")}
    close(tr["fnet_raw"][0][0], r["fnet_raw_t0"], FNET)
    close(tr["fnet_raw"][0][19], r["fnet_raw_t19"], FNET)
    for level in range(4):
        close(tr["support"][level][:1], r[f"support_feat_level{level}"], CORR)
    close(tr["corr_mlp_in"][0][:24], r["corr_mlp_in_level0_rows0to23"], CORR)
    close(tr["corr_mlp_in"][3][:24], r["corr_mlp_in_level3_rows0to23"], CORR)
    close(tr["corr_emb"][0][:1], r["corr_emb_iter0"], CORR)
    close(tr["time_emb"][0], r["time_emb_interp_T20"], 1e-7)
    close(tr["former_in"][0][:1], r["former_in_iter0"], FORMER_IN)
    close(tr["former_in"][1][:1], r["former_in_iter1"], FORMER_IN)


@pytest.mark.parametrize("clip", [0, 1])
def test_offline_outputs(offline_run, refs, clip):
    out, tr = offline_run
    r = {k[len(f"clip{clip}_offline_"):]: v for k, v in refs["core"].items() if k.startswith(f"clip{clip}_offline_")}
    b = slice(clip, clip + 1)
    close(torch.stack(tr["former_out"])[:, b], r["former_out"], FORMER_OUT)
    close(out.coords[b], r["it6_coords"], COORD)
    close(out.vis[b], r["it6_vis"], PROB)
    close(out.conf[b], r["it6_conf"], PROB)
    assert out.train.window_starts == [0] and len(out.train.coords) == 1
    close(out.train.coords[0][:, b], r["it6_iter_coords"], COORD)
    close(out.train.vis[0][:, b], r["it6_iter_vis"], PROB)
    close(out.train.conf[0][:, b], r["it6_iter_conf"], PROB)
    assert out.train.valid.dtype == torch.bool and bool(out.train.valid.all())


def test_offline_iteration4_equals_default_call_reference(offline_run, refs):
    """The official 4-iteration (default) call equals iteration 4 of the 6-iteration call."""
    out, _ = offline_run
    for clip in (0, 1):
        close(out.train.coords[0][3, clip : clip + 1], refs["core"][f"clip{clip}_offline_it4_coords"], COORD)
        close(out.train.vis[0][3, clip : clip + 1], refs["core"][f"clip{clip}_offline_it4_vis"], PROB)
        close(out.train.conf[0][3, clip : clip + 1], refs["core"][f"clip{clip}_offline_it4_conf"], PROB)


@pytest.mark.parametrize("kind", ["offline", "online"])
def test_default_iterations_is_four(kind):
    torch.manual_seed(0)
    model = (CoTracker3Offline if kind == "offline" else CoTracker3Online)(window_len=8, **TINY).eval()
    video = torch.randint(0, 256, (1, 10, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 5.0, 6.0], [4, 30.0, 20.0]]])
    with torch.no_grad():
        default, four, three = model(video, queries), model(video, queries, iters=4), model(video, queries, iters=3)
    assert default.train is None
    assert torch.equal(default.coords, four.coords) and not torch.equal(default.coords, three.coords)


def test_time_embedding_resampling_matches_interpolate(offline):
    """Resampling 60 -> T rows is align_corners=False linear interpolation with clamped sources."""
    table = offline.time_emb
    T = 20
    out = resample_time_embedding(table, T)
    src = ((torch.arange(T, dtype=torch.float64) + 0.5) * (60 / T) - 0.5).clamp(min=0)
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=59)
    w = (src - i0)[:, None]
    expected = table[0, i0].double() * (1 - w) + table[0, i1].double() * w
    close(out[0], expected.float(), 1e-6)


def test_online_sliding_window_intermediates(online_run, refs):
    out, tr = online_run
    r = refs["core"]
    close(tr["former_in"][0][:1], r["clip0_online_win_former_in_window0_iter0"], FORMER_IN)
    close(tr["former_in"][6][:1], r["clip0_online_win_former_in_window1_iter0"], FORMER_IN)  # tests the copy-over


def test_online_sliding_window_outputs(online_run, refs):
    out, tr = online_run
    p = "clip0_online_win_"
    r = refs["core"]
    b = slice(0, 1)
    close(torch.stack(tr["former_out"])[:, b], r[p + "former_out"], FORMER_OUT)
    close(out.coords[b], r[p + "it6_coords"], COORD)
    close(out.vis[b], r[p + "it6_vis"], PROB)
    close(out.conf[b], r[p + "it6_conf"], PROB)
    train = out.train
    assert train.window_starts == [0, 8]
    for w in range(2):
        close(train.coords[w][:, b], r[p + f"it6_window{w}_iter_coords"], COORD)
        close(train.vis[w][:, b], r[p + f"it6_window{w}_iter_vis"], PROB)
        close(train.conf[w][:, b], r[p + f"it6_window{w}_iter_conf"], PROB)
    assert torch.equal(train.valid[b], r[p + "it6_valid_mask"])


def test_online_streaming(online, clips, refs):
    """Streaming chunks [0, 16) and [8, 20) of clip 1 reproduce the official streaming calls."""
    video, queries = clips
    online.reset_online()
    with torch.no_grad():
        outs = [online(video[1:, s : s + 16], queries[1:], iters=6, is_online=True) for s in (0, 8)]
    assert online.online_ind == 16
    for k, out in enumerate(outs):
        p = f"clip1_online_stream_call{k}_"
        close(out.coords, refs["core"][p + "coords"], COORD)
        close(out.vis, refs["core"][p + "vis"], PROB)
        close(out.conf, refs["core"][p + "conf"], PROB)
    online.reset_online()


def test_online_streaming_rejects_short_later_chunks():
    torch.manual_seed(0)
    model = CoTracker3Online(window_len=8, **TINY).eval()
    video = torch.randint(0, 256, (1, 12, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 5.0, 6.0]]])
    model.reset_online()
    with torch.no_grad():
        assert model(video[:, :8], queries, iters=1, is_online=True).coords.shape == (1, 8, 1, 2)
        with pytest.raises(ValueError, match="more than 4 frames"):
            model(video[:, 4:8], queries, iters=1, is_online=True)
        assert model(video[:, 4:12], queries, iters=1, is_online=True).coords.shape == (1, 12, 1, 2)


# ------------------------------------------------------------------------------------------------------------------
# small architectures (what the CPU training config uses)

TINY = dict(hidden_size=32, num_heads=4, time_depth=2, space_depth=1, num_virtual_tracks=8, latent_dim=16,
            corr_levels=2, corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16),
            encoder_fuse_dim=16, model_resolution=(32, 48))


@pytest.mark.parametrize("cls", [CoTracker3Offline, CoTracker3Online])
def test_tiny_architecture_batch_equals_single(cls):
    torch.manual_seed(0)
    model = cls(window_len=8, **TINY).eval()
    assert model.updateformer.virual_tracks.shape == (1, 8, 1, 32)
    assert len(model.updateformer.time_blocks) == 2 and len(model.updateformer.space_virtual_blocks) == 1
    video = torch.randint(0, 256, (2, 12, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 3.0, 4.0], [5, 40.0, 20.0], [11, 47.0, 31.0]],
                            [[2, 10.0, 10.0], [0, 0.0, 0.0], [7, 20.5, 15.25]]])
    with torch.no_grad():
        both = model(video, queries, iters=2)
        single = [model(video[b : b + 1], queries[b : b + 1], iters=2) for b in range(2)]
    for b in range(2):
        close(both.coords[b : b + 1], single[b].coords, 1e-4)
        close(both.vis[b : b + 1], single[b].vis, 1e-6)
        close(both.conf[b : b + 1], single[b].conf, 1e-6)
    assert both.coords.shape == (2, 12, 3, 2) and both.vis.shape == (2, 12, 3)


def test_official_initialisation_statistics():
    torch.manual_seed(0)
    model = CoTracker3Offline(**{**TINY, "hidden_size": 64})
    f = model.updateformer
    assert f.flow_head.weight.std().item() < 0.003 and f.vis_conf_head.weight.abs().max().item() < 0.01
    assert torch.count_nonzero(f.input_transform.bias) == 0
    bound = (6 / sum(f.input_transform.weight.shape)) ** 0.5  # Xavier uniform
    assert f.input_transform.weight.abs().max().item() <= bound
    assert 0.7 < f.virual_tracks.std().item() < 1.3
    conv = model.fnet.layer1[0].conv1.weight  # Kaiming normal, fan-out: std = sqrt(2 / (C_out k k))
    assert abs(conv.std().item() / (2 / (conv.shape[0] * 9)) ** 0.5 - 1) < 0.1
    assert torch.count_nonzero(model.corr_mlp.fc1.bias) > 0  # PyTorch default init, not zeroed


@pytest.mark.parametrize("cls,T,starts", [(CoTracker3Offline, 11, [0]), (CoTracker3Online, 20, [0, 4, 8, 12])])
def test_training_outputs_and_gradients(cls, T, starts):
    torch.manual_seed(0)
    model = cls(window_len=8, **TINY).train()
    video = torch.randint(0, 256, (1, T, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 5.0, 6.0], [3, 30.0, 20.0], [T - 1, 12.0, 25.0]]])
    out = model(video, queries, iters=3, is_train=True)
    train = out.train
    assert train.window_starts == starts
    lengths = [T] if cls is CoTracker3Offline else [min(T - s, 8) for s in starts]  # offline: one window
    assert [c.shape[:3] for c in train.coords] == [(3, 1, n) for n in lengths]
    assert all(v.min() >= 0 and v.max() <= 1 for v in train.vis + train.conf)
    assert train.valid.shape == (1, T, 3) and train.valid.dtype == torch.bool
    loss = sum(c.sum() for c in train.coords) + sum(v.sum() + w.sum() for v, w in zip(train.vis, train.conf))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and all(torch.isfinite(g).all() for g in grads)
    assert model.updateformer.flow_head.weight.grad.abs().sum() > 0
    assert model.fnet.conv1.weight.grad.abs().sum() > 0


def test_feature_cache_reuses_frames_and_matches():
    torch.manual_seed(0)
    model = CoTracker3Offline(window_len=8, **TINY).eval()
    video = torch.randint(0, 256, (1, 6, 3, 32, 48)).float()
    queries = torch.tensor([[[0, 5.0, 6.0], [3, 30.0, 20.0]]])
    with torch.no_grad():
        plain = model(video, queries, iters=2)
        with model.cached_features() as cache:
            first = model(video, queries, iters=2)
            again = model(video.flip(1), queries, iters=2)
            assert len(cache) == 6 and cache.hits == 6
    assert model.feature_cache is None
    close(first.coords, plain.coords, 1e-5)
    assert again.coords.shape == plain.coords.shape
