"""Slices at data-dependent bounds, and ``tensor_split`` at a tensor of indices (issue 14).

torch.export exports ``x[k:]`` and ``x[a:b]`` with ``k = n.item()``, and
``torch.tensor_split(x, indices)`` (op_db's ``tensor_split``), without a
``torch._check``: where such a bound lands in ``[0, size]`` is data-dependent (a
negative one counts from the end, a large one clamps), so the slice's length is
a fresh symbol and, for an open start, so is its storage offset. graphlift
refused each with ``DataDependentError: could not decide u0 <= -1``. Every case
here runs index values of every kind (negative, reversed, out of range, empty)
against eager and torch.export's program, and through decomposition and
save/load.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
import torch.export as te
from torch import nn

import graphlift as gl
from graphlift.errors import (
    ConstraintViolationError,
    DataDependentError,
    ExportError,
    InputMismatchError,
)


def outputs_equal(got: Any, expected: Any) -> None:
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def saved_and_loaded(ep: gl.ExportedProgram) -> gl.ExportedProgram:
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    buffer.seek(0)
    return gl.load(buffer)


def programs(ep: gl.ExportedProgram) -> list[gl.ExportedProgram]:
    """The exported program, its decomposition, and both saved and loaded."""
    core = ep.run_decompositions()
    return [ep, core, saved_and_loaded(ep), saved_and_loaded(core)]


# --- slices whose start or end is an .item() ------------------------------------------------


class FromItem(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return x[n.item() :] * 2


class BetweenItems(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        a, b = n.tolist()
        return x[:, a:b] + 1


class SteppedFromNegatedItem(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return x[-n.item() :: 2].sum(0)


class OffsetOfItemSlice(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> tuple[torch.Tensor, int]:
        part = x[n.item() :]
        return part.clone(), part.storage_offset()  # the fresh offset, read back at run time


SLICE_CASES = [
    (FromItem, (6, 3), [(2,), (-2,), (0,), (6,), (9,), (-9,)]),
    (BetweenItems, (3, 7), [(1, 5), (-5, 5), (5, 1), (-10, 20), (3, -1), (0, 0)]),
    (SteppedFromNegatedItem, (7, 2), [(3,), (-3,), (0,), (7,), (20,), (-20,)]),
    (OffsetOfItemSlice, (6, 3), [(2,), (-2,), (7,), (-7,)]),
]


@pytest.mark.parametrize("model_class, shape, values", SLICE_CASES)
def test_slices_at_item_bounds_run_like_eager_and_torch_export(
    model_class: type[nn.Module], shape: tuple[int, ...], values: list[tuple[int, ...]]
) -> None:
    model = model_class()
    example = (torch.randn(shape), torch.tensor(values[0]).squeeze())
    ep = gl.export(model, example)
    torch_module = te.export(model, example).module()
    for value in values:
        inputs = (torch.randn(shape), torch.tensor(value).squeeze())
        expected = model(*inputs)
        outputs_equal(torch_module(*inputs), expected)
        for program in programs(ep):
            outputs_equal(program.module()(*inputs), expected)


def test_a_slice_from_an_item_has_a_fresh_length_and_offset() -> None:
    """Nothing is assumed about the start: the length and the offset are new unbacked
    symbols (torch's ``slice`` fake kernel makes the same), the latter read back with
    ``sym_storage_offset`` where the program uses it."""
    ep = gl.export(OffsetOfItemSlice(), (torch.randn(6, 3), torch.tensor(2)))
    assert not [n for n in ep.graph.nodes if "assert" in str(n.target)]  # nothing to check
    assert [n for n in ep.graph.nodes if n.target is torch.ops.aten.sym_storage_offset.default]
    assert len(ep.range_constraints) == 3  # the start, the length and the offset


# --- tensor_split at a tensor of indices (op_db's tensor_split) ------------------------------


class SplitAt(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.tensor_split(x, indices, self.dim)


INDICES = [[1, 5], [-5, 5], [5, 1], [0, 0], [-10, 20], [3, -1], [7, 7], [-1, -1]]


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "auto"])
def test_tensor_split_at_tensor_indices_runs_like_eager_and_torch_export(
    dim: int, dynamic: bool
) -> None:
    model = SplitAt(dim)
    example = (torch.randn(7, 7, 2), torch.tensor([2, 5]))
    spec, torch_spec = None, None
    if dynamic:  # the op sweep's spec: Dim.AUTO on every dim of every input
        spec = ({0: gl.Dim.AUTO, 1: gl.Dim.AUTO, 2: gl.Dim.AUTO}, {0: gl.Dim.AUTO})
        torch_spec = ({0: te.Dim.AUTO, 1: te.Dim.AUTO, 2: te.Dim.AUTO}, {0: te.Dim.AUTO})
    ep = gl.export(model, example, dynamic_shapes=spec)
    torch_module = te.export(model, example, dynamic_shapes=torch_spec).module()
    shapes = [(7, 7, 2), (9, 5, 3), (3, 11, 2)] if dynamic else [(7, 7, 2)]
    modules = [program.module() for program in programs(ep)]
    for shape in shapes:
        for indices in INDICES:
            inputs = (torch.randn(shape), torch.tensor(indices))
            expected = model(*inputs)
            outputs_equal(torch_module(*inputs), expected)
            for module in modules:
                outputs_equal(module(*inputs), expected)


def test_the_index_count_is_specialized_and_announced_as_in_torch_export() -> None:
    """The op returns one tensor per index plus one: their number is the program's
    structure. With ``Dim.AUTO`` the count becomes static and is announced; another
    count is refused before computing (torch.export: "Guard failed: ... == 2")."""
    spec = ({0: gl.Dim.AUTO, 1: gl.Dim.AUTO}, {0: gl.Dim.AUTO})
    ep = gl.export(SplitAt(0), (torch.randn(7, 2), torch.tensor([2, 5])), dynamic_shapes=spec)
    (specialization,) = ep.specializations
    assert specialization.source == "indices.size()[0]" and specialization.change == "static: 2"
    assert __file__ in specialization.where
    with pytest.raises(InputMismatchError, match="indices"):
        ep.module()(torch.randn(7, 2), torch.tensor([1, 2, 3]))
    with pytest.raises(ConstraintViolationError, match="static: 2"):  # torch: UserError
        gl.export(
            SplitAt(0),
            (torch.randn(7, 2), torch.tensor([2, 5])),
            dynamic_shapes=(None, {0: gl.Dim("count")}),
        )


class SplitThenWrite(nn.Module):
    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        parts = torch.tensor_split(x, indices)
        parts[1].mul_(10)  # a view of x: eager changes x
        return x


class SplitThenUseLengths(nn.Module):
    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> list[torch.Tensor]:
        parts = torch.tensor_split(x, indices)
        length = parts[1].shape[0]  # a data-dependent size in [0, len(x)]
        return [part.sum(0) for part in parts] + [x[:length] + torch.ones(length, 1)]


@pytest.mark.parametrize("model_class", [SplitThenWrite, SplitThenUseLengths])
def test_tensor_split_pieces_are_views_with_data_dependent_lengths(
    model_class: type[nn.Module],
) -> None:
    model = model_class()
    example = (torch.randn(7, 2), torch.tensor([2, 5]))
    ep = gl.export(model, example)
    torch_module = te.export(model, example).module()
    for indices in ([2, 5], [-3, 6], [6, 2], [0, 9]):
        inputs = (torch.randn(7, 2), torch.tensor(indices))
        outputs_equal(torch_module(*inputs), model(*inputs))
        for program in programs(ep):
            outputs_equal(program.module()(*inputs), model(*inputs))


def test_tensor_split_at_a_data_dependent_section_count_is_refused_at_the_users_line() -> None:
    """A 0-d tensor is a number of sections: how many tensors the op returns depends
    on data, which no graph can express (torch.export fails too)."""
    model = SplitAt(0)
    with pytest.raises(DataDependentError) as caught:
        gl.export(model, (torch.randn(6, 2), torch.tensor(3)))
    assert isinstance(caught.value, RuntimeError) and __file__ in str(caught.value)
    with pytest.raises(Exception, match="data-dependent"):
        te.export(model, (torch.randn(6, 2), torch.tensor(3)))


def test_tensor_split_at_int32_indices_is_refused_like_eager() -> None:
    model, inputs = SplitAt(0), (torch.randn(6, 2), torch.tensor([1, 4], dtype=torch.int32))
    with pytest.raises(RuntimeError, match="long"):
        model(*inputs)
    with pytest.raises(ExportError, match="tensor_split") as caught:
        gl.export(model, inputs)
    assert isinstance(caught.value, RuntimeError) and __file__ in str(caught.value)


class NarrowAtItem(nn.Module):
    def __init__(self, checked: bool) -> None:
        super().__init__()
        self.checked = checked

    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        k = n.item()
        if self.checked:
            torch._check(k >= 0)
        return x.narrow(0, k, 2) * 1


def test_narrow_at_an_item_says_which_check_records_it() -> None:
    """narrow wraps a negative start with ``sym_ite(k < 0, k + size, k)``, which has no
    graph form yet (torch.export keeps narrow whole): a typed error at the user's line
    naming the ``torch._check`` that decides it; with that check it exports."""
    example = (torch.randn(6, 3), torch.tensor(2))
    with pytest.raises(ExportError, match=r"torch._check\(k >= 0\)") as caught:
        gl.export(NarrowAtItem(checked=False), example)
    assert __file__ in str(caught.value)
    model = NarrowAtItem(checked=True)
    for program in programs(gl.export(model, example)):
        for k in (0, 3, 4):
            inputs = (torch.randn(6, 3), torch.tensor(k))
            outputs_equal(program.module()(*inputs), model(*inputs))
