"""Dynamic int inputs: an int argument given a Dim (or Dim.AUTO / Dim.DYNAMIC)
stays symbolic, as in torch.export (which accepts only the hints); the program
takes it as a SymInt input, checks its type and range, and matches eager."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ConstraintViolationError, DynamicShapesError, InputMismatchError
from graphlift.export.program.signature import SymIntArgument


class Window(nn.Module):
    def forward(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, int]:
        return x[:n] * n, n + 1


class Repeat(nn.Module):
    def forward(self, x: torch.Tensor, times: int) -> torch.Tensor:
        return x.repeat(times, 1).view(times, *x.shape).sum(0)


@pytest.mark.parametrize("entry", [gl.Dim("n", min=1, max=8), gl.Dim.DYNAMIC, gl.Dim.AUTO])
def test_an_int_input_stays_symbolic_and_matches_eager(entry: object) -> None:
    model = Window()
    ep = gl.export(model, (torch.randn(10, 3), 4), dynamic_shapes={"x": None, "n": entry})
    n_spec = ep.graph_signature.input_specs[-1]
    assert n_spec.arg == SymIntArgument("n")
    module = ep.module()
    for n in (1, 3, 8):
        x = torch.randn(10, 3)
        out, count = module(x, n)
        expected, expected_count = model(x, n)
        torch.testing.assert_close(out, expected)
        assert count == expected_count
    # torch.export agrees on the signature for the hints it accepts
    if not isinstance(entry, gl.Dim):  # torch.export refuses named Dims on ints
        theirs = torch.export.export(
            model, (torch.randn(10, 3), 4),
            dynamic_shapes={"x": None, "n": torch.export.Dim.DYNAMIC},
        )  # fmt: skip
        assert type(theirs.graph_signature.input_specs[-1].arg).__name__ == "SymIntArgument"


def test_an_int_input_is_checked_for_type_and_range() -> None:
    ep = gl.export(
        Window(),
        (torch.randn(10, 3), 4),
        dynamic_shapes={"x": None, "n": gl.Dim("n", min=1, max=8)},
    )
    module = ep.module()
    with pytest.raises(InputMismatchError, match=r"input 'n'.*a value in \[1, 8\], got 9"):
        module(torch.randn(10, 3), 9)
    with pytest.raises(InputMismatchError, match="an int"):
        module(torch.randn(10, 3), True)


def test_an_int_can_share_a_dim_with_a_tensor_size() -> None:
    model = Repeat()
    d = gl.Dim("d", min=1, max=16)
    ep = gl.export(
        model, (torch.randn(4, 5), 3), dynamic_shapes={"x": {0: gl.Dim("rows")}, "times": d}
    )
    module = ep.module()
    for rows, times in [(1, 1), (4, 3), (7, 16)]:
        x = torch.randn(rows, 5)
        torch.testing.assert_close(module(x, times), model(x, times))


def test_a_branch_on_the_int_is_a_violation_for_a_named_dim() -> None:
    class Branch(nn.Module):
        def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
            return x * 2 if n > 5 else x

    with pytest.raises(ConstraintViolationError, match=r"n > 5|n >= 6|n <= 5"):
        gl.export(
            Branch(),
            (torch.randn(3), 7),
            dynamic_shapes={"x": None, "n": gl.Dim("n", min=0, max=10)},
        )


def test_a_spec_for_a_float_or_a_derived_dim_on_an_int_is_a_typed_error() -> None:
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor, s: float) -> torch.Tensor:
            return x * s

    with pytest.raises(DynamicShapesError, match="not a tensor"):
        gl.export(Scale(), (torch.randn(3), 2.0), dynamic_shapes={"x": None, "s": gl.Dim.DYNAMIC})
    d = gl.Dim("d")
    with pytest.raises(DynamicShapesError, match="not a tensor"):
        gl.export(Window(), (torch.randn(10, 3), 4), dynamic_shapes={"x": {0: d}, "n": 2 * d})


def test_refine_dynamic_shapes_applies_a_fix_for_an_int() -> None:
    class Branch(nn.Module):
        def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
            return x * 2 if n > 5 else x

    spec = {"x": None, "n": gl.Dim("n", min=0, max=10)}
    args = (torch.randn(3), 7)
    with pytest.raises(ConstraintViolationError) as info:
        gl.export(Branch(), args, dynamic_shapes=spec)
    refined = gl.refine_dynamic_shapes(spec, info.value, Branch(), args)
    assert refined == {"x": None, "n": gl.Dim("n", min=6, max=10)}
    module = gl.export(Branch(), args, dynamic_shapes=refined).module()
    x = torch.randn(3)
    torch.testing.assert_close(module(x, 9), Branch()(x, 9))
    with pytest.raises(InputMismatchError):
        module(x, 5)
