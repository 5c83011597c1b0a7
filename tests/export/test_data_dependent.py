"""Data-dependent values and sizes: each op against eager on several inputs,
runtime asserts that fire on violating data, and the DataDependentError a
Python branch on an undecidable value raises.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import graphlift as gl
from graphlift.errors import DataDependentError, GraphliftError, RuntimeAssertError
from tests.export.assert_models import asserted


class Fn(torch.nn.Module):
    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def check(fn: Callable[..., Any], *inputs: tuple[Any, ...], dynamic_shapes: Any = None) -> Any:
    """Export on the first inputs; module() equals eager on every input tuple."""
    model = Fn(fn)
    ep = gl.export(model, inputs[0], dynamic_shapes=dynamic_shapes)
    module = ep.module()
    for args in inputs:
        torch.testing.assert_close(module(*args), model(*args), equal_nan=True)
    return ep


def vec(*values: float) -> torch.Tensor:
    return torch.tensor(values)


def clip_negative(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y[y < 0] = 0  # index_put_ with a boolean mask
    return y


X = [(vec(1.0, -2.0, 3.0, 0.0, 5.0, -1.0),), (vec(-1.0, -2.0, 0.5, 0.7, -5.0, 2.0),),
     (vec(0.0, 0.0, 0.0, 0.0, 0.0, 0.0),)]  # fmt: skip

CASES: dict[str, tuple[Callable[..., Any], list[tuple[Any, ...]]]] = {
    "nonzero": (lambda x: torch.nonzero(x > 0), X),
    "argwhere": (lambda x: x.view(2, 3).argwhere(), X),
    "mask_assignment": (lambda x: clip_negative(x), X),
    "where_one_arg": (lambda x: torch.where(x > 0)[0] * 2, X),
    "masked_select": (lambda x: torch.masked_select(x, x < 0.5) + 1, X),
    "mask_index": (lambda x: x[x > 0] * 3, X),
    "mask_index_2d": (lambda x: x.view(2, 3)[x.view(2, 3) > 0].sum(), X),
    "unique": (lambda x: torch.unique(x.round(), return_counts=True), X),
    "unique_consecutive": (lambda x: torch.unique_consecutive(x.round()), X),
    "repeat_interleave": (
        lambda r: torch.repeat_interleave(r),
        [(torch.tensor([1, 0, 3]),), (torch.tensor([2, 2, 2]),), (torch.tensor([0, 0, 1]),)],
    ),
    "bincount": (
        lambda r: torch.bincount(r, minlength=2),
        [(torch.tensor([1, 0, 3]),), (torch.tensor([5, 2, 2]),), (torch.tensor([0, 0, 1]),)],
    ),
    "item_float": (lambda x: x * x.max().item(), X),
    "item_int_size": (
        lambda x, n: torch.zeros(n.item()) + x.sum(),
        [(vec(1.0, 2.0), torch.tensor(3)), (vec(0.0, 1.0), torch.tensor(0)),
         (vec(4.0, 1.0), torch.tensor(7))],
    ),
    "tolist": (
        lambda x, n: x * sum(n.tolist()),
        [(vec(1.0, 2.0, 3.0), torch.tensor([2, 1])), (vec(5.0, 6.0, 7.0), torch.tensor([3, -7]))],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_data_dependent_op_matches_eager(name: str) -> None:
    fn, inputs = CASES[name]
    check(fn, *inputs)


def test_sizes_are_unbacked_symbols_with_ranges() -> None:
    ep = check(lambda x: torch.nonzero(x > 0), *X)
    (node,) = [n for n in ep.graph.nodes if "nonzero" in str(n.target)]
    assert str(node.meta["val"].shape[0]).startswith("u")
    (name,) = [k for k in ep.range_constraints if k.startswith("u")]
    bounds = ep.range_constraints[name]
    assert (bounds.lower, bounds.upper) == (0, 6)  # at most numel rows


def test_dynamic_shapes_with_data_dependent_sizes() -> None:
    batch = gl.Dim("batch", min=2, max=64)
    inputs = [(torch.randn(n),) for n in (6, 9, 2)]
    ep = check(lambda x: x[x > 0] * 2, *inputs, dynamic_shapes=({0: batch},))
    assert "s0" in str(ep.range_constraints) or len(ep.range_constraints) >= 2


def clipped(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    k = n.item()
    torch._check(k >= 1)
    torch._check(k <= x.shape[0])
    return x[:k] * 2


@pytest.mark.parametrize("fn, bad", [(clipped, 9), (clipped, 0), (asserted, 4)])
def test_runtime_asserts_fire_on_violating_data(fn: Callable[..., Any], bad: int) -> None:
    x = torch.arange(6.0)
    ep = check(fn, (x, torch.tensor(3)), (x, torch.tensor(1)))
    assert any("_assert_scalar" in str(n.target) for n in ep.graph.nodes)
    with pytest.raises(RuntimeAssertError) as info:
        ep.module()(x, torch.tensor(bad))
    assert isinstance(info.value, GraphliftError) and isinstance(info.value, RuntimeError)
    assert ".py:" in str(info.value)  # names the line of the check


@pytest.mark.filterwarnings("ignore:_check_is_size:FutureWarning")
def test_check_refines_range_for_later_decisions() -> None:
    def fn(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        k = n.item()
        torch._check_is_size(k)
        torch._check(k < x.shape[0])
        return x.new_zeros(k + 1) + x.select(0, k)  # select needs 0 <= k < 6

    ep = check(fn, (torch.arange(6.0), torch.tensor(2)), (torch.arange(6.0), torch.tensor(5)))
    (name,) = [k for k in ep.range_constraints if k.startswith("u")]
    assert ep.range_constraints[name].upper == 5


def branchy(x: torch.Tensor) -> torch.Tensor:
    if x.sum() > 0:  # data-dependent Python branch
        return x + 1
    return x - 1


def test_undecidable_branch_raises_data_dependent_error_naming_line() -> None:
    with pytest.raises(DataDependentError) as info:
        gl.export(Fn(branchy), (torch.randn(4),))
    error = info.value
    assert isinstance(error, RuntimeError)
    assert error.where and "test_data_dependent.py" in error.where
    assert "if x.sum() > 0" in str(error)
    assert "torch._check" in str(error) and "torch.cond" in str(error)
    assert "u0" in error.expr


def test_static_export_without_data_dependence_has_no_shape_env() -> None:
    ep = gl.export(Fn(lambda x: x * 2), (torch.randn(3),))
    assert ep.range_constraints == {} and ep._shape_env is None


@torch.library.custom_op("graphlift_test::positive_values", mutates_args=())
def positive_values(x: torch.Tensor) -> torch.Tensor:
    return x[x > 0].clone()


@positive_values.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    count = torch.library.get_ctx().new_dynamic_size(max=x.numel())
    return x.new_empty((count,))


def test_custom_op_with_a_data_dependent_output_size() -> None:
    ep = check(lambda x: positive_values(x) * 2, *X)
    (node,) = [n for n in ep.graph.nodes if "positive_values" in str(n.target)]
    assert str(node.meta["val"].shape[0]).startswith("u")


class TinyExperts(torch.nn.Module):
    """Mixtral-style routing: nonzero over each expert's mask, a gather of its
    tokens (unbacked count), a matmul, and index_add back."""

    def __init__(self, experts: int = 3, width: int = 4) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(experts, width, width))
        self.experts = experts

    def forward(self, x: torch.Tensor, choice: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        for expert in range(self.experts):
            (tokens,) = torch.where(choice == expert)
            hidden = x[tokens] @ self.weight[expert]
            out.index_add_(0, tokens, hidden)
        return out


def test_expert_routing_exports_without_annotations() -> None:
    model = TinyExperts()
    batch = gl.Dim("batch", min=2, max=64)
    inputs = [(torch.randn(n, 4), torch.randint(0, 3, (n,))) for n in (8, 5, 11)]
    inputs.append((torch.randn(6, 4), torch.zeros(6, dtype=torch.long)))  # experts 1, 2 idle
    ep = gl.export(model, inputs[0], dynamic_shapes=({0: batch}, {0: batch}))
    for args in inputs:
        torch.testing.assert_close(ep.module()(*args), model(*args))
    assert sum(name.startswith("u") for name in ep.range_constraints) == 3


def test_specialize_turns_an_undecidable_branch_into_a_runtime_assert() -> None:
    ep = gl.export(Fn(branchy), (torch.ones(4),), data_dependent="specialize")
    module = ep.module()
    torch.testing.assert_close(module(torch.full((4,), 2.0)), torch.full((4,), 3.0))
    with pytest.raises(RuntimeAssertError, match="test_data_dependent"):
        module(-torch.ones(4))


def test_tensor_from_item_values_and_sizes_records_the_elements() -> None:
    """``torch.tensor`` over ``.item()`` values or symbolic sizes builds the tensor
    element by element (torch.export sends it to ``torch._refs.tensor`` too)
    instead of reading each number as a plain int, a data-dependent guard."""

    class FromItems(torch.nn.Module):
        def forward(self, x, scale, y):
            a, b = x.tolist()
            s = scale.item()
            return torch.tensor([a * 2, b + 1]), torch.tensor([[s, 1.5]]), torch.tensor(y.shape)

    inputs = (torch.tensor([3, 4]), torch.tensor(0.5), torch.randn(3, 2))
    ep = gl.export(FromItems(), inputs, dynamic_shapes=(None, None, {0: gl.Dim("n")}))
    for values, scale, rows in (([3, 4], 0.5, 3), ([7, -1], 2.0, 5), ([0, 0], -3.25, 1)):
        args = (torch.tensor(values), torch.tensor(scale), torch.randn(rows, 2))
        for got, expected in zip(ep.module()(*args), FromItems()(*args)):
            assert got.dtype == expected.dtype and torch.equal(got, expected)
    assert type(torch.tensor).__name__ == "builtin_function_or_method"  # unpatched again


def test_a_float_item_is_returned_as_a_python_float(tmp_path: Any) -> None:
    """``x.item()`` of a float tensor returned by the model: a SymFloat output
    (``SymFloatArgument``), returned as a Python float as eager and torch.export
    return it, also after decomposition and a save/load round trip."""

    class Item(torch.nn.Module):
        def forward(self, x):
            return x.item(), x * 2

    ep = gl.export(Item(), (torch.tensor(1.5),))
    assert type(ep.graph_signature.output_specs[0].arg).__name__ == "SymFloatArgument"
    gl.save(ep, tmp_path / "item.gl")
    programs = (ep, ep.run_decompositions(), gl.load(tmp_path / "item.gl"))
    for value in (1.5, -8.25, 0.0):
        x = torch.tensor(value)
        for program in programs:
            got, doubled = program.module()(x)
            assert type(got) is float and got == value and torch.equal(doubled, x * 2)
