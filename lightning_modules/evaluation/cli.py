"""`python -m lightning_modules eval` (what `make eval` runs): a checkpoint on a list of benchmarks -> one table.

    python -m lightning_modules eval --checkpoint CKPT --bench configs/eval/tiny.yaml [key=value ...]
    python -m lightning_modules eval --checkpoint scaled_offline.pth --data tapvid_davis.pkl --query-mode strided
    python -m lightning_modules eval --checkpoint CKPT --data ../shared/data/davis   # mask consistency (DAVIS masks)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True,
                   help="our Lightning .ckpt, an official .pth, or a variant name to download (offline, online, "
                        "baseline_offline, baseline_online)")
    p.add_argument("--bench", default=None, help="suite config YAML (configs/eval/*.yaml) listing the benchmarks")
    p.add_argument("--data", action="append", default=[],
                   help="one more benchmark: TAP-Vid pickle(s) (*.pkl), our shards (*.tar pattern or folder), "
                        "sparse keypoint .npz files, or a DAVIS root (JPEGImages/480p + Annotations/480p: mask "
                        "consistency per video and per group); repeatable")
    p.add_argument("--format", default="auto", help="reader of the --data benchmarks (default: detected)")
    p.add_argument("--query-mode", action="append", default=None, choices=["first", "strided", "given"],
                   help="query mode of the --data benchmarks; repeatable (default first)")
    p.add_argument("--mode", action="append", default=None, choices=["joint", "single_point"],
                   help="predictor mode; repeatable (default: the config's, joint)")
    p.add_argument("--variant", default=None, choices=["offline", "online", "baseline_offline", "baseline_online"],
                   help="model kind of an official .pth (default: recorded in our checkpoints, else the file name)")
    p.add_argument("--iters", type=int, default=None, help="refinement iterations (default 6)")
    p.add_argument("--grid-size", type=int, default=None, help="global support grid (default 5; 0 = none)")
    p.add_argument("--resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="model input size (default: the training resolution of a .ckpt, else 384 512)")
    p.add_argument("--keep-aspect", action=argparse.BooleanOptionalAction, default=None,
                   help="each video's model input keeps the video's aspect ratio, with the short side of the input "
                        "size (default: on for mask benchmarks such as DAVIS, off for point benchmarks, whose "
                        "protocol fixes the input size)")
    p.add_argument("--max-videos", type=int, default=None, help="only the first N videos of the --data benchmarks")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames (--data benchmarks)")
    p.add_argument("--device", default=None, help="cpu or cuda (default cpu)")
    p.add_argument("--out", default=None, help="folder for eval.json and eval.md (default runs/eval/<checkpoint>)")
    p.add_argument("--no-cache", action="store_true", help="recompute every prediction (and store none)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides of the suite config, e.g. "
                                                "modes=[joint,single_point] benchmarks.0.max_videos=2")


def _data_benchmarks(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for i, path in enumerate(args.data):
        stem = Path(str(path).split(",")[0].rstrip("/")).name.split(".")[0].split("*")[0].strip("-_") or "data"
        out.append({"name": stem if len(args.data) == 1 else f"{stem}-{i}", "path": str(path), "format": args.format,
                    "query_modes": args.query_mode or ["first"], "max_videos": args.max_videos,
                    "max_frames": args.max_frames})
    return out


def default_out_dir(checkpoint: str, digest: str) -> Path:
    """runs/<run>/eval/<checkpoint stem> for a checkpoint of a training run, else runs/eval/<stem>-<digest>."""
    path = Path(checkpoint)
    if path.parent.name == "checkpoints":
        return path.parent.parent / "eval" / path.stem
    return Path("runs") / "eval" / f"{path.stem}-{digest[:8]}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the config, evaluate, write eval.json / eval.md, print the table; returns the results. The output
    folder is checked to take new files before any prediction is made (one line `cannot write to X: ...`)."""
    from tracker.common.atomic import check_writable

    from .config import load_eval_config
    from .report import markdown_table, write_report
    from .suite import load_model, run_suite

    cfg = load_eval_config(
        args.bench, args.overrides, extra_benchmarks=_data_benchmarks(args), checkpoint=args.checkpoint,
        variant=args.variant, modes=args.mode, iters=args.iters, grid_size=args.grid_size,
        resolution=args.resolution, keep_aspect=args.keep_aspect, device=args.device,
        cache=False if args.no_cache else None, out=args.out)
    if cfg.out:
        check_writable(cfg.out)  # before the model is even loaded
    loaded = load_model(cfg.checkpoint, cfg.variant, cfg.device, cfg.resolution)
    out = cfg.out or default_out_dir(loaded.path, loaded.digest)
    if not cfg.out:
        check_writable(out)  # the default folder is named after the checkpoint's digest
    results = run_suite(cfg, loaded)
    try:
        json_path, md_path = write_report(results, out)
    except OSError as err:  # the disk filled up during the evaluation
        from tracker.common.errors import OutputNotWritableError

        raise OutputNotWritableError(f"cannot write to {out}: {err.strerror or err}") from None
    print(markdown_table(results), end="")
    c = results["cache"]
    print(f"wrote {json_path} and {md_path} ({c['hits']} cached predictions, {c['misses']} computed, "
          f"{results['wall_s']:.1f} s)")
    return results
