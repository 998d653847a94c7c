"""Run a tracker on an EvalExample the way the TAP-Vid evaluation does (spec sections 14 and 17).

The raster video is resized to the model's input resolution inside tracker.EvaluationPredictor (mask examples,
real video without point tracks, by default to that resolution's short side at the source video's aspect ratio:
TrackerRunner's keep_aspect):
  * "joint" (default): all queries in one call, plus the g x g global support grid for offline models (online
    models run their sliding windows without a grid, as the official evaluator runs them);
  * "single_point": each query alone with an 8x8 local grid around it and the global grid (the setting of the
    published CoTracker3 numbers; one model call per query, frame features cached).
Predicted visible iff visibility x confidence > 0.6.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from tracker.common.pixels import aspect_input_size
from tracker.common.prediction import Prediction

from .protocol import EvalExample
from .scoring import VIS_THRESHOLD

PREDICT_MODES = ("joint", "single_point")


def keeps_aspect(choice: Optional[bool], scored_by_masks: bool) -> bool:
    """Whether a video's model input keeps its aspect ratio (the short side of the input size): `choice` when one
    was made, else only for videos scored by object masks (real video such as DAVIS, which no protocol fixes a size
    for); point benchmarks keep the fixed size their protocol prescribes (TAP-Vid: the 256x256 raster resized to the
    model's size)."""
    return choice if choice is not None else scored_by_masks


class TrackerRunner:
    """model: a tracker.CoTracker3Base; input_resolution (H, W): what the model sees (its training resolution);
    grid_size: global support grid of offline models (0: none); iters: refinement iterations; keep_aspect: each
    example's input keeps its source video's aspect ratio with the short side of input_resolution
    (tracker.common.pixels.aspect_input_size). None (default): `keeps_aspect`'s rule per example."""

    def __init__(self, model: torch.nn.Module, *, input_resolution: tuple[int, int], mode: str = "joint",
                 iters: int = 6, grid_size: int = 5, device: str | torch.device = "cpu",
                 keep_aspect: Optional[bool] = None) -> None:
        if mode not in PREDICT_MODES:
            raise ValueError(f"predictor mode must be one of {PREDICT_MODES}, got {mode!r}")
        self.model, self.mode, self.device = model, mode, torch.device(device)
        self.online = model.kind == "online"
        self.grid_size = 0 if self.online and mode == "joint" else int(grid_size)
        self.input_resolution, self.iters, self.keep_aspect = tuple(input_resolution), iters, keep_aspect
        self.predictors: dict[tuple[int, int], torch.nn.Module] = {}

    def input_size(self, ex: EvalExample) -> tuple[int, int]:
        """The model input (H, W) for example `ex`."""
        keep = keeps_aspect(self.keep_aspect, scored_by_masks=ex.masks is not None)
        return aspect_input_size(self.input_resolution, ex.source_hw) if keep else self.input_resolution

    def predictor(self, hw: tuple[int, int]):
        """The EvaluationPredictor with model input hw (made once per size)."""
        from tracker import EvaluationPredictor

        if hw not in self.predictors:
            self.predictors[hw] = EvaluationPredictor(self.model, interp_shape=hw, grid_size=self.grid_size,
                                                      single_point=self.mode == "single_point", iters=self.iters)
        return self.predictors[hw]

    @torch.no_grad()
    def __call__(self, ex: EvalExample) -> Prediction:
        """The model's prediction for one example: tracks float64 (T, Q, 2) raster pixels, visible bool (T, Q)."""
        video = torch.from_numpy(ex.video).permute(0, 3, 1, 2)[None].float().to(self.device)  # (1, T, 3, S, S)
        queries = torch.from_numpy(ex.queries).float()[None].to(self.device)  # (1, Q, 3) (t, x, y)
        tracks, vis_conf = self.predictor(self.input_size(ex))(video, queries)
        return Prediction(tracks[0].float().cpu().numpy().astype(np.float64),
                          (vis_conf[0].float().cpu() > VIS_THRESHOLD).numpy())
