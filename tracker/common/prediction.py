"""`Prediction`: the one type for predicted point tracks, from `tracker.track` to the TAP-Vid scoring.

It lives on the ground floor (no torch import) because its producers and readers span the tracker (torch) and the
evaluation (numpy): the same three fields, whatever the array kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Prediction:
    """Predicted tracks of N points through T frames.

    tracks:     (..., T, N, 2) float (x, y) pixels of the frames the prediction is for (tracker.common.pixels'
                convention: x = 0 at the centre of the leftmost pixel)
    visible:    (..., T, N) bool, the point is predicted visible
    confidence: (..., T, N) float probability that the position is right, or None where the producer has none

    The array kind and the leading axes are the producer's: `tracker.track` gives CPU torch tensors with a batch
    axis (B, T, N, ...), tracks float32 in input pixels; the evaluation (lightning_modules.evaluation) gives numpy
    arrays of one video (T, Q, ...), tracks float64 in raster pixels, no confidence.
    """

    tracks: Any
    visible: Any
    confidence: Any = None

    @property
    def visibility(self) -> Any:
        """`visible`, under the name `tracker.track`'s results have been read by (README, docs/tracker_*.md)."""
        return self.visible
