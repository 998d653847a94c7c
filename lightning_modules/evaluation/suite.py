"""Score one checkpoint on a list of benchmarks: every query mode x predictor mode, with the zero-motion baseline,
a progress bar and a prediction cache (a rerun only scores). `score_benchmark` scores one benchmark with any
predictor (what run_suite and mask_benchmark.evaluate_mask_benchmark share)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from tracker.common.errors import one_line
from tracker.common.prediction import Prediction

from .cache import PredictionCache
from .config import EvalConfig
from .predict import TrackerRunner
from .predict import keeps_aspect as keeps_aspect_rule
from .groups import group_means, group_of
from .mask_scoring import METRIC as MASK_METRIC
from .protocol import EvalExample, make_example
from .scoring import mean_scores, score, zero_motion
from .sources import EvalError, open_benchmark, resolve_format


@dataclass
class LoadedModel:
    model: torch.nn.Module
    variant: str  # "online" | "offline"
    input_resolution: tuple[int, int]
    digest: str  # of the checkpoint file: the cache key
    path: str


def load_model(checkpoint: Optional[str], variant: Optional[str], device: str,
               resolution: Optional[list[int]] = None) -> LoadedModel:
    """Any checkpoint through tracker.checkpoint: our .ckpt (architecture, kind and training resolution from the
    file), an official .pth, or a variant name ("offline", "online", "baseline_*": the official file, downloaded
    once). Input resolution: `resolution`, else the recorded training resolution, else the model's own."""
    from tracker.checkpoint import (VARIANTS, CheckpointError, build_tracker, file_digest, official_checkpoint_path,
                                    read_checkpoint)

    if not checkpoint:
        raise EvalError("no checkpoint given (--checkpoint PATH, or a variant name such as 'offline')")
    try:
        if checkpoint in VARIANTS and not Path(checkpoint).exists():
            variant = variant or checkpoint
            path = official_checkpoint_path(checkpoint)
        else:
            path = Path(checkpoint)
        ckpt = read_checkpoint(path)
        model = build_tracker(ckpt, variant, device)
    except (FileNotFoundError, CheckpointError, ValueError) as exc:
        raise EvalError(one_line(exc)) from None
    hw = tuple(resolution) if resolution else (ckpt.input_resolution or tuple(model.model_resolution))
    return LoadedModel(model, model.kind, (int(hw[0]), int(hw[1])), file_digest(path), str(path))


def keeps_aspect(cfg: EvalConfig, fmt: str) -> bool:
    """Whether a benchmark of format `fmt` gives each video a model input of its own aspect ratio
    (predict.keeps_aspect's rule: cfg.keep_aspect, or by default only benchmarks scored by masks)."""
    from datagen.formats import reader_class

    return keeps_aspect_rule(cfg.keep_aspect, scored_by_masks=reader_class(fmt).labels == "masks")


def setting_name(query_mode: str, mode: str, cfg: EvalConfig, loaded: LoadedModel, max_frames: Optional[int],
                 keep_aspect: bool = False) -> str:
    """Everything besides checkpoint, benchmark and video that changes a prediction (the cache's folder name);
    keep_aspect: the benchmark's videos get inputs of their own aspect ratio (keeps_aspect)."""
    h, w = loaded.input_resolution
    aspect = "-aspect" if keep_aspect else ""
    return f"{query_mode}-{mode}-it{cfg.iters}-g{cfg.grid_size}-{h}x{w}{aspect}-f{max_frames or 'all'}"


def _progress(desc: str, total: Optional[int], enabled: bool):
    from tqdm import tqdm

    # disable=None: tqdm switches itself off when stderr is not a terminal (logs, CI).
    return tqdm(total=total, desc=desc, unit="video", disable=None if enabled else True, leave=False)


def score_benchmark(bench: Any, runners: dict[str, Callable[[EvalExample], Prediction]], *,
                    cache: Optional[PredictionCache] = None, setting: Optional[Callable[[str, str], str]] = None,
                    progress: bool = False, fmt: Optional[str] = None) -> list[dict[str, Any]]:
    """One benchmark (a BenchmarkConfig) x its query modes x `runners` (predictor mode -> EvalExample ->
    Prediction, e.g. a TrackerRunner) -> one result row per (query mode, predictor mode):
    {"benchmark", "format", "path", "query_mode", "mode", "metric": "tapvid" | "mask_consistency", "num_videos",
     "model", "zero_motion", "per_video": [{"name", "num_queries", "num_frames", "model", "zero_motion"
     (+ "group" for mask benchmarks)}] (+ "groups": groups.group_means for mask benchmarks)}.
    Scores are fractions (x100 in reports). `cache` with `setting(query_mode, mode)` (its folder name) reuses
    stored predictions. EvalError (one line) on unusable input."""
    fmt = fmt or resolve_format(bench)  # once: detecting a format may list a folder
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {(q, m): [] for q in bench.query_modes for m in runners}
    with _progress(bench.name, bench.max_videos, progress) as bar:
        for sample in open_benchmark(bench, fmt):
            for query_mode in bench.query_modes:
                try:
                    ex = make_example(sample, query_mode, max_frames=bench.max_frames)
                except ValueError as exc:
                    raise EvalError(f"benchmark {bench.name}: {sample.key}: {exc}") from None
                if ex is None:
                    continue  # nothing to query in this video under this mode
                zero = score(ex, zero_motion(ex))
                for mode, runner in runners.items():
                    key = setting(query_mode, mode) if cache is not None and setting is not None else None
                    pred = cache.get(bench.name, key, ex) if key is not None else None
                    if pred is None:
                        pred = runner(ex)
                        if key is not None:
                            cache.put(bench.name, key, ex, pred)
                    row = {"name": ex.key, "num_queries": int(len(ex.queries)), "num_frames": ex.num_frames,
                           "model": score(ex, pred), "zero_motion": zero}
                    if ex.masks is not None:
                        row["group"] = group_of(ex.key, bench.groups)
                    rows[(query_mode, mode)].append(row)
            bar.update(1)
    results = []
    for (query_mode, mode), per_video in rows.items():
        if not per_video:
            raise EvalError(f"benchmark {bench.name}: no video has a track or an object to query in '{query_mode}' "
                            "mode")
        masks = "group" in per_video[0]
        result = {
            "benchmark": bench.name, "format": fmt, "path": bench.path, "query_mode": query_mode, "mode": mode,
            "metric": MASK_METRIC if masks else "tapvid", "num_videos": len(per_video),
            "model": mean_scores([v["model"] for v in per_video]),
            "zero_motion": mean_scores([v["zero_motion"] for v in per_video]), "per_video": per_video}
        if masks:
            result["groups"] = group_means(per_video, bench.groups)
        results.append(result)
    return results


def run_suite(cfg: EvalConfig, loaded: Optional[LoadedModel] = None) -> dict[str, Any]:
    """Evaluate; returns {"checkpoint", "digest", "variant", "input_resolution", "iters", "grid_size", "results":
    [score_benchmark's rows, benchmark by benchmark, each with "keep_aspect" (keeps_aspect)], "cache": {"hits",
    "misses"}, "wall_s"}. EvalError (one line) on unusable input."""
    from tracker.checkpoint import default_cache_dir

    t0 = time.perf_counter()
    loaded = loaded or load_model(cfg.checkpoint, cfg.variant, cfg.device, cfg.resolution)
    cache_root = None if not cfg.cache else (cfg.cache_dir or default_cache_dir() / "eval-predictions")
    cache = PredictionCache(cache_root, loaded.digest)
    results = []
    for bench in cfg.benchmarks:
        fmt = resolve_format(bench)
        try:
            keep = keeps_aspect(cfg, fmt)
        except ValueError as exc:  # an unknown format: the one line reading the benchmark would give
            raise EvalError(f"benchmark {bench.name}: {one_line(exc)}") from None
        # the runners get the benchmark's decision, so the cache's setting name and the model's input agree
        runners = {mode: TrackerRunner(loaded.model, input_resolution=loaded.input_resolution, mode=mode,
                                       iters=cfg.iters, grid_size=cfg.grid_size, device=cfg.device, keep_aspect=keep)
                   for mode in cfg.modes}
        rows = score_benchmark(bench, runners, cache=cache, progress=cfg.progress, fmt=fmt,
                               setting=lambda q, m, b=bench, k=keep: setting_name(q, m, cfg, loaded, b.max_frames, k))
        results += [{**row, "keep_aspect": keep} for row in rows]
    return {"checkpoint": loaded.path, "digest": loaded.digest, "variant": loaded.variant,
            "input_resolution": list(loaded.input_resolution), "iters": cfg.iters, "grid_size": cfg.grid_size,
            "results": results, "cache": {"hits": cache.hits, "misses": cache.misses},
            "wall_s": time.perf_counter() - t0}
