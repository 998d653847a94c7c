"""Draw point tracks over video frames (NumPy only, vectorised over points).

Visible points are filled discs with a dark outline, occluded points hollow rings, and each point trails a short
fading tail through its previous visible positions. Used by the tracker CLI overlay, the datagen preview and the
training video logged to W&B.
"""
from __future__ import annotations

import numpy as np


def rainbow(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to rainbow RGB colours np.uint8 (..., 3), red -> violet.

    Hue runs over [0, 0.8] of the colour wheel so both ends stay distinguishable.
    """
    h = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0) * 0.8 * 6.0
    # HSV -> RGB with s = v = 1: each channel is a clipped triangle wave of the hue.
    rgb = np.stack([np.abs(h - 3.0) - 1.0, 2.0 - np.abs(h - 2.0), 2.0 - np.abs(h - 4.0)], axis=-1)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)


def track_colors(tracks: np.ndarray, visibility: np.ndarray, width: int) -> np.ndarray:
    """Default colours (N, 3) uint8: a rainbow over each track's x position at its first visible frame.

    tracks: (T, N, 2) px; visibility: (T, N) bool. Never-visible tracks use their frame-0 position.
    """
    first = np.argmax(visibility, axis=0)  # (N,) first visible frame (0 if never visible)
    x0 = tracks[first, np.arange(tracks.shape[1]), 0]
    return rainbow(x0 / max(width - 1, 1))


def _disc_offsets(radius: float, inner: float = -1.0) -> np.ndarray:
    """Integer pixel offsets (K, 2) as (dy, dx) with inner < distance < radius + 0.5.

    The half-pixel slack gives round discrete circles (no single-pixel spikes on the axes).
    """
    r = int(np.ceil(radius + 0.5))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    dist = np.hypot(dy, dx)
    keep = (dist < radius + 0.5) & (dist > inner)
    return np.stack([dy[keep], dx[keep]], axis=-1)


def _stamp(
    image: np.ndarray, centers: np.ndarray, colors: np.ndarray, offsets: np.ndarray, alpha: np.ndarray | float = 1.0
) -> None:
    """Paint `offsets` around each centre into image (H, W, 3) in place, alpha-blended.

    centers: (M, 2) float (x, y) px; colors: (M, 3) uint8 or (3,); alpha: scalar or (M,).
    Rounded centre + offset pixels outside the image are dropped. Where stamps overlap, the later one wins.
    """
    if len(centers) == 0:
        return
    h, w = image.shape[:2]
    cx = np.round(centers[:, 0]).astype(np.int64)
    cy = np.round(centers[:, 1]).astype(np.int64)
    ys = cy[:, None] + offsets[None, :, 0]  # (M, K)
    xs = cx[:, None] + offsets[None, :, 1]
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    colors = np.broadcast_to(np.asarray(colors, dtype=np.float32), (len(centers), 3))
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float32), (len(centers),))
    m_idx = np.broadcast_to(np.arange(len(centers))[:, None], ys.shape)[inside]
    ys, xs = ys[inside], xs[inside]
    a = alpha[m_idx][:, None]
    blended = (1.0 - a) * image[ys, xs].astype(np.float32) + a * colors[m_idx]
    image[ys, xs] = np.clip(np.round(blended), 0, 255).astype(np.uint8)


def draw_tracks(
    frames: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    tail: int = 8,
    radius: float | None = None,
    colors: np.ndarray | None = None,
) -> np.ndarray:
    """Overlay tracks on a video.

    frames: np.uint8 (T, H, W, 3); tracks: (T, N, 2) (x, y) px (pixel centres at integers); visibility: (T, N)
    bool; tail: number of previous frames drawn as a fading line (0 = none); radius: dot radius in px (default
    scales with the frame size); colors: (N, 3) uint8 (default: rainbow over the x position where each track is
    first visible). Returns a new np.uint8 (T, H, W, 3); the input is not modified.
    Non-finite positions are skipped.
    """
    frames = np.asarray(frames)
    tracks = np.asarray(tracks, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=bool)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width = frames.shape[:3]
    if tracks.ndim != 3 or tracks.shape[0] != num_frames or tracks.shape[-1] != 2:
        raise ValueError(f"tracks must be (T={num_frames}, N, 2), got {tracks.shape}")
    if visibility.shape != tracks.shape[:2]:
        raise ValueError(f"visibility must be {tracks.shape[:2]}, got {visibility.shape}")
    num_points = tracks.shape[1]
    if radius is None:
        radius = max(2.0, round(min(height, width) / 110))
    colors = track_colors(tracks, visibility, width) if colors is None else np.asarray(colors, np.uint8)
    if colors.shape != (num_points, 3):
        raise ValueError(f"colors must be (N={num_points}, 3), got {colors.shape}")

    finite = np.isfinite(tracks).all(axis=-1)  # (T, N)
    filled = _disc_offsets(radius)
    outline = _disc_offsets(radius + 1.0)
    ring_width = max(1.5, radius / 2.0)
    ring = _disc_offsets(radius, inner=radius + 0.5 - ring_width)
    line = _disc_offsets(max(0.0, radius / 3.0 - 0.5))
    tail_alpha = 0.85  # alpha of the newest tail segment; older ones fade linearly to ~0

    out = frames.copy()
    for t in range(num_frames):
        image = out[t]
        # Tail: segment (t-k-1 -> t-k) for k = tail-1 .. 0 (oldest first, so newer ones end on top), drawn where
        # the point is visible and finite at both ends, as a run of small discs sampled along the segment.
        for k in range(min(tail, t) - 1, -1, -1):
            a, b = t - k - 1, t - k
            ok = visibility[a] & visibility[b] & finite[a] & finite[b]
            if not ok.any():
                continue
            p0, p1 = tracks[a, ok], tracks[b, ok]
            seg_len = np.linalg.norm(p1 - p0, axis=-1).max()
            steps = int(min(np.ceil(seg_len), 4 * max(height, width))) + 1
            s = np.linspace(0.0, 1.0, steps + 1)[:, None, None]  # (S, 1, 1)
            pts = (p0[None] + s * (p1 - p0)[None]).reshape(-1, 2)  # (S * M, 2)
            seg_colors = np.tile(colors[ok], (steps + 1, 1))
            _stamp(image, pts, seg_colors, line, tail_alpha * (1.0 - k / max(tail, 1)))
        vis_now = visibility[t] & finite[t]
        occ_now = ~visibility[t] & finite[t]
        # Occluded rings first so visible dots stay on top.
        _stamp(image, tracks[t, occ_now], colors[occ_now], ring)
        _stamp(image, tracks[t, vis_now], np.zeros(3, np.uint8), outline, 0.6)
        _stamp(image, tracks[t, vis_now], colors[vis_now], filled)
    return out
