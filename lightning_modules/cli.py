"""Command line: `train --config YAML [key=value ...]`, `eval --checkpoint CKPT --bench SUITE.yaml ...` and
`ablate --config ABLATION.yaml`."""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lightning_modules", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a tracker (Lightning; CPU, GPU, DDP, SLURM)")
    t.add_argument("--config", default="configs/train/tiny_cpu.yaml", help="YAML in configs/train/")
    t.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. trainer.max_steps=200")

    e = sub.add_parser("eval", help="score a checkpoint on a list of benchmarks (TAP-Vid, shards, sparse keypoints)")
    from .evaluation.cli import add_arguments

    add_arguments(e)

    a = sub.add_parser("ablate", help="data-mix ablation: arms that differ only in their data, scored side by side")
    from .ablation import add_arguments as add_ablation_arguments

    add_ablation_arguments(a)
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from .config import load_train_config
        from .train import run_training

        run_training(load_train_config(args.config, args.overrides))
    elif args.command == "ablate":
        from .ablation import main as ablate

        ablate(args)
    else:
        from .evaluation.cli import run

        run(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input (config key/value, missing file, unreadable data) -> one line on stderr, exit 2."""
    from .ablation import AblationError
    from .config import ConfigError
    from .evaluation.config import EvalConfigError
    from .evaluation.sources import EvalError

    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (ConfigError, EvalError, EvalConfigError, AblationError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
