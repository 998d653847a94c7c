"""Command line: `train --config YAML [key=value ...]`, `eval --checkpoint CKPT --bench SUITE.yaml ...` and
`ablate --config ABLATION.yaml`."""
from __future__ import annotations

import argparse
import signal
import sys

from tracker.common.errors import one_line


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


def install_stop_handling() -> None:
    """SIGTERM/SIGINT end a training run within a bounded time with one `error:` line (stop_signals); Lightning's
    own notice of the signal is not printed next to it."""
    from . import stop_signals
    from .callbacks import quiet_lightning_sigterm_notice

    stop_signals.install()
    quiet_lightning_sigterm_notice()


def _run(args: argparse.Namespace) -> None:
    if args.command == "train":
        from .config import load_train_config

        cfg = load_train_config(args.config, args.overrides)
        install_stop_handling()  # from here on SIGTERM/SIGINT end the run within a bounded time
        from .train import run_training

        run_training(cfg)
    elif args.command == "ablate":
        from .ablation import main as ablate

        ablate(args)
    else:
        from .evaluation.cli import run

        run(args)


def _stop_message(exc: BaseException) -> tuple[int, str] | None:
    """(exit status, message) when the run ended because of a stop signal, else None."""
    from . import stop_signals

    signum = stop_signals.requested()
    if isinstance(exc, stop_signals.StopRequested):
        signum = exc.signum
    elif isinstance(exc, KeyboardInterrupt):
        signum = signum or signal.SIGINT
    elif signum is None and type(exc).__name__ == "SIGTERMException":
        # Lightning's: this DDP rank stops at the step on which the ranks agreed that one of them was signalled.
        return 128 + signal.SIGTERM, f"stopped with the other ranks{stop_signals.note()}"
    if signum is None:
        return None
    return 128 + signum, f"stopped by {stop_signals.signal_name(signum)}{stop_signals.note()}"


def _error_line(text: str) -> None:
    """One `error:` line in one write: DDP ranks share stderr, and print() under `python -u` writes the text and its
    newline separately, so two ranks' lines could interleave into one."""
    sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Entry point. Bad input (config, missing file, unreadable data, a run dir in use) -> one line on stderr and
    exit 2 (usage) or 1; SIGTERM/SIGINT -> one line and exit 128 + signal number, within a bounded time (see
    lightning_modules.stop_signals); anything else is a bug and keeps its traceback."""
    from . import stop_signals
    from tracker.common.errors import UserError

    args = _parser().parse_args(argv)
    try:
        _run(args)
    except BaseException as exc:  # noqa: BLE001 - sorted below; bugs are re-raised
        stopped = _stop_message(exc)
        if stopped is not None:
            _error_line(stopped[1])
            if stop_signals.installed():
                stop_signals.exit_now(stopped[0])
            return stopped[0]
        if isinstance(exc, UserError):
            _error_line(str(exc))
            return exc.exit_code
        if isinstance(exc, FileNotFoundError):
            _error_line(one_line(exc))
            return 2
        raise
    return 0
