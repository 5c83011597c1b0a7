"""Models with Python ``assert`` statements, kept out of test modules: pytest
rewrites asserts in test files into ``if``/``raise``, which is no longer an
assert statement for the tracer."""

from __future__ import annotations

import torch


def asserted(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    k = n.item()
    assert k < 4, "k must be small"  # a Python assert becomes a runtime assert
    return x + k
