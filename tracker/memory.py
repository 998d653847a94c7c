"""How much memory a tracking request needs, checked before anything large is allocated.

One estimator for the predictors, `tracker.track` and the command line. It adds up the dominant allocations of the
default implementation from the model architecture and the request (points x frames x resolution):

* the input video (uint8) and its float32 copy at the model resolution (the whole clip for the offline model, one
  window for the streaming online predictor);
* the encoder's temporaries for one chunk of frames (`ENCODER_CHUNK_PIXELS`), measured per input pixel;
* the feature pyramid (channels-last, replicate-padded; all frames offline, one window online) and the frame-feature
  cache of predictors that run several model calls on the same frames;
* the support patches of every query (levels x (2r+1)^2 x C floats per point, held about three times);
* the transformer: every (track, frame) token of a window, real and virtual, carries about `TOKEN_FLOATS` hidden
  vectors at the peak of a block (the MLP's 4x hidden layer and its activation, the residual stream, norms);
* the correlation blocks (bounded rows, see `tracker.model.base.CORR_BLOCK_ROWS`), the outputs, and a fixed
  allowance for first-call and unmodelled allocations (`RUNTIME_BYTES`).

Calibrated against the peak resident set growth that bench/bench_tracker.py --memory measures (the estimate errs
on the high side; see docs/tracker_model.md). Refusing early is the point: a request that does not fit must end
with one line naming the estimate, not minutes later with an allocation failure.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

# Peak bytes of the encoder's temporaries per input pixel of a chunk (float32; measured about 740 with 128-frame
# chunks at 96x128: activations, the 416-channel fusion and oneDNN's reorder buffers).
ENCODER_BYTES_PER_PIXEL = 800
# Hidden-size vectors per (track, frame) token alive at the peak of a transformer block.
TOKEN_FLOATS = 20
# First-call and unmodelled allocations (oneDNN primitive caches, small tensors, allocator slack).
RUNTIME_BYTES = 64 << 20
# Share of the available memory a request may take (the rest: Python, other allocations, fragmentation).
USABLE_FRACTION = 0.85
# The shortest clip worth advising as a frame limit (a limit of one frame tracks nothing through time).
MIN_ADVISED_FRAMES = 2
GIB = 2**30


class InsufficientMemoryError(ValueError):
    """A request whose estimated memory exceeds what is available; the message is one line.

    Attributes: estimate (MemoryEstimate), available (bytes), max_points (largest point count that fits at this
    clip length, 0 if none) and max_frames (largest clip length that fits with these points; 0 if none, if it
    would be a single frame, and always for the streaming online predictor, whose memory does not grow with the
    clip)."""

    def __init__(self, message: str, estimate: MemoryEstimate, available: int, max_points: int, max_frames: int):
        super().__init__(message)
        self.estimate = estimate
        self.available = available
        self.max_points = max_points
        self.max_frames = max_frames


@dataclass
class MemoryEstimate:
    """Estimated peak bytes of one request, with its parts (bytes) for diagnostics."""

    total: int
    parts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return format_bytes(self.total)


def format_bytes(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2**20:.0f} MiB"


def _arch(model) -> dict:
    arch = getattr(model, "arch", model)
    if not isinstance(arch, dict):
        raise TypeError("pass a CoTracker3 model or its `arch` dict")
    return arch


def estimate_tracking_memory(
    model,
    *,
    num_frames: int,
    num_points: int,
    input_hw: tuple[int, int],
    mode: str = "offline",
    batch: int = 1,
    cached_frames: int = 0,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
    model_hw: tuple[int, int] | None = None,
) -> MemoryEstimate:
    """Peak memory of tracking `num_points` points (support and grid points included) through `num_frames` frames
    of size input_hw (H, W), resized to model_hw (h, w) for the model (default: its model_resolution).

    model: a CoTracker3 model (or its `arch` dict). mode: "offline" (one window over the clip), "online_stream"
    (the streaming predictor: memory independent of num_frames but for the outputs) or "online_windows" (sliding
    windows over the whole clip in one call, as the evaluation does). cached_frames: frames whose features a
    predictor keeps for repeated calls (backward tracking, dense tracking, single-point evaluation). The input
    video is counted as uint8 (the predictors convert it to float chunk by chunk).
    """
    from tracker.model.base import CORR_BLOCK_ROWS, ENCODER_CHUNK_PIXELS
    from tracker.model.pyramid import pyramid_pad

    if mode not in ("offline", "online_stream", "online_windows"):
        raise ValueError(f"unknown mode {mode!r}")
    a = _arch(model)
    f = 2 if precision == "bf16" else 4  # activations; the pyramid and coordinates stay float32
    B, T, N = batch, max(int(num_frames), 1), max(int(num_points), 1)
    H, W = input_hw
    mh, mw = model_hw or a["model_resolution"]
    window = a["window_len"]
    S = T if mode == "offline" else min(window, T)
    encoded = {"offline": T, "online_stream": window, "online_windows": -(-T // window) * window}[mode]
    C, r, levels, hidden = a["latent_dim"], a["corr_radius"], a["corr_levels"], a["hidden_size"]
    P, K = 2 * r + 1, 2 * r + 2
    pad = pyramid_pad(r)
    h, w = mh // 4, mw // 4
    level_pixels = 0
    for _ in range(levels):
        level_pixels += (h + 2 * pad) * (w + 2 * pad)
        h, w = h // 2, w // 2
    chunk_frames = max(1, ENCODER_CHUNK_PIXELS // (mh * mw))
    tokens = B * (N + a["num_virtual_tracks"]) * S
    rows = CORR_BLOCK_ROWS["cuda" if torch.device(device).type == "cuda" else "cpu"]
    token_dim = 2 + levels * a["corr_dim"] + 84
    parts = {
        "runtime": RUNTIME_BYTES,
        "input video": B * T * 3 * H * W,
        "resized video": B * encoded * 3 * mh * mw * 4,
        "encoder": min(chunk_frames, B * encoded) * mh * mw * ENCODER_BYTES_PER_PIXEL * f // 4,
        "pyramid": B * encoded * C * level_pixels * 4,
        "feature cache": 2 * min(cached_frames, T) * C * (mh // 4) * (mw // 4) * 4,
        "support patches": 3 * B * N * levels * P * P * C * 4,
        "transformer": tokens * hidden * TOKEN_FLOATS * f + B * N * S * (hidden + token_dim + 84) * 4,
        "correlation blocks": rows * (K * K * C + K * K * P * P + 2 * P * K * P * P + 2 * P**4
                                      + 2 * a["corr_hidden"] + 2 * token_dim) * f,
        "outputs": B * T * N * 4 * 4 * 4,
    }
    # The encoder's temporaries are gone before the transformer runs: count the larger of the two phases.
    phase = max(parts["encoder"], parts["transformer"] + parts["correlation blocks"])
    total = sum(v for k, v in parts.items() if k not in ("encoder", "transformer", "correlation blocks")) + phase
    return MemoryEstimate(int(total), parts)


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes a new request can use on `device` (None if unknown): CUDA free memory, or on CPU the kernel's
    MemAvailable capped by the cgroup (container / SLURM job) limit."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        return None
    limit = _cgroup_headroom()
    if limit is not None:
        avail = limit if avail is None else min(avail, limit)
    return avail


def _cgroup_headroom() -> int | None:
    """Limit minus usage of this process's memory cgroup (v2 or v1), None if unlimited or unknown."""
    candidates = [("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")]
    for limit_path, usage_path in candidates:
        try:
            raw = Path(limit_path).read_text().strip()
            if raw == "max" or int(raw) >= 1 << 60:
                return None
            return max(int(raw) - int(Path(usage_path).read_text().strip()), 0)
        except (OSError, ValueError):
            continue
    return None


def check_tracking_memory(model, *, num_frames: int, num_points: int, input_hw: tuple[int, int],
                          device: torch.device | str = "cpu", what: str = "", **kwargs) -> MemoryEstimate:
    """Estimate a request (see `estimate_tracking_memory`) and raise InsufficientMemoryError (one line: the
    estimate, what is available and the largest request that fits) if it exceeds USABLE_FRACTION of the available
    memory. Set TRACKFORGE_MEMORY_CHECK=0 to skip the check. Returns the estimate."""
    kwargs["device"] = device
    est = estimate_tracking_memory(model, num_frames=num_frames, num_points=num_points, input_hw=input_hw, **kwargs)
    if os.environ.get("TRACKFORGE_MEMORY_CHECK", "1") == "0":
        return est
    avail = available_memory(device)
    if avail is None or est.total <= USABLE_FRACTION * avail:
        return est
    budget = USABLE_FRACTION * avail

    def fits(frames: int, points: int) -> bool:
        return estimate_tracking_memory(model, num_frames=frames, num_points=points, input_hw=input_hw,
                                        **kwargs).total <= budget

    mode = kwargs.get("mode", "offline")
    max_points = _largest(lambda n: fits(num_frames, n), num_points)
    # The streaming online predictor holds one window whatever the clip length: fewer frames is no advice there.
    # Elsewhere a limit below MIN_ADVISED_FRAMES ("about 1 frames") is no tracking request either.
    max_frames = 0 if mode == "online_stream" else _largest(lambda t: fits(t, num_points), num_frames)
    if max_frames < MIN_ADVISED_FRAMES:
        max_frames = 0
    hint = []
    if max_points:
        hint.append(f"at most about {max_points} points" + ("" if mode == "online_stream" else " for these frames"))
    if max_frames:
        hint.append(f"at most about {max_frames} frames with these points")
    if mode == "offline":
        hint.append("the online model, whose memory does not grow with the clip length")
    if not hint:
        hint.append("a smaller input or a device with more memory")
    message = (f"{what or 'tracking'} {num_points} points through {num_frames} frames of {input_hw[1]}x{input_hw[0]} "
               f"needs about {est} but {format_bytes(avail)} is available ({device}); use "
               + " or ".join(hint) + " (set TRACKFORGE_MEMORY_CHECK=0 to try anyway)")
    raise InsufficientMemoryError(message, est, avail, max_points, max_frames)


def _largest(fits, upper: int) -> int:
    """Largest n in [1, upper) with fits(n) (fits is monotone), 0 if even 1 does not fit."""
    if upper <= 1 or not fits(1):
        return 0
    lo, hi = 1, upper  # fits(lo) and not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def grid_side(points: int) -> int:
    """Largest g with g*g <= points."""
    return math.isqrt(max(points, 0))
