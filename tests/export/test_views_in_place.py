"""In-place calls whose functional form is another view op or op to decompose.

- ``squeeze_``/``unsqueeze_``/``transpose_``/``t_``/``as_strided_`` change a
  tensor's sizes, not its values: on a tensor the traced code made they are
  recorded as the view op, and the tensor's own sizes change as in eager
  (torch's quantile and stft decompositions call them on fresh tensors);
- the functional form of an in-place op met inside a decomposition is
  decomposed again (``clamp_min_`` in margin_ranking_loss's composite kernel
  becomes ``clamp_min`` and then core ops), as torch's functionalization runs
  before its table.
Each program is compared with eager on several shapes, before and after
``run_decompositions()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import MutationError
from tests.export.op_modules import Call, auto_spec

AUTO = gl.Dim.AUTO


def reshaped_in_place(x: torch.Tensor) -> torch.Tensor:
    y = x * 2
    y.squeeze_(1)
    y.transpose_(0, 1)
    y.unsqueeze_(0)
    return y + 1


def through_a_view(x: torch.Tensor) -> torch.Tensor:
    y = x + 0
    v = y[0]
    v.t_()  # a view: one more step of its view chain
    y.mul_(3)  # v sees the update through the new chain
    return v + 1


def twice_transposed_then_written(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    y.transpose_(0, 1)
    y.add_(1)
    return y.t_()


def ranking(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn.functional.margin_ranking_loss(a, b, torch.ones_like(a), margin=0.3, reduction="none")


CASES: dict[str, tuple[Callable[..., Any], list[tuple[tuple[int, ...], ...]]]] = {
    "reshaped_in_place": (reshaped_in_place, [((3, 1, 4),), ((5, 1, 2),), ((2, 1, 7),)]),
    "through_a_view": (through_a_view, [((2, 3, 4),), ((3, 5, 2),), ((4, 2, 6),)]),
    "twice_transposed": (twice_transposed_then_written, [((3, 4),), ((5, 2),), ((6, 7),)]),
    "quantile": (lambda x: torch.quantile(x, 0.25, dim=1), [((3, 5),), ((4, 7),), ((2, 9),)]),
    "stft": (
        lambda x: torch.stft(x, 8, window=torch.ones(8), return_complex=True),
        [((1, 24),), ((1, 31),), ((1, 40),)],
    ),
    "margin_ranking_loss": (ranking, [((5,), (5,)), ((7,), (7,)), ((3,), (3,))]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_eager_before_and_after_decomposition(name: str) -> None:
    function, shapes = CASES[name]
    model = Call(function)
    torch.manual_seed(0)
    first = tuple(torch.randn(*shape) for shape in shapes[0])
    ep = gl.export(model, first, dynamic_shapes=auto_spec(shapes[0], AUTO))
    core = ep.run_decompositions()
    for sizes in shapes:
        inputs = tuple(torch.randn(*shape) for shape in sizes)
        expected = model(*(t.clone() for t in inputs))
        for program in (ep, core):
            torch.testing.assert_close(program.module()(*inputs), expected)


def test_earlier_nodes_keep_their_sizes() -> None:
    """The tensor's sizes change in place: nodes recorded before keep the old ones."""
    ep = gl.export(Call(reshaped_in_place), (torch.randn(3, 1, 4),))
    sizes = {n.name: list(n.meta["val"].shape) for n in ep.graph.nodes if n.op != "output"}
    assert sizes == {
        "tensors_0": [3, 1, 4], "mul": [3, 1, 4], "squeeze": [3, 4], "transpose": [4, 3],
        "unsqueeze": [1, 4, 3], "add": [1, 4, 3],
    }  # fmt: skip


def test_clamp_min_from_a_composite_kernel_is_decomposed_to_core() -> None:
    core = gl.export(Call(ranking), (torch.randn(5), torch.randn(5))).run_decompositions()
    targets = {str(n.target) for n in core.graph.nodes if n.op == "call_function"}
    assert not {"aten.clamp_min.default", "aten.clamp_min_.default"} & targets


def test_a_viewed_tensor_changing_sizes_in_place_is_refused() -> None:
    def viewed(x: torch.Tensor) -> torch.Tensor:
        y = x + 0
        v = y[0]
        y.unsqueeze_(0)  # v's view chain starts from y's old sizes
        return v + y.sum()

    with pytest.raises(MutationError, match="a tensor that has views"):
        gl.export(Call(viewed), (torch.randn(2, 3),))


def test_a_parameter_changing_sizes_in_place_is_refused() -> None:
    class Squeeze(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("table", torch.ones(1, 4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.table.squeeze_(0)
            return x + self.table

    with pytest.raises(MutationError, match="sizes or strides of the input 'b_table'"):
        gl.export(Squeeze(), (torch.randn(4),))
