"""Batch 1 kept where torch.export keeps it (issue 14, defect 4 and the 0/1 narrowing
around it), side by side with torch.export and compared to eager at batch 0, 1, 2, 5.

Two mechanisms, each checked on what it proves:
- an op's 0/1 assumption is exempted per (symbol, size): an op wrong at ``b == 0``
  (or refusing it, as eager does) no longer takes ``b == 1`` down with it;
- a guard that refuses a declared size 0 or 1 is re-traced at that size, and the
  program is kept for it only when the two graphs compute the same values there
  (``export/small_sizes.py``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.export import Dim

import graphlift as gl

# Each test exports twice (graphlift traces a second time at the refused size) and
# runs torch.export side by side: several seconds each.
pytestmark = pytest.mark.slow


class HeadsReshape(nn.Module):
    """BLOOM's attention: heads split off a fused projection, then ``reshape(b * heads,
    -1, d)`` of a transposed view. At b == 0 the reshape's ``-1`` is ambiguous (eager
    raises), at b == 1 it is a view, at b >= 2 a copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = x.view(b, s, 4, 3, 8)[..., 0, :].transpose(1, 2)
        return q.reshape(b * 4, -1, 8) * 2


def _outcome(fn, x):  # type: ignore[no-untyped-def]
    try:
        return fn(x)
    except Exception as error:  # the outcome compared is the exception type
        return type(error)


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    if isinstance(a, type) or isinstance(b, type):
        return a is b
    torch.testing.assert_close(a, b)
    return True


@pytest.mark.parametrize("spec", ["named", "auto"])
def test_an_op_wrong_only_at_size_zero_keeps_size_one(spec: str) -> None:
    model = HeadsReshape()
    x = torch.randn(2, 7, 96)
    dims = {
        "named": lambda d: {0: d("b"), 1: d("s")},
        "auto": lambda d: {0: d.AUTO, 1: d.AUTO},
    }[spec]
    ours = gl.export(model, (x,), dynamic_shapes=(dims(gl.Dim),))
    theirs = torch.export.export(model, (x,), dynamic_shapes=(dims(Dim),))
    # Only batch 0 (where eager raises) is refused; Dim.AUTO announces it
    assert all("[1, inf]" in s.change for s in ours.specializations)
    side_by_side(model, ours, theirs, [torch.randn(b, 5, 96) for b in (0, 1, 2, 5)])
    # Batch 0 is refused where eager raises (reshape(0, -1) of no elements is ambiguous);
    # a named Dim("b") is not narrowed by it, as torch.export does not narrow it either.
    assert ours.range_constraints["s0"].lower == 1
    assert ours.range_constraints["s1"].lower == 0


def side_by_side(model, ours, theirs, samples) -> None:  # type: ignore[no-untyped-def]
    """Each sample through eager, graphlift's and torch's programs: equal values where
    eager runs; where eager raises, graphlift refuses it before computing (a typed
    InputMismatchError naming the input), and torch's program raises too."""
    for sample in samples:
        eager = _outcome(model, sample)
        got = _outcome(ours.module(), sample)
        if isinstance(eager, type):
            assert got is gl.errors.InputMismatchError, (tuple(sample.shape), got)
        else:
            assert _same(got, eager), tuple(sample.shape)
        assert _same(_outcome(theirs.module(), sample), eager), tuple(sample.shape)


class PositionBranch(nn.Module):
    """transformers' masking_utils: ``position_ids`` of shape [1, s] is expanded to the
    batch only when the batch is not 1, a Python branch on the size. At b == 1 the
    other branch computes the same values (``expand(1, -1)`` is the tensor itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], x.shape[1]
        position_ids = torch.arange(s).unsqueeze(0)
        if b != position_ids.shape[0]:
            position_ids = position_ids.expand(b, -1)
        return (
            x * position_ids.unsqueeze(-1).float() + position_ids.sum(-1, keepdim=True)[..., None]
        )


class BranchThatMatters(nn.Module):
    """The same branch, but the two sides compute different values at b == 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return x * 2
        return x * 3


@pytest.mark.parametrize("spec", ["named", "auto"])
def test_a_branch_on_batch_1_that_computes_the_same_values_keeps_batch_1(spec: str) -> None:
    model = PositionBranch()
    x = torch.randn(3, 6, 4)
    dims = {
        "named": lambda d: {0: d("batch"), 1: d("seq", min=2)},
        "auto": lambda d: {0: d.AUTO, 1: d.AUTO},
    }[spec]
    ours = gl.export(model, (x,), dynamic_shapes=(dims(gl.Dim),))
    theirs = torch.export.export(model, (x,), dynamic_shapes=(dims(Dim),))
    assert not ours.specializations
    assert ours.range_constraints["s0"].lower == 0
    # The branch's guard b != 1 admits b == 1 now (it became a tautology and was dropped)
    assert not ours._shape_env.refused_at("s0", 1)
    samples = [torch.randn(b, s, 4) for b, s in ((0, 3), (1, 2), (1, 7), (2, 5), (5, 9))]
    side_by_side(model, ours, theirs, samples)


def test_a_branch_on_batch_1_that_changes_the_values_still_refuses_batch_1() -> None:
    model = BranchThatMatters()
    with pytest.raises(gl.errors.ConstraintViolationError, match="size 1 not supported"):
        gl.export(model, (torch.randn(3, 4),), dynamic_shapes=({0: gl.Dim("b")},))
    ep = gl.export(model, (torch.randn(3, 4),), dynamic_shapes=({0: gl.Dim.AUTO},))
    (report,) = ep.specializations
    assert "size 1 not supported" in report.change
    module = ep.module()
    with pytest.raises(gl.errors.InputMismatchError):
        module(torch.randn(1, 4))
    for batch in (0, 2, 5):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(module(x), model(x))


@pytest.mark.parametrize("spec", ["named", "auto"])
def test_gpt2_with_input_ids_only_keeps_batch_1_like_torch_export(spec: str) -> None:
    """issue 14 defect 4 on a real decoder: GPT-2 (small config, random weights)
    called with ``input_ids`` only, batch from its declared minimum."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    model = GPT2Model(config).eval()

    class Tokens(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids).last_hidden_state

    wrapped = Tokens().eval()
    ids = torch.randint(0, 100, (2, 7))
    dims = {
        "named": lambda d: {0: d("batch", min=1, max=16), 1: d("seq", min=2, max=64)},
        "auto": lambda d: {0: d.AUTO, 1: d.AUTO},
    }[spec]
    with torch.no_grad():
        ours = gl.export(wrapped, (ids,), dynamic_shapes=(dims(gl.Dim),))
        theirs = torch.export.export(wrapped, (ids,), dynamic_shapes=(dims(Dim),))
        assert ours.range_constraints["s0"].lower <= 1
        samples = [torch.randint(0, 100, (b, s)) for b, s in ((1, 5), (2, 7), (5, 9))]
        side_by_side(wrapped, ours, theirs, samples)
