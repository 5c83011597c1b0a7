"""ShapesCollection, AdditionalInputs and refine_dynamic_shapes, with torch.export
as the oracle: the same specs come out, the same programs export, the
refine loop ends in a program that agrees with eager on in-range shapes."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.export as te
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.export.dynamic_shapes import refine_dynamic_shapes_from_suggested_fixes

import graphlift as gl
from graphlift.errors import (
    ConstraintViolationError,
    DynamicShapesError,
    InputMismatchError,
    ShapeSpecError,
)
from graphlift.export.capture import placeholder_names
from graphlift.export.program.signature import InputKind
from graphlift.export.spec.dynamic_shapes import match_dynamic_shapes
from graphlift.pytree import tree_leaves


class Nested(nn.Module):
    def forward(self, x, others, scale=1.0, mask=None):
        y, z = others
        out = x + y.sum(0, keepdim=True) + z[: x.shape[0]]
        return out * scale if mask is None else out * mask


class Branchy(nn.Module):
    def forward(self, x, y):
        if x.shape[0] > 4:
            return x + y
        return x - y


class Add(nn.Module):
    """``input`` is a builtin's name; its placeholder is ``input`` all the same, as in torch."""

    def forward(self, input, other):
        return input + other


class Independent(nn.Module):
    def forward(self, x, y):
        return x * 2, y.sum(0)


class Unrolled(nn.Module):
    def forward(self, x):
        return sum(x[i] for i in range(x.shape[0]))  # range() needs a concrete size


class Pairs(nn.Module):
    def forward(self, x, pair):
        a, b = pair["a"], pair["b"]
        if b.shape[0] < 3:
            return x
        return x[: b.shape[0]] * a


def _skeleton(spec: Any) -> Any:
    """A spec with graphlift's and torch's Dims written the same way, to compare them."""
    if isinstance(spec, dict):
        return {key: _skeleton(value) for key, value in spec.items()}
    if isinstance(spec, tuple | list):
        return type(spec)(_skeleton(value) for value in spec)
    if isinstance(spec, gl.Dim):
        return ("Dim", spec.name)
    if spec is gl.Dim.DYNAMIC or type(spec).__name__ == "_DimHint":
        return "DYNAMIC"
    if hasattr(spec, "__name__"):  # a torch Dim
        return ("Dim", spec.__name__)
    return spec


def _assert_agrees_with_eager(ep: gl.ExportedProgram, model: nn.Module, inputs: list[Any]) -> None:
    module = ep.module()
    for args in inputs:
        torch.testing.assert_close(module(*args), model(*args))


# --- ShapesCollection -------------------------------------------------------------------


def test_shapes_collection_builds_the_spec_torch_builds() -> None:
    x, y, z, mask = torch.randn(4, 3), torch.randn(5, 3), torch.randn(8, 3), torch.ones(4, 3)
    args, kwargs = (x, [y, z]), {"mask": mask}
    ours, theirs = gl.ShapesCollection(), te.ShapesCollection()
    for sc, dim in ((ours, gl.Dim), (theirs, te.Dim)):
        sc[x] = {0: dim("b", min=2, max=64)}
        sc[z] = (dim("n", min=2, max=64), None)
        sc[y][0] = dim("m", min=2, max=64)  # __getitem__ starts an empty dict shape
        sc[mask] = (dim("b", min=2, max=64), None)
    spec = ours.dynamic_shapes(Nested(), args, kwargs)
    assert spec == {
        "x": {0: gl.Dim("b", min=2, max=64)},
        "others": [{0: gl.Dim("m", min=2, max=64)}, (gl.Dim("n", min=2, max=64), None)],
        "mask": (gl.Dim("b", min=2, max=64), None),
    }
    torch_spec = theirs.dynamic_shapes(Nested(), args, kwargs)
    assert _skeleton(spec) == {k: v for k, v in _skeleton(torch_spec).items() if k != "scale"}
    # export takes the collection itself, as torch.export does
    ep = gl.export(Nested(), args, kwargs, dynamic_shapes=ours)
    assert len(ep.range_constraints) == 3
    torch_ep = te.export(Nested(), args, kwargs, dynamic_shapes=theirs)
    for rows, extra in ((2, 3), (6, 2), (9, 12)):
        inputs = (torch.randn(rows, 3), [torch.randn(extra, 3), torch.randn(rows + 4, 3)])
        ones = {"mask": torch.ones(rows, 3)}
        torch.testing.assert_close(ep.module()(*inputs, **ones), torch_ep.module()(*inputs, **ones))


def test_shapes_collection_finds_a_tensor_used_twice_and_leaves_others_static() -> None:
    x = torch.randn(6, 3)
    sc = gl.ShapesCollection()
    sc[x] = {0: gl.Dim("b")}
    assert len(sc) == 1
    assert sc.dynamic_shapes(Branchy(), (x, x)) == {"x": {0: gl.Dim("b")}, "y": {0: gl.Dim("b")}}
    assert sc.dynamic_shapes(Branchy(), (x, torch.randn(6, 3)))["y"] is None


def test_shapes_collection_errors_are_typed() -> None:
    x = torch.randn(6, 3)
    sc = gl.ShapesCollection()
    with pytest.raises(ShapeSpecError, match="gives shapes to tensors"):
        sc[3] = {0: gl.Dim("b")}  # type: ignore[index]
    sc[x] = {0: gl.Dim("b")}
    sc[x] = {0: gl.Dim("b")}  # the same shape again is fine
    with pytest.raises(ShapeSpecError, match="already has shape"):
        sc[x] = {0: gl.Dim("c")}
    # a copy of the registered tensor is not the registered tensor (torch: ValueError)
    with pytest.raises(ShapeSpecError, match="not among the inputs") as info:
        sc.dynamic_shapes(Branchy(), (x.clone(), x.clone()))
    assert isinstance(info.value, ValueError) and isinstance(info.value, DynamicShapesError)
    theirs = te.ShapesCollection()
    theirs[x] = {0: te.Dim("b")}
    with pytest.raises(ValueError):
        theirs.dynamic_shapes(Branchy(), (x.clone(), x.clone()))
    with pytest.raises(ShapeSpecError):
        gl.export(Branchy(), (x.clone(), x.clone()), dynamic_shapes=sc)


class Variadic(nn.Module):
    def forward(self, *args):
        return args


class Summed(nn.Module):
    def forward(self, *tensors):
        return sum(t.sum(0) for t in tensors)


@pytest.mark.parametrize("count", [1, 2])
def test_torch_packed_spec_of_varargs_matches_one_tensor_too(count: int) -> None:
    """torch.export spells ``forward(*tensors)``'s spec as one entry for all of them,
    also when there is a single tensor: ``(({0: AUTO, 1: AUTO},),)``."""
    tensors = tuple(torch.randn(4, 3) for _ in range(count))
    for dims in (gl.Dim, te.Dim):
        packed = (tuple({0: dims.AUTO, 1: dims.AUTO} for _ in tensors),)
        ep = gl.export(Summed(), tensors, dynamic_shapes=packed)
        bigger = tuple(torch.randn(7, 5) for _ in tensors)
        torch.testing.assert_close(ep.module()(*bigger), Summed()(*bigger))
    reference = te.export(Summed(), tensors, dynamic_shapes=packed)
    torch.testing.assert_close(reference.module()(*bigger), Summed()(*bigger))


_leaves = st.one_of(
    st.integers(1, 4).map(lambda rows: torch.zeros(rows, 2)), st.none(), st.integers(0, 3)
)
_inputs = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(args=st.lists(_inputs, max_size=3).map(tuple), data=st.data())
def test_shapes_collection_puts_each_shape_where_match_finds_it(args: Any, data: Any) -> None:
    """Wherever a registered tensor sits, match_dynamic_shapes reads its shape
    back at that flat position; refining with no fixes changes nothing."""
    tensors = [leaf for leaf in tree_leaves(args) if isinstance(leaf, torch.Tensor)]
    chosen = data.draw(st.lists(st.booleans(), min_size=len(tensors), max_size=len(tensors)))
    sc = gl.ShapesCollection()
    for index, (tensor, pick) in enumerate(zip(tensors, chosen)):
        if pick:
            sc[tensor] = {0: gl.Dim(f"d{index}")}
    spec = sc.dynamic_shapes(Variadic(), args)
    matched = match_dynamic_shapes(Variadic().forward, args, {}, spec)
    expected = [
        sc[leaf] if isinstance(leaf, torch.Tensor) and id(leaf) in sc._shapes else {}
        for leaf in tree_leaves(args)
    ]
    assert matched == expected
    no_fixes = ConstraintViolationError("none", fixes={})
    assert gl.refine_dynamic_shapes(spec, no_fixes, Variadic(), args) == spec


# --- AdditionalInputs -------------------------------------------------------------------


def test_additional_inputs_infer_the_spec_torch_infers() -> None:
    args = (torch.randn(6, 3), [torch.randn(5, 3), torch.randn(10, 3)])
    ours, theirs = gl.AdditionalInputs(), te.AdditionalInputs()
    extra = [
        ((torch.randn(8, 3), [torch.randn(2, 3), torch.randn(12, 3)]), {"scale": 1.0}),
        ((torch.randn(3, 3), [torch.randn(5, 3), torch.randn(7, 3)]), {"scale": 1.0}),
    ]
    for ai in (ours, theirs):
        for a, kw in extra:
            ai.add(a, kw)
    spec = ours.dynamic_shapes(Nested(), args, {"scale": 1.0})
    assert spec == {
        "x": (gl.Dim.DYNAMIC, None),
        "others": [(gl.Dim.DYNAMIC, None), (gl.Dim.DYNAMIC, None)],
        "scale": None,  # equal in every example; a differing float is an error
    }
    assert _skeleton(spec) == _skeleton(theirs.dynamic_shapes(Nested(), args, {"scale": 1.0}))
    # keyword order does not matter
    reordered = gl.AdditionalInputs()
    reordered.add((torch.randn(2, 3), [torch.randn(5, 3)]), {"mask": None, "scale": 1.0})
    spec = reordered.dynamic_shapes(Nested(), (args[0], [args[1][0]]), {"scale": 1.0, "mask": None})
    assert spec == {
        "x": (gl.Dim.DYNAMIC, None),
        "others": [(None, None)],
        "scale": None,
        "mask": None,
    }


def test_export_with_additional_inputs_accepts_each_of_them() -> None:
    ai = gl.AdditionalInputs()
    ai.add((torch.randn(8, 3), torch.randn(2, 5)))
    ai.add((torch.randn(13, 3), torch.randn(2, 9)))
    args = (torch.randn(6, 3), torch.randn(2, 4))
    ep = gl.export(Independent(), args, dynamic_shapes=ai)  # verifies the added inputs itself
    torch_ep = te.export(Independent(), args, dynamic_shapes=_torch_additional(ai))
    assert len(ep.range_constraints) == len(torch_ep.range_constraints) == 2
    ai.verify(ep)
    for rows, cols in ((2, 2), (9, 30)):  # size 1: a size-1 branch narrows Dim.DYNAMIC
        inputs = (torch.randn(rows, 3), torch.randn(2, cols))
        torch.testing.assert_close(ep.module()(*inputs), torch_ep.module()(*inputs))
    other = gl.AdditionalInputs()
    other.add((torch.randn(8, 4), torch.randn(2, 4)))  # dim 1 of x is static in ep
    with pytest.raises(InputMismatchError):
        other.verify(ep)


def test_additional_inputs_with_narrowed_dynamic_dims_match_torch() -> None:
    """Dim.DYNAMIC may be narrowed ([5, inf]) and tied (x, y), as in torch;
    only becoming static is refused. The narrowing is reported, and verify()
    refuses an added input set outside the narrowed range."""
    ai = gl.AdditionalInputs()
    ai.add((torch.randn(8, 3), torch.randn(8, 3)))
    args = (torch.randn(6, 3), torch.randn(6, 3))
    ep = gl.export(Branchy(), args, dynamic_shapes=ai)
    torch_ep = te.export(Branchy(), args, dynamic_shapes=_torch_additional(ai))
    assert [r.lower for r in ep.range_constraints.values()] == [5]
    assert [r.lower for r in torch_ep.range_constraints.values()] == [5]
    assert any("range [5, inf]" in str(s) for s in ep.specializations)
    ai.add((torch.randn(3, 3), torch.randn(3, 3)))  # the other branch: both verifies refuse it
    with pytest.raises(InputMismatchError):
        gl.export(Branchy(), args, dynamic_shapes=ai)
    with pytest.raises(RuntimeError, match=">= 5"):
        te.export(Branchy(), args, dynamic_shapes=_torch_additional(ai))


def _torch_additional(ai: gl.AdditionalInputs) -> te.AdditionalInputs:
    theirs = te.AdditionalInputs()
    for args, kwargs in ai._examples:
        theirs.add(args, kwargs)
    return theirs


def _only_symbol(ep: Any) -> Any:
    (symbol,) = ep.range_constraints
    return symbol


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (((torch.randn(6, 3),), None), "not structured like"),
        (((torch.randn(6, 3), torch.randn(6, 3)), {"z": 1}), "not structured like"),
        (((torch.randn(6), torch.randn(6, 3)), None), "different ranks"),
        (((torch.randn(6, 3), 2.0), None), "different types"),
    ],
    ids=["missing-arg", "extra-kwarg", "rank", "type"],
)
def test_additional_inputs_that_do_not_match_raise_typed_errors(extra: Any, message: str) -> None:
    ai = gl.AdditionalInputs()
    ai.add(*extra)
    with pytest.raises(ShapeSpecError, match=message):
        ai.dynamic_shapes(Branchy(), (torch.randn(6, 3), torch.randn(6, 3)))


def test_additional_inputs_with_differing_ints_or_strings() -> None:
    """A differing int becomes Dim.DYNAMIC (a dynamic int input), as torch makes it;
    a differing string cannot be dynamic."""

    class Scaled(nn.Module):
        def forward(self, x, n, mode="a"):
            return x * n

    ai = gl.AdditionalInputs()
    ai.add((torch.randn(2, 3), 3))
    assert ai.dynamic_shapes(Scaled(), (torch.randn(2, 3), 2)) == {
        "x": (None, None),
        "n": gl.Dim.DYNAMIC,
    }
    ep = gl.export(Scaled(), (torch.randn(2, 3), 2), dynamic_shapes=ai)
    x = torch.randn(2, 3)
    torch.testing.assert_close(ep.module()(x, 5), x * 5)
    ai = gl.AdditionalInputs()
    ai.add((torch.randn(2, 3), 2), {"mode": "b"})
    with pytest.raises(ShapeSpecError, match="cannot be dynamic"):
        ai.dynamic_shapes(Scaled(), (torch.randn(2, 3), 2), {"mode": "a"})
    with pytest.raises(ShapeSpecError, match="must be a tuple"):
        ai.add([torch.randn(2, 3)])  # type: ignore[arg-type]


# --- refine_dynamic_shapes ----------------------------------------------------------


def _refine_until_export(model: nn.Module, args: tuple[Any, ...], spec: Any) -> tuple[Any, Any]:
    """Export, refining the spec from each ConstraintViolationError; (program, final spec)."""
    for _ in range(3):
        try:
            return gl.export(model, args, dynamic_shapes=spec), spec
        except ConstraintViolationError as error:
            spec = gl.refine_dynamic_shapes(spec, error, model, args)
    raise AssertionError(f"still failing after refining to {spec}")


def test_refine_narrows_a_named_dim_like_torch() -> None:
    args = (torch.randn(6, 3), torch.randn(6, 3))
    spec = {"x": {0: gl.Dim("b", min=2, max=16)}, "y": (gl.Dim("b", min=2, max=16), None)}
    ep, refined = _refine_until_export(Branchy(), args, spec)
    assert refined == {
        "x": {0: gl.Dim("b", min=5, max=16)},
        "y": (gl.Dim("b", min=5, max=16), None),
    }
    b = te.Dim("b", min=2, max=16)
    with pytest.raises(RuntimeError) as info:
        te.export(Branchy(), args, dynamic_shapes={"x": {0: b}, "y": {0: b}})
    torch_refined = refine_dynamic_shapes_from_suggested_fixes(
        info.value.msg, {"x": {0: b}, "y": {0: b}}
    )
    assert (torch_refined["x"][0].min, torch_refined["x"][0].max) == (5, 16)
    _assert_agrees_with_eager(
        ep, Branchy(), [(torch.randn(n, 3), torch.randn(n, 3)) for n in (5, 11, 16)]
    )
    with pytest.raises(InputMismatchError):
        ep.module()(torch.randn(4, 3), torch.randn(4, 3))


def test_refine_ties_dims_the_program_made_equal() -> None:
    """The fix and the spec both name ``input`` as the forward does."""
    args = (torch.randn(6, 3), torch.randn(6, 3))
    for spec, tied in [
        # narrowed to min=2 as well: with two separate dims, broadcasting x + y guards
        # a != 1 (and size 0 fails against the other's example); the fix is conservative
        ({"input": {0: gl.Dim("a")}, "other": {0: gl.Dim("c")}}, gl.Dim("a", min=2)),
        # by position; Dim.DYNAMIC may be tied (as in torch), so nothing needs refining
        (({0: gl.Dim.DYNAMIC}, {0: gl.Dim.DYNAMIC}), gl.Dim.DYNAMIC),
    ]:
        ep, refined = _refine_until_export(Add(), args, spec)
        first, second = (
            (refined["input"], refined["other"]) if isinstance(refined, dict) else refined
        )
        assert first == second == {0: tied}
        _assert_agrees_with_eager(
            ep, Add(), [(torch.randn(n, 3), torch.randn(n, 3)) for n in (2, 7)]
        )
        with pytest.raises(InputMismatchError):
            ep.module()(torch.randn(7, 3), torch.randn(8, 3))
    a, c = te.Dim("a"), te.Dim("c")
    with pytest.raises(RuntimeError) as info:
        te.export(Add(), args, dynamic_shapes={"input": {0: a}, "other": {0: c}})
    torch_refined = refine_dynamic_shapes_from_suggested_fixes(
        info.value.msg, {"input": {0: a}, "other": {0: c}}
    )
    assert _skeleton(torch_refined) == {"input": {0: ("Dim", "a")}, "other": {0: ("Dim", "a")}}


def test_refine_makes_specialized_dims_static() -> None:
    args = (torch.randn(3, 2),)
    for spec, static in [
        ({"x": {0: gl.Dim("n", max=8)}}, {"x": {}}),
        (((gl.Dim.DYNAMIC, None),), ((None, None),)),
    ]:
        ep, refined = _refine_until_export(Unrolled(), args, spec)
        assert refined == static
        _assert_agrees_with_eager(ep, Unrolled(), [args])
        with pytest.raises(InputMismatchError):
            ep.module()(torch.randn(4, 2))


def test_refine_follows_nested_inputs_and_derived_dims() -> None:
    d = gl.Dim("d", max=20)
    args = (torch.randn(8, 3), {"a": torch.randn(4, 3), "b": torch.randn(4, 3)})
    spec = {"x": {0: 2 * d}, "pair": {"b": {0: d}, "a": (d, None)}}
    ep, refined = _refine_until_export(Pairs(), args, spec)
    narrowed = refined["pair"]["b"][0]
    assert narrowed.min == 3 and refined["x"] == {0: 2 * narrowed}
    assert list(refined["pair"]) == ["b", "a"]  # the spec's own key order is kept
    _assert_agrees_with_eager(
        ep,
        Pairs(),
        [(torch.randn(2 * n, 3), {"a": torch.randn(n, 3), "b": torch.randn(n, 3)}) for n in (3, 9)],
    )


def test_refine_refuses_fixes_for_other_inputs() -> None:
    args = (torch.randn(6, 3), torch.randn(6, 3))
    with pytest.raises(ConstraintViolationError) as info:
        gl.export(
            Add(), args, dynamic_shapes={"input": {0: gl.Dim("a")}, "other": {0: gl.Dim("c")}}
        )
    with pytest.raises(ShapeSpecError, match="not a dynamic dim"):
        gl.refine_dynamic_shapes({"x": None, "y": None}, info.value, Branchy(), args)


def test_placeholder_names_are_the_names_export_gives() -> None:
    class Clashing(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(3))

        def forward(self, input, weight, pair):
            return input * self.weight + weight + pair[0] + pair[1]

    args = (torch.randn(3), torch.randn(3), (torch.randn(3), torch.randn(3)))
    ep = gl.export(Clashing(), args)
    exported = [
        s.arg.name for s in ep.graph_signature.input_specs if s.kind is InputKind.USER_INPUT
    ]
    assert (
        placeholder_names(Clashing(), args, {})
        == exported
        == ["input", "weight", "pair_0", "pair_1"]
    )
