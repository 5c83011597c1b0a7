"""run_decompositions inside control-flow bodies (issue #9): cond branches, nested
conds, map, scan and while_loop bodies are decomposed to core ATen with the same
table, keep their calling convention, equal eager on inputs taking each branch
(static and dynamic shapes), leave the original program alone and survive
save/load; the core verifier looks into bodies."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._higher_order_ops import map as hop_map
from torch._higher_order_ops import scan, while_loop

import graphlift as gl
from graphlift.errors import ConstraintViolationError, VerificationError
from graphlift.export.program.verifier import ALLOWED_PYTHON_TARGETS, CORE_EXTRA_OPS, verify
from graphlift.ir.graph_module import GraphModule
from graphlift.trace import control_flow

aten = torch.ops.aten


class CondBranches(nn.Module):
    """Non-core ops in both branches (linear, gelu, layer_norm, reshape) and a size
    the true branch reads (lifted into it)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def yes(x: torch.Tensor) -> torch.Tensor:
            return F.gelu(self.lin(x), approximate="tanh").reshape(x.shape[0], -1) * x.shape[0]

        def no(x: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(self.norm(x), (8,)) - 1

        return torch.cond(x.sum() > 0, yes, no, (x,))


class NestedCond(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def inner(x: torch.Tensor) -> torch.Tensor:
            return torch.cond(
                x.mean() > 0.5, lambda a: F.silu(self.lin(a)), lambda a: F.hardswish(a), (x,)
            )

        return torch.cond(x.sum() > 0, inner, lambda a: F.softplus(a), (x,))


class MapBody(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, xs: torch.Tensor) -> torch.Tensor:
        return hop_map(lambda row: F.relu6(F.layer_norm(self.lin(row), (8,))), xs)


class ScanAndWhile(nn.Module):
    """An RNN-like scan and a while_loop, both calling linear in their bodies."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.Linear(8, 8)

    def forward(self, xs: torch.Tensor, h: torch.Tensor) -> Any:
        def step(carry: torch.Tensor, x: torch.Tensor) -> Any:
            new = F.gelu(self.cell(carry) + x, approximate="tanh")
            return new, new.reshape(-1).softmax(0)

        last, ys = scan(step, h, xs)
        count = torch.zeros((), dtype=torch.long)
        _, grown = while_loop(
            lambda i, a: i < 3,
            lambda i, a: (i + 1, F.layer_norm(self.cell(a), (8,))),
            (count, last),
        )
        return grown, ys


def bodies(module: torch.nn.Module, prefix: str = "") -> Iterator[tuple[str, GraphModule]]:
    """Every control-flow body of a program's graph module, nested ones too."""
    for name, child in module.named_children():
        if isinstance(child, GraphModule):
            yield prefix + name, child
            yield from bodies(child, f"{prefix}{name}.")


def is_core(target: Any) -> bool:
    if isinstance(target, torch._ops.OpOverload):
        return torch.Tag.core in target.tags or target in CORE_EXTRA_OPS
    return target in ALLOWED_PYTHON_TARGETS


def non_core(module: torch.nn.Module) -> set[str]:
    return {
        f"{name}: {node.target}"
        for name, body in bodies(module)
        for node in body.graph.nodes
        if node.op == "call_function" and not is_core(node.target)
    }


def placeholders(module: GraphModule) -> list[str]:
    return [node.name for node in module.graph.nodes if node.op == "placeholder"]


def close(actual: Any, expected: Any) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


B = gl.Dim("b", min=2, max=64)
CASES: dict[str, tuple[nn.Module, tuple[Any, ...], Any, list[tuple[Any, ...]]]] = {
    "cond": (CondBranches(), (torch.randn(4, 8).abs(),), ({0: B},),
             [(torch.randn(5, 8).abs(),), (-torch.randn(3, 8).abs(),)]),
    "nested_cond": (NestedCond(), (torch.rand(4, 8) + 0.5,), ({0: B},),
                    [(torch.rand(6, 8) + 0.6,), (torch.rand(2, 8) * 0.1,), (-torch.rand(3, 8),)]),
    "map": (MapBody(), (torch.randn(4, 8),), ({0: B},), [(torch.randn(7, 8),)]),
    "scan_while": (ScanAndWhile(), (torch.randn(5, 2, 8), torch.randn(2, 8)),
                   ({0: gl.Dim("t", min=2, max=16)}, None), [(torch.randn(9, 2, 8), torch.randn(2, 8))]),
}  # fmt: skip


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_bodies_are_decomposed_to_core_aten_and_equal_eager(name: str, dynamic: bool) -> None:
    model, args, dynamic_shapes, trials = CASES[name]
    model.eval()
    ep = gl.export(model, args, dynamic_shapes=dynamic_shapes if dynamic else None)
    before = [str(ep), *(str(body.graph) for _, body in bodies(ep.graph_module))]
    assert non_core(ep.graph_module)  # the bodies did call non-core ops
    core = ep.run_decompositions()
    assert non_core(core.graph_module) == set()
    # the original program, its (nested) bodies included, is untouched
    assert [str(ep), *(str(body.graph) for _, body in bodies(ep.graph_module))] == before
    old, new = dict(bodies(ep.graph_module)), dict(bodies(core.graph_module))
    assert new.keys() == old.keys()
    for body_name, body in new.items():  # calling convention kept
        assert placeholders(body) == placeholders(old[body_name]), body_name
        assert isinstance(body.graph.output_node().args[0], tuple)
    module = core.module()
    first, rest = args[0], args[1:]
    same_shape = [args, (-first, *rest), (first.abs() * 0.1, *rest)]  # each branch taken
    for trial in same_shape + (trials if dynamic else []):
        close(module(*trial), model(*trial))


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_decomposed_bodies_round_trip_through_save_and_load(dynamic: bool) -> None:
    model, args, dynamic_shapes, trials = CASES["nested_cond"]
    ep = gl.export(model.eval(), args, dynamic_shapes=dynamic_shapes if dynamic else None)
    core = ep.run_decompositions()
    saved = io.BytesIO()
    gl.save(core, saved)
    loaded = gl.load(io.BytesIO(saved.getvalue()))
    assert str(loaded) == str(core)
    assert non_core(loaded.graph_module) == set()
    for trial in [args, *(trials if dynamic else [])]:
        close(loaded.module()(*trial), model(*trial))


def test_the_core_verifier_looks_into_bodies() -> None:
    ep = gl.export(NestedCond().eval(), (torch.rand(4, 8),))
    core = ep.run_decompositions()
    verify(core, level="core")
    outer = core.graph_module.true_graph_0
    outer.true_graph_0 = ep.graph_module.true_graph_0.true_graph_0  # an undecomposed branch
    verify(core, level="export")
    with pytest.raises(VerificationError, match=r"true_graph_0\.true_graph_0 .*aten\.linear"):
        verify(core, level="core")


def test_a_user_table_applies_inside_bodies_and_keeps_what_it_omits() -> None:
    model, args, dynamic_shapes, _ = CASES["cond"]
    ep = gl.export(model.eval(), args, dynamic_shapes=dynamic_shapes)
    table = gl.default_decompositions()
    del table[aten.linear.default]
    table[aten.gelu.default] = lambda x, approximate="none": x * torch.sigmoid(1.702 * x)
    custom = ep.run_decompositions(table)
    targets = {node.target for _, body in bodies(custom.graph_module) for node in body.graph.nodes}
    assert aten.linear.default in targets and aten.gelu.default not in targets
    assert aten.sigmoid.default in targets and aten.layer_norm.default not in targets
    x = torch.rand(5, 8)
    hidden = model.lin(x)
    close(custom.module()(x), (hidden * torch.sigmoid(1.702 * hidden)) * 5)


def test_a_decomposition_adding_a_guard_inside_a_body_is_refused() -> None:
    model, args, dynamic_shapes, _ = CASES["cond"]
    ep = gl.export(model.eval(), args, dynamic_shapes=dynamic_shapes)
    table = gl.default_decompositions()
    table[aten.gelu.default] = lambda x, approximate="none": x.relu() if x.shape[0] > 4 else x
    with pytest.raises(ConstraintViolationError, match=r"gelu.*control-flow body true_graph_0"):
        ep.run_decompositions(table)


def test_a_constant_a_decomposition_creates_in_a_body_is_lifted_into_it() -> None:
    """The new constant becomes a program input, an operand appended to the call and a
    placeholder appended to *both* branches (they take the same operands)."""
    model, args, dynamic_shapes, _ = CASES["nested_cond"]
    ep = gl.export(model.eval(), args, dynamic_shapes=dynamic_shapes)
    table = gl.default_decompositions()
    table[aten.hardswish.default] = lambda x: x * torch.tensor([0.5])
    custom = ep.run_decompositions(table)
    assert len(custom.constants) == len(ep.constants) + 1
    old, new = dict(bodies(ep.graph_module)), dict(bodies(custom.graph_module))
    for name in ("true_graph_0", "false_graph_0", "true_graph_0.true_graph_0",
                 "true_graph_0.false_graph_0"):  # fmt: skip
        assert len(placeholders(new[name])) == len(placeholders(old[name])) + 1, name
    assert len(placeholders(new["true_graph_0.false_graph_0"])) == len(
        placeholders(new["true_graph_0.true_graph_0"])
    )
    x = torch.rand(3, 8) * 0.1  # outer true, inner false: the hardswish branch
    close(custom.module()(x), x * 0.5)
    for x in (torch.rand(5, 8) + 0.6, -torch.rand(2, 8)):  # the other two branches
        close(custom.module()(x), model(x))


def _calls(body: torch.nn.Module) -> Counter[str]:
    return Counter(
        "cond"
        if node.target in (torch.ops.higher_order.cond, control_flow.cond)
        else str(node.target)
        for node in body.graph.nodes
        if node.op == "call_function"
    )


@pytest.mark.parametrize("name", ["nested_cond", "scan_while"])
def test_decomposed_bodies_call_the_ops_torch_export_calls(name: str) -> None:
    """torch.export as the oracle: each decomposed body makes the same calls."""
    model, args, _, _ = CASES[name]
    model.eval()
    ours = gl.export(model, args).run_decompositions()
    theirs = torch.export.export(model, args).run_decompositions()
    found = dict(bodies(ours.graph_module))
    assert len(found) >= 3
    for body_name, body in found.items():
        assert _calls(body) == _calls(theirs.graph_module.get_submodule(body_name)), body_name


class ItemInBranch(nn.Module):
    def forward(self, x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        def checked(a: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            value = k.item()
            torch._check(value < 10)
            return F.gelu(a, approximate="tanh").reshape(-1) * value

        return torch.cond(x.sum() > 0, checked, lambda a, k: a.reshape(-1) - 1, (x, n))


class NonzeroInBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def yes(a: torch.Tensor) -> torch.Tensor:
            return F.layer_norm(a, (a.shape[-1],)) * torch.nonzero(a > 1).shape[0]

        return torch.cond(x.sum() > 0, yes, lambda a: a * 2, (x,))


class SizePredicate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor, n: int) -> torch.Tensor:
        def big(a: torch.Tensor) -> torch.Tensor:
            return self.lin(a[:n]).sum(0) * n

        return torch.cond(x.shape[0] > 4, big, lambda a: a[:n].mean(0), (x,))


class CondInMap(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, xs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        def body(row: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.cond(
                row.sum() > 0,
                lambda r, y: self.lin(r) + y.mean(0),
                lambda r, y: F.silu(r),
                (row, y),
            )

        return hop_map(body, xs, y)


class DataDependentWhile(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, limit: torch.Tensor, x: torch.Tensor) -> Any:
        start = torch.zeros((), dtype=torch.long)
        return while_loop(
            lambda i, a: i < limit,
            lambda i, a: (i + 1, F.layer_norm(self.lin(a), (3,))),
            (start, x),
        )


def test_data_dependent_and_symbolic_bodies_decompose() -> None:
    """Unbacked values and runtime asserts inside a branch, a size predicate with a
    dynamic int input, a cond inside a dynamic map, a data-dependent while_loop."""
    ep = gl.export(ItemInBranch(), (torch.ones(3), torch.tensor(2)))
    assert non_core(ep.graph_module)
    core = ep.run_decompositions()
    assert non_core(core.graph_module) == set()
    close(
        core.module()(torch.ones(3), torch.tensor(4)), F.gelu(torch.ones(3), approximate="tanh") * 4
    )
    close(core.module()(-torch.ones(3), torch.tensor(50)), torch.full((3,), -2.0))
    with pytest.raises(gl.errors.RuntimeAssertError):
        core.module()(torch.ones(3), torch.tensor(50))
    b, m = gl.Dim("b", min=2), gl.Dim("m", min=2)
    cases: list[tuple[nn.Module, tuple[Any, ...], Any, list[tuple[Any, ...]]]] = [
        (NonzeroInBranch(), (torch.rand(4, 3) * 2,), ({0: b},),
         [(torch.rand(6, 3) * 2,), (-torch.rand(5, 3),)]),
        (SizePredicate(), (torch.randn(6, 3), 2), ({0: b}, gl.Dim("n", min=1, max=2)),
         [(torch.randn(3, 3), 2), (torch.randn(8, 3), 1)]),
        (CondInMap(), (torch.randn(6, 3), torch.randn(5, 3)), ({0: b}, {0: m}),
         [(torch.randn(3, 3), torch.randn(7, 3))]),
        (DataDependentWhile(), (torch.tensor(3), torch.randn(4, 3)), (None, {0: b}),
         [(torch.tensor(0), torch.randn(5, 3)), (torch.tensor(5), torch.randn(2, 3))]),
    ]  # fmt: skip
    for model, args, dynamic_shapes, trials in cases:
        ep = gl.export(model, args, dynamic_shapes=dynamic_shapes)
        assert non_core(ep.graph_module), type(model).__name__
        core = ep.run_decompositions()
        assert non_core(core.graph_module) == set(), type(model).__name__
        for trial in [args, *trials]:
            close(core.module()(*trial), model(*trial))
