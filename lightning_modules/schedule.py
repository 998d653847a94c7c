"""AdamW + OneCycle of the CoTracker3 Kubric recipe (spec 16.1, "Optimisation")."""
from __future__ import annotations

from typing import Any, Iterable

import torch


def make_optimizer_and_scheduler(params: Iterable[torch.nn.Parameter], optim: Any, max_steps: int):
    """AdamW(lr, betas, eps, weight decay) and OneCycleLR with total steps = max_steps + extra_total_steps,
    warm-up fraction pct_start, cosine annealing, no momentum cycling, initial lr = lr / div_factor, final lr =
    initial / final_div_factor; step it after every optimizer step."""
    opt = torch.optim.AdamW(params, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                            weight_decay=optim.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=optim.lr, total_steps=max_steps + optim.extra_total_steps, pct_start=optim.pct_start,
        anneal_strategy="cos", cycle_momentum=False, div_factor=optim.div_factor,
        final_div_factor=optim.final_div_factor,
    )
    return opt, sched
