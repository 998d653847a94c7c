"""Opt-in `torch.compile` of the model's hot paths (`compile_hot_paths`).

Compiled kernels fuse the element-wise work between the matrix products (norms, GELU, residual adds, the bilinear
weights); the numbers change within float rounding, and the first calls for each new input shape pay the
compilation, so this is never the default. The state dict is unchanged (modules are compiled in place).
"""
from __future__ import annotations

import torch

from .base import CoTracker3Base


def compile_hot_paths(model: CoTracker3Base, **compile_kwargs) -> CoTracker3Base:
    """Compile the encoder, the correlation MLP and the update transformer of `model` in place (once; later calls
    are no-ops). compile_kwargs go to torch.compile (e.g. mode="max-autotune", dynamic=True). Returns the model."""
    if getattr(model, "_hot_paths_compiled", False):
        return model
    model.fnet.compile(**compile_kwargs)
    model.corr_mlp.compile(**compile_kwargs)
    former = model.updateformer
    former.forward_embedded = torch.compile(former.forward_embedded, **compile_kwargs)
    model._hot_paths_compiled = True
    return model
