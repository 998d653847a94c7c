"""Evaluate a checkpoint with the TAP-Vid protocol (spec section 17) on our shards or TAP-Vid pickles.

Data: every video becomes a TAP-Vid record (video uint8 (T, 256, 256, 3) resized with PIL Lanczos, GT points
(N, T, 2) in the 256-pixel align-corners frame, occluded (N, T) bool); queries "first" (each track at its first
visible frame; never-visible tracks dropped) or "strided" (every 5th frame, one query per track visible there).
Inference: the video is resized to the model resolution (bilinear, align corners), offline models get the 5x5
global support grid at frame 0 (evaluation predictor, joint mode), 6 iterations; predicted visible iff
visibility x confidence > 0.6. The zero-motion baseline (query position everywhere, always visible) is scored
alongside.
"""
from __future__ import annotations

import glob
import io
import json
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from .module import METRIC_KEYS, VIS_THRESHOLD

TAPVID_SIZE = 256
STRIDE = 5  # "strided" query mode: query frames 0, 5, 10, ...


class EvalError(RuntimeError):
    """Bad evaluation input (missing file, unknown format); one-line message."""


# ---------------------------------------------------------------------------------------------- data
def _decode_frames(video: Any) -> np.ndarray:
    """uint8 array (T, H, W, 3) or a list of JPEG/PNG bytes -> uint8 (T, H, W, 3)."""
    from PIL import Image

    if isinstance(video, np.ndarray):
        return video.astype(np.uint8, copy=False)
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in video])


def resize_lanczos(video: np.ndarray, size: int = TAPVID_SIZE) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3) with PIL's Lanczos filter (what mediapy does)."""
    from PIL import Image

    if video.shape[1:3] == (size, size):
        return video
    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS)) for f in video])


def iter_tapvid_pickles(pattern: str) -> Iterator[tuple[str, dict]]:
    """(name, record) from TAP-Vid pickle(s): a dict {name: record} (DAVIS) or a list of records (Kinetics,
    RGB-Stacking). record: 'video' (T, H, W, 3) uint8 or list of encoded frames, 'points' (N, T, 2) normalised
    (x, y), 'occluded' (N, T) bool."""
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not paths or not all(Path(p).is_file() for p in paths):
        raise EvalError(f"TAP-Vid pickle not found: {pattern}")
    for path in paths:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
        items = data.items() if isinstance(data, dict) else ((f"{Path(path).stem}-{i}", r) for i, r in enumerate(data))
        for name, rec in items:
            if not all(k in rec for k in ("video", "points", "occluded")):
                raise EvalError(f"{path}: record {name!r} lacks video/points/occluded")
            yield str(name), rec


def iter_shard_records(pattern: str) -> Iterator[tuple[str, dict]]:
    """Our shards as TAP-Vid records (points normalised by (W-1, H-1), occluded = not visible)."""
    import webdataset as wds

    from datagen.shards import decode_sample

    from .data import SkipCounter, expand_pattern

    try:
        urls = expand_pattern(pattern)
    except FileNotFoundError as exc:
        raise EvalError(str(exc)) from None
    handler = SkipCounter()
    for raw in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples(handler=handler)):
        try:
            s = decode_sample(raw)
        except Exception as exn:
            handler(exn)
            continue
        tracks = np.nan_to_num(s.tracks.astype(np.float64))
        points = tracks / np.array([s.width - 1, s.height - 1])
        yield s.key, {"video": s.video, "points": points.transpose(1, 0, 2), "occluded": ~s.visibility.T}


def tapvid_example(rec: dict, query_mode: str, max_frames: int | None = None) -> dict | None:
    """Record -> video uint8 (T, 256, 256, 3), query_points (Q, 3) (t, y, x), gt_tracks (Q, T, 2) (x, y),
    gt_occluded (Q, T), in the 256x256 frame (positions x 255). None when nothing can be queried."""
    video = _decode_frames(rec["video"])
    points = np.asarray(rec["points"], dtype=np.float64)
    occluded = np.asarray(rec["occluded"], dtype=bool)
    if max_frames:
        video, points, occluded = video[:max_frames], points[:, :max_frames], occluded[:, :max_frames]
    video = resize_lanczos(video)
    tracks = points * (TAPVID_SIZE - 1)
    visible = ~occluded
    if query_mode == "first":
        keep = visible.any(axis=1)
        tracks, occluded, visible = tracks[keep], occluded[keep], visible[keep]
        t = visible.argmax(axis=1)
        q = np.stack([t, tracks[np.arange(len(t)), t, 1], tracks[np.arange(len(t)), t, 0]], axis=-1)
    else:
        rows, qs = [], []
        for t in range(0, video.shape[0], STRIDE):
            idx = np.flatnonzero(visible[:, t])
            rows.append(idx)
            qs.append(np.stack([np.full(len(idx), t), tracks[idx, t, 1], tracks[idx, t, 0]], axis=-1))
        idx = np.concatenate(rows) if rows else np.zeros(0, int)
        q = np.concatenate(qs) if qs else np.zeros((0, 3))
        tracks, occluded = tracks[idx], occluded[idx]
    if len(q) == 0:
        return None
    return {"video": video, "query_points": q.astype(np.float64), "gt_tracks": tracks, "gt_occluded": occluded}


# ---------------------------------------------------------------------------------------------- model
def load_eval_model(checkpoint: str, variant: str | None, device: str) -> tuple[torch.nn.Module, str, tuple[int, int]]:
    """-> (model in eval mode, "online"|"offline", its input resolution (H, W)).

    A Lightning .ckpt is rebuilt from the config stored in it (any architecture); an official .pth (or a variant
    name to download) goes through tracker.load_tracker."""
    path = Path(checkpoint)
    if path.suffix == ".ckpt":
        if not path.is_file():
            raise EvalError(f"checkpoint not found: {checkpoint}")
        from .config import from_container
        from .module import build_model

        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = from_container(ckpt["hyper_parameters"]["config"])
        cfg.model.init_from = None
        model = build_model(cfg)
        state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
        model.load_state_dict(state, strict=True)
        return model.to(device).eval(), cfg.model.variant, tuple(cfg.data.resolution)
    from tracker import CheckpointError, load_tracker

    names = ("offline", "online", "baseline_offline", "baseline_online")
    try:
        if checkpoint in names:  # a variant name: the official file, downloaded once into the cache
            variant = checkpoint
            model = load_tracker(variant, None, device=device)
        else:
            if variant is None:
                variant = "online" if "online" in path.name else "offline"
            model = load_tracker(variant, checkpoint, device=device)
    except (FileNotFoundError, CheckpointError) as exc:
        raise EvalError(" ".join(str(exc).split())) from None
    kind = "online" if "online" in variant else "offline"
    return model.eval(), kind, (384, 512)


@torch.no_grad()
def predict(model: torch.nn.Module, kind: str, video: np.ndarray, query_points: np.ndarray, hw: tuple[int, int],
            iters: int, grid_size: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """video uint8 (T, 256, 256, 3), query_points (Q, 3) (t, y, x) 256-frame px -> pred_tracks (Q, T, 2) (x, y)
    in the 256 frame, pred_occluded (Q, T) bool. Runs tracker.EvaluationPredictor (resize to `hw`, joint mode with
    the global grid for offline models; online models in sliding-window mode without a grid, as the official
    evaluator runs them)."""
    from tracker import EvaluationPredictor

    predictor = EvaluationPredictor(model, interp_shape=hw, grid_size=grid_size if kind == "offline" else 0,
                                    iters=iters)
    v = torch.from_numpy(video).permute(0, 3, 1, 2)[None].float().to(device)
    q = torch.from_numpy(query_points).float()
    queries = torch.stack([q[:, 0], q[:, 2], q[:, 1]], dim=-1)[None].to(device)  # (t, y, x) -> (t, x, y)
    tracks, vis_conf = predictor(v, queries)
    visible = vis_conf[0].float().cpu() > VIS_THRESHOLD  # (T, Q)
    return tracks[0].float().cpu().permute(1, 0, 2).numpy().astype(np.float64), ~visible.T.numpy()


def run_eval(args: Any) -> dict:
    """CLI entry: evaluate, print a rich table, write the JSON; returns the summary dict."""
    from rich.console import Console
    from rich.table import Table

    from tracker.metrics import compute_tapvid_metrics

    model, kind, hw = load_eval_model(args.checkpoint, args.variant, args.device)
    if args.resolution:
        hw = tuple(args.resolution)
    data = str(args.data)
    records = iter_tapvid_pickles(data) if data.endswith(".pkl") else iter_shard_records(data)
    per_video = []
    for i, (name, rec) in enumerate(records):
        if args.max_videos is not None and i >= args.max_videos:
            break
        ex = tapvid_example(rec, args.query_mode, args.max_frames)
        if ex is None:
            continue
        pred, pred_occ = predict(model, kind, ex["video"], ex["query_points"], hw, args.iters, args.grid_size,
                                 args.device)
        qp = ex["query_points"][None]
        gt, gt_occ = ex["gt_tracks"][None], ex["gt_occluded"][None]
        # Zero motion: every frame at the query position (x, y), always visible.
        zero = np.broadcast_to(ex["query_points"][:, None, [2, 1]], gt.shape[1:])[None]
        m = compute_tapvid_metrics(qp, gt_occ, gt, pred_occ[None], pred[None], args.query_mode)
        z = compute_tapvid_metrics(qp, gt_occ, gt, np.zeros_like(gt_occ), zero, args.query_mode)
        per_video.append({"name": name, "num_queries": int(qp.shape[1]), "num_frames": int(gt.shape[2]),
                          "model": {k: float(m[k][0]) for k in METRIC_KEYS},
                          "zero_motion": {k: float(z[k][0]) for k in METRIC_KEYS}})
    if not per_video:
        raise EvalError(f"no evaluable videos in {data}")

    def mean(which: str) -> dict[str, float]:
        return {k: float(np.nanmean([v[which][k] for v in per_video])) for k in METRIC_KEYS}

    summary = {"checkpoint": str(args.checkpoint), "data": data, "query_mode": args.query_mode, "model_kind": kind,
               "resolution": list(hw), "iters": args.iters, "num_videos": len(per_video),
               "model": mean("model"), "zero_motion": mean("zero_motion"), "per_video": per_video}
    table = Table(title=f"TAP-Vid ({args.query_mode}) on {data}: {len(per_video)} videos, x100")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("zero motion", justify="right")
    for k, label in (("average_jaccard", "AJ"), ("average_pts_within_thresh", "delta_avg"),
                     ("occlusion_accuracy", "OA")):
        table.add_row(label, f"{100 * summary['model'][k]:.2f}", f"{100 * summary['zero_motion'][k]:.2f}")
    Console().print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return summary
