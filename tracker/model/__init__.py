"""Our CoTracker3 implementation (offline and online), state-dict compatible with the official checkpoints."""
from .base import CoTracker3Base
from .cache import FrameFeatureCache
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
]
