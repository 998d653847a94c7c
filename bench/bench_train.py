"""Training-step benchmark of the real CoTracker3 configuration (and the shard loader), one line per setting.

    python bench/bench_train.py                       # CPU (reduced frames/tracks) and CUDA bf16 when present
    python bench/bench_train.py --device cpu --frames 16 --tracks 64 --steps 2
    python bench/bench_train.py --loader 'data/shards/default/shard-*.tar'

Each step = recipe forward (4 iterations, training outputs) + Kubric loss + backward + AdamW step + grad clip.
Prints: setting, seconds per step (median over --steps after one warm-up step), peak memory (CUDA: max allocated;
CPU: max RSS of the process), and for the loader the clips/s it produces versus the clips/s a step consumes.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_modules.config import load_train_config  # noqa: E402
from lightning_modules.module import build_model, sample_queries  # noqa: E402
from lightning_modules.schedule import make_optimizer_and_scheduler  # noqa: E402


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def bench_step(variant: str, device: str, frames: int, tracks: int, steps: int, hw: tuple[int, int]) -> dict:
    cfg = load_train_config(Path(__file__).resolve().parents[1] / f"configs/train/cotracker3_{variant}.yaml")
    model = build_model(cfg).to(device).train()
    opt, sched = make_optimizer_and_scheduler(model.parameters(), cfg.optim, cfg.trainer.max_steps)
    from tracker.losses import kubric_loss

    g = torch.Generator().manual_seed(0)
    H, W = hw
    video = (torch.rand(1, frames, 3, H, W, generator=g) * 255).to(device)
    gt = (torch.rand(1, frames, tracks, 2, generator=g) * torch.tensor([W - 1, H - 1])).to(device)
    vis = (torch.rand(1, frames, tracks, generator=g) > 0.2).to(device)
    vis[:, 0] = True
    use_bf16 = device == "cuda"
    times = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        queries, _ = sample_queries(gt, vis, cfg.model.variant)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=use_bf16):
            out = model(video, queries, iters=cfg.model.train_iters, is_train=True)
        tr = out.train
        gw = [gt[:, s : s + c.shape[2]] for s, c in zip(tr.window_starts, tr.coords)]
        vw = [vis[:, s : s + c.shape[2]].float() for s, c in zip(tr.window_starts, tr.coords)]
        va = [tr.valid[:, s : s + c.shape[2]].float() for s, c in zip(tr.window_starts, tr.coords)]
        loss = kubric_loss(tr.coords, tr.vis, tr.conf, gw, vw, va).total
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step is warm-up (allocator, kernels)
            times.append(time.perf_counter() - t0)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else _rss_gb()
    return {"s_per_step": statistics.median(times), "mem_gb": mem, "windows": len(tr.window_starts)}


def bench_loader(pattern: str, variant: str, batches: int, workers: int) -> float:
    """Clips per second produced by the training DataLoader (decode + recipe augmentation at 384x512)."""
    from lightning_modules.data import TrackDataModule, resolve_data_config

    cfg = load_train_config(Path(__file__).resolve().parents[1] / f"configs/train/cotracker3_{variant}.yaml",
                            [f"data.sources.kubric.path={pattern}", f"data.sources.kubric.val_path={pattern}",
                             f"data.num_workers={workers}", "data.shuffle_buffer=2", "data.min_tracks=1"])
    dm = TrackDataModule(resolve_data_config(cfg).data, seed=0)
    it = iter(dm.train_dataloader())
    next(it)  # worker start-up and first shard open
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["video"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--variant", choices=["online", "offline", "both"], default="both")
    p.add_argument("--frames", type=int, default=None, help="clip length (default: recipe, 64 / 59; CPU: 16)")
    p.add_argument("--tracks", type=int, default=None, help="tracks (default: recipe, 384 / 512; CPU: 64)")
    p.add_argument("--resolution", type=int, nargs=2, default=[384, 512])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--loader", default=None, help="shard pattern: also measure the loader's clips/s")
    p.add_argument("--loader-workers", type=int, default=1)
    p.add_argument("--loader-batches", type=int, default=4)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    variants = ["online", "offline"] if args.variant == "both" else [args.variant]
    recipe = {"online": (64, 384), "offline": (59, 512)}
    for device in devices:
        for variant in variants:
            frames = args.frames or (recipe[variant][0] if device == "cuda" else 16)
            tracks = args.tracks or (recipe[variant][1] if device == "cuda" else 64)
            r = bench_step(variant, device, frames, tracks, args.steps, tuple(args.resolution))
            prec = "bf16" if device == "cuda" else "fp32"
            line = (f"train_step variant={variant} device={device} precision={prec} res={args.resolution[0]}x"
                    f"{args.resolution[1]} frames={frames} tracks={tracks} windows={r['windows']} "
                    f"threads={torch.get_num_threads()}: {r['s_per_step']:.3f} s/step "
                    f"({1 / r['s_per_step']:.3f} clips/s consumed), peak_mem={r['mem_gb']:.2f} GB")
            if args.loader:
                rate = bench_loader(args.loader, variant, args.loader_batches, args.loader_workers)
                line += f", loader={rate:.2f} clips/s ({args.loader_workers} worker(s))"
            print(line, flush=True)


if __name__ == "__main__":
    main()
