"""TrackForge tracker: our CoTracker3 (offline / online) implementation, checkpoint loading and predictors."""
from .checkpoint import CheckpointError, load_tracker
from .model import CoTracker3Base, CoTracker3Offline, CoTracker3Online, FrameFeatureCache, TrackerOutput, TrainOutput
from .predictor import (
    EvaluationPredictor,
    OfflinePredictor,
    OnlinePredictor,
    Prediction,
    PredictorOutput,
    grid_points,
    grid_queries,
    track,
)

__all__ = [
    "CheckpointError",
    "CoTracker3Base",
    "CoTracker3Offline",
    "CoTracker3Online",
    "EvaluationPredictor",
    "FrameFeatureCache",
    "OfflinePredictor",
    "OnlinePredictor",
    "Prediction",
    "PredictorOutput",
    "TrackerOutput",
    "TrainOutput",
    "grid_points",
    "grid_queries",
    "load_tracker",
    "track",
]
