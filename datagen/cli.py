"""Command line: `python -m datagen {generate,complete,preview,stats,export}` (docs/datagen_pipeline.md,
docs/data_sources.md).

Every expected failure (bad config key/value, missing config file, no matching shards, a corrupt shard,
scenes failing after their retries) is one `error: ...` line on stderr and a non-zero exit, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

DEFAULT_CONFIG = "configs/data/default.yaml"
EXIT_FAILURE, EXIT_USAGE = 1, 2


class CliError(Exception):
    def __init__(self, msg: str, code: int = EXIT_FAILURE):
        super().__init__(msg)
        self.code = code


def _slurm_task() -> tuple[int, int]:
    """(task index, task count) of a SLURM job array ($SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN), else (0, 1)."""
    env = os.environ
    if "SLURM_ARRAY_TASK_ID" not in env or "SLURM_ARRAY_TASK_COUNT" not in env:
        return 0, 1
    try:
        index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        return index, int(env["SLURM_ARRAY_TASK_COUNT"])
    except ValueError:
        raise CliError("SLURM_ARRAY_TASK_ID/COUNT/MIN are not integers", EXIT_USAGE) from None


def _load_config(args):
    from datagen.config import ConfigError, load_data_config

    try:
        return load_data_config(args.config, args.overrides)
    except ConfigError as err:
        raise CliError(str(err), EXIT_USAGE) from None


# ---------------------------------------------------------------------------------------------- commands
def cmd_generate(args) -> int:
    from datagen.generate import GenerationError, generate_dataset

    cfg = _load_config(args)
    slurm_index, slurm_count = _slurm_task()
    task_index = args.task_index if args.task_index is not None else slurm_index
    num_tasks = args.num_tasks if args.num_tasks is not None else slurm_count
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise CliError(f"--task-index {task_index} must be in [0, --num-tasks={num_tasks})", EXIT_USAGE)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}", EXIT_USAGE)
    try:
        report = generate_dataset(cfg, args.out, workers=args.workers, task_index=task_index,
                                  num_tasks=num_tasks, progress=None if args.progress else False)
    except GenerationError as err:
        raise CliError(str(err)) from None
    print(report.summary())
    return 0


def cmd_complete(args) -> int:
    from datagen.generate import missing_shards

    cfg = _load_config(args)
    missing = missing_shards(cfg, args.out)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        print(f"incomplete: {len(missing)} of {cfg.num_shards} shard(s) missing in {args.out} ({shown})")
        return 1
    print(f"complete: {cfg.num_shards} shard(s) in {args.out}")
    return 0


def _pick_tracks(num: int, max_tracks: int) -> "np.ndarray":
    import numpy as np

    if max_tracks <= 0 or num <= max_tracks:
        return np.arange(num)
    return np.linspace(0, num - 1, max_tracks).round().astype(np.int64)


def cmd_preview(args) -> int:
    import numpy as np

    from datagen.shards import read_shards
    from tracker.video import write_video
    from tracker.viz import draw_tracks

    sample = None
    for i, s in enumerate(read_shards(args.shard)):
        if i == args.sample:
            sample = s
            break
    if sample is None:
        raise CliError(f"--sample {args.sample} is out of range: {args.shard} has only {i + 1} sample(s)")
    if args.scale < 1:
        raise CliError(f"--scale must be >= 1, got {args.scale}", EXIT_USAGE)
    keep = _pick_tracks(sample.num_tracks, args.max_tracks)
    frames, tracks = sample.video, sample.tracks[:, keep]
    if args.scale > 1:  # tiny renders are unreadable at 1:1: upscale first, then draw at full size
        s = args.scale
        frames = np.repeat(np.repeat(frames, s, axis=1), s, axis=2)
        tracks = tracks * s + (s - 1) / 2  # pixel centres: x -> x * s + (s - 1) / 2
    frames = draw_tracks(frames, tracks, sample.visibility[:, keep], tail=args.tail)
    fps = float(sample.meta.get("fps", 12))
    path = write_video(args.out, frames, fps)
    print(f"preview of {sample.key} ({len(keep)} of {sample.num_tracks} tracks, "
          f"{frames.shape[0]} frames) -> {path}")
    return 0


def dataset_stats(pattern) -> dict:
    """Aggregate statistics over all samples matching `pattern` (JSON-able dict)."""
    import numpy as np

    from datagen.shards import expand_shards, read_shards

    shards = expand_shards(pattern)
    n, frames, res, tracks_per = 0, set(), set(), set()
    vis_ratios, motion_sum, motion_count, motions = [], 0.0, 0, []
    cat_counts: dict[str, int] = {}
    cat_vis: dict[str, list[float]] = {}
    camera: dict[str, int] = {}
    render_s: list[float] = []
    for s in read_shards(shards):
        n += 1
        video, tracks, vis, meta = s.video, s.tracks, s.visibility, s.meta
        t, h, w, _ = video.shape
        frames.add(t)
        res.add(f"{h}x{w}")
        tracks_per.add(tracks.shape[1])
        vis_ratios.append(float(vis.mean()))
        # Motion of a track between consecutive frames where it is visible in both (px/frame).
        step = np.linalg.norm(np.diff(tracks, axis=0), axis=-1)  # (T-1, Q)
        both = vis[1:] & vis[:-1]
        motion_sum += float(step[both].sum())
        motion_count += int(both.sum())
        motions.append(step[both])
        names = meta.get("category_names") or []
        cats = np.asarray(meta.get("track_category", []), dtype=np.int64)
        if cats.shape == (tracks.shape[1],):
            for c in np.unique(cats):
                name = names[c] if 0 <= c < len(names) else str(int(c))
                cat_counts[name] = cat_counts.get(name, 0) + int((cats == c).sum())
                cat_vis.setdefault(name, []).append(float(vis[:, cats == c].mean()))
        if "camera_motion" in meta:
            camera[str(meta["camera_motion"])] = camera.get(str(meta["camera_motion"]), 0) + 1
        if "render_s" in meta.get("timings", {}):
            render_s.append(float(meta["timings"]["render_s"]))
    all_motion = np.concatenate(motions) if motions else np.zeros(0)
    total_tracks = sum(cat_counts.values())
    return {
        "shards": len(shards),
        "samples": n,
        "frames": sorted(frames),
        "resolution": sorted(res),
        "tracks_per_sample": sorted(tracks_per),
        "visibility_ratio": {"mean": float(np.mean(vis_ratios)) if vis_ratios else 0.0,
                             "min": float(np.min(vis_ratios)) if vis_ratios else 0.0,
                             "max": float(np.max(vis_ratios)) if vis_ratios else 0.0},
        "motion_px_per_frame": {"mean": motion_sum / max(motion_count, 1),
                                "median": float(np.median(all_motion)) if all_motion.size else 0.0,
                                "p95": float(np.percentile(all_motion, 95)) if all_motion.size else 0.0,
                                "max": float(all_motion.max()) if all_motion.size else 0.0},
        "category_share": {k: v / max(total_tracks, 1) for k, v in sorted(cat_counts.items())},
        "category_visibility": {k: float(np.mean(v)) for k, v in sorted(cat_vis.items())},
        "camera_motion": dict(sorted(camera.items())),
        "render_s_mean": float(np.mean(render_s)) if render_s else None,
    }


def cmd_stats(args) -> int:
    stats = dataset_stats(args.pattern)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datagen stats: {args.pattern}", show_header=True)
    table.add_column("statistic")
    table.add_column("value")
    fmt = lambda d: ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())
    table.add_row("shards / samples", f"{stats['shards']} / {stats['samples']}")
    table.add_row("frames", ", ".join(map(str, stats["frames"])))
    table.add_row("resolution (HxW)", ", ".join(stats["resolution"]))
    table.add_row("tracks per sample", ", ".join(map(str, stats["tracks_per_sample"])))
    table.add_row("visibility ratio", fmt(stats["visibility_ratio"]))
    table.add_row("motion (px/frame, visible)", fmt(stats["motion_px_per_frame"]))
    table.add_row("track share by category", fmt(stats["category_share"]) or "-")
    table.add_row("visibility by category", fmt(stats["category_visibility"]) or "-")
    table.add_row("camera motion", fmt(stats["camera_motion"]) or "-")
    if stats["render_s_mean"] is not None:
        table.add_row("render s/scene (mean)", f"{stats['render_s_mean']:.2f}")
    Console().print(table)
    return 0


def _export_progress(total: int | None, enabled: bool):
    """rich progress bar over exported samples (a spinner with a count when the total is unknown)."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("[bold]exporting"), BarColumn() if total else SpinnerColumn(), MofNCompleteColumn()
               if total else TextColumn("{task.completed} samples"), TimeElapsedColumn()]
    columns += [TextColumn("ETA"), TimeRemainingColumn()] if total else []
    return Progress(*columns, console=Console(stderr=True), disable=not enabled)


def cmd_export(args) -> int:
    """Read any source (datagen.sources) and write it in another format (one sample at a time, except tapvid)."""
    import itertools

    from datagen.sources import open_source, writer

    if args.max_samples is not None and args.max_samples < 1:
        raise CliError(f"--max-samples must be >= 1, got {args.max_samples}", EXIT_USAGE)
    source = open_source(args.source, args.format)
    info = source.info()
    total = info.num_samples if args.max_samples is None else min(args.max_samples, info.num_samples or 10**12)
    progress = args.progress and sys.stderr.isatty()
    with _export_progress(total, progress) as bar:
        task = bar.add_task("export", total=total)

        def samples():
            for sample in itertools.islice(source, args.max_samples):
                yield sample
                bar.advance(task)

        kwargs = {"samples_per_shard": args.samples_per_shard} if args.to == "shards" else {}
        count = writer(args.to)(samples(), args.out, **kwargs)
    if count == 0:
        raise CliError(f"{args.source}: no samples to export")
    print(f"exported {count} sample(s) from {args.source} ({source.format}) to {args.out} ({args.to})")
    return 0


def cmd_render_scene(args) -> int:
    from datagen.generate import run_scene_job

    return run_scene_job(args.job)


# ---------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m datagen", description="TrackForge synthetic data generation")
    sub = p.add_subparsers(dest="command", required=True)

    def config_args(sp):
        sp.add_argument("--config", default=DEFAULT_CONFIG, help=f"data config YAML (default {DEFAULT_CONFIG})")
        sp.add_argument("--out", required=True, help="output folder of the shards")
        sp.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (dotlist)")

    g = sub.add_parser("generate", help="render scenes into shard-*.tar (resumes an interrupted run)")
    config_args(g)
    g.add_argument("--workers", type=int, default=None, help="scenes rendered in parallel (default: config)")
    g.add_argument("--task-index", type=int, default=None,
                   help="this task's index (default: $SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN, else 0)")
    g.add_argument("--num-tasks", type=int, default=None,
                   help="number of tasks sharing the shards (default: $SLURM_ARRAY_TASK_COUNT, else 1)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("complete", help="exit 0 iff every shard of the config exists in --out")
    config_args(c)
    c.set_defaults(func=cmd_complete)

    v = sub.add_parser("preview", help="draw a sample's GT tracks over its frames into an mp4")
    v.add_argument("shard", help="shard path or pattern")
    v.add_argument("--out", required=True, help="output .mp4")
    v.add_argument("--sample", type=int, default=0, help="sample index within the shard(s) (default 0)")
    v.add_argument("--max-tracks", type=int, default=150, help="tracks drawn (evenly spaced; 0 = all)")
    v.add_argument("--tail", type=int, default=8, help="track tail length in frames")
    v.add_argument("--scale", type=int, default=1, help="integer upscaling of the frames before drawing")
    v.set_defaults(func=cmd_preview)

    s = sub.add_parser("stats", help="statistics of shards (counts, visibility, motion, categories)")
    s.add_argument("pattern", help="shard pattern (glob or {a..b} braces)")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(func=cmd_stats)

    e = sub.add_parser("export", help="convert a data source (shards, CoTracker3 Kubric folder) to another format")
    esub = e.add_subparsers(dest="to", required=True, metavar="FORMAT")
    for fmt, what, out_help in (
            ("cotracker3_kubric", "the official CoTracker3 Kubric layout (<out>/<seq>/<seq>.npy + frames/*.png)",
             "output root folder"),
            ("tapvid", "one TAP-Vid pickle (DAVIS layout: name -> video, points, occluded) for evaluation",
             "output .pkl"),
            ("shards", "TrackForge WebDataset shards (<out>/shard-NNNNNN.tar)", "output folder")):
        x = esub.add_parser(fmt, help=what, description=f"Write {what}.")
        x.add_argument("source", help="source path: shards (pattern/folder) or a CoTracker3 Kubric root")
        x.add_argument("out", help=out_help)
        x.add_argument("--format", default="auto", help="source format (default: detected)")
        x.add_argument("--max-samples", type=int, default=None, help="export only the first N samples")
        if fmt == "shards":
            x.add_argument("--samples-per-shard", type=int, default=16)
        x.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
        x.set_defaults(func=cmd_export)

    r = sub.add_parser("render-scene", help=argparse.SUPPRESS)  # internal: one scene process
    r.add_argument("job")
    r.set_defaults(func=cmd_render_scene)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render-scene":  # a scene process: tracebacks belong in its log
        return args.func(args)
    from datagen.config import ConfigError
    from datagen.shards import CorruptSampleError, NoShardsError
    from datagen.sources import SourceError

    try:
        return args.func(args)
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (NoShardsError, CorruptSampleError, SourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # e.g. `stats --json | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
