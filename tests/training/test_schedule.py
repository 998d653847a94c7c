"""AdamW + OneCycle of the Kubric recipe against the official learning-rate curve (ref_misc fixture)."""
from __future__ import annotations

import numpy as np
import torch

from lightning_modules.config import OptimConfig
from lightning_modules.schedule import make_optimizer_and_scheduler


def test_onecycle_matches_official_curve(cotracker3_fixtures) -> None:
    from safetensors.numpy import load_file

    ref = load_file(str(cotracker3_fixtures / "ref_misc.safetensors"))["onecycle_kubric_lr_every_500_steps"]
    param = torch.nn.Parameter(torch.zeros(1))
    opt, sched = make_optimizer_and_scheduler([param], OptimConfig(), max_steps=50_000)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["weight_decay"] == 5e-4 and opt.param_groups[0]["betas"] == (0.9, 0.999)
    lrs = []
    for step in range(50_001):  # lr read before optimizer steps 0, 500, ..., 50,000
        if step % 500 == 0:
            lrs.append(opt.param_groups[0]["lr"])
            # no momentum cycling: betas stay fixed
            assert opt.param_groups[0]["betas"] == (0.9, 0.999)
        if step < 50_000:
            opt.step()
            sched.step()
    np.testing.assert_allclose(np.array(lrs), ref, rtol=1e-9, atol=1e-12)


def test_vis_conf_head_learns_at_its_own_scale() -> None:
    """Named parameters: the visibility/confidence head gets lr x vis_conf_lr_scale through the whole OneCycle,
    every other parameter the plain schedule; plain parameters (no names) keep one group."""
    model = torch.nn.Module()
    model.trunk = torch.nn.Linear(4, 4)
    model.vis_conf_head = torch.nn.Linear(4, 2)
    opt, sched = make_optimizer_and_scheduler(model.named_parameters(), OptimConfig(lr=1e-3, vis_conf_lr_scale=30.0),
                                              max_steps=40)
    trunk, head = opt.param_groups
    assert {id(p) for p in head["params"]} == {id(p) for p in model.vis_conf_head.parameters()}
    assert {id(p) for p in trunk["params"]} == {id(p) for p in model.trunk.parameters()}
    for _ in range(40):
        assert np.isclose(head["lr"], 30.0 * trunk["lr"], rtol=1e-9)
        opt.step()
        sched.step()
    assert max(g["max_lr"] for g in opt.param_groups) == 3e-2
    opt, _ = make_optimizer_and_scheduler(model.parameters(), OptimConfig(vis_conf_lr_scale=30.0), max_steps=40)
    assert len(opt.param_groups) == 1 and len(opt.param_groups[0]["params"]) == 4
