"""Mask consistency of a model on a folder of masked video (DAVIS), from Python: training code, bench scripts.

    from lightning_modules.evaluation.mask_benchmark import evaluate_mask_benchmark
    r = evaluate_mask_benchmark(model, "../shared/data/davis", max_frames=24)   # model: a tracker.CoTracker3*
    r["model"]["mask_consistency"], r["zero_motion"]["mask_consistency"]          # means over videos (fractions)
    r["groups"]["people"]["model"]["mask_consistency"]; r["per_video"][0]         # {"name", "group", ...}

The same protocol, predictor and scores as `python -m lightning_modules eval --data <davis root>` (suite.
score_benchmark); definitions in docs/evaluation.md ("Mask consistency").
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch

from datagen.formats import reader_class

from .config import BenchmarkConfig
from .groups import check_groups
from .protocol import EvalExample
from .scoring import Prediction, zero_motion
from .sources import EvalError, resolve_format
from .suite import score_benchmark

Predictor = Callable[[EvalExample], Prediction]


def evaluate_mask_benchmark(model: Union[torch.nn.Module, Predictor, None], path: str,
                            groups: Optional[Mapping[str, Sequence[str]]] = None, *, name: str = "davis",
                            input_resolution: Optional[Sequence[int]] = None, iters: int = 6, grid_size: int = 5,
                            mode: str = "joint", device: Union[str, torch.device] = "cpu", keep_aspect: bool = True,
                            max_videos: Optional[int] = None, max_frames: Optional[int] = None,
                            fmt: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Score `model` on the masked videos at `path` (a DAVIS root).

    model: a tracker model (run by evaluation.predict.TrackerRunner in predictor `mode` with `iters` iterations and
           a `grid_size` global grid, at `input_resolution` (H, W), default the model's own model_resolution, or
           with keep_aspect (default) each video at its own aspect ratio with that short side), any
           callable EvalExample -> Prediction (raster pixels), or None: the zero-motion baseline only.
    groups: {group: [video, ...]} (None: groups.DEFAULT_GROUPS, the six shared DAVIS-2016 sequences); videos in no
           group go to "other".
    Returns suite.score_benchmark's row: {"num_videos", "model": {"mask_consistency"}, "zero_motion": {...},
    "groups": {group: {"num_videos", "model", "zero_motion"}}, "per_video": [{"name", "group", "num_queries",
    "num_frames", "model", "zero_motion"}], ...}; scores are fractions in [0, 1] (NaN: nothing scored).
    EvalError (one line) on unreadable data or a folder without masks."""
    problem = check_groups(groups, "groups")
    if problem:
        raise EvalError(problem)
    if model is None:
        runner: Predictor = zero_motion
    elif isinstance(model, torch.nn.Module):
        from .predict import TrackerRunner

        hw = tuple(input_resolution or model.model_resolution)
        runner = TrackerRunner(model, input_resolution=(int(hw[0]), int(hw[1])), mode=mode, iters=iters,
                               grid_size=grid_size, device=device, keep_aspect=keep_aspect)
    else:
        runner = model
    bench = BenchmarkConfig(name=name, path=str(path), format=fmt, query_modes=["first"], max_videos=max_videos,
                            max_frames=max_frames, groups=None if groups is None else dict(groups))
    fmt = resolve_format(bench)
    if reader_class(fmt).labels != "masks":
        raise EvalError(f"benchmark {name}: {path} is {fmt} data with point tracks, not object masks (score it with "
                        "`python -m lightning_modules eval`)")
    (row,) = score_benchmark(bench, {mode if model is not None else "zero_motion": runner}, progress=progress, fmt=fmt)
    return row
