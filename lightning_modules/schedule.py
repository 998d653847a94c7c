"""AdamW + OneCycle of the CoTracker3 Kubric recipe (spec 16.1, "Optimisation")."""
from __future__ import annotations

from typing import Any, Iterable

import torch


VIS_CONF_HEAD = "vis_conf_head."  # the update transformer's visibility/confidence output layer


def make_optimizer_and_scheduler(params: Iterable[torch.nn.Parameter] | Iterable[tuple[str, torch.nn.Parameter]],
                                 optim: Any, max_steps: int):
    """AdamW(lr, betas, eps, weight decay) and OneCycleLR with total steps = max_steps + extra_total_steps,
    warm-up fraction pct_start, cosine annealing, no momentum cycling, initial lr = lr / div_factor, final lr =
    initial / final_div_factor; step it after every optimizer step.

    params: parameters, or (name, parameter) pairs (`model.named_parameters()`): then the visibility/confidence head
    learns at lr x optim.vis_conf_lr_scale (same schedule shape). Why: Adam moves a parameter by about lr per step
    whatever its gradient, and the visibility/confidence logits start at 0 and grow by the head's output once per
    iteration, so at lr 1e-3 a 200-step run can move them ~0.8 logit: not even to the data's prior (85-92 %
    visible, logit ~2), which leaves the visibility x confidence > 0.6 rule calling most points occluded.
    """
    params = list(params)
    scale = float(getattr(optim, "vis_conf_lr_scale", 1.0))
    if params and isinstance(params[0], tuple) and scale != 1.0:  # one group otherwise: older runs resume as they were
        head = [p for n, p in params if VIS_CONF_HEAD in n]
        rest = [p for n, p in params if VIS_CONF_HEAD not in n]
        groups = [{"params": rest, "lr": optim.lr}] + ([{"params": head, "lr": optim.lr * scale}] if head else [])
    else:
        groups = [{"params": [p[1] if isinstance(p, tuple) else p for p in params], "lr": optim.lr}]
    opt = torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                            weight_decay=optim.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=max_steps + optim.extra_total_steps, pct_start=optim.pct_start,
        anneal_strategy="cos", cycle_momentum=False, div_factor=optim.div_factor,
        final_div_factor=optim.final_div_factor,
    )
    return opt, sched
