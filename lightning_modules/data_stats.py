"""Training-data statistics logged per step: each source's share of the clips trained on, the effective batch."""
from __future__ import annotations

import numpy as np
from lightning.pytorch.callbacks import Callback


class DataStatsLogger(Callback):
    """Logs data/share/<source> (share of training clips so far per source, this rank) and data/effective_batch.

    names: the sources in the order of the batches' `source_counts` (DataPlan.source_names)."""

    def __init__(self, names: list[str], effective_batch: int) -> None:
        self.names = names
        self.effective_batch = effective_batch
        self._counts: dict[int, np.ndarray] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not isinstance(batch, dict) or "source_counts" not in batch:
            return
        self._counts[int(batch["stream"])] = batch["source_counts"].cpu().numpy()  # cumulative per stream
        total = sum(self._counts.values())
        seen = max(int(total.sum()), 1)
        for name, n in zip(self.names, total):
            pl_module.log(f"data/share/{name}", float(n) / seen, on_step=True, on_epoch=False)
        pl_module.log("data/effective_batch", float(self.effective_batch), on_step=True, on_epoch=False)

    def shares(self) -> dict[str, float]:
        total = sum(self._counts.values()) if self._counts else np.zeros(len(self.names))
        seen = max(int(np.sum(total)), 1)
        return {n: float(c) / seen for n, c in zip(self.names, total)}
