"""TrackForge tracker: our CoTracker3 (offline / online) implementation, checkpoint loading and predictors.

The public names below load on first use, so that ``tracker.common`` (the ground floor datagen and
lightning_modules stand on: errors, atomic writes, pixel rescaling, config loading) imports without torch.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "CheckpointError": "checkpoint", "load_tracker": "checkpoint",
    "InsufficientMemoryError": "memory", "check_tracking_memory": "memory", "estimate_tracking_memory": "memory",
    "CoTracker3Base": "model", "CoTracker3Offline": "model", "CoTracker3Online": "model",
    "FrameFeatureCache": "model", "TrackerOutput": "model", "TrainOutput": "model", "compile_hot_paths": "model",
    "reference_implementation": "model",
    "EvaluationPredictor": "predictor", "OfflinePredictor": "predictor", "OnlinePredictor": "predictor",
    "Prediction": "common.prediction", "PredictorOutput": "predictor", "grid_points": "predictor",
    "grid_queries": "predictor", "track": "predictor",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f"tracker.{_PUBLIC[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")
