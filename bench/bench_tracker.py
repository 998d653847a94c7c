"""Inference speed of the default path against the plain reference path, and memory against clip length.

    python bench/bench_tracker.py [--quick] [--device cpu|cuda|all] [--variants offline,online]
                                  [--frames 24,48] [--points 256,1024] [--repeats 2] [--threads N]
    python bench/bench_tracker.py --memory [--memory-frames 24,240,2400] [--memory-points 32]

Speed (default mode): for each setting one process runs `tracker.track` on the same random 384x512 video and queries
with the plain reference path (`tracker.model.reference_implementation()`: the original eager code, float32, no
allocator tuning) and with the default path, interleaved A/B/A/B (--repeats pairs), and prints one line, e.g.

    bench_tracker device=cpu variant=offline T=24 N=256 H=384 W=512 path=default seconds=20.1 ref_seconds=38.0
        speedup=1.89 cpu_s=... ref_cpu_s=... max_diff_px=3.1e-05 threads=2 load=3.1

seconds / ref_seconds are the fastest of the repeats (wall time), cpu_s the matching process CPU time (all threads;
less sensitive than wall time to other work on a shared machine), max_diff_px the largest difference of the tracks
between the two paths, load the 1-minute load average when the setting started. On CUDA the default path is also
run with bf16 autocast and with bf16 + torch.compile (path=bf16, path=bf16+compile), each line with its speedup
over the same reference run and its peak memory (torch.cuda.max_memory_allocated).

Memory (--memory): each setting runs in a fresh process and reports the growth of its peak resident set size
during the request (`peak_mb`; ru_maxrss minus the resident size before the call) next to the estimate of
`tracker.memory` and the ratio to the first (shortest) clip of the same variant. The online model streams a
generated clip chunk by chunk (no clip in memory); the offline model gets the whole clip and refuses requests the
estimator says do not fit (printed as refused=...) and, on a shared machine, does not run settings estimated above
--memory-limit-gb (printed as skipped=...). To keep 2,400 frames affordable on CPU these runs use a model with the
official architecture but a 96x128 model resolution on 96x128 frames, few points (--memory-points) and one
refinement iteration (each iteration frees its temporaries, so the peak is that of six).

Random-init weights throughout (speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HEIGHT, WIDTH = 384, 512
MEMORY_HW = (96, 128)
ITERS_MEMORY = 1  # iterations free their temporaries, so one shows the same peak at a sixth of the time


def _status_mb(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB, None where unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Current resident set size in MiB."""
    return _status_mb("VmRSS") or _peak_rss_mb()


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB: VmHWM (that of this program image; ru_maxrss would carry
    the parent's peak over fork + exec), else ru_maxrss (KiB on Linux)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _build(variant: str, device: str, **arch):
    import torch

    from tracker.model import CoTracker3Offline, CoTracker3Online

    torch.manual_seed(0)
    model = CoTracker3Offline(**arch) if variant == "offline" else CoTracker3Online(**arch)
    return model.to(device).eval()


def _inputs(num_frames: int, num_points: int, hw: tuple[int, int]):
    import numpy as np
    import torch

    H, W = hw
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.integers(0, 256, (1, num_frames, 3, H, W), dtype=np.uint8))
    # Queries spread over the first half of the clip (the online model needs them before the last window).
    queries = np.stack(
        [
            rng.integers(0, max(1, num_frames // 2), num_points).astype(np.float32),
            rng.uniform(0, W - 1, num_points).astype(np.float32),
            rng.uniform(0, H - 1, num_points).astype(np.float32),
        ],
        axis=-1,
    )
    return video, torch.from_numpy(queries)[None]


# ------------------------------------------------------------------------------------------------------ speed


def speed_setting(variant: str, num_frames: int, num_points: int, device: str, repeats: int) -> list[str]:
    """A/B/A/B of the reference and the default path (plus bf16 / compile on CUDA) -> one line per path."""
    import torch

    from tracker.model import reference_implementation
    from tracker.predictor import track

    load = _load()
    model = _build(variant, device)
    video, queries = _inputs(num_frames, num_points, (HEIGHT, WIDTH))
    video = video.to(device)

    def run(path: str):
        ref = path == "reference"
        with reference_implementation(ref):
            return track(model, video, queries, precision="bf16" if path.startswith("bf16") else "fp32",
                         compile=path.endswith("compile"))

    paths = ["reference", "default"] + (["bf16", "bf16+compile"] if device == "cuda" else [])
    if device == "cuda":  # warm-up: kernels, cuDNN / compile autotuning
        for path in paths:
            run(path)
    times = {p: [] for p in paths}
    peak = {}
    tracks = {}
    for _ in range(repeats):
        for path in paths:
            if device == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            c0, t0 = _cpu_s(), time.perf_counter()
            tracks[path] = run(path).tracks
            if device == "cuda":
                torch.cuda.synchronize()
                peak[path] = torch.cuda.max_memory_allocated() / 2**20
            times[path].append((time.perf_counter() - t0, _cpu_s() - c0))
    ref_s, ref_cpu = min(times["reference"])
    lines = []
    for path in paths[1:]:
        seconds, cpu = min(times[path])
        diff = (tracks[path] - tracks["reference"]).abs().max().item()
        parts = [f"bench_tracker device={device} variant={variant} T={num_frames} N={num_points} H={HEIGHT} W={WIDTH}",
                 f"path={path} seconds={seconds:.2f} ref_seconds={ref_s:.2f} speedup={ref_s / seconds:.2f}"]
        if device == "cpu":
            parts.append(f"cpu_s={cpu:.1f} ref_cpu_s={ref_cpu:.1f} cpu_ratio={ref_cpu / cpu:.2f}")
        else:
            parts.append(f"peak_mem_mb={peak[path]:.0f} ref_peak_mem_mb={peak['reference']:.0f}")
        parts.append(f"max_diff_px={diff:.2g} threads={torch.get_num_threads()} load={load:.1f} repeats={repeats}")
        lines.append(" ".join(parts))
    return lines


# ----------------------------------------------------------------------------------------------------- memory


def memory_setting(variant: str, num_frames: int, num_points: int, limit_gb: float) -> dict:
    """One request in this (fresh) process: peak RSS growth, estimate, seconds; or the refusal (by the
    estimator, or by --memory-limit-gb so that a shared machine is not filled)."""
    import numpy as np
    import torch

    from tracker.memory import InsufficientMemoryError, estimate_tracking_memory
    from tracker.predictor import OfflinePredictor, OnlinePredictor

    H, W = MEMORY_HW
    model = _build(variant, "cpu", model_resolution=MEMORY_HW)
    rng = np.random.default_rng(0)
    queries = torch.from_numpy(np.stack([np.zeros(num_points), rng.uniform(0, W - 1, num_points),
                                         rng.uniform(0, H - 1, num_points)], axis=-1).astype(np.float32))[None]
    mode = "offline" if variant == "offline" else "online_stream"
    support = 36 if variant == "offline" else 0
    est = estimate_tracking_memory(model, num_frames=num_frames, num_points=num_points + support,
                                   input_hw=(H, W), mode=mode)

    def chunks():  # the online model reads the clip as a stream of 8-frame chunks
        for t in range(0, num_frames, 8):
            n = min(8, num_frames - t)
            yield torch.from_numpy(rng.integers(0, 256, (1, n, 3, H, W), dtype=np.uint8))

    result = {"estimate_mb": est.total / 2**20}
    if est.total > limit_gb * 2**30:
        result["skipped"] = f"estimate above --memory-limit-gb {limit_gb:g}"
        return result
    video = None
    if variant == "offline":
        video = torch.from_numpy(rng.integers(0, 256, (1, num_frames, 3, H, W), dtype=np.uint8))
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    try:
        if variant == "offline":
            out = OfflinePredictor(model, iters=ITERS_MEMORY)(video, queries)
        else:
            out = OnlinePredictor(model, iters=ITERS_MEMORY).track_video(chunks(), queries)
    except InsufficientMemoryError as err:
        result["refused"] = str(err)
        result["seconds"] = time.perf_counter() - t0
        return result
    result["seconds"] = time.perf_counter() - t0
    result["peak_mb"] = max(0.0, _peak_rss_mb() - rss0)
    result["outputs_mb"] = sum(t.numel() * t.element_size() for t in (out.tracks, out.visible, out.vis_prob,
                                                                     out.conf_prob)) / 2**20
    assert out.tracks.shape[1] == num_frames, out.tracks.shape
    return result


def _memory_child(args) -> None:
    print("RESULT " + json.dumps(memory_setting(args.variant, args.frames_one, args.points_one,
                                                 args.memory_limit_gb)))


def _run_memory_child(variant: str, num_frames: int, num_points: int, timeout: float, limit_gb: float) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", "--variant", variant, "--frames-one", str(num_frames),
           "--points-one", str(num_points), "--memory-limit-gb", str(limit_gb)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def memory_lines(variants: list[str], frames: list[int], points: int, timeout: float, limit_gb: float) -> None:
    H, W = MEMORY_HW
    for variant in variants:
        first = None
        for num_frames in frames:
            res = _run_memory_child(variant, num_frames, points, timeout, limit_gb)
            parts = [f"bench_tracker_memory device=cpu variant={variant} T={num_frames} N={points} H={H} W={W} "
                     f"model_res={H}x{W}"]
            if "error" in res:
                parts.append(f"error={res['error']!r}")
            elif "skipped" in res:
                parts.append(f"estimate_mb={res['estimate_mb']:.0f} skipped={res['skipped']!r}")
            elif "refused" in res:
                parts.append(f"estimate_mb={res['estimate_mb']:.0f} refused_in_s={res['seconds']:.2f} "
                             f"refused={res['refused']!r}")
            else:
                first = first or res["peak_mb"]
                parts.append(f"peak_mb={res['peak_mb']:.0f} estimate_mb={res['estimate_mb']:.0f} "
                             f"outputs_mb={res['outputs_mb']:.1f} growth_vs_first={res['peak_mb'] / first:.2f} "
                             f"seconds={res['seconds']:.1f}")
            print(" ".join(parts), flush=True)


# ------------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only T=24, N=256 (both variants)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, all, or auto (cpu + cuda if present)")
    parser.add_argument("--variants", default="offline,online")
    parser.add_argument("--frames", default="24,48")
    parser.add_argument("--points", default="256,1024")
    parser.add_argument("--repeats", type=int, default=3, help="A/B pairs per setting (the fastest counts)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument("--memory", action="store_true", help="peak memory against clip length instead of speed")
    parser.add_argument("--memory-frames", default="24,240,2400")
    parser.add_argument("--memory-points", type=int, default=32)
    parser.add_argument("--memory-limit-gb", type=float, default=6.0,
                        help="do not run memory settings estimated above this (a shared machine)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per memory setting")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--frames-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--points-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        _memory_child(args)
        return
    variants = args.variants.split(",")
    if args.memory:
        memory_lines(variants, [int(x) for x in args.memory_frames.split(",")], args.memory_points, args.timeout,
                     args.memory_limit_gb)
        return
    frames = [24] if args.quick else [int(x) for x in args.frames.split(",")]
    points = [256] if args.quick else [int(x) for x in args.points.split(",")]
    if args.device in ("auto", "all"):
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    for device in devices:
        for variant in variants:
            for num_frames in frames:
                for num_points in points:
                    try:
                        lines = speed_setting(variant, num_frames, num_points, device, args.repeats)
                    except torch.OutOfMemoryError:
                        lines = [f"bench_tracker device={device} variant={variant} T={num_frames} N={num_points} "
                                 f"error='out of memory'"]
                    if device == "cuda":
                        torch.cuda.empty_cache()
                    for line in lines:
                        print(line, flush=True)


if __name__ == "__main__":
    main()
