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
