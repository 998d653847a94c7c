"""Data-mix ablation: runs that differ only in their training data, scored side by side on the same benchmarks.

    python -m lightning_modules ablate --config configs/ablation/tiny.yaml          # everything, in order
    python -m lightning_modules ablate --config X --arm with_actors --print-args    # one arm's `train` arguments
    python -m lightning_modules ablate --config X --report                          # only score and compare

Config (configs/ablation/*.yaml, typed below):
    name:          the ablation (run dirs <out>/<arm>, runs named <name>-<arm>)
    train_config:  the training config every arm starts from
    overrides:     key=value applied to every arm (steps, devices, ...)
    arms:          {arm name: [key=value, ...]}: the data mixture of each arm; only data-mixture keys may differ
                   (data.sources.*, data.shards, data.val_shards, data.num_val_shards), checked on the resolved
                   configs before anything runs, so the arms train with the same model, recipe, seed and steps
    render:        [{out, config, overrides}]: data sets rendered with `python -m datagen generate` if incomplete
    eval:          the evaluation suite (configs/eval/*.yaml) both arms are scored on; eval_overrides: key=value
    out:           default runs/ablation/<name>

Each step is its own process where it has one (datagen generate, lightning_modules train: DDP and SLURM work as
for any training); an arm whose run has reached trainer.max_steps is not trained again, an interrupted one resumes
(resume=auto), and predictions are cached, so rerunning the command only does what is missing.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tracker.common.config_loading import merge_config, omegaconf_error
from tracker.common.errors import UserError, one_line

# What may differ between arms: the data mixture (and where each run lives).
MIXTURE_KEYS = ("data.sources", "data.shards", "data.val_shards", "data.num_val_shards")
PER_ARM_KEYS = ("name", "run_dir")


class AblationError(UserError):
    """A bad ablation config or a failed step (one line, exit status 2)."""

    exit_code = 2


@dataclass
class RenderConfig:
    out: str = MISSING
    config: str = MISSING
    overrides: list[str] = field(default_factory=list)


@dataclass
class AblationConfig:
    name: str = "ablation"
    train_config: str = MISSING
    overrides: list[str] = field(default_factory=list)
    arms: dict[str, list[str]] = field(default_factory=dict)
    render: list[RenderConfig] = field(default_factory=list)
    eval: str = MISSING
    eval_overrides: list[str] = field(default_factory=list)
    out: Optional[str] = None


def load_ablation_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> AblationConfig:
    """Schema <- YAML <- key=value overrides -> AblationConfig; ConfigError / AblationError (one line) when
    invalid."""
    cfg = merge_config(OmegaConf.structured(AblationConfig), path, overrides, example="out=runs/ablation/x")
    try:
        cfg = OmegaConf.to_object(cfg)  # reports MISSING keys
    except OmegaConfBaseException as exc:
        raise omegaconf_error(exc, str(path)) from None
    if len(cfg.arms) < 2:
        raise AblationError(f"ablation config {path}: needs at least two arms, got {list(cfg.arms)}")
    return cfg


def out_dir(cfg: AblationConfig) -> Path:
    return Path(cfg.out or Path("runs") / "ablation" / cfg.name)


def train_args(cfg: AblationConfig, arm: str) -> list[str]:
    """The `python -m lightning_modules train` arguments of one arm (also what `--print-args` prints)."""
    if arm not in cfg.arms:
        raise AblationError(f"no arm {arm!r} in the ablation (arms: {', '.join(cfg.arms)})")
    return ["--config", cfg.train_config, *cfg.overrides, *cfg.arms[arm], f"name={cfg.name}-{arm}",
            f"run_dir={out_dir(cfg) / arm}"]


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def _check_same_but_data(configs: dict[str, Any]) -> None:
    """AblationError naming the keys (outside the data mixture) in which the arms' configs differ."""
    from .config import to_container

    flat = {arm: _flat(to_container(tc)) for arm, tc in configs.items()}
    first, *others = flat
    differing = set()
    for arm in others:
        keys = set(flat[first]) | set(flat[arm])
        differing |= {k for k in keys if flat[first].get(k, "<unset>") != flat[arm].get(k, "<unset>")}
    bad = sorted(k for k in differing if not k.startswith(MIXTURE_KEYS) and k not in PER_ARM_KEYS)
    if bad:
        shown = "; ".join(f"{k}: " + ", ".join(f"{a}={flat[a].get(k, '<unset>')}" for a in flat) for k in bad[:5])
        raise AblationError(f"the arms must differ only in their data mixture ({', '.join(MIXTURE_KEYS)}), but "
                            f"they also differ in: {shown}")


def arm_configs(cfg: AblationConfig, resolve_data: bool = True) -> dict[str, Any]:
    """Each arm's training config, checked to differ from the others only in the data mixture: as configured
    (before any data is read) and, with `resolve_data`, again as the run will record it, with the data plan's
    values (input size from the frame size, model resolution): those resolved configs are returned then.
    AblationError (one line, naming the keys) otherwise."""
    from .config import ConfigError, load_train_config

    configs = {}
    for arm in cfg.arms:
        args = train_args(cfg, arm)
        try:
            configs[arm] = load_train_config(args[1], args[2:])
        except (ConfigError, ValueError, FileNotFoundError) as exc:
            raise AblationError(f"arm {arm}: {one_line(exc)}") from None
    _check_same_but_data(configs)
    if resolve_data:
        from .data_plan import build_data_plan, resolved_config

        for arm, tc in configs.items():
            try:
                configs[arm] = resolved_config(tc, build_data_plan(tc))
            except (ValueError, FileNotFoundError) as exc:
                raise AblationError(f"arm {arm}: {one_line(exc)}") from None
        _check_same_but_data(configs)
    return configs


def _run(cmd: list[str], what: str) -> None:
    print(f"[ablation] {what}: {' '.join(shlex.quote(c) for c in cmd)}", flush=True)
    proc = subprocess.run(cmd, env={**os.environ})
    if proc.returncode != 0:
        raise AblationError(f"{what} failed (exit {proc.returncode}); its output is above")


def render_missing(cfg: AblationConfig) -> None:
    """Render each `render` data set that is incomplete (datagen resumes a partial one)."""
    for r in cfg.render:
        args = ["--config", r.config, "--out", r.out, *r.overrides]
        done = subprocess.run([sys.executable, "-m", "datagen", "complete", *args], capture_output=True, text=True)
        if done.returncode != 0:
            _run([sys.executable, "-m", "datagen", "generate", *args], f"render {r.out}")


def _finished(run_dir: Path, max_steps: int) -> bool:
    try:
        summary = json.loads((run_dir / "final_metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return int(summary.get("global_step", -1)) >= max_steps and Path(summary.get("last_checkpoint", "")).is_file()


def train_arm(cfg: AblationConfig, arm: str, max_steps: int) -> None:
    run_dir = out_dir(cfg) / arm
    if _finished(run_dir, max_steps):
        print(f"[ablation] arm {arm}: trained already ({run_dir})", flush=True)
        return
    _run([sys.executable, "-m", "lightning_modules", "train", *train_args(cfg, arm), "resume=auto"], f"train {arm}")


def report(cfg: AblationConfig) -> dict[str, Any]:
    """Score every arm's last checkpoint on the eval suite; write <out>/ablation.json and ablation.md (the arms
    side by side, the difference to the first arm, the zero-motion baseline) and print the table."""
    from tracker.common.atomic import write_atomic, write_json

    from .evaluation.config import load_eval_config
    from .evaluation.report import write_report
    from .evaluation.suite import run_suite

    per_arm = {}
    for arm in cfg.arms:
        ckpt = out_dir(cfg) / arm / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise AblationError(f"arm {arm} has no checkpoint {ckpt}: train it first (without --report)")
        suite = load_eval_config(cfg.eval, cfg.eval_overrides, checkpoint=str(ckpt))
        per_arm[arm] = run_suite(suite)
        write_report(per_arm[arm], out_dir(cfg) / arm / "eval")
    table = comparison_table(cfg, per_arm)
    out = out_dir(cfg)
    summary = {"name": cfg.name, "arms": {a: {"overrides": list(cfg.arms[a]), "checkpoint": r["checkpoint"],
                                              "results": [{k: v for k, v in row.items() if k != "per_video"}
                                                          for row in r["results"]]}
                                          for a, r in per_arm.items()}}
    write_json(out / "ablation.json", summary)
    write_atomic(out / "ablation.md", table)
    print(table, end="")
    print(f"wrote {out / 'ablation.json'} and {out / 'ablation.md'}")
    return summary


def comparison_table(cfg: AblationConfig, per_arm: dict[str, dict[str, Any]]) -> str:
    """One row per (benchmark, query mode, predictor mode, metric): each arm, the difference of every other arm
    to the first, and zero motion (x100)."""
    from .evaluation.report import percent
    from .evaluation.scoring import SUMMARY

    arms = list(per_arm)
    head = ["benchmark", "queries", "predictor", "metric", *arms, *(f"{a} - {arms[0]}" for a in arms[1:]),
            "zero motion"]
    lines = [f"Ablation `{cfg.name}`: same recipe and {per_arm[arms[0]]['iters']} iterations; arms differ only in "
             "their training data (x100).", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rows = {arm: {(r["benchmark"], r["query_mode"], r["mode"]): r for r in res["results"]}
            for arm, res in per_arm.items()}
    for key, base in rows[arms[0]].items():
        if base.get("metric") == "mask_consistency":  # DAVIS masks: no TAP-Vid metrics (docs/evaluation.md)
            metrics = [("mask_consistency", "mask consistency")]
        else:
            metrics = [*SUMMARY, *((("pck", "PCK@0.2"),) if "pck" in base["model"] else ())]
        for k, label in metrics:
            vals = [rows[a][key]["model"].get(k) for a in arms]
            diffs = [None if v is None or vals[0] is None else v - vals[0] for v in vals[1:]]
            cells = [*key, label, *(percent(v) for v in vals),
                     *(("-" if d is None else f"{100 * d:+.1f}") for d in diffs), percent(base["zero_motion"].get(k))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_ablation(cfg: AblationConfig, arm: Optional[str] = None, report_only: bool = False) -> Optional[dict]:
    """Render what is missing, check the arms, train them (or only `arm`), then report (unless only one arm)."""
    if report_only:
        return report(cfg)
    render_missing(cfg)
    configs = arm_configs(cfg)
    for name, tc in configs.items():
        if arm is None or name == arm:
            train_arm(cfg, name, int(tc.trainer.max_steps))
    return None if arm is not None else report(cfg)


def add_arguments(p) -> None:
    p.add_argument("--config", required=True, help="ablation config (configs/ablation/*.yaml)")
    p.add_argument("--arm", default=None, help="only this arm (train it; with --print-args: print its arguments)")
    p.add_argument("--report", action="store_true", help="only score the trained arms and compare them")
    p.add_argument("--print-args", action="store_true",
                   help="print the `python -m lightning_modules train` arguments of --arm (e.g. for slurm/train.sbatch)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the ablation config, e.g. out=runs/abl")


def main(args) -> None:
    cfg = load_ablation_config(args.config, args.overrides)
    if args.print_args:
        if args.arm is None:
            raise AblationError("--print-args needs --arm NAME")
        print(" ".join(shlex.quote(a) for a in train_args(cfg, args.arm)))
        return
    run_ablation(cfg, arm=args.arm, report_only=args.report)
