"""The model's linear layer: oneDNN on CPU where it applies, F.linear elsewhere, the same values and gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tracker.model import reference_implementation
from tracker.model.linear import MIN_ROWS, Linear, linear, onednn_linear_applies


@pytest.mark.parametrize("shape", [(512, 384), (2, 300, 24, 96), (4, 300, 384)])
@pytest.mark.parametrize("contiguous", [True, False])
def test_linear_equals_f_linear_at_inference(shape, contiguous):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    if not contiguous:  # tokens seen through a transposed view, as attention hands them over
        x = x.transpose(0, 1).contiguous().transpose(0, 1)
    w = torch.randn(160, shape[-1]) / shape[-1] ** 0.5
    b = torch.randn(160)
    with torch.no_grad():
        assert onednn_linear_applies(x, w)
        out, ref = linear(x, w, b), F.linear(x, w, b)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_training_takes_f_linear_with_its_gradients():
    """Where autograd records the call, `linear` is F.linear (its backward is the faster one on CPU)."""
    torch.manual_seed(0)
    x = torch.randn(2, 300, 96)
    w = (torch.randn(160, 96) / 96 ** 0.5).requires_grad_()
    b = torch.randn(160, requires_grad=True)
    assert not onednn_linear_applies(x, w)
    with torch.no_grad():
        assert onednn_linear_applies(x, w)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, ref = linear(xa, w, b), F.linear(xb, w, b)
    g = torch.randn_like(ref)
    for got, want in zip(torch.autograd.grad(out, (xa, w, b), g), torch.autograd.grad(ref, (xb, w, b), g)):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_where_onednn_does_not_apply():
    w = torch.randn(8, 16)
    assert not onednn_linear_applies(torch.randn(MIN_ROWS - 1, 16), w)  # too few rows to pay for the reorder
    assert not onednn_linear_applies(torch.randn(1024, 16, dtype=torch.float64), w.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not onednn_linear_applies(torch.randn(1024, 16), w)
    with reference_implementation():
        assert not onednn_linear_applies(torch.randn(1024, 16), w)


def test_layer_keeps_nn_linear_parameters():
    layer = Linear(16, 8)
    assert isinstance(layer, torch.nn.Linear) and set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(MIN_ROWS, 16)
    torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
