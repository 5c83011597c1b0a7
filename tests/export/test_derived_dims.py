"""Derived dims whose root is on no input (``{2: 32 * h}``, ``h`` used nowhere
else): the root is a *phantom* symbol read back from the size, as torch.export
allows. Sizes must be exactly ``scale*h + offset`` with ``h`` in range, checked
by ``module()`` before anything else; torch.export is the oracle for ranges."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import ConstraintViolationError, DynamicShapesError, InputMismatchError
from graphlift.symbolic import ValueRange


class Patches(nn.Module):
    """Cuts the last dim into patches of 32: only sizes divisible by 32 work."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, 32)).sum(-1) * x.shape[-1]


class Pairs(nn.Module):
    """``y`` has 2n + 1 rows, ``x`` n + 2: ``y[:-1]`` pairs up into ``x[2:]``."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pairs = y[:-1].unflatten(0, (-1, 2)).sum(1)
        return pairs + x[2:]


class TwoImages(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.unflatten(1, (-1, 8)).mean(2) + b.unflatten(1, (-1, 4)).mean(2)


def _refused(module: nn.Module, *args: torch.Tensor) -> str:
    with pytest.raises(InputMismatchError) as info:
        module(*args)
    return str(info.value)


def test_phantom_root_on_one_input_runs_every_multiple_and_refuses_the_rest() -> None:
    h = gl.Dim("h", min=1, max=4)
    ep = gl.export(Patches(), (torch.randn(2, 64),), dynamic_shapes={"x": {1: 32 * h}})
    # the root, then the derived size, as torch.export lists them
    assert ep.range_constraints == {"s0": ValueRange(1, 4), "32*s0": ValueRange(32, 128)}
    checks = ep.module().input_checks
    assert "x.size()[1] != 32*(x.size()[1] // 32)" in checks
    module = ep.module()
    for size in (32, 96, 128):
        x = torch.randn(2, size)
        torch.testing.assert_close(module(x), Patches()(x))
    for size in (33, 0, 160, 48):
        message = _refused(module, torch.randn(2, size))
        assert "'x'" in message and "32*k at dim 1" in message and "[1, 4]" in message


def test_phantom_root_with_offset_shared_by_two_inputs() -> None:
    n = gl.Dim("n", min=1, max=8)
    # y's rows are 2n + 1 and x's are n + 2: n itself is on no input
    spec = {"x": {0: n + 2}, "y": {0: 2 * n + 1}}
    ep = gl.export(Pairs(), (torch.randn(5, 4), torch.randn(7, 4)), dynamic_shapes=spec)
    module = ep.module()
    checks = module.input_checks
    assert "(x.size()[0] - 2) < 1 or (x.size()[0] - 2) > 8" in checks  # n is read from x
    assert "y.size()[0] != 2*(x.size()[0] - 2) + 1" in checks
    for n_ in (1, 5, 8):
        x, y = torch.randn(n_ + 2, 4), torch.randn(2 * n_ + 1, 4)
        torch.testing.assert_close(module(x, y), Pairs()(x, y))
    _refused(module, torch.randn(5, 4), torch.randn(8, 4))  # y is not 2n + 1
    _refused(module, torch.randn(6, 4), torch.randn(7, 4))  # x is not n + 2
    _refused(module, torch.randn(11, 4), torch.randn(19, 4))  # n = 9 is outside [1, 8]


def test_two_phantom_roots_on_two_inputs_read_back_from_the_first_use() -> None:
    k = gl.Dim("k", min=1, max=6)
    spec = {"a": {1: 8 * k}, "b": {1: 4 * k}}
    ep = gl.export(TwoImages(), (torch.randn(2, 16), torch.randn(2, 8)), dynamic_shapes=spec)
    checks = ep.module().input_checks
    assert "(a.size()[1] // 8)" in checks and "b.size()[1] != 4*(a.size()[1] // 8)" in checks
    module = ep.module()
    for width in (1, 3, 6):
        a, b = torch.randn(2, 8 * width), torch.randn(2, 4 * width)
        torch.testing.assert_close(module(a, b), TwoImages()(a, b))
    assert "'b'" in _refused(module, torch.randn(2, 24), torch.randn(2, 8))
    assert "'a'" in _refused(module, torch.randn(2, 20), torch.randn(2, 10))


def test_a_phantom_root_computed_in_the_graph_reads_the_size() -> None:
    class Repeat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0] // 3)  # the root itself flows into the graph

    h = gl.Dim("h", min=1, max=10)
    ep = gl.export(Repeat(), (torch.randn(7),), dynamic_shapes={"x": {0: 3 * h + 1}})
    assert "((x.size()[0] - 1) // 3)" in ep.module().input_checks
    for size in (4, 13, 31):
        assert ep.module()(torch.randn(size)).shape == (size // 3,)
    message = _refused(ep.module(), torch.randn(12))
    assert "size 3*k + 1 at dim 0" in message


@pytest.mark.parametrize(
    ("example", "fragment"),
    [(33, r"is not 32\*h for an integer h"), (160, "gives h = 5, outside the range")],
)
def test_an_example_not_of_the_form_is_a_typed_error(example: int, fragment: str) -> None:
    h = gl.Dim("h", min=1, max=4)
    with pytest.raises(DynamicShapesError, match=fragment) as info:
        gl.export(Patches(), (torch.randn(2, example),), dynamic_shapes={"x": {1: 32 * h}})
    assert "x.size()[1]" in str(info.value)
    assert isinstance(info.value, RuntimeError)  # as torch.export's UserError


def test_a_narrowed_phantom_root_is_a_violation_that_refine_fixes() -> None:
    class NeedsTwoPatches(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.shape[1] // 32 < 2:
                raise ValueError("too small")
            return Patches()(x)

    h = gl.Dim("h", min=1, max=4)
    spec = {"x": {1: 32 * h}}
    args = (torch.randn(2, 64),)
    with pytest.raises(ConstraintViolationError) as info:
        gl.export(NeedsTwoPatches(), args, dynamic_shapes=spec)
    assert "(x.size()[1] // 32)" in str(info.value)
    assert info.value.fixes == {"(x.size()[1] // 32)": gl.Dim("h", min=2, max=4)}
    refined = gl.refine_dynamic_shapes(spec, info.value, NeedsTwoPatches(), args)
    assert refined == {"x": {1: 32 * gl.Dim("h", min=2, max=4)}}
    module = gl.export(NeedsTwoPatches(), args, dynamic_shapes=refined).module()
    x = torch.randn(2, 128)
    torch.testing.assert_close(module(x), Patches()(x))
    _refused(module, torch.randn(2, 32))


def test_a_phantom_root_made_static_is_a_violation_that_refine_makes_static() -> None:
    class FixedPatches(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.reshape(2, 2, 32)

    h = gl.Dim("h", min=1, max=4)
    spec = {"x": {1: 32 * h}}
    args = (torch.randn(2, 64),)
    with pytest.raises(ConstraintViolationError) as info:
        gl.export(FixedPatches(), args, dynamic_shapes=spec)
    refined = gl.refine_dynamic_shapes(spec, info.value, FixedPatches(), args)
    assert refined == {"x": {}}
    gl.export(FixedPatches(), args, dynamic_shapes=refined)


def test_torch_export_agrees_on_the_phantom_root_range_and_its_source() -> None:
    # With min=1 torch.export refuses h = 1 (its 0/1 specialization, guard
    # ``x.size()[1] // 32 != 1``); graphlift keeps h = 1 (checked against eager above).
    h, th = gl.Dim("h", min=2, max=4), torch.export.Dim("h", min=2, max=4)
    args = (torch.randn(2, 64),)
    ours = gl.export(Patches(), args, dynamic_shapes={"x": {1: 32 * h}})
    theirs = torch.export.export(Patches(), args, dynamic_shapes={"x": {1: 32 * th}})
    (root,) = [r for s, r in theirs.range_constraints.items() if s.is_symbol]
    our_roots = [r for s, r in ours.range_constraints.items() if s.isidentifier()]
    assert our_roots == [ValueRange(int(root.lower), int(root.upper))]
    for size in (64, 96, 128):
        x = torch.randn(2, size)
        torch.testing.assert_close(ours.module()(x), theirs.module()(x))
    for size in (32, 100, 160):
        _refused(ours.module(), torch.randn(2, size))
        with pytest.raises(Exception):  # noqa: B017 (torch raises AssertionError or RuntimeError)
            theirs.module()(torch.randn(2, size))


class AddBlocks(nn.Module):
    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(1, (-1, 32)).sum(-1) + y


@pytest.mark.parametrize("derived", [True, False])
def test_an_auto_dim_tied_to_a_named_root_is_a_specialization_not_a_violation(
    derived: bool,
) -> None:
    # y's Dim.AUTO symbol is made first and survives the unification y == h, but it
    # is y that got tied (to h), not h that stopped being free: as torch.export sees it.
    h = gl.Dim("h", min=2, max=4)
    spec = {"y": {1: gl.Dim.AUTO}, "x": {1: 32 * h if derived else h}}
    width = 96 if derived else 3
    model = AddBlocks() if derived else Add()
    ep = gl.export(model, (torch.randn(2, 3), torch.randn(2, width)), dynamic_shapes=spec)
    assert [s.source for s in ep.specializations] == ["y.size()[1]"]
    assert [r for s, r in ep.range_constraints.items() if s.isidentifier()] == [ValueRange(2, 4)]
    module = ep.module()
    for k in (2, 4):
        y, x = torch.randn(2, k), torch.randn(2, 32 * k if derived else k)
        torch.testing.assert_close(module(y, x), model(y, x))
    _refused(module, torch.randn(2, 3), torch.randn(2, 64 if derived else 2))
    th = torch.export.Dim("h", min=2, max=4)
    their_spec = {"y": {1: torch.export.Dim.AUTO}, "x": {1: 32 * th if derived else th}}
    theirs = torch.export.export(
        model, (torch.randn(2, 3), torch.randn(2, width)), dynamic_shapes=their_spec
    )
    their_ranges = {(int(r.lower), int(r.upper)) for s, r in theirs.range_constraints.items()
                    if s.is_symbol}  # fmt: skip
    assert their_ranges == {(2, 4)}  # torch keeps both symbols, with this one range


class Add(nn.Module):
    def forward(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x + y
