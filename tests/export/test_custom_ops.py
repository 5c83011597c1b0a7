"""Custom ops from torch.library export through their fake implementations."""

from __future__ import annotations

import torch
from torch import nn

import graphlift as gl


@torch.library.custom_op("graphlift_test::scaled_sum", mutates_args=())
def scaled_sum(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    return (x + y) * scale


@scaled_sum.register_fake
def _(x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("graphlift_test::top_rows", mutates_args=())
def top_rows(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = x.topk(k, dim=0)
    return values, indices


@top_rows.register_fake
def _(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (k, *x.shape[1:])
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.long)


class UsesCustomOps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x, y):
        z = scaled_sum(self.linear(x), y, 0.5)
        values, indices = top_rows(z, 2)
        return values, indices


def test_custom_ops_are_recorded_whole_and_run() -> None:
    model, x, y = UsesCustomOps(), torch.randn(5, 4), torch.randn(5, 4)
    ep = gl.export(model, (x, y))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert "graphlift_test.scaled_sum.default" in targets
    assert "graphlift_test.top_rows.default" in targets
    indices = next(n for n in ep.graph.nodes if n.name == "getitem_1").meta["val"]
    assert indices.dtype == torch.long and tuple(indices.shape) == (2, 4)
    expected = model(x, y)
    actual = ep.module()(x, y)
    torch.testing.assert_close(actual[0], expected[0])
    torch.testing.assert_close(actual[1], expected[1])
