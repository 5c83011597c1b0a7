"""Small models that use one capability each (control flow, training-mode
state updates), shared by the tests where capabilities meet:
tests/export/test_integration.py and tests/serialize/test_capabilities.py."""

from __future__ import annotations

import torch
from torch import nn


class CondLinear(nn.Module):
    """``torch.cond`` whose branches close over a parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(
            x.sum() > 0, lambda x: self.lin(x).relu(), lambda x: self.lin(x) * 2, (x,)
        )


class TrainBatchNorm(nn.Module):
    """BatchNorm in training mode (running statistics are buffer mutations), then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(self.bn(x))
