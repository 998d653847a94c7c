"""TrackForge tracker: our CoTracker3 (offline / online) implementation, checkpoint loading and predictors."""
from .checkpoint import CheckpointError, load_tracker
from .memory import InsufficientMemoryError, check_tracking_memory, estimate_tracking_memory
from .model import (
    CoTracker3Base,
    CoTracker3Offline,
    CoTracker3Online,
    FrameFeatureCache,
    TrackerOutput,
    TrainOutput,
    compile_hot_paths,
    reference_implementation,
)
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
    "InsufficientMemoryError",
    "OfflinePredictor",
    "OnlinePredictor",
    "Prediction",
    "PredictorOutput",
    "TrackerOutput",
    "TrainOutput",
    "check_tracking_memory",
    "compile_hot_paths",
    "estimate_tracking_memory",
    "grid_points",
    "grid_queries",
    "load_tracker",
    "reference_implementation",
    "track",
]
