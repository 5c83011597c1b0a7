"""A module passed as an input (torch's test_export.py::test_callable_input and the
example of ``torch._export.utils.register_module_as_pytree_input_node``).

Both exporters flatten the module into its parameters and buffers, which become
user inputs. torch checks only the module's class when the program runs; graphlift
also checks its non-tensor state (attributes, ``training``, forward hooks, tied
parameters), because the graph was computed with the example module's: a module
whose state differs is refused with a typed error naming the input and the
attribute, where torch silently computes what the example module computed.
"""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import InputStructureError, PytreeError, SerializationError


class CallsInput(nn.Module):
    def forward(self, x: torch.Tensor, fn: nn.Module) -> torch.Tensor:
        return fn(x) + x


class WithLinear(nn.Module):
    """register_module_as_pytree_input_node's documented example input."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class Tied(nn.Module):
    def __init__(self, tie: bool) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 3), nn.Linear(3, 3)
        if tie:
            self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def both(fn: nn.Module, x: torch.Tensor | None = None) -> tuple[gl.ExportedProgram, object]:
    args = (torch.randn(2, 3) if x is None else x, fn)
    return gl.export(CallsInput(), args), torch.export.export(CallsInput(), args)


def kinds(ep: object) -> list[tuple[str, str]]:
    signature = ep.graph_signature  # type: ignore[attr-defined]
    return [(s.kind.name, s.arg.name) for s in signature.input_specs]


def test_parameters_and_buffers_of_a_module_input_are_user_inputs_as_in_torch() -> None:
    torch.manual_seed(0)
    ep, theirs = both(WithLinear())
    assert kinds(ep) == kinds(theirs) == [
        ("USER_INPUT", "x"), ("USER_INPUT", "fn_linear_weight"), ("USER_INPUT", "fn_linear_bias"),
    ]  # fmt: skip
    other, x = WithLinear(), torch.randn(2, 3)  # same class and state, other weights
    expected = other(x) + x
    torch.testing.assert_close(ep.module()(x, other), expected)
    torch.testing.assert_close(theirs.module()(x, other), expected)


def test_buffers_of_a_module_input_are_read_when_the_program_runs() -> None:
    torch.manual_seed(0)
    norm = nn.BatchNorm1d(3).eval()
    ep, _ = both(norm)
    other = nn.BatchNorm1d(3).eval()
    other.running_mean.fill_(2.0)
    other.running_var.fill_(4.0)
    x = torch.randn(2, 3)
    torch.testing.assert_close(ep.module()(x, other), other(x) + x)


def test_a_module_of_another_class_is_refused_by_both() -> None:
    ep, theirs = both(nn.ReLU())
    x = torch.randn(2, 3)
    with pytest.raises(ValueError):
        theirs.module()(x, nn.Tanh())
    with pytest.raises(InputStructureError, match=r"\[0\]\[1\]"):
        ep.module()(x, nn.Tanh())


@pytest.mark.parametrize(
    ("example", "given", "attribute"),
    [
        (Scale(2.0), Scale(3.0), "factor"),
        (nn.ReLU(), nn.ReLU(inplace=True), "inplace"),
        (nn.Dropout(0.5).eval(), nn.Dropout(0.5).train(), "training"),
        (nn.LeakyReLU(0.1), nn.LeakyReLU(0.2), "negative_slope"),
    ],
    ids=["attribute", "inplace", "training", "slope"],
)
def test_a_module_whose_state_differs_is_refused_where_torch_runs_it(
    example: nn.Module, given: nn.Module, attribute: str
) -> None:
    ep, theirs = both(example)
    x = torch.randn(2, 3)
    theirs.module()(x, given)  # torch compares only the class
    with pytest.raises(InputStructureError, match=rf"\[0\]\[1\].*'{attribute}' was") as caught:
        ep.module()(x, given)
    assert isinstance(caught.value, ValueError)


def test_torch_computes_with_the_example_modules_state_silently() -> None:
    """Why the state is checked: torch's program runs Scale(3.0) as Scale(2.0)."""
    ep, theirs = both(Scale(2.0))
    x = torch.randn(2, 3)
    assert not torch.allclose(theirs.module()(x, Scale(3.0)), Scale(3.0)(x) + x)
    torch.testing.assert_close(ep.module()(x, Scale(2.0)), Scale(2.0)(x) + x)


def test_tied_parameters_and_forward_hooks_are_part_of_the_state() -> None:
    torch.manual_seed(0)
    ep, _ = both(Tied(tie=True))
    x = torch.randn(2, 3)
    again = Tied(tie=True)
    torch.testing.assert_close(ep.module()(x, again), again(x) + x)
    with pytest.raises(InputStructureError, match="tied"):
        ep.module()(x, Tied(tie=False))

    def double(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return output * 2

    hooked = Scale(2.0)
    hooked.register_forward_hook(double)
    ep, _ = both(hooked)
    torch.testing.assert_close(ep.module()(x, hooked), x * 4 + x)
    with pytest.raises(InputStructureError, match="_forward_hooks"):
        ep.module()(x, Scale(2.0))
    rehooked = Scale(2.0)
    rehooked.register_forward_hook(double)  # the same hook function: the same computation
    torch.testing.assert_close(ep.module()(x, rehooked), x * 4 + x)


def test_dynamic_dims_next_to_a_module_input_and_the_example_is_left_alone() -> None:
    torch.manual_seed(0)
    fn = WithLinear()
    before = {name: (t, t.clone()) for name, t in fn.state_dict(keep_vars=True).items()}
    ep = gl.export(
        CallsInput(), (torch.randn(4, 3), fn), dynamic_shapes=({0: gl.Dim("batch")}, None)
    )
    for name, (tensor, value) in before.items():
        assert fn.state_dict(keep_vars=True)[name] is tensor and torch.equal(tensor, value)
    for batch in (1, 2, 7):
        x = torch.randn(batch, 3)
        torch.testing.assert_close(ep.module()(x, fn), fn(x) + x)
    core = ep.run_decompositions()
    x = torch.randn(5, 3)
    torch.testing.assert_close(core.module()(x, fn), fn(x) + x)
    torch.testing.assert_close(gl.unflatten(ep)(x, fn), fn(x) + x)


def test_saving_and_to_fx_refuse_a_module_input_by_name() -> None:
    ep, _ = both(WithLinear())
    with pytest.raises(SerializationError, match="WithLinear passed as an input"):
        gl.save(ep, io.BytesIO())
    with pytest.raises(PytreeError, match="WithLinear passed as an input"):
        gl.interop.to_fx(ep)


def test_programs_without_module_inputs_keep_modules_as_leaves() -> None:
    ep = gl.export(nn.Linear(3, 3), (torch.randn(2, 3),))
    leaves, spec = gl.pytree.tree_flatten((1, nn.ReLU()))
    assert spec.num_leaves == 2 and isinstance(leaves[1], nn.ReLU)
    assert str(ep.call_spec.in_spec) == "((*,), {})"
