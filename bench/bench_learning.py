"""Does the default training learn, every time? Trains a config for several seeds (each in its own process, as
`make train` runs it) and prints one line per seed with the held-out validation metrics next to the zero-motion
baseline, and whether the run meets the bar:

    python bench/bench_learning.py --seeds 3                                   # make train's config (tiny_cpu)
    python bench/bench_learning.py --seeds 1 --config configs/train/cpu_hour.yaml \
        --data-config configs/data/cpu_hour.yaml --data-dir data/shards/cpu_hour --min-delta-gain 20 --min-oa 88 \
        --started-ago 1200      # cpu_hour trains for what its hour leaves after rendering (trainer.time_budget_min)
    python bench/bench_learning.py --seeds 2 -- optim.lr=1e-3                  # overrides after --

Bar (issue 17; x100 TAP-Vid metrics on the held-out clips, 256x256 raster): delta_avg >= zero motion's +
--min-delta-gain, average_jaccard above zero motion's, occlusion_accuracy >= --min-oa. With --davis ROOT the
trained checkpoint is also scored on a DAVIS folder (mask consistency, docs/evaluation.md) and --min-davis-gain
applies to every group's mean (people, animals). The data set is rendered first when incomplete (not timed).

One line per seed:
    bench_learning config=tiny_cpu seed=0 steps=200 train_s=171.2 AJ=12.10/9.04 delta_avg=24.50/15.67
        OA=90.10/92.02 pass=True
(model/zero motion), then a summary line `bench_learning config=... seeds=3 passed=3/3`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/train/tiny_cpu.yaml")
    p.add_argument("--data-config", default="configs/data/default.yaml")
    p.add_argument("--data-dir", default="data/shards/default")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--runs", default="runs/bench_learning", help="run dirs go to RUNS/<config>-seed<S>")
    p.add_argument("--min-delta-gain", type=float, default=5.0)
    p.add_argument("--min-oa", type=float, default=85.0)
    p.add_argument("--davis", default=None, help="a DAVIS root to score each trained checkpoint on")
    p.add_argument("--min-davis-gain", type=float, default=15.0)
    p.add_argument("--started-ago", type=float, default=0.0,
                   help="for configs with trainer.time_budget_min (cpu_hour): seconds the budget has already run "
                        "when training starts, e.g. `make train`'s rendering time (default 0: the whole budget)")
    p.add_argument("overrides", nargs="*", help="training config overrides (key=value), after --")
    return p.parse_args(argv)


def _ensure_data(args: argparse.Namespace) -> None:
    py = sys.executable
    done = subprocess.run([py, "-m", "datagen", "complete", "--config", args.data_config, "--out", args.data_dir],
                          cwd=REPO, capture_output=True)
    if done.returncode != 0:
        print(f"rendering {args.data_dir} from {args.data_config} first (not timed)", file=sys.stderr)
        subprocess.run([py, "-m", "datagen", "generate", "--config", args.data_config, "--out", args.data_dir],
                       cwd=REPO, check=True)


def _davis_scores(args: argparse.Namespace, ckpt: str) -> dict[str, tuple[float, float]]:
    """Mask consistency x100 of the checkpoint on args.davis: {group: (model, zero motion)}, "all" included."""
    import torch

    import tracker
    from lightning_modules.evaluation.mask_benchmark import evaluate_mask_benchmark

    torch.set_num_threads(2)
    model = tracker.load_tracker(None, ckpt)
    r = evaluate_mask_benchmark(model, args.davis)
    out = {g: (100 * v["model"]["mask_consistency"], 100 * v["zero_motion"]["mask_consistency"])
           for g, v in r["groups"].items()}
    out["all"] = (100 * r["model"]["mask_consistency"], 100 * r["zero_motion"]["mask_consistency"])
    return out


def run_seed(args: argparse.Namespace, seed: int) -> bool:
    name = Path(args.config).stem
    run_dir = REPO / args.runs / f"{name}-seed{seed}"
    cmd = [sys.executable, "-m", "lightning_modules", "train", "--config", args.config, f"seed={seed}",
           f"run_dir={run_dir}", "resume=null", "trainer.enable_progress_bar=false", "logger.kind=csv",
           *args.overrides]
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    from lightning_modules.time_budget import STARTED_ENV

    env = {**os.environ, STARTED_ENV: str(time.time() - args.started_ago)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    train_s = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"bench_learning config={name} seed={seed} failed: {tail[0]}", flush=True)
        return False
    summary = json.loads((run_dir / "final_metrics.json").read_text())
    model, zero = summary["final"]["model"], summary["final"]["zero_motion"]
    aj, aj0 = 100 * model["average_jaccard"], 100 * zero["average_jaccard"]
    da, da0 = 100 * model["average_pts_within_thresh"], 100 * zero["average_pts_within_thresh"]
    oa, oa0 = 100 * model["occlusion_accuracy"], 100 * zero["occlusion_accuracy"]
    ok = da >= da0 + args.min_delta_gain and aj > aj0 and oa >= args.min_oa
    line = (f"bench_learning config={name} seed={seed} steps={summary['global_step']} train_s={train_s:.1f} "
            f"AJ={aj:.2f}/{aj0:.2f} delta_avg={da:.2f}/{da0:.2f} OA={oa:.2f}/{oa0:.2f}")
    if args.davis:
        for group, (m, z) in sorted(_davis_scores(args, summary["last_checkpoint"]).items()):
            line += f" davis_{group}={m:.2f}/{z:.2f}"
            if group in ("people", "animals"):
                ok = ok and m >= z + args.min_davis_gain
    print(f"{line} pass={ok}", flush=True)
    return ok


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _ensure_data(args)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    passed = sum(run_seed(args, s) for s in seeds)
    print(f"bench_learning config={Path(args.config).stem} seeds={args.seeds} passed={passed}/{args.seeds}")
    return 0 if passed == args.seeds else 1


if __name__ == "__main__":
    sys.exit(main())
