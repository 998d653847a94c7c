"""Per-clip data preparation of the Kubric training recipe (spec section 16.1), in NumPy + torch (no torchvision).

`make_train_clip` turns one decoded shard sample into a training clip: temporal crop/stride, photometric and
occlusion augmentation (eraser boxes, colour jitter, blur), spatial augmentation (pad, drifting scale, drifting
crop, flips) and track selection. `make_eval_clip` is the deterministic counterpart used for validation.
All randomness comes from the `np.random.Generator` passed in, so a seeded stream is reproducible.

Conventions: video uint8 (T, H, W, 3) in, float (L, 3, H, W) in [0, 255] internally; tracks (T, Q, 2) pixels
(x, y) with x = 0 at the centre of the leftmost pixel; visibility (T, Q) bool.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from datagen.formats.sample import TrackSample
from tracker.common.pixels import rescale_xy, xy_scale


@dataclass
class Clip:
    """A prepared clip: video (L, 3, H, W) uint8; tracks (L, N, 2) float32 px; visibility (L, N) bool."""

    video: torch.Tensor
    tracks: torch.Tensor
    visibility: torch.Tensor
    key: str


def choose_clip_length(rng: np.random.Generator, clip_len: int, clip_len_min: int | None) -> int:
    """Online recipe: fixed length; offline recipe: uniform integer in [clip_len_min, clip_len]."""
    if clip_len_min is None:
        return clip_len
    return int(rng.integers(clip_len_min, clip_len + 1))


def temporal_crop(num_frames: int, length: int, random_stride: bool, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of a clip of `length` frames: stride k (uniform in [1, T // L] when random), random start."""
    length = min(length, num_frames)
    stride = int(rng.integers(1, max(num_frames // length, 1) + 1)) if random_stride else 1
    span = length * stride
    start = int(rng.integers(0, num_frames - span)) if num_frames - span > 0 else 0
    return start + stride * np.arange(length)


# ---------------------------------------------------------------------------------------------- photometric
def eraser(video: torch.Tensor, tracks: np.ndarray, vis: np.ndarray, rng: np.random.Generator, aug: Any) -> None:
    """In place: on each frame after the first, with prob eraser_prob, 1..max boxes filled with their mean colour;
    tracks inside a box become occluded in that frame. video (L, 3, H, W) float; vis (L, N) bool."""
    L, _, H, W = video.shape
    lo, hi = int(aug.eraser_size[0]), int(aug.eraser_size[1])
    for t in range(1, L):
        if rng.random() >= aug.eraser_prob:
            continue
        for _ in range(int(rng.integers(1, aug.eraser_max_boxes + 1))):
            cx, cy = int(rng.integers(0, W)), int(rng.integers(0, H))
            dx, dy = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
            x0, x1 = (int(round(v)) for v in np.clip([cx - dx / 2, cx + dx / 2], 0, W - 1))
            y0, y1 = (int(round(v)) for v in np.clip([cy - dy / 2, cy + dy / 2], 0, H - 1))
            if x1 <= x0 or y1 <= y0:
                continue
            box = video[t, :, y0:y1, x0:x1]
            box[:] = box.mean(dim=(1, 2), keepdim=True)
            x, y = tracks[t, :, 0], tracks[t, :, 1]
            vis[t] &= ~((x >= x0) & (x < x1) & (y >= y0) & (y < y1))


def _grayscale(video: torch.Tensor) -> torch.Tensor:
    """(L, 3, H, W) -> (L, 1, H, W) ITU-R 601 luma (what PIL/torchvision use)."""
    w = video.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (video * w).sum(dim=1, keepdim=True)


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(L, 3, H, W) in [0, 1] -> HSV in [0, 1]."""
    r, g, b = rgb.unbind(1)
    maxc, _ = rgb.max(dim=1)
    minc, _ = rgb.min(dim=1)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    h = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    h = torch.where(delta > 0, (h / 6.0) % 1.0, torch.zeros_like(h))
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([h, s, maxc], dim=1)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    h, s, v = hsv.unbind(1)
    # Standard piecewise-linear formulation: channel n uses k = (n + 6h) mod 6.
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype).view(1, 3, 1, 1)
    k = (n + 6.0 * h.unsqueeze(1)) % 6.0
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(1) - v.unsqueeze(1) * s.unsqueeze(1) * ramp


def color_jitter(video: torch.Tensor, rng: np.random.Generator, aug: Any) -> torch.Tensor:
    """Brightness / contrast / saturation / hue jitter with independent factors per frame, in a random order
    (like torchvision's ColorJitter). video (L, 3, H, W) float 0..255 -> same."""
    L = video.shape[0]
    x = video / 255.0

    def factors(amount: float) -> torch.Tensor:
        return torch.from_numpy(rng.uniform(max(0.0, 1 - amount), 1 + amount, L)).float().view(L, 1, 1, 1)

    b, c, s = factors(aug.brightness), factors(aug.contrast), factors(aug.saturation)
    hue = torch.from_numpy(rng.uniform(-aug.hue, aug.hue, L)).float().view(L, 1, 1)
    for op in rng.permutation(4):
        if op == 0:
            x = (x * b).clamp(0, 1)
        elif op == 1:
            mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * c + mean).clamp(0, 1)
        elif op == 2:
            gray = _grayscale(x)
            x = ((x - gray) * s + gray).clamp(0, 1)
        else:
            hsv = _rgb_to_hsv(x)
            hsv = torch.stack([(hsv[:, 0] + hue) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
            x = _hsv_to_rgb(hsv).clamp(0, 1)
    return x * 255.0


def gaussian_blur(video: torch.Tensor, rng: np.random.Generator, aug: Any) -> torch.Tensor:
    """Separable Gaussian blur, kernel `blur_kernel`, sigma uniform per frame; reflect padding (torchvision's)."""
    L, C, H, W = video.shape
    k = int(aug.blur_kernel)
    sigma = torch.from_numpy(rng.uniform(aug.blur_sigma[0], aug.blur_sigma[1], L)).float()
    x = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    kernel = torch.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (L, k)
    weight = kernel.repeat_interleave(C, dim=0)  # (L*C, k): one kernel per (frame, channel) group
    pad = k // 2
    mode = "reflect" if min(H, W) > pad else "replicate"
    img = video.reshape(1, L * C, H, W)
    img = F.conv2d(F.pad(img, (pad, pad, 0, 0), mode=mode), weight.view(L * C, 1, 1, k), groups=L * C)
    img = F.conv2d(F.pad(img, (0, 0, pad, pad), mode=mode), weight.view(L * C, 1, k, 1), groups=L * C)
    return img.view(L, C, H, W)


# ---------------------------------------------------------------------------------------------- spatial
def spatial_augment(
    video: torch.Tensor, tracks: np.ndarray, vis0: np.ndarray, crop_hw: tuple[int, int], rng: np.random.Generator,
    aug: Any, augment: bool = True,
) -> tuple[torch.Tensor, np.ndarray]:
    """Pad, per-frame drifting scale, drifting crop of crop_hw and flips (spec 16.1 step 3).

    video (L, 3, H, W) float; tracks (L, N, 2) px (modified copy returned); vis0 (N,) frame-0 visibility (the
    crop starts centred on those tracks) -> video (L, 3, ch, cw), tracks.
    With augment=False only the scale needed to reach the crop size is applied and the crop is centred on the
    visible tracks without jitter (still a valid clip for odd source sizes).
    """
    ch, cw = crop_hw
    tracks = tracks.copy()
    L = video.shape[0]
    if augment and aug.pad_max > 0:
        left, right, top, bottom = (int(v) for v in rng.integers(0, aug.pad_max + 1, 4))
        video = F.pad(video, (left, right, top, bottom))
        tracks += np.array([left, top], dtype=np.float32)
    H, W = video.shape[-2:]
    scale = float(rng.uniform(*aug.scale_range)) if augment else 1.0
    sx = sy = scale
    delta = np.zeros(2)
    sizes = []
    for t in range(L):
        if augment and t > 0:
            drift = rng.uniform(-aug.scale_drift, aug.scale_drift, 2)
            delta = drift if t == 1 else 0.8 * delta + 0.2 * drift
        sx, sy = sx + delta[0], sy + delta[1]
        mid = (sx + sy) / 2
        sx, sy = float(np.clip((sx + mid) / 2, 0.2, 2.0)), float(np.clip((sy + mid) / 2, 0.2, 2.0))
        if augment:  # the recipe keeps every scaled frame at least 10 px larger than the crop
            wf, hf = max(int(W * sx), cw + 10), max(int(H * sy), ch + 10)
        else:  # no augmentation: native scale unless the frame is smaller than the crop
            wf, hf = max(W, cw), max(H, ch)
        # Align-corners scale (our pixel-centre convention), carried over to the next frame like the recipe.
        sx, sy = (float(f) for f in xy_scale((H, W), (hf, wf)))
        tracks[t] = rescale_xy(tracks[t], (H, W), (hf, wf))
        sizes.append((hf, wf))
    # The crop window starts centred on the mean frame-0 position of the tracks visible there.
    if vis0.any():
        centre = tracks[0][vis0].mean(0)
    else:
        centre = np.array([cw, ch], dtype=np.float64)
    x0, y0 = int(centre[0] - cw / 2), int(centre[1] - ch / 2)
    off = np.zeros(2, dtype=np.int64)
    out = video.new_empty((L, video.shape[1], ch, cw))
    for t in range(L):
        hf, wf = sizes[t]
        if augment and t > 0 and aug.crop_jitter > 0:
            j = aug.crop_jitter
            off = rng.integers(-j, j, 2) if t == 1 else (0.8 * off + 0.2 * rng.integers(-j, j + 1, 2)).astype(np.int64)
        x0 = int(np.clip(x0 + off[0], 0, max(wf - cw - 1, 0)))
        y0 = int(np.clip(y0 + off[1], 0, max(hf - ch - 1, 0)))
        frame = video[t : t + 1]
        if (hf, wf) != (H, W):
            frame = F.interpolate(frame, size=(hf, wf), mode="bilinear", align_corners=True)
        out[t] = frame[0, :, y0 : y0 + ch, x0 : x0 + cw]
        tracks[t] -= np.array([x0, y0], dtype=np.float32)
    if augment and rng.random() < aug.hflip_prob:
        out = out.flip(-1)
        tracks[..., 0] = (cw - 1) - tracks[..., 0]  # pixel-centre convention (the recipe's 512 - x is off by one)
    if augment and rng.random() < aug.vflip_prob:
        out = out.flip(-2)
        tracks[..., 1] = (ch - 1) - tracks[..., 1]
    return out, tracks


def select_tracks(
    tracks: np.ndarray, vis: np.ndarray, num_tracks: int, min_tracks: int, use_last: bool, max_dist: float,
    crop_hw: tuple[int, int], rng: np.random.Generator,
) -> np.ndarray | None:
    """Indices of the clip's tracks (spec 16.1 step 5), or None when there are too few candidates.

    Candidates: visible at frame 0, then at L // 2 (and at L - 1 with use_last), concatenated (duplicates kept),
    permuted; the first num_tracks are used. When fewer than num_tracks candidates exist but at least min_tracks
    distinct ones, candidates are drawn with replacement (tiny data sets); below min_tracks the clip is dropped.
    """
    L = tracks.shape[0]
    centre = np.array([crop_hw[1] / 2, crop_hw[0] / 2])
    near = (np.linalg.norm(tracks - centre, axis=-1) < max_dist).all(axis=0)  # (N,)
    frames = [0, L // 2] + ([L - 1] if use_last else [])
    cand = np.concatenate([np.flatnonzero(vis[f] & near) for f in frames])
    if len(np.unique(cand)) < min_tracks or len(cand) == 0:
        return None
    if len(cand) >= num_tracks:
        return rng.permutation(cand)[:num_tracks]
    return rng.choice(cand, size=num_tracks, replace=True)


def make_train_clip(sample: TrackSample, data_cfg: Any, length: int, rng: np.random.Generator) -> Clip | None:
    """TrackSample (video uint8 (T, H, W, 3), tracks (T, Q, 2) px, NaN unlabelled, visibility (T, Q)) -> augmented
    Clip of `length` frames at data_cfg.resolution with data_cfg.num_tracks tracks, or None if too few tracks."""
    aug = data_cfg.augment
    crop_hw = (int(data_cfg.resolution[0]), int(data_cfg.resolution[1]))
    idx = temporal_crop(sample.num_frames, length, data_cfg.random_stride, rng)
    video = torch.from_numpy(np.ascontiguousarray(sample.video[idx])).permute(0, 3, 1, 2).float()
    tracks = np.asarray(sample.tracks[idx], dtype=np.float32)
    vis = np.asarray(sample.visibility[idx], dtype=bool).copy()
    finite = np.isfinite(tracks).all(-1)
    vis &= finite
    tracks = np.where(finite[..., None], tracks, 0.0).astype(np.float32)
    if aug.enabled:
        eraser(video, tracks, vis, rng, aug)
        if rng.random() < aug.color_jitter_prob:
            video = color_jitter(video, rng, aug)
        if rng.random() < aug.blur_prob:
            video = gaussian_blur(video, rng, aug)
    video, tracks = spatial_augment(video, tracks, vis[0], crop_hw, rng, aug, augment=aug.enabled)
    H, W = crop_hw
    inside = (tracks[..., 0] >= 0) & (tracks[..., 0] <= W - 1) & (tracks[..., 1] >= 0) & (tracks[..., 1] <= H - 1)
    vis &= inside
    min_tracks = data_cfg.min_tracks if data_cfg.min_tracks is not None else data_cfg.num_tracks
    sel = select_tracks(tracks, vis, data_cfg.num_tracks, min_tracks, data_cfg.candidates_last_frame,
                        data_cfg.max_track_dist, crop_hw, rng)
    if sel is None:
        return None
    return Clip(
        video=video.round_().clamp_(0, 255).to(torch.uint8),
        tracks=torch.from_numpy(tracks[:, sel]),
        visibility=torch.from_numpy(vis[:, sel]),
        key=sample.key,
    )


def make_eval_clip(
    sample: TrackSample, resolution: tuple[int, int], clip_len: int | None, num_tracks: int, seed: int
) -> Clip | None:
    """Deterministic validation clip: the first clip_len frames resized to `resolution` (align-corners bilinear),
    up to num_tracks tracks that are visible at least once (a seeded choice), no augmentation."""
    video = sample.video[: clip_len or None]
    tracks = np.asarray(sample.tracks[: video.shape[0]], dtype=np.float32)
    vis = np.asarray(sample.visibility[: video.shape[0]], dtype=bool)
    finite = np.isfinite(tracks).all(-1)
    vis = vis & finite
    tracks = np.where(finite[..., None], tracks, 0.0).astype(np.float32)
    T, H, W, _ = video.shape
    h, w = resolution
    v = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float()
    if (H, W) != (h, w):
        v = F.interpolate(v, size=(h, w), mode="bilinear", align_corners=True)
        tracks = rescale_xy(tracks, (H, W), (h, w)).astype(np.float32)
    ever = np.flatnonzero(vis.any(0))
    if len(ever) == 0:
        return None
    sel = np.sort(np.random.default_rng(seed).permutation(ever)[:num_tracks])
    return Clip(v.round_().clamp_(0, 255).to(torch.uint8), torch.from_numpy(tracks[:, sel]),
                torch.from_numpy(vis[:, sel]), sample.key)
