"""Predictions on disk, so that rerunning an evaluation only scores.

Layout: <root>/<checkpoint digest>/<benchmark>/<setting>/<video key>.npz holding the prediction (tracks (T, Q, 2)
float32 raster pixels, visible (T, Q) bool) and `inputs`, a digest of the raster video and the queries: an entry
whose inputs differ (the benchmark file changed under the same name) is recomputed, never reused. <setting> names
everything else that changes a prediction (query mode, predictor mode, iterations, grid, input resolution, frames).
Entries are written atomically (temporary file + rename); a cache that cannot be written (read-only, full) is
dropped with one warning, and the evaluation goes on without it.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from tracker.common.atomic import atomic_file

from .protocol import EvalExample
from .scoring import Prediction


def inputs_digest(ex: EvalExample) -> str:
    """SHA-256 (hex, 32 characters) of the raster video and the query rows."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ex.video).tobytes())
    h.update(np.ascontiguousarray(ex.queries, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", str(name)) or "_"


class PredictionCache:
    """root None: a cache that never hits and never writes."""

    def __init__(self, root: Optional[str | os.PathLike], checkpoint_digest: str) -> None:
        self.root = None if root is None else Path(root) / _safe(checkpoint_digest)
        self.hits = self.misses = 0

    def _path(self, benchmark: str, setting: str, key: str) -> Optional[Path]:
        if self.root is None:
            return None
        return self.root / _safe(benchmark) / _safe(setting) / f"{_safe(key)}.npz"

    def get(self, benchmark: str, setting: str, ex: EvalExample) -> Optional[Prediction]:
        path = self._path(benchmark, setting, ex.key)
        if path is None or not path.is_file():
            self.misses += 1
            return None
        try:
            with np.load(path, allow_pickle=False) as d:
                ok = str(d["inputs"]) == inputs_digest(ex) and d["tracks"].shape == ex.tracks.shape
                pred = Prediction(d["tracks"].astype(np.float64), d["visible"].astype(bool)) if ok else None
        except (OSError, ValueError, KeyError):  # a damaged entry is recomputed
            pred = None
        if pred is None:
            self.misses += 1
        else:
            self.hits += 1
        return pred

    def put(self, benchmark: str, setting: str, ex: EvalExample, pred: Prediction) -> None:
        path = self._path(benchmark, setting, ex.key)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, hidden=True) as fh:
                np.savez(fh, tracks=pred.tracks.astype(np.float32), visible=pred.visible,
                         inputs=np.array(inputs_digest(ex)))
        except OSError as err:  # a read-only or full cache costs speed on the next run, never this evaluation
            print(f"warning: prediction cache {self.root} cannot be written ({err.strerror or err}): evaluating "
                  "without storing predictions", file=sys.stderr)
            self.root = None
