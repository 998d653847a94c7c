"""Run a tracker on an EvalExample the way the TAP-Vid evaluation does (spec sections 14 and 17).

The raster video is resized to the model's input resolution inside tracker.EvaluationPredictor:
  * "joint" (default): all queries in one call, plus the g x g global support grid for offline models (online
    models run their sliding windows without a grid, as the official evaluator runs them);
  * "single_point": each query alone with an 8x8 local grid around it and the global grid (the setting of the
    published CoTracker3 numbers; one model call per query, frame features cached).
Predicted visible iff visibility x confidence > 0.6.
"""
from __future__ import annotations

import numpy as np
import torch

from tracker.common.prediction import Prediction

from .protocol import EvalExample
from .scoring import VIS_THRESHOLD

PREDICT_MODES = ("joint", "single_point")


class TrackerRunner:
    """model: a tracker.CoTracker3Base; input_resolution (H, W): what the model sees (its training resolution);
    grid_size: global support grid of offline models (0: none); iters: refinement iterations."""

    def __init__(self, model: torch.nn.Module, *, input_resolution: tuple[int, int], mode: str = "joint",
                 iters: int = 6, grid_size: int = 5, device: str | torch.device = "cpu") -> None:
        from tracker import EvaluationPredictor

        if mode not in PREDICT_MODES:
            raise ValueError(f"predictor mode must be one of {PREDICT_MODES}, got {mode!r}")
        self.model, self.mode, self.device = model, mode, torch.device(device)
        self.online = model.kind == "online"
        self.grid_size = 0 if self.online and mode == "joint" else int(grid_size)
        self.predictor = EvaluationPredictor(model, interp_shape=tuple(input_resolution), grid_size=self.grid_size,
                                             single_point=mode == "single_point", iters=iters)

    @torch.no_grad()
    def __call__(self, ex: EvalExample) -> Prediction:
        """The model's prediction for one example: tracks float64 (T, Q, 2) raster pixels, visible bool (T, Q)."""
        video = torch.from_numpy(ex.video).permute(0, 3, 1, 2)[None].float().to(self.device)  # (1, T, 3, S, S)
        queries = torch.from_numpy(ex.queries).float()[None].to(self.device)  # (1, Q, 3) (t, x, y)
        tracks, vis_conf = self.predictor(video, queries)
        return Prediction(tracks[0].float().cpu().numpy().astype(np.float64),
                          (vis_conf[0].float().cpu() > VIS_THRESHOLD).numpy())
