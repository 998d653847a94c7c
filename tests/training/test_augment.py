"""Recipe data preparation: augmentations keep tracks on their pixels, eraser occludes, query sampling rules."""
from __future__ import annotations

import numpy as np
import torch

from datagen.formats.sample import TrackSample
from lightning_modules.augment import eraser, make_train_clip, select_tracks
from lightning_modules.config import load_train_config
from lightning_modules.module import sample_queries


def _dots_sample(T: int = 12, H: int = 80, W: int = 100, Q: int = 24, seed: int = 0) -> TrackSample:
    """Dark video with one bright 1-pixel dot per track at its (rounded) position in every frame."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(15, [W - 15, H - 15], (Q, 2))
    vel = rng.uniform(-1, 1, (Q, 2))
    tracks = np.round(start[None] + vel[None] * np.arange(T)[:, None, None]).astype(np.float32)
    video = np.full((T, H, W, 3), 20, np.uint8)
    t_idx = np.repeat(np.arange(T), Q)
    video[t_idx, tracks[..., 1].astype(int).ravel(), tracks[..., 0].astype(int).ravel()] = 255
    return TrackSample(video=video, tracks=tracks, visibility=np.ones((T, Q), bool), key="dots")


def _cfg(*extra: str):
    return load_train_config(None, ["data.resolution=[64,96]", "data.num_tracks=16", "data.min_tracks=1",
                                    "data.augment.pad_max=4", "data.augment.crop_jitter=4", *extra]).data


def test_spatial_augmentation_keeps_tracks_on_their_pixels() -> None:
    cfg = _cfg("data.augment.eraser_prob=0", "data.augment.color_jitter_prob=0", "data.augment.blur_prob=0")
    sample = _dots_sample()
    for seed in range(6):
        clip = make_train_clip(sample, cfg, 10, np.random.default_rng(seed))
        assert clip.video.shape == (10, 3, 64, 96) and clip.video.dtype == torch.uint8
        assert clip.tracks.shape == (10, 16, 2) and clip.visibility.shape == (10, 16)
        v = clip.video.float().mean(1)  # (L, H, W)
        t, n = torch.nonzero(clip.visibility, as_tuple=True)
        xy = clip.tracks[t, n].round().long()
        # The resampled dot (bilinear) is brighter than the background at the track position.
        assert (v[t, xy[:, 1], xy[:, 0]] > 40).float().mean() > 0.95


def test_photometric_augmentations_change_pixels_but_not_visible_tracks() -> None:
    cfg = _cfg("data.augment.eraser_prob=0", "data.augment.color_jitter_prob=1", "data.augment.blur_prob=1")
    sample = _dots_sample()
    plain = make_train_clip(sample, _cfg("data.augment.enabled=false"), 10, np.random.default_rng(0))
    clip = make_train_clip(sample, cfg, 10, np.random.default_rng(1))
    assert clip.visibility.all() and plain.visibility.all()
    assert clip.video.float().std() > 0  # still an image


def test_eraser_occludes_tracks_inside_boxes() -> None:
    aug = _cfg("data.augment.eraser_prob=1", "data.augment.eraser_size=[20,40]").augment
    T, H, W = 8, 60, 80
    video = torch.rand(T, 3, H, W) * 255
    ys, xs = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    tracks = np.repeat(np.stack([xs.ravel(), ys.ravel()], -1)[None].astype(np.float32), T, 0)  # every pixel
    vis = np.ones(tracks.shape[:2], bool)
    before = video.clone()
    eraser(video, tracks, vis, np.random.default_rng(0), aug)
    assert vis[0].all() and torch.equal(video[0], before[0])  # frame 0 untouched
    changed = (video != before).any(1).reshape(T, -1).numpy()
    assert (~vis[1:]).any()
    # Occluded entries are exactly inside the filled boxes (a box pixel may keep its value only by chance).
    assert np.all(changed[1:] <= ~vis[1:])


def test_select_tracks_candidates_and_drop() -> None:
    L, N = 9, 10
    tracks = np.full((L, N, 2), 20.0, np.float32)
    vis = np.zeros((L, N), bool)
    vis[0, :3] = True  # visible at frame 0
    vis[L // 2, 3:5] = True  # visible at the middle frame
    vis[L - 1, 5] = True  # only at the last frame
    rng = np.random.default_rng(0)
    sel = select_tracks(tracks, vis, 4, 4, False, 1000, (64, 64), rng)
    assert set(sel.tolist()) <= set(range(5)) and len(sel) == 4
    with_last = select_tracks(tracks, vis, 6, 6, True, 1000, (64, 64), rng)
    assert set(with_last.tolist()) == set(range(6))
    assert select_tracks(tracks, vis, 8, 8, False, 1000, (64, 64), rng) is None  # too few candidates
    refill = select_tracks(tracks, vis, 8, 2, False, 1000, (64, 64), rng)  # tiny data sets: with replacement
    assert len(refill) == 8 and set(refill.tolist()) <= set(range(5))


def test_query_sampling_rules() -> None:
    B, L, N = 2, 10, 16
    g = torch.Generator().manual_seed(0)
    vis = torch.rand(B, L, N, generator=g) > 0.5
    vis[:, 3] = True  # every track visible somewhere
    tracks = torch.rand(B, L, N, 2, generator=g) * 50
    q, ok = sample_queries(tracks, vis, "online", g)
    assert ok.all() and q.shape == (B, N, 3)
    frames = q[..., 0].long()
    first = vis.to(torch.uint8).argmax(1)
    assert torch.equal(frames[:, N // 4:], first[:, N // 4:])  # first visible frame
    assert torch.gather(vis, 1, frames[:, None])[:, 0].all()  # every query frame is a visible frame
    xy = torch.gather(tracks, 1, frames[:, None, :, None].expand(B, 1, N, 2))[:, 0]
    assert torch.equal(q[..., 1:], xy)
    q_off, _ = sample_queries(tracks, vis, "offline", g)
    assert torch.gather(vis, 1, q_off[..., 0].long()[:, None])[:, 0].all()
    assert not torch.equal(q_off[..., 0].long(), first)  # random, not the first visible frame
    bad = tracks.clone()
    bad[0, 0, 0, 0] = float("nan")
    vis_bad = vis.clone()
    vis_bad[0, :, 0] = False
    vis_bad[0, 0, 0] = True
    q_bad, ok_bad = sample_queries(bad, vis_bad, "online", g)
    assert ok_bad.tolist() == [False, True] and torch.all(q_bad[0] == 1)
