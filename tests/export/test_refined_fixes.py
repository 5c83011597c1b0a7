"""Suggested fixes (``err.fixes``) for dims a program supports only at some sizes:
a derived dim ``step*k + offset`` whatever the step, a static dim when one size is
left, never a range that leaves out the example (torch.export's suggested fixes are
the oracle where it gives one, test/export/test_export.py::test_suggested_fixes_*).

On today's main a step above 16 fell through to ``Dim(min=max(refused) + 1)``:
for sizes 64, 96, 128 that was ``Dim(min=128)``, which refining applied and the
next export refused (the example, 64, outside the range).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.export as te
from torch import nn
from torch.export.dynamic_shapes import refine_dynamic_shapes_from_suggested_fixes

import graphlift as gl
from graphlift.errors import ConstraintViolationError, InputMismatchError
from tests.export.test_shape_specs import _refine_until_export as refine_until_export


class Rows32(nn.Module):
    """A reshape into rows of 32: the length must be a multiple of 32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0] // 32, 32).sum(1)


class Rows32Long(nn.Module):
    """Also a branch on the length: only the example's length is left."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.view(x.shape[0] // 32, 32)
        return rows.sum(1) if x.shape[0] > 40 else rows.mean(1)


def test_a_step_above_16_is_suggested_as_a_derived_dim_like_torch() -> None:
    args = (torch.randn(64),)
    spec = {"x": {0: gl.Dim("n", min=16, max=128)}}
    with pytest.raises(ConstraintViolationError) as raised:
        gl.export(Rows32(), args, dynamic_shapes=spec)
    (fix,) = raised.value.fixes.values()
    assert (fix.scale, fix.offset, fix.root.min, fix.root.max) == (32, 0, 1, 4)
    n = te.Dim("n", min=16, max=128)
    with pytest.raises(RuntimeError) as theirs:
        te.export(Rows32(), args, dynamic_shapes={"x": {0: n}})
    torch_fix = refine_dynamic_shapes_from_suggested_fixes(
        theirs.value.msg,
        {"x": {0: n}},  # type: ignore[attr-defined]
    )
    allowed = [size for size in range(16, 129) if _accepts(torch_fix["x"][0], size)]
    assert allowed == [32, 64, 96, 128]
    ep, refined = refine_until_export(Rows32(), args, spec)
    assert refined["x"][0].scale == 32
    for size in (32, 96, 128):
        x = torch.randn(size)
        torch.testing.assert_close(ep.module()(x), Rows32()(x))
    with pytest.raises(InputMismatchError):
        ep.module()(torch.randn(80))


def _accepts(dim: Any, size: int) -> bool:
    """Whether torch's (possibly derived) Dim allows ``size``."""
    root = getattr(dim, "root", None)
    if root is None:
        return bool(dim.min <= size <= dim.max)
    value = (size - dim.fn(0)) / (dim.fn(1) - dim.fn(0))
    return value == int(value) and root.min <= value <= root.max


def test_one_size_left_in_a_range_tried_whole_is_suggested_static() -> None:
    args = (torch.randn(64),)
    spec = {"x": {0: gl.Dim("n", min=16, max=90)}}
    with pytest.raises(ConstraintViolationError) as raised:
        gl.export(Rows32Long(), args, dynamic_shapes=spec)
    assert raised.value.fixes == {"x.size()[0]": None}
    ep, refined = refine_until_export(Rows32Long(), args, spec)
    assert refined == {"x": {}}
    torch.testing.assert_close(ep.module()(args[0]), Rows32Long()(args[0]))


@pytest.mark.slow
def test_swin_with_free_height_and_width_exports_after_one_refinement() -> None:
    """torch.export (411 s here) suggests ``height = 4*_height``, which the next
    export still refuses; graphlift's fix, ``32*height_32`` in [2, 4], exports."""
    from tests.zoo.transformers_models import make_swin

    torch.manual_seed(0)
    model = make_swin().eval()
    args = (torch.randn(2, 3, 64, 64),)
    free = {
        0: gl.Dim("batch", min=1, max=16),
        2: gl.Dim("height", min=16, max=128),
        3: gl.Dim("width", min=16, max=128),
    }
    with pytest.raises(ConstraintViolationError) as raised:
        gl.export(model, args, dynamic_shapes={"pixel_values": free})
    fixes = raised.value.fixes
    assert {source: (fix.scale, fix.root.min, fix.root.max) for source, fix in fixes.items()} == {
        "pixel_values.size()[2]": (32, 2, 4),
        "pixel_values.size()[3]": (32, 2, 4),
    }
    ep, _ = refine_until_export(model, args, {"pixel_values": free})
    with torch.no_grad():
        for batch, height, width in [(1, 64, 64), (2, 64, 128), (4, 128, 128)]:
            x = torch.randn(batch, 3, height, width)
            torch.testing.assert_close(ep.module()(x), model(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(InputMismatchError):  # Swin's min(height, width): checked at run time
        ep.module()(torch.randn(1, 3, 96, 64))
