"""`PredictorOutput`: what the predictors return, with the model calls behind it.

(`track`'s leaner result is `tracker.common.prediction.Prediction`, the type the evaluation shares.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..model import TrackerOutput


@dataclass
class PredictorOutput:
    """tracks (B, T, N, 2) input pixels; visible (B, T, N) bool after the predictor's threshold;
    vis_prob, conf_prob (B, T, N) model probabilities for the returned tracks; raw: the model calls
    (model-resolution pixels, all tracks including support points), in call order; queries: what the model was
    given (B, N', 3) (t, x, y) in model pixels, support points included."""

    tracks: torch.Tensor
    visible: torch.Tensor
    vis_prob: torch.Tensor
    conf_prob: torch.Tensor
    raw: list[TrackerOutput] = field(default_factory=list)
    queries: torch.Tensor | None = None
