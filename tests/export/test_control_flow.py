"""Control-flow operators captured as subgraphs: torch.cond (both branches
taken on different inputs), map, while_loop and scan, each against eager on
several inputs; bodies are real submodules printed and run by module().
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch._higher_order_ops import map as hop_map
from torch._higher_order_ops import scan, while_loop

import graphlift as gl
from graphlift.errors import TraceError
from graphlift.trace import control_flow


def close(actual: Any, expected: Any) -> None:
    torch.testing.assert_close(actual, expected)


class CondModel(torch.nn.Module):
    """Branches close over a parameter and a buffer and return two tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)
        self.register_buffer("shift", torch.full((4,), 0.5))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        def positive(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.linear(a) + self.shift, b * 2

        def negative(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return a - self.shift, b.cos()

        return torch.cond(x.sum() > 0, positive, negative, (x, y))


def test_cond_takes_both_branches_and_matches_eager() -> None:
    model = CondModel()
    x, y = torch.randn(3, 4), torch.randn(2, 4)
    ep = gl.export(model, (x, y))
    module = ep.module()
    taken = set()
    for sign in (1.0, -1.0, 1.0, -1.0):
        xs = x.abs() * sign
        taken.add(bool(xs.sum() > 0))
        close(module(xs, y), model(xs, y))
    assert taken == {True, False}
    # the branches are submodules of the program, called by graphlift's cond
    assert isinstance(ep.graph_module.true_graph_0, gl.GraphModule)
    assert isinstance(ep.graph_module.false_graph_0, gl.GraphModule)
    (call,) = [n for n in ep.graph.nodes if n.target is control_flow.cond]
    operands = call.args[3]
    assert [n.name for n in operands] == ["x", "y", "p_linear_weight", "p_linear_bias", "b_shift"]
    assert "true_graph_0" in str(ep) and "control_flow.cond" in str(ep)
    assert "true_graph_0:" in str(ep) and "aten.cos" in str(ep)  # bodies are printed too
    assert "aten.linear" in str(ep.graph_module.true_graph_0.graph)


def test_cond_on_a_symbolic_predicate_with_dynamic_shapes() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cond(x.shape[0] > 4, lambda a: a * 2, lambda a: a + 100, (x,))

    model = Model()
    batch = gl.Dim("batch", min=2, max=32)
    ep = gl.export(model, (torch.randn(6, 3),), dynamic_shapes=({0: batch},))
    for n in (2, 5, 9):
        x = torch.randn(n, 3)
        close(ep.module()(x), model(x))


def test_cond_output_with_data_dependent_size() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cond(
                x.sum() > 0, lambda a: a[a > 0], lambda a: torch.nonzero(a < 0)[:, 0].float(), (x,)
            )

    model = Model()
    ep = gl.export(model, (torch.randn(8),))
    (node,) = [n for n in ep.graph.nodes if n.target is control_flow.cond]
    assert str(node.meta["val"][0].shape[0]).startswith("u")
    for x in (torch.randn(8), -torch.rand(8), torch.rand(8)):
        close(ep.module()(x), model(x))


def test_map_over_leading_dim_with_extra_args() -> None:
    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4))

        def forward(self, xs: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
            return hop_map(lambda row, s: (row * self.weight).sum() * s, xs, scale)

    model = Model()
    ep = gl.export(model, (torch.randn(5, 4), torch.tensor(2.0)))
    assert hasattr(ep.graph_module, "body_graph_0")
    for xs in (torch.randn(5, 4), torch.randn(5, 4)):
        close(ep.module()(xs, torch.tensor(3.0)), model(xs, torch.tensor(3.0)))


def test_while_loop_runs_a_data_dependent_number_of_steps() -> None:
    class Model(torch.nn.Module):
        def forward(self, limit: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            start = torch.zeros((), dtype=torch.long)
            return while_loop(lambda i, a: i < limit, lambda i, a: (i + 1, a * 2 + 1), (start, x))

    model = Model()
    ep = gl.export(model, (torch.tensor(3), torch.randn(2)))
    for limit in (0, 1, 5):
        args = (torch.tensor(limit), torch.randn(2))
        close(ep.module()(*args), model(*args))


def test_scan_carries_state_and_stacks_outputs() -> None:
    class Model(torch.nn.Module):
        def forward(self, xs: torch.Tensor, h: torch.Tensor) -> Any:
            def step(carry: Any, x: torch.Tensor) -> Any:
                total, product = carry
                return (total + x, product * x), (total * x).sum(-1)

            return scan(step, (h, h.clone()), xs)

    model = Model()
    ep = gl.export(model, (torch.randn(3, 4), torch.randn(4)))
    for xs in (torch.randn(3, 4), torch.randn(3, 4)):
        h = torch.randn(4)
        close(ep.module()(xs, h), model(xs, h))


def test_nested_cond_inside_map() -> None:
    class Model(torch.nn.Module):
        def forward(self, xs: torch.Tensor) -> torch.Tensor:
            def body(row: torch.Tensor) -> torch.Tensor:
                return torch.cond(row.sum() > 0, lambda r: r * 10, lambda r: r - 10, (row,))

            return hop_map(body, xs)

    model = Model()
    ep = gl.export(model, (torch.randn(6, 3),))
    for xs in (torch.randn(6, 3), torch.randn(6, 3)):
        close(ep.module()(xs), model(xs))


def test_cond_branches_with_different_ranks_are_refused() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cond(x.sum() > 0, lambda a: a, lambda a: a.sum(), (x,))

    with pytest.raises(TraceError, match="different dtype or rank"):
        gl.export(Model(), (torch.randn(3),))


def test_eager_torch_cond_still_works_after_export() -> None:
    """Export must not leave torch.compile state behind that breaks eager cond."""
    model = CondModel()
    x, y = torch.randn(3, 4), torch.randn(2, 4)
    gl.export(model, (x, y))
    close(model(x, y)[1], y * 2 if x.sum() > 0 else y.cos())


def test_runtime_assert_inside_a_branch_is_typed() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
            def checked(a: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
                value = k.item()
                torch._check(value < 10)
                return a * value

            return torch.cond(x.sum() > 0, checked, lambda a, k: a - 1, (x, n))

    model = Model()
    ep = gl.export(model, (torch.ones(3), torch.tensor(2)))
    assert "_assert_scalar" in str(ep.graph_module.true_graph_0.graph)
    module = ep.module()
    close(module(torch.ones(3), torch.tensor(4)), torch.full((3,), 4.0))
    # the check belongs to the branch: the other branch runs with any n
    # (eager torch.cond cannot run this: it traces both branches on the values)
    close(module(-torch.ones(3), torch.tensor(50)), torch.full((3,), -2.0))
    with pytest.raises(gl.errors.RuntimeAssertError):
        module(torch.ones(3), torch.tensor(50))


def test_map_and_scan_over_a_dynamic_leading_dim() -> None:
    class Model(torch.nn.Module):
        def forward(self, xs: torch.Tensor) -> Any:
            rows = hop_map(lambda row: row.softmax(-1) * row.shape[0], xs)
            carry, ys = scan(lambda c, x: (c + x, c * x), torch.zeros(xs.shape[1]), xs)
            return rows, carry, ys

    model = Model()
    steps = gl.Dim("steps", min=2, max=16)
    ep = gl.export(model, (torch.randn(5, 3),), dynamic_shapes=({0: steps},))
    for n in (2, 7, 16):
        xs = torch.randn(n, 3)
        close(ep.module()(xs), model(xs))


def test_a_body_mutating_an_outer_tensor_is_refused() -> None:
    class Model(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            total = x * 1

            def body(a: torch.Tensor) -> torch.Tensor:
                total.add_(a)
                return a + 1

            return torch.cond(x.sum() > 0, body, lambda a: a - 1, (x,)) + total

    with pytest.raises(TraceError, match="control-flow body"):
        gl.export(Model(), (torch.randn(3),))
