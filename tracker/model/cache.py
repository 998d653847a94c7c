"""Optional memo of per-frame encoder features, keyed by frame content.

The encoder is most of the cost of a forward pass at 384x512. Predictors run the model several times on the same
frames (backward tracking on the reversed video, dense tracking, single-point evaluation, overlapping online
chunks), and interactive use re-tracks new points on the same video; with a cache attached each distinct frame is
encoded once. Only used in inference (no grad, eval mode); cleared when weights are loaded or the mode changes.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch


class FrameFeatureCache:
    """LRU map from frame digest to its L2-normalised level-0 feature map (C, H/4, W/4)."""

    def __init__(self, max_frames: int = 512) -> None:
        self.max_frames = max_frames
        self._store: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(frame: torch.Tensor) -> bytes:
        """Digest of one frame's values, shape, dtype and device."""
        arr = frame.detach().to("cpu").contiguous().numpy()
        h = hashlib.blake2b(arr.tobytes(), digest_size=20)
        h.update(repr((tuple(frame.shape), str(frame.dtype), str(frame.device))).encode())
        return h.digest()

    def get(self, key: bytes) -> torch.Tensor | None:
        value = self._store.get(key)
        if value is None:
            self.misses += 1
            return None
        self._store.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: bytes, value: torch.Tensor) -> None:
        self._store[key] = value
        self._store.move_to_end(key)
        while len(self._store) > self.max_frames:
            self._store.popitem(last=False)

    def clear(self) -> None:
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)
