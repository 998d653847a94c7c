"""Training-step throughput of the CoTracker3 recipe: step time, samples/s, peak memory, FLOPs and MFU, one line per
configuration, each with its samples/s ratio to the baseline configuration measured in the same run.

    python bench/bench_train.py                          # CPU (reduced sizes) and CUDA (recipe sizes) when present
    python bench/bench_train.py --device cpu --frames 16 --tracks 64 --resolution 192 256 --steps 2
    python bench/bench_train.py --configs baseline,b1,b2,b2-ckpt --loader 'data/shards/default/shard-*.tar'
    python bench/bench_train.py --train-configs configs/train/tiny_cpu.yaml,configs/train/cpu_hour.yaml --threads 2 \
        --cpu-precisions 32-true,bf16-mixed

A step = `sample_queries` + forward with training outputs (recipe iterations) + the recipe loss
(`lightning_modules.module.configured_loss`) + backward + gradient clipping + AdamW + OneCycle, on random clips.
Configurations (all from the same initial weights):

    baseline  the reference implementation (tracker.model.reference_implementation), 1 clip per step
    b1        the default implementation, 1 clip per step
    b2, b4    the default implementation, 2 / 4 clips per step (data.batch_size)
    b2-ckpt   b2 with activation checkpointing of the update transformer (model.activation_checkpointing)

CPU runs float32 (with --train-configs also bf16 autocast: --cpu-precisions 32-true,bf16-mixed), CUDA bf16 autocast
(Lightning's bf16-mixed, the training default on GPUs). The configurations'
steps are interleaved (baseline, b1, b2, ..., baseline, b1, ...) so that a busy machine slows them alike; the
first step of each is a warm-up, the reported time is the median of the others.

Memory: CUDA torch.cuda.max_memory_allocated over a configuration's steps; CPU the growth of the peak resident
set during the first step of a fresh process per configuration (VmHWM over the resident size after building
model, data and optimiser; includes AdamW's state; in-process numbers would mix configurations).
FLOPs: what torch.utils.flop_counter counts for one step's forward and backward (matrix products, convolutions,
attention; element-wise work is not counted), counted once per configuration outside the timed steps. MFU (CUDA) =
FLOPs per step / step time / the device's dense bf16 peak (table below or --peak-tflops).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lightning_modules.config import load_train_config  # noqa: E402
from lightning_modules.module import build_model  # noqa: E402
from lightning_modules.schedule import make_optimizer_and_scheduler  # noqa: E402
from lightning_modules.step_probe import apply_gradients, forward_loss, random_clips  # noqa: E402

CONFIGS = {  # name -> (reference implementation, clips per step, activation checkpointing)
    "baseline": (True, 1, False),
    "b1": (False, 1, False),
    "b2": (False, 2, False),
    "b4": (False, 4, False),
    "b2-ckpt": (False, 2, True),
}
# Dense bf16 tensor-core peaks (TFLOP/s) by device-name substring, for MFU.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                    "4090": 165.0, "3090": 71.0, "V100": 125.0}


class Setting:
    """One configuration: its model, optimiser, data and timings."""

    def __init__(self, name: str, variant: str, device: str, frames: int, tracks: int, hw: tuple[int, int],
                 train_config: str | None = None, precision: str | None = None):
        """precision: Lightning's name of it (32-true, bf16-mixed); default bf16-mixed on CUDA, else 32-true."""
        reference, batch, ckpt = CONFIGS.get(name, (False, 1, False))
        self.name, self.reference, self.batch, self.device = name, reference, batch, device
        self.precision = precision or ("bf16-mixed" if device == "cuda" else "32-true")
        self.bf16 = self.precision == "bf16-mixed"  # bf16 autocast
        path = train_config or REPO / f"configs/train/cotracker3_{variant}.yaml"
        self.cfg = load_train_config(path, [f"model.activation_checkpointing={ckpt}"])
        torch.manual_seed(0)
        self.model = build_model(self.cfg).to(device).train()
        self.opt, self.sched = make_optimizer_and_scheduler(self.model.named_parameters(), self.cfg.optim,
                                                            self.cfg.trainer.max_steps)
        self.clips = random_clips(batch, frames, tracks, hw, torch.Generator().manual_seed(0), device)
        self.times: list[float] = []
        self.windows = 0

    def step(self) -> None:
        from tracker.model import reference_implementation

        with reference_implementation(self.reference), torch.autocast(
            device_type=self.device, dtype=torch.bfloat16, enabled=self.bf16
        ):
            out, loss = forward_loss(self.model, self.cfg.model, self.clips)
        apply_gradients(self.model, self.opt, self.sched, loss)
        self.windows = len(out.train.window_starts)

    def timed_step(self, warmup: bool) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        self.step()
        if self.device == "cuda":
            torch.cuda.synchronize()
        if not warmup:
            self.times.append(time.perf_counter() - t0)

    def flops(self) -> int:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            self.step()
        return counter.get_total_flops()


def _peak_tflops(device: str, override: float | None) -> float | None:
    if override:
        return override
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _cpu_step_memory(name: str, args, frames: int, tracks: int) -> float | None:
    """Peak resident growth (MiB) of a configuration's first step, in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-child", name, "--device", "cpu", "--variant", args.variant_one,
           "--frames", str(frames), "--tracks", str(tracks), "--resolution", *map(str, args.resolution)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])["mb"]
    return None


def _status_mb(key: str) -> float:
    """VmRSS (current) or VmHWM (peak of this program image; ru_maxrss would carry the parent's peak over
    fork + exec) of /proc/self/status in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise OSError(f"{key} not in /proc/self/status")


def bench_loader(pattern: str, variant: str, batches: int, workers: int) -> float:
    """Clips per second produced by the training DataLoader (decode + recipe augmentation at 384x512)."""
    from lightning_modules.data import TrackDataModule
    from lightning_modules.data_plan import build_data_plan

    cfg = load_train_config(REPO / f"configs/train/cotracker3_{variant}.yaml",
                            [f"data.sources.kubric.path={pattern}", f"data.sources.kubric.val_path={pattern}",
                             f"data.num_workers={workers}", "data.shuffle_buffer=2", "data.min_tracks=1"])
    dm = TrackDataModule(build_data_plan(cfg), seed=0)
    it = iter(dm.train_dataloader())
    next(it)  # worker start-up and first shard open
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["video"].shape[0]
    return n / (time.perf_counter() - t0)


def run_device(device: str, variant: str, args) -> None:
    recipe = {"online": (64, 384), "offline": (59, 512)}
    frames = args.frames or (recipe[variant][0] if device == "cuda" else 16)
    tracks = args.tracks or (recipe[variant][1] if device == "cuda" else 64)
    hw = tuple(args.resolution or ((384, 512) if device == "cuda" else (192, 256)))
    args.resolution = list(hw)
    names = args.configs.split(",")
    settings = [Setting(n, variant, device, frames, tracks, hw) for n in names]
    flops = {s.name: s.flops() for s in settings}
    peaks = {}
    for i in range(args.steps + 1):  # interleaved; step 0 is the warm-up
        for s in settings:
            if device == "cuda" and i == 1:
                torch.cuda.reset_peak_memory_stats()
            s.timed_step(warmup=i == 0)
            if device == "cuda" and i == args.steps:
                peaks[s.name] = torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda":
            torch.cuda.empty_cache()
    if device == "cpu":
        args.variant_one = variant
        peaks = {s.name: _cpu_step_memory(s.name, args, frames, tracks) for s in settings}
    base = settings[0]
    base_rate = base.batch / statistics.median(base.times)
    peak_tflops = _peak_tflops(device, args.peak_tflops) if device == "cuda" else None
    loader = None
    if args.loader:
        loader = bench_loader(args.loader, variant, args.loader_batches, args.loader_workers)
    for s in settings:
        step_s = statistics.median(s.times)
        rate = s.batch / step_s
        mem = f"{peaks[s.name]:.0f}" if peaks.get(s.name) is not None else "n/a"
        line = (f"bench_train variant={variant} device={device} config={s.name} batch={s.batch} "
                f"precision={s.precision} res={hw[0]}x{hw[1]} frames={frames} "
                f"tracks={tracks} windows={s.windows} threads={torch.get_num_threads()} step_s={step_s:.3f} "
                f"samples_per_s={rate:.3f} ratio_vs_{base.name}={rate / base_rate:.2f} peak_mem_mb={mem} ")
        line += f"tflop_per_step={flops[s.name] / 1e12:.2f} achieved_tflops={flops[s.name] / step_s / 1e12:.3f}"
        if peak_tflops:
            line += f" mfu={flops[s.name] / step_s / 1e12 / peak_tflops:.3f}"
        if loader is not None:
            line += f" loader_clips_per_s={loader:.2f}"
        print(line, flush=True)


def run_train_configs(args) -> None:
    """--train-configs A.yaml,B.yaml: each training config's own model, clip length, tracks and crop (one clip per
    step, its thread setting) at each of --cpu-precisions, interleaved in one process; samples/s ratios to the
    first."""
    settings = []
    for path in args.train_configs.split(","):
        cfg = load_train_config(path, [])
        input_size = tuple(cfg.data.resolution)  # the CPU recipes set it (lightning_modules.data_plan: input_size)
        for precision in args.cpu_precisions.split(","):
            s = Setting(Path(path).stem, cfg.model.variant, "cpu", cfg.data.clip_len, cfg.data.num_tracks,
                        input_size, train_config=path, precision=precision)
            settings.append(s)
    for i in range(args.steps + 1):  # interleaved; step 0 is the warm-up
        for s in settings:
            s.timed_step(warmup=i == 0)
    base_rate = 1 / statistics.median(settings[0].times)
    for s in settings:
        step_s = statistics.median(s.times)
        video = s.clips.video  # (B, T, 3, H, W)
        print(f"bench_train train_config={s.name} device=cpu precision={s.precision} "
              f"res={video.shape[-2]}x{video.shape[-1]} "
              f"frames={video.shape[1]} tracks={s.clips.tracks.shape[2]} window={s.model.window_len} "
              f"windows={s.windows} "
              f"threads={torch.get_num_threads()} step_s={step_s:.3f} samples_per_s={1 / step_s:.3f} "
              f"ratio_vs_{settings[0].name}_{settings[0].precision}={1 / step_s / base_rate:.2f}", flush=True)


def _memory_child(name: str, args) -> None:
    """First step of a fresh process: peak resident growth over the built model, data and optimiser (includes the
    optimiser state AdamW creates in that step: 2 floats per parameter)."""
    s = Setting(name, args.variant, "cpu", args.frames, args.tracks, tuple(args.resolution))
    before = _status_mb("VmRSS")
    s.step()
    print("RESULT " + json.dumps({"mb": _status_mb("VmHWM") - before}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    p.add_argument("--variant", choices=["online", "offline", "both"], default="online")
    p.add_argument("--configs", default="baseline,b1,b2,b2-ckpt", help=f"from {', '.join(CONFIGS)}; the first is "
                   "the baseline of the ratios")
    p.add_argument("--frames", type=int, default=None, help="clip length (default: recipe, 64 / 59; CPU: 16)")
    p.add_argument("--tracks", type=int, default=None, help="tracks (default: recipe, 384 / 512; CPU: 64)")
    p.add_argument("--resolution", type=int, nargs=2, default=None, help="H W (default 384 512; CPU: 192 256)")
    p.add_argument("--steps", type=int, default=2, help="timed steps per configuration (after one warm-up)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: table by name)")
    p.add_argument("--loader", default=None, help="shard pattern: also measure the loader's clips/s")
    p.add_argument("--loader-workers", type=int, default=1)
    p.add_argument("--loader-batches", type=int, default=4)
    p.add_argument("--train-configs", default=None, help="comma-separated training YAMLs (e.g. the CPU recipes): "
                   "time their own model and clip sizes on CPU instead of --configs")
    p.add_argument("--cpu-precisions", default="32-true", help="with --train-configs: comma-separated from 32-true, "
                   "bf16-mixed (bf16 autocast on the CPU: what trainer.precision=fastest chooses between)")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_configs:
        run_train_configs(args)
        return
    if args.memory_child:
        _memory_child(args.memory_child, args)
        return
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    variants = ["online", "offline"] if args.variant == "both" else [args.variant]
    for device in devices:
        for variant in variants:
            run_device(device, variant, args)


if __name__ == "__main__":
    main()
