"""Sizes 0 and 1 in a dynamic range (docs/zero_one.md).

A dim declared with min 0 or 1 keeps sizes 0 and 1 unless the program truly
depends on them; a dependence is a ConstraintViolationError (named Dim) or a
reported specialization (Dim.AUTO) naming the line, and the runtime guard
refuses the size. torch.export is the oracle for the programs both accept.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ConstraintViolationError, InputMismatchError


def assert_matches_eager(
    model: nn.Module, module: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> None:
    torch.testing.assert_close(module(*inputs), model(*inputs))


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + x[:, :2]


class HeadsAndMask(nn.Module):
    """Transposes, non-contiguous reshapes and an expanded mask reshaped: the
    layout questions ("is this dim 1?") torch's kernels ask along the way."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        heads = x.view(b, t, 2, 4).transpose(1, 2)
        merged = heads.transpose(1, 2).reshape(b, t, -1).contiguous()
        expanded = mask.view(b, 1, 1, t).expand(-1, 2, -1, -1).reshape(b * 2, 1, t)
        return merged.sum(-1) + expanded.float().sum(1).view(b, 2, t).sum(1)


@pytest.mark.parametrize("dim", [gl.Dim("batch"), gl.Dim("batch", min=1, max=64), gl.Dim.AUTO])
def test_sizes_zero_and_one_run_without_a_special_case(dim: object) -> None:
    model = Mlp()
    ep = gl.export(model, (torch.randn(5, 4),), dynamic_shapes={"x": {0: dim}})
    (constraint,) = ep.range_constraints.values()
    assert constraint.lower <= 1
    assert not ep.specializations
    module = ep.module()
    for size in (constraint.lower, 1, 2, 9):
        assert_matches_eager(model, module, (torch.randn(int(size), 4),))


def test_layout_questions_do_not_narrow_the_range() -> None:
    model = HeadsAndMask()
    b, t = gl.Dim("b", min=1, max=16), gl.Dim("t", min=1, max=16)
    x, mask = torch.randn(3, 5, 8), torch.ones(3, 5, dtype=torch.bool)
    ep = gl.export(model, (x, mask), dynamic_shapes={"x": (b, t, None), "mask": (b, t)})
    assert sorted(str(r) for r in ep.range_constraints.values()) == ["[1, 16]", "[1, 16]"]
    module = ep.module()
    for sizes in [(1, 1), (1, 7), (4, 1), (6, 11)]:
        inputs = (torch.randn(*sizes, 8), torch.rand(*sizes) > 0.5)
        assert_matches_eager(model, module, inputs)
    # torch.export agrees that these sizes work (it keeps [1, 16] as well)
    tb, tt = torch.export.Dim("b", min=1, max=16), torch.export.Dim("t", min=1, max=16)
    oracle = torch.export.export(
        model, (x, mask), dynamic_shapes={"x": (tb, tt, None), "mask": (tb, tt)}
    )
    assert sorted(str(r) for r in oracle.range_constraints.values()) == ["VR[1, 16]", "VR[1, 16]"]


class Squeeze(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze(0) * 2  # drops dim 0 only when it is 1: the result's rank depends on it


class BranchOnOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:
            return x * 3
        return x * 2


@pytest.mark.parametrize(
    ("model", "line"), [(Squeeze(), "x.squeeze(0)"), (BranchOnOne(), "if x.shape[0] == 1")]
)
def test_a_program_that_depends_on_size_one_is_a_violation_with_its_line(
    model: nn.Module, line: str
) -> None:
    with pytest.raises(ConstraintViolationError) as info:
        gl.export(model, (torch.randn(3, 4),), dynamic_shapes={"x": {0: gl.Dim("b")}})
    message = str(info.value)
    assert "size 1 not supported" in message
    assert line in message and __file__ in message
    assert info.value.fixes == {"x.size()[0]": gl.Dim("b", min=2)}


@pytest.mark.parametrize("model", [Squeeze(), BranchOnOne()])
def test_with_auto_the_dependence_is_reported_and_guarded(model: nn.Module) -> None:
    ep = gl.export(model, (torch.randn(3, 4),), dynamic_shapes={"x": {0: gl.Dim.AUTO}})
    (report,) = ep.specializations
    assert "size 1 not supported" in str(report) and __file__ in str(report)
    module = ep.module()
    with pytest.raises(InputMismatchError, match=r"x.size\(\)\[0\] != 1"):
        module(torch.randn(1, 4))
    for size in (0, 2, 5):
        x = torch.randn(size, 4)
        assert_matches_eager(model, module, (x,))


def test_an_example_of_size_one_explains_itself() -> None:
    class Add(nn.Module):
        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return x + y

    with pytest.raises(ConstraintViolationError, match="example of size >= 2"):
        gl.export(
            Add(),
            (torch.randn(3, 4), torch.randn(1, 4)),
            dynamic_shapes={"x": {0: gl.Dim("b")}, "y": {0: gl.Dim("c")}},
        )


class FlattenBatchAndSeq(nn.Module):
    """``view`` of a [b*t] tensor asks ``t % (b*t) != 0``, true for b >= 2 and
    false for b == 1; the op checks out at b == 1, so the guard exempts it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        return x.reshape(b * t, w).view(b, t * w).sum(-1)


def test_a_guard_open_for_larger_sizes_exempts_the_sizes_that_check_out() -> None:
    model = FlattenBatchAndSeq()
    ep = gl.export(
        model,
        (torch.randn(3, 5, 4),),
        dynamic_shapes={"x": {0: gl.Dim("b", min=1), 1: gl.Dim("t", min=1)}},
    )
    module = ep.module()
    for sizes in [(1, 1), (1, 5), (5, 1), (4, 6)]:
        assert_matches_eager(model, module, (torch.randn(*sizes, 4),))


def test_decompositions_keep_sizes_zero_and_one() -> None:
    """matmul's and linear's decompositions ask "is the batch 1?" while
    broadcasting; checked on numbers at 0 and 1, they need no guard, so the core
    ATen program keeps Dim("batch")'s whole range (docs/zero_one.md)."""
    from graphlift.examples.tiny_gpt import make_example

    model, (tokens,) = make_example()
    spec = {"tokens": {0: gl.Dim("batch", max=64), 1: gl.Dim("seq", min=2, max=31)}}
    core = gl.export(model, (tokens,), dynamic_shapes=spec).run_decompositions()
    module = core.module()
    for batch, length in [(0, 4), (1, 5), (1, 31), (3, 9)]:
        x = torch.randint(0, model.config.vocab_size, (batch, length))
        with torch.no_grad():
            torch.testing.assert_close(module(x), model(x))


def test_a_fact_undefined_at_size_zero_keeps_its_exemption() -> None:
    """A Linear over (batch, seq, features) with both dims from 0: a meta kernel's fact
    ``s0 % (s0*s1) != 0`` cannot be evaluated at s0 = 0; it used to escape as an
    internal EvaluationError, now the 0/1 exemption is kept (the op was checked there)."""
    model = torch.nn.Linear(16, 8)
    for spec in ({0: gl.Dim.AUTO, 1: gl.Dim.AUTO}, {0: gl.Dim("batch"), 1: gl.Dim("seq")}):
        module = gl.export(model, (torch.randn(2, 5, 16),), dynamic_shapes={"input": spec}).module()
        for shape in ((0, 5, 16), (1, 1, 16), (3, 0, 16), (4, 7, 16)):
            x = torch.randn(shape)
            torch.testing.assert_close(module(x), model(x))


class AddCMul(nn.Module):
    """A ternary pointwise op whose decomposition broadcasts through torch's refs,
    asking ``s == max(1, s)`` of every dim (op_db's addcmul; lerp and baddbmm too)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(x, y, z)


class Lerp(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.lerp(x, y, 0.3)  # z unused


@pytest.mark.parametrize("model", [AddCMul(), Lerp()], ids=["addcmul", "lerp"])
def test_broadcasting_decompositions_keep_every_auto_dim_dynamic(model: nn.Module) -> None:
    """With sizes >= 2 ``max(1, s)`` is ``s``; the size-oblivious answer is checked at
    0 and 1 on numbers like every other, so decomposing adds no guard (torch agrees).
    (Export itself refuses size 1 here, as a reported specialization of ``Dim.AUTO``.)"""
    inputs = tuple(torch.randn(5, 4) for _ in range(3))
    spec = tuple({0: gl.Dim.AUTO, 1: gl.Dim.AUTO} for _ in inputs)
    core = gl.export(model, inputs, dynamic_shapes=spec).run_decompositions()
    assert torch.ops.aten.addcmul.default not in {n.target for n in core.graph.nodes}
    module = core.module()
    for shape in ((2, 9), (5, 4), (7, 3)):
        tensors = tuple(torch.randn(shape) for _ in range(3))
        assert_matches_eager(model, module, tensors)
