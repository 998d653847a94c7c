"""Command line: `python -m tracker track VIDEO [options]` (see docs/tracker_cli.md).

User errors (bad paths, bad queries, unavailable device, an output that cannot be written, ...) print one line
`tracker: error: ...` on stderr and exit with status 2, without a traceback: they are tracker.common.errors.UserErrors
(CLIError, OutputNotWritableError), the project's one kind of expected failure.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tracker.common.errors import UserError, one_line

EXIT_USAGE = 2
VARIANTS = ("offline", "online", "baseline_offline", "baseline_online")
DEFAULT_GRID = 10
# Videos with at least this many frames get progress bars (when stderr is a terminal).
LONG_VIDEO_FRAMES = 64


class CLIError(UserError):
    """A user error of the command line: reported as one line, exit status 2 (a usage error)."""

    exit_code = EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) so every user error looks the same."""

    def error(self, message: str) -> None:  # type: ignore[override]
        _fail(message)


def _fail(message: str, exit_code: int = EXIT_USAGE) -> None:
    print(f"tracker: error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(exit_code)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tracker", description="CoTracker3 point tracking.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("track", help="track points through a video", description="Track points through a video.")
    p.add_argument("video", type=Path, help="input video file (anything FFmpeg/PyAV decodes)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="official .pth or TrackForge .ckpt; default: download the official weights of --variant",
    )
    p.add_argument("--variant", default=None,
                   help=f"model variant: {', '.join(VARIANTS)} (default: the kind a TrackForge checkpoint records, "
                        "else offline)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--queries", type=Path, default=None, help="CSV file with one 't,x,y' per line (pixels)")
    src.add_argument("--grid", type=int, default=None, help=f"track an N x N grid (default {DEFAULT_GRID})")
    p.add_argument("--grid-query-frame", type=int, default=0, help="frame of the grid queries (default 0)")
    p.add_argument("--out", type=Path, default=Path("tracks.npz"), help="output .npz (default tracks.npz)")
    p.add_argument("--viz", type=Path, default=None, help="also write an overlay video (.mp4)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--max-frames", type=int, default=None, help="only track the first N frames")
    p.add_argument("--keep-aspect", action="store_true",
                   help="give the model the video at its own aspect ratio, with the short side of the model's "
                        "resolution (default: resized to the model's resolution, as the official predictors do; a "
                        "square-trained model tracks 16:9 video better with this)")
    p.add_argument(
        "--backward",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also track backward in time from each query frame (a second pass; default off)",
    )
    return parser


def parse_queries_csv(path: Path) -> np.ndarray:
    """Read a queries CSV -> float64 (N, 4) rows (t, x, y, line number), t, x, y in pixels.

    One `t,x,y` per line; an optional header line `t,x,y`, blank lines and `#` comments are skipped.
    Raises CLIError naming the line on malformed input.
    """
    if not path.is_file():
        raise CLIError(f"queries file not found: {path}")
    rows = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"cannot read queries file {path}: {err}") from None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(",")]
        if not rows and [f.lower() for f in fields] == ["t", "x", "y"]:
            continue  # header
        if len(fields) != 3:
            raise CLIError(f"{path}:{lineno}: expected 3 values 't,x,y', got {len(fields)}: {raw.strip()!r}")
        try:
            t, x, y = (float(f) for f in fields)
        except ValueError:
            raise CLIError(f"{path}:{lineno}: not numbers: {raw.strip()!r}") from None
        if not all(np.isfinite([t, x, y])):
            raise CLIError(f"{path}:{lineno}: values must be finite: {raw.strip()!r}")
        if t != int(t):
            raise CLIError(f"{path}:{lineno}: t must be a whole frame index, got {fields[0]}")
        rows.append((t, x, y, lineno))
    if not rows:
        raise CLIError(f"{path}: no queries found")
    return np.asarray(rows, dtype=np.float64)


def check_queries(rows: np.ndarray, path: Path, num_frames: int, height: int, width: int) -> np.ndarray:
    """Check (t, x, y, line) rows against the video: 0 <= t < T, 0 <= x <= W-1, 0 <= y <= H-1 -> (N, 3)."""
    for t, x, y, lineno in rows:
        if not 0 <= t < num_frames:
            raise CLIError(f"{path}:{int(lineno)}: query frame {int(t)} outside the video's frames 0..{num_frames - 1}")
        if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
            raise CLIError(
                f"{path}:{int(lineno)}: query ({x:g}, {y:g}) outside the {width}x{height} frame "
                f"(x in [0, {width - 1}], y in [0, {height - 1}])"
            )
    return rows[:, :3].astype(np.float32)


def grid_query_array(grid_size: int, frame: int, height: int, width: int, model_hw: tuple[int, int]) -> np.ndarray:
    """The queries `track(..., grid_size=g)` uses, in input pixels -> float32 (g*g, 3) rows (t, x, y).

    The predictor lays the grid out at the model resolution model_hw (spec 12) and scales positions back to the
    input frame (spec 2.5); do the same (in float64, then rounded to float32).
    """
    from tracker.common.pixels import rescale_xy
    from tracker.predictor import grid_points

    xy = grid_points(grid_size, model_hw)[0].double().numpy()  # (g*g, 2) model pixels
    xy = rescale_xy(xy, model_hw, (height, width))
    return np.concatenate([np.full_like(xy[:, :1], frame), xy], axis=-1).astype(np.float32)


def save_tracks(path: Path, tracks, visibility, confidence, queries) -> None:
    """Write the .npz exactly at `path`, atomically (tracker.common.atomic: a hidden temporary file and a rename)."""
    from tracker.common.atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb", hidden=True) as f:  # a file object stops numpy from appending ".npz" to the name
        np.savez(
            f,
            tracks=np.asarray(tracks, np.float32),
            visibility=np.asarray(visibility, bool),
            confidence=np.asarray(confidence, np.float32),
            queries=np.asarray(queries, np.float32),
        )


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    # disable=None lets tqdm switch itself off when stderr is not a terminal (logs, tests).
    return tqdm(total=total, desc=desc, unit="frame", disable=None if enabled else True, leave=False)


def _resolve_device(name: str) -> str:
    import torch

    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise CLIError(f"--device {name} requested but CUDA is not available (torch {torch.__version__})")
        return name
    raise CLIError(f"unknown device {name!r} (use cpu or cuda)")


SUPPORT_POINTS = 36  # the predictors' 6x6 support grid


def _points(num_queries: int | None, grid_size: int, online: bool) -> int:
    """Points a request costs as the predictors count them: the queries or the grid, plus the support grid (the
    offline predictor counts it always, the online one with explicit queries only)."""
    asked = num_queries if num_queries is not None else grid_size**2
    return asked + (SUPPORT_POINTS if num_queries is not None or not online else 0)


def model_input_size(args: argparse.Namespace, model, height: int, width: int) -> tuple[int, int]:
    """The size (h, w) frames are resized to for the model: its model_resolution, or with --keep-aspect the
    video's aspect ratio at that resolution's short side (tracker.common.pixels.aspect_input_size)."""
    from tracker.common.pixels import aspect_input_size

    model_hw = tuple(int(v) for v in model.model_resolution)
    return aspect_input_size(model_hw, (height, width)) if args.keep_aspect else model_hw


def check_request_memory(args: argparse.Namespace, num_frames: int, height: int, width: int, device: str,
                         num_queries: int | None, grid_size: int, model=None) -> None:
    """Refuse a request that would not fit in memory (tracker.memory) with one line and the flags that make it fit.

    Without `model`: before any model is loaded, with the official architecture of --variant (offline by default);
    skipped when a checkpoint of unknown kind is given (call again with the loaded `model`). The online model
    streams one window at a time, so its advice is a smaller grid or fewer queries, never fewer frames."""
    import torch

    from tracker.checkpoint import VARIANTS
    from tracker.memory import InsufficientMemoryError, check_tracking_memory

    if model is None:
        if args.variant is None and args.checkpoint is not None:
            return  # the kind the checkpoint records is known once it is read
        cls, window, _ = VARIANTS[args.variant or "offline"]  # load_tracker's default without a checkpoint
        with torch.device("meta"):
            model = cls(window_len=window)  # architecture only: no weights are allocated
    online = model.kind == "online"
    points = _points(num_queries, grid_size, online)
    model_hw = model_input_size(args, model, height, width)
    try:
        # As the predictors count (tracker.predictor): the streaming one holds a whole window (also for a shorter
        # clip) and caches the features of two steps; the offline one caches every frame for backward tracking.
        check_tracking_memory(model, num_frames=max(num_frames, model.window_len) if online else num_frames,
                              num_points=points, input_hw=(height, width),
                              mode="online_stream" if online else "offline",
                              cached_frames=model.window_len if online else num_frames if args.backward else 0,
                              device=device, what="tracking", model_hw=model_hw)
    except InsufficientMemoryError as err:
        raise memory_error(err, args, num_frames, height, width, device, num_queries, grid_size, online) from None


def memory_error(err, args: argparse.Namespace, num_frames: int, height: int, width: int, device: str,
                 num_queries: int | None, grid_size: int, online: bool) -> CLIError:
    """The one-line refusal of a request that does not fit (an InsufficientMemoryError of the CLI's estimate or of
    the predictor's own), naming the flags that make it fit: --grid N (the largest N that fits) or a query count,
    and for the offline model --max-frames N (only a limit of 2 frames or more) and --variant online."""
    import torch

    from tracker.memory import USABLE_FRACTION, estimate_tracking_memory, format_bytes, grid_side
    from tracker.model import CoTracker3Online

    points = _points(num_queries, grid_size, online)
    support = points - (num_queries if num_queries is not None else grid_size**2)
    what = f"a {grid_size}x{grid_size} grid" if num_queries is None else f"{num_queries} queries"
    fixes = []
    if num_queries is None and grid_side(err.max_points - support) >= 1:
        fixes.append(f"--grid {grid_side(err.max_points - support)} or less")
    elif num_queries is not None and err.max_points > support:
        fixes.append(f"at most {err.max_points - support} queries in --queries")
    if not online and err.max_frames >= 2:
        fixes.append(f"--max-frames {err.max_frames}")
    if not online and args.checkpoint is None:  # a checkpoint fixes the kind of model
        with torch.device("meta"):
            streaming = CoTracker3Online()
        need = estimate_tracking_memory(streaming, num_frames=max(num_frames, streaming.window_len),
                                        num_points=points, input_hw=(height, width), mode="online_stream",
                                        device=device, model_hw=model_input_size(args, streaming, height, width))
        if need.total <= USABLE_FRACTION * err.available:
            fixes.append("--variant online (memory independent of the clip length)")
    model = "the online model" if online else "the offline model"
    return CLIError(f"tracking {what} through {num_frames} frame(s) of {width}x{height} with {model} needs about "
                    f"{err.estimate} of memory but {format_bytes(err.available)} is available on {device}; use "
                    + (" or ".join(fixes) if fixes else "a machine with more memory"))


def check_outputs(args: argparse.Namespace) -> None:
    """--out (and --viz) must be writable before any work: a read-only or full location is one line now, not a
    traceback after the tracking (whose result would be lost). tracker.common.atomic.check_writable is the project's one
    check; its OutputNotWritableError is a UserError with exit status 2, reported like every CLIError."""
    from tracker.common.atomic import check_writable

    for path in (args.out, args.viz):
        if path is not None:
            check_writable(path, is_file=True)


def run_track(args: argparse.Namespace) -> None:
    from tracker.video import VideoReadError, read_video, write_video

    if args.variant is not None and args.variant not in VARIANTS:
        raise CLIError(f"unknown variant {args.variant!r} (choose from {', '.join(VARIANTS)})")
    if args.max_frames is not None and args.max_frames < 1:
        raise CLIError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.grid is not None and args.grid < 1:
        raise CLIError(f"--grid must be >= 1, got {args.grid}")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise CLIError(f"checkpoint not found: {args.checkpoint}")
    check_outputs(args)
    device = _resolve_device(args.device)
    rows = parse_queries_csv(args.queries) if args.queries is not None else None

    t0 = time.perf_counter()
    try:
        frames, fps = read_video(args.video, max_frames=args.max_frames)
    except VideoReadError as err:
        raise CLIError(str(err)) from None
    num_frames, height, width = frames.shape[:3]
    if rows is not None:
        queries = check_queries(rows, args.queries, num_frames, height, width)
        grid_size = 0
    else:
        grid_size = DEFAULT_GRID if args.grid is None else args.grid
        if not 0 <= args.grid_query_frame < num_frames:
            raise CLIError(f"--grid-query-frame {args.grid_query_frame} outside the video's frames 0..{num_frames - 1}")
        queries = None  # the grid is laid out at the model's input size, known once the model is loaded
    print(f"video {args.video}: {num_frames} frames {width}x{height} @ {fps:g} fps")
    check_request_memory(args, num_frames, height, width, device, len(queries) if queries is not None else None,
                         grid_size)

    import torch

    import tracker
    from tracker.memory import InsufficientMemoryError
    from tracker.predictor import track

    try:
        model = tracker.load_tracker(args.variant, args.checkpoint, device=device)
    except (OSError, RuntimeError, ValueError, KeyError) as err:  # CheckpointError is a RuntimeError
        source = args.checkpoint if args.checkpoint is not None else f"the official {args.variant or 'offline'} weights"
        raise CLIError(f"cannot load {source}: {err}") from None
    model.eval()
    if args.variant is None and args.checkpoint is not None:  # the checkpoint's model: checked now
        check_request_memory(args, num_frames, height, width, device, len(queries) if queries is not None else None,
                             grid_size, model=model)
    input_size = model_input_size(args, model, height, width)
    if args.keep_aspect:
        print(f"model input {input_size[1]}x{input_size[0]} (the video's aspect ratio)")
    if queries is None:
        queries = grid_query_array(grid_size, args.grid_query_frame, height, width, input_size)

    with _progress(num_frames, "tracking", num_frames >= LONG_VIDEO_FRAMES) as bar, torch.no_grad():

        def on_progress(done: int, total: int) -> None:  # the predictor reports (frames done, total)
            bar.total = total
            bar.update(done - bar.n)

        try:
            pred = track(
                model,
                frames,
                None if grid_size else torch.from_numpy(queries),
                grid_size=grid_size,
                grid_query_frame=args.grid_query_frame if grid_size else 0,
                backward_tracking=args.backward,
                chunk_callback=on_progress,
                input_size=input_size,
            )
        except InsufficientMemoryError as err:  # the predictor's own estimate (it knows its exact request)
            raise memory_error(err, args, num_frames, height, width, device, None if grid_size else len(queries),
                               grid_size, model.kind == "online") from None
        except ValueError as err:  # the predictor rejects inputs it cannot track (e.g. too short for the model)
            raise CLIError(f"cannot track {args.video}: {err}") from None
    tracks = pred.tracks[0].detach().cpu().float().numpy()
    visibility = pred.visibility[0].detach().cpu().numpy().astype(bool)
    confidence = pred.confidence[0].detach().cpu().float().numpy()
    try:
        save_tracks(args.out, tracks, visibility, confidence, queries)
    except OSError as err:  # e.g. the disk filled up during the tracking
        raise CLIError(f"cannot write to {args.out}: {err.strerror or err}") from None
    print(f"wrote {args.out}: {tracks.shape[1]} tracks x {num_frames} frames")

    if args.viz is not None:
        from tracker.viz import draw_tracks

        overlay = draw_tracks(frames, tracks, visibility)
        try:
            write_video(args.viz, overlay, fps)
        except OSError as err:
            raise CLIError(f"cannot write to {args.viz}: {err.strerror or err} ({args.out} was written)") from None
        print(f"wrote {args.viz}")
    print(f"done in {time.perf_counter() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "track":
            run_track(args)
    except UserError as err:  # CLIError, OutputNotWritableError: one line, their exit status (2)
        _fail(str(err), err.exit_code)
    except KeyboardInterrupt:
        print("tracker: interrupted", file=sys.stderr)
        return 130
    return 0
