"""Strict capture (``export(..., strict=True)``, ``gl.capture``): the same program as
non-strict export, no Python side effect left behind, guarded Python reads.

The oracle is eager PyTorch for values and graphlift's non-strict export for the
graph (strict and non-strict must record the same ATen program, up to nothing:
the printouts are compared whole)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import SideEffectError, StaleGlobalError, StrictCaptureError
from tests.zoo.models import CASES

torch.manual_seed(0)


def same_program(model: nn.Module, args: tuple, kwargs: dict | None = None) -> gl.ExportedProgram:
    """Export strict and non-strict; assert equal printouts and eager-equal outputs."""
    kwargs = kwargs or {}
    strict = gl.export(model, args, kwargs, strict=True)
    loose = gl.export(model, args, kwargs)
    assert str(strict.graph) == str(loose.graph)
    assert str(strict.graph_signature) == str(loose.graph_signature)
    got = strict.module()(*args, **kwargs)
    want = model(*args, **kwargs)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(a, b)
    return strict


# --- the zoo: every model, strict == non-strict ---------------------------------------

ZOO = [c for c in CASES if c.name != "mixtral"]  # mixtral: test_strict_loops.py


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=() if c.name.startswith("nn_") else pytest.mark.slow) for c in ZOO],
    ids=lambda c: c.name,
)
def test_zoo_model_strict_equals_non_strict(case) -> None:  # type: ignore[no-untyped-def]
    model = case.make_model()
    args, kwargs = case.make_inputs()
    with torch.no_grad():
        strict = gl.export(model, args, kwargs, strict=True)
        loose = gl.export(model, args, kwargs)
        assert str(strict.graph) == str(loose.inline_subgraphs().graph)  # strict traces every call
        got = strict.module()(*args, **kwargs)
        want = model(*args, **kwargs)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# --- Python the interpreter must model --------------------------------------------------


@dataclasses.dataclass
class Pair:
    a: torch.Tensor
    b: torch.Tensor


gl.register_dataclass(Pair)


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class Everyday(Base):
    """Closures, defaults, *args/**kwargs, comprehensions, generators, with, try,
    super(), lambdas, f-strings, dict/list building, a dataclass input."""

    def forward(self, pair: Pair, *extra: torch.Tensor, scale: float = 2.0, **named: torch.Tensor):
        base = super().forward(pair.a)
        factor = scale

        def scaled(t: torch.Tensor) -> torch.Tensor:
            return t * factor

        parts = [scaled(t) for t in (base, pair.b, *extra)]
        total = sum(p.sum() for p in parts)
        table = {f"part{i}": p for i, p in enumerate(parts)}
        table.update(named)
        try:
            missing = table["nope"]
        except KeyError:
            missing = None
        with torch.no_grad():
            frozen = base.detach() + 1
        first, *rest = parts
        return {"total": total, "first": first, "rest": rest, "frozen": frozen,
                "missing": missing, "named": [v * 2 for k, v in sorted(table.items()) if k == "n"]}  # fmt: skip


def test_everyday_python() -> None:
    x, y, z = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    same_program(Everyday(), (Pair(x, y), z), {"scale": 3.0, "n": x})


class Counter:
    def __init__(self) -> None:
        self.calls = 0


COUNTER = Counter()
LOG: list[int] = []
STATE = {"steps": 0}
SCALE = 2.0
FLAG = True


def test_appending_to_a_module_level_list_is_refused_and_undone() -> None:
    class M(nn.Module):
        def forward(self, x):
            LOG.append(1)
            LOG.extend([2, 3])
            return x + 1

    with pytest.raises(
        SideEffectError, match=r"a list that existed before the call was changed"
    ) as info:
        gl.export(M(), (torch.randn(2),), strict=True)
    assert LOG == []
    assert "test_strict.py" in str(info.value) and "LOG.append(1)" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_global_assignment_and_attribute_writes_are_refused_and_undone() -> None:
    class Globals(nn.Module):
        def forward(self, x):
            global SCALE
            SCALE = 5.0
            return x * SCALE

    class Attribute(nn.Module):
        def forward(self, x):
            COUNTER.calls += 1
            return x

    class Item(nn.Module):
        def forward(self, x):
            STATE["steps"] = STATE["steps"] + 1
            return x

    class Builtin(nn.Module):
        def forward(self, x):
            setattr(COUNTER, "calls", 7)  # noqa: B010 - the builtin is what is tested
            return x

    for model, match in [(Globals(), "the global 'SCALE'"), (Attribute(), "'calls' of a Counter"),
                         (Item(), "a dict"), (Builtin(), "'calls' of a Counter")]:  # fmt: skip
        with pytest.raises(SideEffectError, match=match):
            gl.export(model, (torch.randn(2),), strict=True)
    assert (SCALE, COUNTER.calls, STATE) == (2.0, 0, {"steps": 0})


def test_non_strict_export_does_perform_the_side_effect() -> None:
    """The contrast strict capture exists for (and proof the model really writes)."""

    class M(nn.Module):
        def forward(self, x):
            LOG.append(1)
            return x

    gl.export(M(), (torch.randn(2),))
    assert LOG == [1]
    LOG.clear()


def test_set_and_restore_passes() -> None:
    """transformers' output capturing sets a context flag and resets it: no net change."""

    class M(nn.Module):
        def forward(self, x):
            saved = COUNTER.calls
            COUNTER.calls = 99
            y = x * 2
            COUNTER.calls = saved
            return y

    same_program(M(), (torch.randn(3),))
    assert COUNTER.calls == 0


def test_nonlocal_write_to_an_outer_closure_is_refused() -> None:
    count = 0

    def bump(x):
        nonlocal count
        count += 1
        return x + count

    with pytest.raises(SideEffectError, match="closure variable 'count'"):
        gl.capture(bump)(torch.randn(2))
    assert count == 0


def test_fresh_objects_may_be_mutated() -> None:
    class M(nn.Module):
        def forward(self, x):
            out, seen = [], {}
            for i in range(3):
                out.append(x * i)
                seen[i] = out[-1]
            out += [x]
            box = Counter()
            box.calls += 1
            return torch.stack(out) + box.calls + len(seen)

    same_program(M(), (torch.randn(2),))


def test_forward_pre_hook_writing_another_object_is_refused_and_a_traced_hook_works() -> None:
    model = Base()
    handle = model.register_forward_pre_hook(lambda m, args: setattr(COUNTER, "calls", 5))
    with pytest.raises(SideEffectError, match="'calls' of a Counter"):
        gl.export(model, (torch.randn(2, 4),), strict=True)
    assert COUNTER.calls == 0
    handle.remove()
    model.register_forward_pre_hook(lambda m, args: (args[0] * 10,))
    ep = same_program(model, (torch.randn(2, 4),))
    assert "mul" in str(ep.graph)


# --- what it reads, it guards -----------------------------------------------------------


def test_a_changed_global_is_refused_never_stale() -> None:
    global SCALE

    class M(nn.Module):
        def forward(self, x):
            return x * SCALE if FLAG else x

    x = torch.randn(3)
    ep = same_program(M(), (x,))
    assert [g.name for g in ep.python_guards] == ["FLAG", "SCALE"]  # in the order read
    module = ep.module()
    SCALE = 4.0
    try:
        with pytest.raises(StaleGlobalError, match=r"global 'SCALE' = 2\.0, and it is now 4\.0"):
            module(x)
    finally:
        SCALE = 2.0
    torch.testing.assert_close(module(x), x * 2.0)


def helper(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def test_a_changed_closure_cell_and_a_swapped_global_function_are_refused() -> None:
    factor = 3.0

    def f(x):
        return helper(x) * factor

    ep = gl.capture(f)(torch.ones(2))
    torch.testing.assert_close(ep.module()(torch.ones(2)), torch.full((2,), 6.0))
    factor = 4.0  # the closure cell changes
    with pytest.raises(StaleGlobalError, match="closure 'factor'"):
        ep.module()(torch.ones(2))

    ep = gl.capture(lambda x: helper(x))(torch.ones(2))
    original = globals()["helper"]
    globals()["helper"] = lambda x: x * 3
    try:
        with pytest.raises(StaleGlobalError, match="global 'helper'"):
            ep.module()(torch.ones(2))
    finally:
        globals()["helper"] = original


# --- what it does not model says so, with the line ---------------------------------------


def test_unsupported_python_is_a_typed_error_with_the_line() -> None:
    class Matches(nn.Module):
        def forward(self, x):
            match x.shape:
                case (rows, cols):
                    return x.reshape(cols, rows)
            return x

    with pytest.raises(StrictCaptureError, match="MATCH_SEQUENCE") as info:
        gl.export(Matches(), (torch.randn(2, 3),), strict=True)
    assert "test_strict.py" in str(info.value) and "in forward" in str(info.value)
    assert isinstance(info.value, gl.errors.GraphliftError) and isinstance(info.value, RuntimeError)


def test_capture_of_a_plain_function_names_its_inputs() -> None:
    def f(x, y, *, alpha=1.0):
        return x + alpha * y

    ep = gl.capture(f)(torch.randn(2), torch.randn(2), alpha=2.0)
    assert [s.arg.name for s in ep.graph_signature.input_specs] == ["x", "y", "alpha"]
    x, y = torch.randn(2), torch.randn(2)
    torch.testing.assert_close(ep.module()(x, y, alpha=2.0), x + 2 * y)


def test_dynamic_shapes_under_strict() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    spec = ({0: gl.Dim("batch", min=1, max=64)},)
    ep = gl.export(model, (torch.randn(5, 4),), dynamic_shapes=spec, strict=True)
    for batch in (1, 7, 64):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(ep.module()(x), model(x))


# --- an if on a tensor's value becomes torch.cond ---------------------------------------


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x + 1
        if x.sum() > 0:
            y = self.lin(y) * 2
            z = y + 1
        else:
            y = y - 1
            z = y * 3
        for i in range(2):
            if y.mean() > 0:  # no else: the other path keeps y
                y = y + i
        return y, z


def test_an_if_on_a_tensor_becomes_cond_and_follows_the_data() -> None:
    model = Branchy()
    x = torch.randn(3, 4)
    with pytest.raises(gl.errors.DataDependentError):
        gl.export(model, (x,))  # non-strict cannot see the if
    ep = gl.export(model, (x,), strict=True)
    conds = [n for n in ep.graph.nodes if getattr(n.target, "__name__", "") == "cond"]
    assert len(conds) == 3
    for data in (torch.randn(3, 4), -torch.ones(3, 4), torch.ones(3, 4), torch.zeros(3, 4)):
        for got, want in zip(ep.module()(data), model(data)):
            torch.testing.assert_close(got, want)


def test_an_if_on_a_tensor_that_is_not_a_plain_statement_is_refused_with_the_reason() -> None:
    class Returns(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x

    class Unbound(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                y = x * 2  # noqa: F841 - bound on one path only
            return x

    class NotATensor(nn.Module):
        def forward(self, x):
            n = 1
            if x.sum() > 0:
                n = 2
            return x * n

    for model, reason in [(Returns(), "leaves the function"), (Unbound(), "'y' is unbound"),
                          (NotATensor(), "'n', which holds a int")]:  # fmt: skip
        with pytest.raises(StrictCaptureError, match=reason) as info:
            gl.export(model, (torch.randn(3),), strict=True)
        assert "test_strict.py" in str(info.value)


OFFSET = torch.arange(4.0)


def test_a_tensor_read_from_a_global_is_lifted_as_in_non_strict_export() -> None:
    class M(nn.Module):
        def forward(self, x):
            return x + OFFSET

    ep = same_program(M(), (torch.randn(2, 4),))
    assert not ep.python_guards  # tensors are constants of the program, not guarded values
    assert [s.kind.name for s in ep.graph_signature.input_specs] == [
        "CONSTANT_TENSOR",
        "USER_INPUT",
    ]
