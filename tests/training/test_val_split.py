"""Validation clips split over DDP ranks."""
from __future__ import annotations

import torch


def test_validation_clips_are_padded_so_every_rank_runs_the_same_steps() -> None:
    """Fewer clips than ranks (1 held-out shard, 2 DDP ranks) must not give a rank an empty loader: it would
    skip validation while the other waits in the metric all-gather."""
    from lightning_modules.augment import Clip
    from lightning_modules.val_clips import rank_val_clips

    clips = [Clip(video=torch.full((2, 3, 8, 8), i, dtype=torch.uint8), tracks=torch.zeros(2, 4, 2),
                  visibility=torch.ones(2, 4, dtype=torch.bool), key=f"k{i}") for i in range(3)]
    for n, world in [(1, 2), (3, 2), (2, 2), (3, 4), (1, 1)]:
        shares = [rank_val_clips(clips[:n], r, world) for r in range(world)]
        lengths = {len(s) for s in shares}
        assert lengths == {-(-n // world)}, (n, world, lengths)
        scored = [s[i]["keys"] for s in shares for i in range(len(s)) if not s[i]["pad"]]
        assert sorted(scored) == [f"k{i}" for i in range(n)]  # every clip scored exactly once
