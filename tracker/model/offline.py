"""CoTracker3 offline model: one window over the whole clip (spec section 10)."""
from __future__ import annotations

import torch

from .base import CoTracker3Base
from .embeddings import resample_time_embedding
from .outputs import TrackerOutput, TrainOutput


class CoTracker3Offline(CoTracker3Base):
    """Bidirectional tracker over all frames at once; the window_len-row time embedding is resampled to T."""

    kind = "offline"

    def __init__(self, window_len: int = 60, **arch) -> None:
        super().__init__(window_len, **arch)

    def forward(
        self, video: torch.Tensor, queries: torch.Tensor, iters: int = 4, is_train: bool = False
    ) -> TrackerOutput:
        """video (B, T, 3, H, W) float 0..255; queries (B, N, 3) as (t, x, y) pixels of that video."""
        self._check_inputs(video, queries)
        B, T = video.shape[:2]
        N = queries.shape[1]
        queries = queries.to(video.dtype)
        frames = queries[..., 0].long()  # truncation toward zero
        xy = queries[..., 1:3] / self.stride
        pyramid = self.encode(video)
        support = self.support_features(pyramid, frames, xy)
        coords = xy[:, None].expand(B, T, N, 2)  # every frame, including those before the query frame
        vis0, conf0 = self.initial_vis_conf(video, (B, T, N))
        time_emb = resample_time_embedding(self.time_emb, T)
        cs, vs, ws = self.refine(pyramid, support, coords, vis0, conf0, iters, time_emb)
        vis = [torch.sigmoid(v) for v in vs]
        conf = [torch.sigmoid(w) for w in ws]
        train = None
        if is_train:
            valid = torch.ones(B, T, N, dtype=torch.bool, device=video.device)
            train = TrainOutput([torch.stack(cs)], [torch.stack(vis)], [torch.stack(conf)], [0], valid)
        return TrackerOutput(cs[-1], vis[-1], conf[-1], train)
