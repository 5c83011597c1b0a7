"""``gl.interop.to_fx`` on exported zoo models: the torch.fx module runs like
``ep.module()`` (same call signature, same outputs, same state, same input
checks), keeps every node's name, target and meta, and torch.fx's own tools
(ShapeProp, dead-code elimination, pickling, ``torch.compile``) work on it.

Every case is exported with its dynamic dims and run at two sizes.
"""

from __future__ import annotations

import copy
import functools
import pickle
import re
from typing import Any

import pytest
import torch
import torch.fx
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils._pytree import tree_leaves, tree_structure

import graphlift as gl
from graphlift.errors import InputMismatchError, InputStructureError
from graphlift.interop import from_fx, to_fx
from graphlift.ir.node import map_arg
from graphlift.trace.control_flow import invoke_subgraph
from tests.zoo.models import get_case

CASES = ("bert", "llama", "resnet", "nn_lstm", "nn_mlp")
SIZES = ("example", "other")
COMPILED = ("bert", "resnet", "nn_mlp")  # nn_lstm: test_input_checks_run_first_and_survive...


@pytest.fixture(scope="module", params=CASES)
def exported(request: pytest.FixtureRequest) -> tuple[Any, torch.nn.Module, gl.ExportedProgram]:
    case = get_case(request.param)
    model = case.make_model()
    args, kwargs = case.make_inputs()
    ep = gl.export(model, args, kwargs, dynamic_shapes=case.dynamic_shapes(gl.Dim))
    return case, model, ep


def inputs_at(case: Any, which: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return case.make_inputs(**case.sizes(which))  # type: ignore[no-any-return]


def assert_same(actual: Any, expected: Any, *, exact: bool) -> None:
    assert tree_structure(actual) == tree_structure(expected)
    for a, e in zip(tree_leaves(actual), tree_leaves(expected)):
        if exact:
            assert torch.equal(a, e)
        else:
            torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5)


def test_runs_like_ep_module_and_eager(exported: Any) -> None:
    case, model, ep = exported
    fx_gm = to_fx(ep)
    assert isinstance(fx_gm, torch.fx.GraphModule)
    for which in SIZES:
        args, kwargs = inputs_at(case, which)
        with torch.no_grad():
            actual = fx_gm(*args, **kwargs)
            assert_same(actual, ep.module()(*args, **kwargs), exact=True)
            assert_same(actual, model(*args, **kwargs), exact=False)


def test_nodes_keep_names_targets_args_and_meta(exported: Any) -> None:
    _, _, ep = exported
    source = ep.module()
    fx_gm = to_fx(ep, checks=False)
    # a shared block's call is fx's call_module of the body (its get_attr goes)
    nodes = [n for n in source.graph.nodes if not (n.op == "get_attr" and _feeds_blocks(n))]
    pairs = list(zip(nodes, fx_gm.graph.nodes, strict=True))
    for node, fx_node in pairs:
        if node.target is invoke_subgraph:
            attr, _, operands = node.args
            assert (fx_node.name, fx_node.op, fx_node.target) == (
                node.name, "call_module", attr.target
            )  # fmt: skip
            assert repr(fx_node.args) == repr(tuple(operands))
            continue
        assert (_exported_name(fx_node), fx_node.op, fx_node.target) == (
            node.name, node.op, node.target
        )  # fmt: skip
        fx_args = torch.fx.node.map_arg(fx_node.args, _exported_name)
        assert repr(fx_args) == repr(map_arg(node.args, lambda n: n.name))
        assert fx_node.kwargs == node.kwargs
        for key in ("val", "stack_trace", "nn_module_stack"):
            assert fx_node.meta.get(key) is node.meta.get(key), (node.name, key)
    calls = [fx for _, fx in pairs if fx.op == "call_function"]
    assert all("val" in fx.meta for fx in calls)
    assert any(fx.meta.get("stack_trace") for fx in calls)
    assert all(
        isinstance(fx.target, torch._ops.OpOverload) for fx in calls if "aten" in str(fx.target)
    )
    fx_gm.graph.lint()


def _feeds_blocks(node: Any) -> bool:
    """A body's get_attr (not state that only a block call reads)."""
    return bool(node.users) and all(
        user.target is invoke_subgraph and user.args[0] is node for user in node.users
    )


def test_state_is_ep_modules_state(exported: Any) -> None:
    _, _, ep = exported
    source, fx_gm = ep.module(), to_fx(ep)
    expected, actual = source.state_dict(), fx_gm.state_dict()
    assert list(actual) == list(expected)
    for key, value in expected.items():  # the same storage: converting copies no weights
        assert actual[key].data_ptr() == value.data_ptr() and torch.equal(actual[key], value)
    assert dict(fx_gm.named_buffers()).keys() == dict(source.named_buffers()).keys()
    assert [name for name, _ in fx_gm.named_parameters()] == [
        name for name, _ in source.named_parameters()
    ]


def test_torch_fx_shape_prop(exported: Any) -> None:
    case, _, ep = exported
    fx_gm = to_fx(ep)
    args, kwargs = inputs_at(case, "other")
    with torch.no_grad():
        ShapeProp(fx_gm).propagate(*tree_leaves((args, kwargs)))
        expected = tree_leaves(fx_gm(*args, **kwargs))
    propagated = 0
    for node in fx_gm.graph.nodes:
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and "tensor_meta" in node.meta:
            tensor_meta = node.meta["tensor_meta"]
            assert tensor_meta.dtype == val.dtype and len(tensor_meta.shape) == val.dim()
            propagated += 1
    assert propagated > len(fx_gm.graph.find_nodes(op="placeholder"))
    outputs = fx_gm.graph.output_node().args[0]
    assert [n.meta["tensor_meta"].shape for n in outputs] == [t.shape for t in expected]


def test_torch_compile_eager_backend(exported: Any) -> None:
    case, model, ep = exported
    if case.name not in COMPILED:
        pytest.skip("torch.compile costs seconds per model; a few cases stand for all")
    torch._dynamo.reset()
    compiled = torch.compile(to_fx(ep), backend="eager")
    args, kwargs = inputs_at(case, "other")
    with torch.no_grad():
        assert_same(compiled(*args, **kwargs), model(*args, **kwargs), exact=False)


def test_round_trip_through_fx_keeps_the_code(exported: Any) -> None:
    case, _, ep = exported
    source = ep.module()
    fx_gm = to_fx(ep, checks=False)
    back = from_fx(fx_gm)
    renamed = {
        n.target: n.name for n in fx_gm.graph.nodes if n.op == "placeholder" and n.name != n.target
    }
    if not renamed:
        assert back.code == source.code
    assert str(back.graph) == _renamed(str(source.graph), renamed)
    again = to_fx(from_fx(to_fx(ep)))  # the call signature survives the round trip
    args, kwargs = inputs_at(case, "other")
    with torch.no_grad():
        assert_same(again(*args, **kwargs), source(*args, **kwargs), exact=True)


def _exported_name(fx_node: Any) -> str:
    """torch.fx renames an input named like a builtin (``input`` -> ``input_1``,
    its target stays ``input``), as in torch.export's ``module()``; export keeps it."""
    if fx_node.op == "placeholder" and re.fullmatch(rf"{fx_node.target}_\d+", fx_node.name):
        return str(fx_node.target)
    return str(fx_node.name)


def _renamed(printout: str, names: dict[str, str]) -> str:
    header, _, body = printout.partition("\n")
    for old, new in names.items():
        header = re.sub(rf"\b{old}\b", new, header)
        body = re.sub(rf"%{old}\b", f"%{new}", body)
    return f"{header}\n{body}"


# --- input checks --------------------------------------------------------------------


LSTM = get_case("nn_lstm")


@functools.cache
def dynamic_lstm() -> tuple[torch.nn.Module, gl.ExportedProgram]:
    model = LSTM.make_model()
    args, kwargs = LSTM.make_inputs()
    return model, gl.export(model, args, kwargs, dynamic_shapes=LSTM.dynamic_shapes(gl.Dim))


def lstm_input(batch: int, seq: int) -> torch.Tensor:
    return LSTM.make_inputs(batch=batch, seq=seq)[0][0]  # type: ignore[no-any-return]


def test_input_checks_run_first_and_survive_dce_and_compile() -> None:
    _, ep = dynamic_lstm()
    fx_gm = to_fx(ep)
    first = next(n for n in fx_gm.graph.nodes if n.op != "placeholder")
    assert (first.op, first.target) == ("call_module", "_guards_fn")
    assert "size in [2, 64] at dim 1" in fx_gm._guards_fn.source
    assert "def forward(self, input):" in fx_gm.code  # the placeholder target, a builtin
    fx_gm.graph.eliminate_dead_code()
    assert fx_gm.graph.find_nodes(op="call_module", target="_guards_fn")
    too_long = lstm_input(2, 65)
    with pytest.raises(InputMismatchError, match="size in"):
        fx_gm(too_long)
    torch._dynamo.reset()
    compiled = torch.compile(fx_gm, backend="eager")
    for batch, seq in ((2, 9), (3, 13)):
        x = lstm_input(batch, seq)
        with torch.no_grad():
            assert_same(compiled(x), ep.module()(x), exact=False)
    with pytest.raises(InputMismatchError):
        compiled(too_long)


def test_checks_false_drops_the_checks() -> None:
    model, ep = dynamic_lstm()
    fx_gm = to_fx(ep, checks=False)
    assert not fx_gm.graph.find_nodes(op="call_module")
    assert not hasattr(fx_gm, "_guards_fn")
    x = lstm_input(2, 1)  # outside the exported range [2, 64]: no longer refused
    with torch.no_grad():
        torch.testing.assert_close(fx_gm(x), model(x))


# --- call signature ------------------------------------------------------------------


class Nested(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(4, 4)
        self.register_buffer("scale", torch.full((4,), 2.0))
        self.register_buffer("offset", torch.ones(4), persistent=False)

    def forward(
        self, x: torch.Tensor, pair: tuple[torch.Tensor, torch.Tensor], *, mask: torch.Tensor
    ) -> dict[str, Any]:
        y = self.proj(x) * self.scale + self.offset
        return {"sum": y + pair[0] * pair[1], "parts": [y * mask, x.shape[0] * pair[1]]}


def nested_inputs(batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    x, a, b, mask = (torch.randn(batch, 4) for _ in range(4))
    return (x, (a, b)), {"mask": mask}


def test_nested_inputs_outputs_and_keywords() -> None:
    model = Nested()
    args, kwargs = nested_inputs(3)
    n = gl.Dim("n", min=2, max=32)
    spec = {"x": {0: n}, "pair": ({0: n}, {0: n}), "mask": {0: n}}
    ep = gl.export(model, args, kwargs, dynamic_shapes=spec)
    fx_gm = to_fx(ep)
    assert "def forward(self, x, arg_1, mask)" in fx_gm.code
    assert fx_gm.state_dict().keys() == {"proj.weight", "proj.bias", "scale"}
    assert "offset" in dict(fx_gm.named_buffers())
    for batch in (3, 6):
        args, kwargs = nested_inputs(batch)
        with torch.no_grad():
            expected = model(*args, **kwargs)
            assert_same(fx_gm(*args, **kwargs), expected, exact=False)
            assert_same(fx_gm(args[0], arg_1=args[1], **kwargs), expected, exact=False)
    with pytest.raises(InputMismatchError):
        fx_gm(torch.randn(3, 4), (torch.randn(3, 4), torch.randn(3, 4)), mask=torch.randn(2, 4))


def test_a_different_structure_is_refused() -> None:
    """torch's pytree code in forward reads only what the spec names; without
    the structure check a longer tuple would pass silently."""
    model = Nested()
    args, kwargs = nested_inputs(3)
    fx_gm = to_fx(gl.export(model, args, kwargs))
    (x, (a, b)), mask = args, kwargs["mask"]
    for pair in ((a, b, b), [a, b], (a,)):
        with pytest.raises(InputStructureError, match=r"\(args, kwargs\)\[0\]\[1\]"):
            fx_gm(x, pair, mask=mask)
    unchecked = to_fx(gl.export(model, args, kwargs), checks=False)
    torch.testing.assert_close(unchecked(x, (a, b, b), mask=mask), fx_gm(*args, **kwargs))


@pytest.mark.filterwarnings("ignore:.*LeafSpec")  # torch's TreeSpec warns when copied
def test_pickle_and_deepcopy_keep_checks_and_signature() -> None:
    """torch.fx pickles a GraphModule as its code and traces that again when
    loading, so this uses a graph fx's tracer can re-trace (ATen calls taking
    lists of symbolic sizes cannot be; torch.export's graphs share the limit)."""
    model = Nested()
    args, kwargs = nested_inputs(3)
    n = gl.Dim("n", min=2, max=32)
    spec = {"x": {0: n}, "pair": ({0: n}, {0: n}), "mask": {0: n}}
    fx_gm = to_fx(gl.export(model, args, kwargs, dynamic_shapes=spec))
    args, kwargs = nested_inputs(5)
    for copied in (pickle.loads(pickle.dumps(fx_gm)), copy.deepcopy(fx_gm)):
        with torch.no_grad():
            assert_same(copied(*args, **kwargs), model(*args, **kwargs), exact=False)
        with pytest.raises(InputMismatchError):
            copied(*nested_inputs(1)[0], **kwargs)


class OddKeyword(torch.nn.Module):
    def forward(self, x: torch.Tensor, **extra: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": x + extra["a-b"]}


def test_a_keyword_that_is_no_identifier_gives_flat_inputs_and_outputs() -> None:
    """fx's forward cannot have a parameter ``a-b``: flat inputs named after
    the placeholders, the flat output tuple, the input checks still first."""
    x, y = torch.randn(3), torch.randn(3)
    fx_gm = to_fx(gl.export(OddKeyword(), (x,), {"a-b": y}))
    assert "def forward(self, x, a_b):" in fx_gm.code
    (out,) = fx_gm(x, y)
    torch.testing.assert_close(out, x + y)
    with pytest.raises(InputMismatchError):
        fx_gm(x, torch.randn(4))
