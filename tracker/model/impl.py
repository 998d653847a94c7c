"""Which implementation of the model's hot paths runs: the default (fast) one or the plain reference one.

The reference implementation is the original eager code (materialised softmax attention, `grid_sample` patches and
an einsum correlation in (b, s, n) row order, the token tensor rearranged between time and space attention). It is
kept so that benchmarks can measure the default path against it in the same process and tests can compare the two;
both reproduce the official fixtures. Switch with

    with reference_implementation():
        model(video, queries)

The switch is a context variable (per thread / task), read once at the start of each forward pass.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_REFERENCE: ContextVar[bool] = ContextVar("trackforge_reference_implementation", default=False)


def reference_enabled() -> bool:
    """True inside `reference_implementation()`."""
    return _REFERENCE.get()


@contextlib.contextmanager
def reference_implementation(enabled: bool = True) -> Iterator[None]:
    """Run the plain reference implementation (enabled=True) or the default one (False) inside the block."""
    token = _REFERENCE.set(enabled)
    try:
        yield
    finally:
        _REFERENCE.reset(token)
