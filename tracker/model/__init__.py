"""Our CoTracker3 implementation (offline and online), state-dict compatible with the official checkpoints.

Its hot paths exist twice, the default (fast) one and the plain reference one; `reference_implementation()` is the
one switch between them (tracker.model.implementation says how it is read)."""
from .base import CoTracker3Base, input_size_problem
from .cache import FrameFeatureCache
from .compile import compile_hot_paths
from .implementation import reference_enabled, reference_implementation
from .offline import CoTracker3Offline
from .online import CoTracker3Online
from .outputs import TrackerOutput, TrainOutput

__all__ = [
    "CoTracker3Base",
    "CoTracker3Offline",
    "CoTracker3Online",
    "FrameFeatureCache",
    "TrackerOutput",
    "TrainOutput",
    "compile_hot_paths",
    "input_size_problem",
    "reference_enabled",
    "reference_implementation",
]
