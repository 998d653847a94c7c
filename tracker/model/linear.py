"""The model's linear layer: `nn.Linear` with the same parameters, whose default CPU path runs on oneDNN.

Why: PyTorch's CPU `F.linear` calls MKL's sgemm, which on AMD processors takes a slower code path than oneDNN's
kernels (measured on a 2-core AMD EPYC with AVX-512, float32, 8544x384 @ 384x1536: 81 GMAC/s through `F.linear`,
138 GMAC/s through a 1x1 convolution on a channels-last view, which PyTorch hands to oneDNN). Linear layers are
about half of the tracker's CPU time (transformer and correlation MLP), so this is the largest single CPU gain.
Inference only: where autograd records the call (training), the convolution's backward is slower than sgemm's
(measured on a 2-core Intel Xeon: a tiny_cpu training step takes 0.81-0.82 s with F.linear against 0.875 s through
the convolution; on a 2-core AMD EPYC a cpu_hour step 2.49 s against 2.50 s: no gain either; docs/training.md
"Training speed on CPU").

The convolution computes the same sums in another order: outputs agree with `F.linear` to float32 rounding
(~1e-6 relative), inside the fixture tolerances. Views only: a (M, K) input is seen as a (1, K, M, 1) channels-last
image and the (1, O, M, 1) channels-last output as (M, O), so nothing is copied. Used only where it pays and is
exact: float32 CPU tensors outside autocast, with enough rows to amortise the weight reorder; never in the
reference implementation (`tracker.model.reference_implementation()`), which keeps plain `F.linear`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .implementation import reference_enabled

# Below this many rows the weight reorder of a oneDNN call costs more than sgemm loses (measured: equal near 64).
MIN_ROWS = 256


def onednn_linear_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True where `linear` takes the oneDNN path for input x (..., K) and weight (O, K)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and x.numel() >= MIN_ROWS * x.shape[-1]
        and torch.backends.mkldnn.is_available()
        and not reference_enabled()
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear(x, weight, bias): x (..., K), weight (O, K), bias (O,) -> (..., O); oneDNN on CPU (see module)."""
    if not onednn_linear_applies(x, weight):
        return F.linear(x, weight, bias)
    lead, k = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, k)  # a view for the contiguous tokens the model passes
    image = rows.view(1, -1, 1, k).permute(0, 3, 1, 2)  # (1, K, M, 1), channels-last strides
    out = F.conv2d(image, weight[:, :, None, None], bias)  # (1, O, M, 1), channels-last like its input
    return out.permute(0, 2, 3, 1).reshape(*lead, weight.shape[0])


class Linear(nn.Linear):
    """nn.Linear (same parameters, names and initialisation) computed by `linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)
