"""The one switch between the model's two implementations: the default (fast) one and the plain reference one.

The reference implementation is the original eager code (materialised softmax attention, `grid_sample` patches and
an einsum correlation in (b, s, n) row order, the token tensor rearranged between time and space attention, plain
`F.linear`, the feature pyramid as a list of pooled maps). It is kept so that benchmarks can measure the default
path against it in the same process and tests can compare the two; both reproduce the official fixtures.

Switch with

    with reference_implementation():        # reference_implementation(False): the default path
        model(video, queries)

How it is read: the switch is a context variable (per thread / asyncio task), and `reference_enabled()` is the only
reader. Every place where the two implementations part calls it at the point of the choice, and nothing else
(no type test on the data, no module attribute) chooses a path:

    tracker.model.base         encode / window_of / support_features / refine: the pyramid's layout and the
                               refinement loop (FeaturePyramid + track blocks, or a list of maps + the reference loop)
    tracker.model.transformer  Attention: scaled_dot_product_attention, or the materialised softmax
    tracker.model.linear       Linear: oneDNN on CPU where it applies, or F.linear
    tracker.predictor          the inference context: malloc's recycled large blocks on CPU (default path only)

The value only changes where a `with` block starts or ends, so it is constant for a whole forward pass: a pyramid
made by `encode` is always refined by the same implementation. (A pyramid kept across a change of the switch is
not supported; the frame-feature cache, which holds level-0 maps common to both, is.)
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_REFERENCE: ContextVar[bool] = ContextVar("trackforge_reference_implementation", default=False)


def reference_enabled() -> bool:
    """True inside `reference_implementation()` (the reference path runs), False otherwise (the default path)."""
    return _REFERENCE.get()


@contextlib.contextmanager
def reference_implementation(enabled: bool = True) -> Iterator[None]:
    """Run the plain reference implementation (enabled=True) or the default one (False) inside the block."""
    token = _REFERENCE.set(enabled)
    try:
        yield
    finally:
        _REFERENCE.reset(token)
