"""Command line: `python -m datagen {generate,complete,preview,stats,export}` (docs/datagen_pipeline.md,
docs/data_sources.md).

Every expected failure (bad config key/value, missing config file, no matching shards, a corrupt shard,
scenes failing after their retries) is one `error: ...` line on stderr and a non-zero exit, no traceback.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

from tracker.common.atomic import check_writable
from tracker.common.errors import UserError

DEFAULT_CONFIG = "configs/data/default.yaml"
EXIT_FAILURE, EXIT_USAGE = 1, 2
# Errors of a write that only the destination explains (disk full, quota, file size limit, read-only file system).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


class CliError(UserError):
    """A bad argument or an unusable input of a command: one line, exit status `exit_code`."""

    def __init__(self, msg: str, code: int = EXIT_FAILURE):
        super().__init__(msg)
        self.exit_code = code


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
    from datagen.config import load_data_config

    return load_data_config(args.config, args.overrides)  # ConfigError: exit status 2


# ---------------------------------------------------------------------------------------------- commands
def cmd_generate(args) -> int:
    from datagen.pipeline.generate import GenerationError, generate_dataset
    from tracker.common.output_lock import OutputBusyError

    cfg = _load_config(args)
    slurm_index, slurm_count = _slurm_task()
    task_index = args.task_index if args.task_index is not None else slurm_index
    num_tasks = args.num_tasks if args.num_tasks is not None else slurm_count
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise CliError(f"--task-index {task_index} must be in [0, --num-tasks={num_tasks})", EXIT_USAGE)
    if args.workers is not None and args.workers < 1:
        raise CliError(f"--workers must be >= 1, got {args.workers}", EXIT_USAGE)
    check_writable(args.out)  # before the asset caches (minutes on first use) and any scene
    try:
        # asset caches of the actor kinds (e.g. anny's, minutes on first use) are built here, once, in the
        # foreground with a progress bar, not inside the timed scene processes
        from datagen import actors

        actors.prepare([g.kind for g in cfg.scene.actor_groups()], progress=None if args.progress else False)
    except (OSError, OutputBusyError) as err:  # OutputBusyError: another process's cache build took too long
        raise CliError(f"preparing actor assets failed: {err}") from None
    try:
        report = generate_dataset(cfg, args.out, workers=args.workers, task_index=task_index,
                                  num_tasks=num_tasks, progress=None if args.progress else False)
    except GenerationError as err:  # OutputBusyError is a UserError already
        raise CliError(str(err)) from None
    print(report.summary())
    return 0


def cmd_complete(args) -> int:
    from datagen.pipeline.layout import missing_shards

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


def _contact_sheet(samples: list[dict], num_frames: int, max_tracks: int, tail: int, scale: int,
                   tracks_on: bool = True) -> "np.ndarray":
    """(rows * tile_h, cols * tile_w, 3) uint8: one row per sample, `num_frames` evenly spaced frames per row,
    tracks drawn unless `tracks_on` is False (visible: discs, occluded: rings, with tails); 2-px white gutters
    between tiles."""
    import numpy as np

    from tracker.viz import draw_tracks

    rows = []
    width = None
    for s in samples:  # loop over samples (rows) only
        keep = _pick_tracks(s.num_tracks, max_tracks)
        frames, tracks = s.video, s.tracks[:, keep]
        if scale > 1:
            frames = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
            tracks = tracks * scale + (scale - 1) / 2  # pixel centres: x -> x * s + (s - 1) / 2
        drawn = draw_tracks(frames, tracks, s.visibility[:, keep], tail=tail) if tracks_on else frames
        pick = np.unique(np.linspace(0, len(drawn) - 1, min(num_frames, len(drawn))).round().astype(int))
        gutter = np.full((drawn.shape[1], 2, 3), 255, np.uint8)
        row = np.concatenate([x for t in pick for x in (drawn[t], gutter)][:-1], axis=1)
        if width is not None and row.shape[1] != width:  # samples of another size: pad to the first
            pad = np.full((row.shape[0], max(width - row.shape[1], 0), 3), 255, np.uint8)
            row = np.concatenate([row, pad], axis=1)[:, :width]
        width = row.shape[1]
        rows += [row, np.full((2, width, 3), 255, np.uint8)]
    return np.concatenate(rows[:-1], axis=0)


def cmd_preview(args) -> int:
    import numpy as np

    from datagen.formats.shards import read_shards
    from tracker.video import write_video
    from tracker.viz import draw_tracks

    if args.scale < 1:
        raise CliError(f"--scale must be >= 1, got {args.scale}", EXIT_USAGE)
    if args.sheet_scenes < 0 or args.sheet_frames < 1:
        raise CliError("--sheet-scenes must be >= 0 and --sheet-frames >= 1", EXIT_USAGE)
    wanted = max(1, args.sheet_scenes)
    samples, seen = [], 0
    for i, s in enumerate(read_shards(args.shard)):
        seen = i + 1
        if i >= args.sample:
            samples.append(s)
        if len(samples) >= wanted:
            break
    if not samples:
        if seen == 0:
            raise CliError(f"{args.shard} holds no samples")
        raise CliError(f"--sample {args.sample} is out of range: {args.shard} has only {seen} sample(s)")
    sample = samples[0]
    keep = _pick_tracks(sample.num_tracks, args.max_tracks)
    frames, tracks = sample.video, sample.tracks[:, keep]
    if args.scale > 1:  # tiny renders are unreadable at 1:1: upscale first, then draw at full size
        s = args.scale
        frames = np.repeat(np.repeat(frames, s, axis=1), s, axis=2)
        tracks = tracks * s + (s - 1) / 2  # pixel centres: x -> x * s + (s - 1) / 2
    if not args.no_tracks:
        frames = draw_tracks(frames, tracks, sample.visibility[:, keep], tail=args.tail)
    fps = float(sample.meta.get("fps", 12))
    path = write_video(args.out, frames, fps)
    shown = 0 if args.no_tracks else len(keep)
    print(f"preview of {sample.key} ({shown} of {sample.num_tracks} tracks, "
          f"{frames.shape[0]} frames) -> {path}")
    if args.sheet_scenes:
        from PIL import Image

        from tracker.common.atomic import atomic_file

        sheet_path = Path(args.sheet) if args.sheet else Path(args.out).with_suffix(".png")
        sheet = _contact_sheet(samples, args.sheet_frames, args.max_tracks, args.tail, args.scale,
                               tracks_on=not args.no_tracks)
        sheet_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(sheet_path) as fh:
            Image.fromarray(sheet).save(fh, format="PNG")
        print(f"contact sheet ({len(samples)} scene(s) x {min(args.sheet_frames, sample.num_frames)} "
              f"frames) -> {sheet_path}")
    return 0


def _render_seconds(shards, keys: set[str]) -> list[float]:
    """Render seconds of the scenes `keys` of `shards`, from the generator's scene_timings*.jsonl beside the shards
    (timings are run facts, kept out of the shards; a scene's last record wins). Empty when there is no such log."""
    import json

    from datagen.formats.shard_io import is_url

    seconds: dict[str, float] = {}
    for folder in sorted({Path(p).parent for p in shards if not is_url(p)}):
        for log in sorted(folder.glob("scene_timings*.jsonl")):
            for line in log.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    if rec["key"] in keys:
                        seconds[f"{folder}/{rec['key']}"] = float(rec["timings"]["render_s"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a crash (the scene was rendered and logged again)
    return list(seconds.values())


def dataset_stats(pattern) -> dict:
    """Aggregate statistics over all samples matching `pattern` (JSON-able dict, no NaN).

    Per category (background, object, human, animal, ...): tracks, share of tracks, mean visibility, share of
    all visible track points. Per region (face, head, leg, ... when the shards record regions): share of
    tracks and of visible points. Per actor kind: number of actors and the median on-screen height (bounding
    box height / image height, over the frames where the actor is visible). Tracks with non-finite
    coordinates are counted and left out of the motion statistics.
    """
    import numpy as np

    from tracker.common.atomic import json_safe
    from datagen.formats.shard_io import expand_shards
    from datagen.formats.shards import read_shards

    shards = expand_shards(pattern)
    n, frames, res, tracks_per = 0, set(), set(), set()
    vis_ratios, motion_sum, motion_count, motions = [], 0.0, 0, []
    cat_counts: dict[str, int] = {}
    cat_vis: dict[str, list[float]] = {}
    cat_visible: dict[str, int] = {}
    region_tracks: dict[str, int] = {}
    region_visible: dict[str, int] = {}
    actor_heights: dict[str, list[float]] = {}
    actor_counts: dict[str, int] = {}
    camera: dict[str, int] = {}
    nonfinite = 0
    total_visible = 0
    keys: set[str] = set()
    for s in read_shards(shards):
        n += 1
        keys.add(s.key)
        video, tracks, vis, meta = s.video, s.tracks, s.visibility, s.meta
        t, h, w, _ = video.shape
        frames.add(t)
        res.add(f"{h}x{w}")
        tracks_per.add(tracks.shape[1])
        vis_ratios.append(float(vis.mean()))
        finite = np.isfinite(tracks).all(axis=(0, 2))  # (Q,)
        nonfinite += int((~finite).sum())
        total_visible += int(vis.sum())
        # Motion of a track between consecutive frames where it is visible in both (px/frame).
        step = np.linalg.norm(np.diff(tracks[:, finite], axis=0), axis=-1)  # (T-1, Q')
        both = vis[1:, finite] & vis[:-1, finite]
        motion_sum += float(step[both].sum())
        motion_count += int(both.sum())
        motions.append(step[both])
        names = meta.get("category_names") or []
        cats = np.asarray(meta.get("track_category", []), dtype=np.int64)
        if cats.shape == (tracks.shape[1],):
            for c in np.unique(cats):
                name = names[c] if 0 <= c < len(names) else str(int(c))
                on = cats == c
                cat_counts[name] = cat_counts.get(name, 0) + int(on.sum())
                cat_vis.setdefault(name, []).append(float(vis[:, on].mean()))
                cat_visible[name] = cat_visible.get(name, 0) + int(vis[:, on].sum())
        regions = np.asarray(meta.get("track_region", []), dtype=np.int64)
        region_names = meta.get("region_names") or []
        if regions.shape == (tracks.shape[1],):
            for r in np.unique(regions):
                name = region_names[r] if 0 <= r < len(region_names) else str(int(r))
                on = regions == r
                region_tracks[name] = region_tracks.get(name, 0) + int(on.sum())
                region_visible[name] = region_visible.get(name, 0) + int(vis[:, on].sum())
        for actor in meta.get("actors", []):
            kind = str(actor.get("kind", "?"))
            actor_counts[kind] = actor_counts.get(kind, 0) + 1
            heights = [float(x) for x in actor.get("screen_height", []) if x and x > 0]
            if heights:
                actor_heights.setdefault(kind, []).append(float(np.median(heights)))
        if "camera_motion" in meta:
            camera[str(meta["camera_motion"])] = camera.get(str(meta["camera_motion"]), 0) + 1
    render_s = _render_seconds(shards, keys)
    all_motion = np.concatenate(motions) if motions else np.zeros(0)
    total_tracks = sum(cat_counts.values())
    all_tracks = sum(region_tracks.values())
    return json_safe({
        "shards": len(shards),
        "samples": n,
        "frames": sorted(frames),
        "resolution": sorted(res),
        "tracks_per_sample": sorted(tracks_per),
        "nonfinite_tracks": nonfinite,
        "visibility_ratio": {"mean": float(np.mean(vis_ratios)) if vis_ratios else 0.0,
                             "min": float(np.min(vis_ratios)) if vis_ratios else 0.0,
                             "max": float(np.max(vis_ratios)) if vis_ratios else 0.0},
        "motion_px_per_frame": {"mean": motion_sum / max(motion_count, 1),
                                "median": float(np.median(all_motion)) if all_motion.size else 0.0,
                                "p95": float(np.percentile(all_motion, 95)) if all_motion.size else 0.0,
                                "max": float(all_motion.max()) if all_motion.size else 0.0},
        "category_tracks": dict(sorted(cat_counts.items())),
        "category_share": {k: v / max(total_tracks, 1) for k, v in sorted(cat_counts.items())},
        "category_visibility": {k: float(np.mean(v)) for k, v in sorted(cat_vis.items())},
        "category_visible_share": {k: v / max(total_visible, 1) for k, v in sorted(cat_visible.items())},
        "region_share": {k: v / max(all_tracks, 1) for k, v in sorted(region_tracks.items())},
        "region_visible_share": {k: v / max(total_visible, 1) for k, v in sorted(region_visible.items())},
        "face_share": {"tracks": region_tracks.get("face", 0) / max(all_tracks, 1),
                       "visible_points": region_visible.get("face", 0) / max(total_visible, 1)},
        "actor_screen_height": {k: {"actors": actor_counts[k],
                                    "median": float(np.median(actor_heights[k])) if k in actor_heights else 0.0}
                                for k in sorted(actor_counts)},
        "camera_motion": dict(sorted(camera.items())),
        "render_s_mean": float(np.mean(render_s)) if render_s else None,
    })


def cmd_stats(args) -> int:
    stats = dataset_stats(args.pattern)
    if args.json:
        print(json.dumps(stats, indent=2, allow_nan=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datagen stats: {args.pattern}", show_header=True)
    table.add_column("statistic")
    table.add_column("value")

    def fmt(d):
        return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())

    table.add_row("shards / samples", f"{stats['shards']} / {stats['samples']}")
    table.add_row("frames", ", ".join(map(str, stats["frames"])))
    table.add_row("resolution (HxW)", ", ".join(stats["resolution"]))
    table.add_row("tracks per sample", ", ".join(map(str, stats["tracks_per_sample"])))
    if stats["nonfinite_tracks"]:
        table.add_row("non-finite tracks", str(stats["nonfinite_tracks"]))
    table.add_row("visibility ratio", fmt(stats["visibility_ratio"]))
    table.add_row("motion (px/frame, visible)", fmt(stats["motion_px_per_frame"]))
    table.add_row("tracks by category", fmt(stats["category_tracks"]) or "-")
    table.add_row("track share by category", fmt(stats["category_share"]) or "-")
    table.add_row("visibility by category", fmt(stats["category_visibility"]) or "-")
    table.add_row("share of visible points", fmt(stats["category_visible_share"]) or "-")
    table.add_row("share of visible points by region", fmt(stats["region_visible_share"]) or "-")
    table.add_row("points on faces", fmt(stats["face_share"]))
    table.add_row("actor height on screen (median)",
                  ", ".join(f"{k} {v['median']:.3f} ({v['actors']} actors)"
                            for k, v in stats["actor_screen_height"].items()) or "-")
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
    """Read any source (datagen.formats) and write it in another format (one sample at a time, except tapvid)."""
    import itertools

    from datagen.formats import open_source, writer

    if args.max_samples is not None and args.max_samples < 1:
        raise CliError(f"--max-samples must be >= 1, got {args.max_samples}", EXIT_USAGE)
    check_writable(args.out, is_file=args.to == "tapvid")  # before reading anything
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
        try:
            count = writer(args.to)(samples(), args.out, **kwargs)
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                raise
            raise CliError(f"cannot write to {args.out}: {err.strerror} (what was exported before is complete; "
                           "free space and rerun)") from None
    if count == 0:
        raise CliError(f"{args.source}: no samples to export")
    print(f"exported {count} sample(s) from {args.source} ({source.format}) to {args.out} ({args.to})")
    return 0


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

    v = sub.add_parser("preview", help="draw a sample's GT tracks over its frames into an mp4, and a contact "
                                       "sheet PNG (frames x scenes)")
    v.add_argument("shard", help="shard path or pattern")
    v.add_argument("--out", required=True, help="output .mp4 (the contact sheet goes next to it as .png)")
    v.add_argument("--sample", type=int, default=0, help="sample index within the shard(s) (default 0)")
    v.add_argument("--max-tracks", type=int, default=150, help="tracks drawn (evenly spaced; 0 = all)")
    v.add_argument("--tail", type=int, default=8, help="track tail length in frames")
    v.add_argument("--no-tracks", action="store_true", help="the frames alone, without track overlays")
    v.add_argument("--scale", type=int, default=1, help="integer upscaling of the frames before drawing")
    v.add_argument("--sheet", default=None, help="contact sheet path (default: --out with .png)")
    v.add_argument("--sheet-scenes", type=int, default=4,
                   help="scenes (rows) in the contact sheet, from --sample on (0 = no sheet; default 4)")
    v.add_argument("--sheet-frames", type=int, default=6, help="frames (columns) per scene (default 6)")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from datagen.formats.shard_io import CorruptSampleError, NoShardsError
    from datagen.formats import SourceError

    try:
        return args.func(args)
    except UserError as err:  # CliError, ConfigError (exit 2), OutputBusyError, ...
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except (NoShardsError, CorruptSampleError, SourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:  # e.g. `stats --json | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
