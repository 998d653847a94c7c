"""Predictors around the CoTracker3 models (spec sections 12-14) and the `track` convenience function.

All predictors resize the video to the model resolution (align-corners bilinear, no re-quantisation), scale query
coordinates by (W'-1)/(W-1), (H'-1)/(H-1), and scale the predicted positions back (spec 2.5).

One job per module:
    grids        query grids (grid_points, grid_queries) and their restriction to a mask
    inference    what every call shares: precision, the no-grad / malloc / autocast context, frame resizing,
                 positions between input and model pixels (through tracker.common.pixels)
    backward     backward tracking: reversed queries and the merge of the two runs
    outputs      PredictorOutput
    offline      OfflinePredictor (spec 12)
    online       OnlinePredictor (spec 13), streaming
    evaluation   EvaluationPredictor (spec 14), TAP-Vid
    convenience  track(): any model, numpy or torch inputs -> Prediction (tracker.common.prediction)
"""
from tracker.common.prediction import Prediction

from .convenience import track
from .evaluation import EvaluationPredictor
from .grids import grid_points, grid_queries
from .inference import PRECISIONS, RESIZE_CHUNK
from .offline import OfflinePredictor
from .online import OnlinePredictor
from .outputs import PredictorOutput

__all__ = [
    "PRECISIONS",
    "RESIZE_CHUNK",
    "EvaluationPredictor",
    "OfflinePredictor",
    "OnlinePredictor",
    "Prediction",
    "PredictorOutput",
    "grid_points",
    "grid_queries",
    "track",
]
