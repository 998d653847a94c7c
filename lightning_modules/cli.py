"""Command line: `train --config YAML [key=value ...]` and `eval --checkpoint CKPT --data PATTERN_OR_PKL ...`."""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lightning_modules", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tracker (Lightning; CPU, GPU, DDP, SLURM)")
    t.add_argument("--config", default="configs/train/tiny_cpu.yaml", help="YAML in configs/train/")
    t.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_steps=200")

    e = sub.add_parser("eval", help="TAP-Vid metrics of a checkpoint on shards or TAP-Vid pickles")
    e.add_argument("--checkpoint", required=True,
                   help="our Lightning .ckpt, an official .pth, or a variant name to download (offline, online, baseline_offline, baseline_online)")
    e.add_argument("--data", required=True, help="shard pattern (*.tar) or TAP-Vid pickle(s) (*.pkl)")
    e.add_argument("--variant", default=None, choices=["offline", "online", "baseline_offline", "baseline_online"],
                   help="model kind of an official .pth (default: from the file name, else offline)")
    e.add_argument("--query-mode", default="first", choices=["first", "strided"])
    e.add_argument("--iters", type=int, default=6)
    e.add_argument("--grid-size", type=int, default=5, help="global support grid (offline models; 0 = none)")
    e.add_argument("--resolution", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="model input size (default: the training resolution of a .ckpt, else 384 512)")
    e.add_argument("--max-videos", type=int, default=None)
    e.add_argument("--max-frames", type=int, default=None)
    e.add_argument("--device", default="cpu")
    e.add_argument("--out", default=None, help="write the metrics JSON here")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from .config import load_train_config
        from .train import run_training

        run_training(load_train_config(args.config, args.overrides))
    else:
        from .evaluate import run_eval

        run_eval(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input (config key/value, missing file, unreadable data) -> one line on stderr, exit 2."""
    from .config import ConfigError
    from .evaluate import EvalError

    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (ConfigError, EvalError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
