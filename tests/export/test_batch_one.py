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
    except Exception as error:  # noqa: BLE001 - the outcome compared is the exception type
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
    assert not ours.specializations
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
