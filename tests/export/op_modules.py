"""A single function as a module, and Dim.AUTO on every dim: the shape of op-level tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class Call(nn.Module):
    """``forward(*tensors)`` calls ``function`` on them."""

    def __init__(self, function: Callable[..., Any]) -> None:
        super().__init__()
        self.function = function

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.function(*tensors)


def auto_spec(shapes: tuple[tuple[int, ...], ...], auto: Any) -> tuple[Any, ...]:
    """``auto`` (graphlift's or torch's Dim.AUTO) on every dim of each tensor of ``forward(*tensors)``."""
    return (tuple({axis: auto for axis in range(len(shape))} for shape in shapes),)
