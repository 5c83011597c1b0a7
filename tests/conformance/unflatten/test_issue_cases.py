"""Cases issue #16 names beyond torch's test file, differential against
eager and torch.export.unflatten (``oracle.compare``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.export.runtime.unflatten_module import CallDispatcher
from tests.conformance.unflatten.oracle import assert_same, compare

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch's own pytree


class Counter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = nn.Buffer(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add_(1)
        return x * self.calls


class CalledThrice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.counter = Counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.counter(self.counter(self.counter(x)) + 1)


def test_stateful_submodule_called_several_times() -> None:
    outcome = compare(CalledThrice, ((torch.randn(3),), {}), [((torch.randn(3),), {})] * 2)
    ours = outcome.graphlift
    assert ours.code.count("self.counter(") == 3
    assert float(ours.counter.calls) == 9.0  # three runs of three calls, as eager


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.state = nn.Buffer(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.state.mul_(2)
        return x + self.state


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()
        self.total = nn.Buffer(torch.zeros(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inner.state.add_(x)  # the parent writes its child's buffer between calls
        y = self.inner(x)
        self.total.add_(self.inner.state)
        return self.inner(y) + self.total


class NestedMutations(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.outer = Outer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(x) - self.outer.inner.state


def test_buffer_mutations_across_nested_calls_are_written_back_in_order() -> None:
    runs = [((torch.randn(3),), {}) for _ in range(3)]
    compare(NestedMutations, runs[0], runs[1:])


class Checked(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.sum().to(torch.int64).item()
        torch._check(n >= 0)
        torch._check(n <= 100)
        return torch.zeros(n)


class AssertParent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.checked = Checked()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.checked(x).sum() + x


def test_runtime_asserts_run_inside_the_submodule_that_needs_them() -> None:
    runs = [((torch.tensor([5.0, 6.0]),), {})]
    outcome = compare(AssertParent, ((torch.tensor([2.0, 3.0]),), {}), runs)
    ours = outcome.graphlift
    assert "runtime_assert" in ours.checked.code
    with pytest.raises(gl.errors.RuntimeAssertError):
        ours(torch.tensor([-5.0, 1.0]))
    with pytest.raises(gl.errors.RuntimeAssertError):
        ours.checked(torch.tensor([-5.0, 1.0]))  # the submodule checks on its own too


class Rows(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y[: x.size(0)] * x.size(0)


class SharedSizes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = Rows()
        self.b = Rows()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x, y) + self.b(x, y) + x.size(0)


@pytest.mark.parametrize("preserve", [(), ("a",), ("a", "b")])
def test_symbolic_sizes_shared_across_submodules(preserve: tuple[str, ...]) -> None:
    n, m = gl.Dim("n", min=2, max=16), gl.Dim("m", min=17, max=64)
    tn, tm = torch.export.Dim("n", min=2, max=16), torch.export.Dim("m", min=17, max=64)
    example = ((torch.randn(4), torch.randn(20)), {})
    runs = [((torch.randn(k), torch.randn(k + 20)), {}) for k in (2, 9, 16)]
    outcome = compare(SharedSizes, example, runs, dynamic_shapes=({0: n}, {0: m}),
                      torch_dynamic_shapes=({0: tn}, {0: tm}), preserve=preserve)  # fmt: skip
    ours = outcome.graphlift
    for name in preserve:  # a swapped module sees other sizes than the example's
        setattr(ours, name, Rows())
    x, y = torch.randn(7), torch.randn(30)
    assert_same(ours(x, y), SharedSizes()(x, y))


class Scaled(nn.Module):
    def forward(self, x: torch.Tensor, activation) -> torch.Tensor:
        return activation(x) * 2


class PassesAClosure(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scaled = Scaled()
        self.offset = nn.Buffer(torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaled(x, lambda t: torch.relu(t + self.offset))


def test_a_closure_passed_to_a_submodule() -> None:
    compare(PassesAClosure, ((torch.randn(3),), {}), [((torch.randn(3),), {})])
    with pytest.raises(gl.errors.ExportError, match="'scaled'"):
        gl.export(PassesAClosure(), (torch.randn(3),), preserve_module_call_signature=("scaled",))


class Pair(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.sin(), x.cos()


class UsesFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pair(x)[0] + 1


def test_unused_outputs_of_a_preserved_submodule() -> None:
    outcome = compare(UsesFirst, ((torch.randn(3),), {}), [((torch.randn(3),), {})],
                      preserve=("pair",))  # fmt: skip
    ours = outcome.graphlift
    assert_same(ours.pair(torch.ones(2)), Pair()(torch.ones(2)))  # both outputs still there

    class Swapped(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x.sin(), torch.zeros(1)  # a different unused output is fine

    ours.pair = Swapped()
    x = torch.randn(3)
    assert_same(ours(x), UsesFirst()(x))


class Project(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:  # specializes differently per call
            return self.linear(x).relu()
        return self.linear(x)


class TwoShapes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.project = Project()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.project(x).sum() + self.project(y).sum()


@pytest.mark.parametrize("preserve", [(), ("project",)])
def test_one_module_two_specializations(preserve: tuple[str, ...]) -> None:
    example = ((torch.randn(3, 4), torch.randn(2, 4)), {})
    outcome = compare(TwoShapes, example, [((torch.randn(3, 4), torch.randn(2, 4)), {})],
                      preserve=preserve)  # fmt: skip
    ours = outcome.graphlift
    assert isinstance(ours.project, CallDispatcher)  # the two calls traced different graphs
    assert sorted(ours.state_dict()) == ["project.linear.bias", "project.linear.weight"]
    replacement = Project()
    ours.project = replacement  # one swap replaces every call
    model = TwoShapes()
    model.project = replacement
    x, y = torch.randn(3, 4), torch.randn(2, 4)
    assert_same(ours(x, y), model(x, y))
