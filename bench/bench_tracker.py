"""Inference speed and peak memory of the CoTracker3 predictors (offline and online).

    python bench/bench_tracker.py [--quick] [--device cpu|cuda|all] [--variants offline,online]
                                  [--frames 24,48] [--points 256,1024] [--threads N]

One line per configuration, e.g.
    bench_tracker device=cpu variant=offline T=24 N=256 H=384 W=512 seconds=12.3 fps=1.95 peak_mem_mb=2100 ...

Random-init weights (speed does not depend on the weights); the input is a random 384x512 uint8 video and N random
queries, run through `tracker.predictor.track` (the same path as the CLI: offline = one 6-iteration model call
plus the 6x6 support grid; online = streaming chunks of 16 frames, step 8).

What is measured:
* fps: frames of video tracked per second of wall time (one timed run after an optional warm-up). On CPU,
  `cpu_s` is the process CPU time (all threads) of that run: on a shared machine wall time depends on the load,
  cpu_s much less so.
* CPU: each configuration runs in its own fresh subprocess. `peak_mem_mb` is that process's peak resident set
  size (getrusage ru_maxrss: model weights + Python + torch + the inference), and `infer_mem_mb` is the
  growth of the peak RSS over the RSS just before the timed run (mostly activations). tracemalloc does not see
  torch's allocations, so it is not used.
* CUDA: bf16 autocast; `peak_mem_mb` = torch.cuda.max_memory_allocated during the run (tensors only, not the
  caching allocator's reserve or the CUDA context).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HEIGHT, WIDTH = 384, 512


def _rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _build(variant: str, device: str):
    import torch

    from tracker.model import CoTracker3Offline, CoTracker3Online

    torch.manual_seed(0)
    model = CoTracker3Offline() if variant == "offline" else CoTracker3Online()
    return model.to(device).eval()


def run_one(variant: str, num_frames: int, num_points: int, device: str, warmup: int) -> dict:
    """Time one configuration in this process -> dict of results."""
    import numpy as np
    import torch

    from tracker.predictor import track

    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (num_frames, HEIGHT, WIDTH, 3), dtype=np.uint8)
    # Queries spread over the first half of the clip (the online model needs them before the last window).
    queries = np.stack(
        [
            rng.integers(0, max(1, num_frames // 2), num_points).astype(np.float32),
            rng.uniform(0, WIDTH - 1, num_points).astype(np.float32),
            rng.uniform(0, HEIGHT - 1, num_points).astype(np.float32),
        ],
        axis=-1,
    )
    model = _build(variant, device)
    video_in = torch.from_numpy(video).permute(0, 3, 1, 2)[None].float().to(device)
    queries_in = torch.from_numpy(queries)[None].to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()

    def infer():
        with torch.no_grad(), autocast:
            pred = track(model, video_in, queries_in)
        if device == "cuda":
            torch.cuda.synchronize()
        return pred

    for _ in range(warmup):
        infer()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_mb()
    cpu_before = time.process_time()
    start = time.perf_counter()
    pred = infer()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_before
    assert tuple(pred.tracks.shape) == (1, num_frames, num_points, 2), pred.tracks.shape
    result = {"seconds": seconds, "fps": num_frames / seconds, "cpu_s": cpu_seconds}
    if device == "cuda":
        result["peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _peak_rss_mb()
        result["peak_mem_mb"] = peak
        result["infer_mem_mb"] = max(0.0, peak - rss_before)
    return result


def _child(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    res = run_one(args.variant, args.frames_one, args.points_one, args.device, args.warmup)
    res["threads"] = torch.get_num_threads()
    print("RESULT " + json.dumps(res))


def _format(device, variant, num_frames, num_points, res) -> str:
    parts = [
        "bench_tracker",
        f"device={device}",
        f"variant={variant}",
        f"T={num_frames}",
        f"N={num_points}",
        f"H={HEIGHT}",
        f"W={WIDTH}",
    ]
    if "error" in res:
        return " ".join(parts + [f"error={res['error']!r}"])
    parts += [f"seconds={res['seconds']:.2f}", f"fps={res['fps']:.2f}", f"peak_mem_mb={res['peak_mem_mb']:.0f}"]
    if device == "cpu" and "cpu_s" in res:
        parts.append(f"cpu_s={res['cpu_s']:.1f}")
    if "infer_mem_mb" in res:
        parts.append(f"infer_mem_mb={res['infer_mem_mb']:.0f}")
    if "threads" in res:
        parts.append(f"threads={res['threads']}")
    if device == "cuda":
        parts.append("dtype=bf16-autocast")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="only T=24, N=256 (both variants)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, all, or auto (cpu + cuda if present)")
    parser.add_argument("--variants", default="offline,online")
    parser.add_argument("--frames", default="24,48")
    parser.add_argument("--points", default="256,1024")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 0 on CPU, 1 on CUDA)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per CPU configuration")
    # Internal: run a single configuration in this process.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--frames-one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--points-one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return

    import torch

    frames = [24] if args.quick else [int(x) for x in args.frames.split(",")]
    points = [256] if args.quick else [int(x) for x in args.points.split(",")]
    variants = args.variants.split(",")
    if args.device in ("auto", "all"):
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]

    for device in devices:
        warmup = args.warmup if args.warmup is not None else (1 if device == "cuda" else 0)
        for variant in variants:
            for num_frames in frames:
                for num_points in points:
                    if device == "cuda":
                        try:
                            res = run_one(variant, num_frames, num_points, device, warmup)
                        except torch.OutOfMemoryError:
                            res = {"error": "out of memory"}
                        torch.cuda.empty_cache()
                    else:
                        res = _run_cpu_child(args, variant, num_frames, num_points, warmup)
                    print(_format(device, variant, num_frames, num_points, res), flush=True)


def _run_cpu_child(args, variant: str, num_frames: int, num_points: int, warmup: int) -> dict:
    """A fresh process per CPU configuration, so its peak RSS belongs to that configuration alone."""
    cmd = [
        sys.executable, __file__, "--child", "--device", "cpu", "--variant", variant,
        "--frames-one", str(num_frames), "--points-one", str(num_points),
        "--threads", str(args.threads), "--warmup", str(warmup),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {args.timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail}


if __name__ == "__main__":
    main()
