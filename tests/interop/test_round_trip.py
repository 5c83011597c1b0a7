"""``gl.interop.from_fx`` and Python-level graphs in both directions.

Every model of the fx corpus (tests/fx/corpus.py: call_module, call_method,
get_attr, in-place ops, asserts, varargs, awkward names, ...) is traced by
graphlift and by torch.fx; each graph is converted to the other IR and must
give the same results, mutate inputs the same way, and come back with the
same generated code. torch.export's graphs convert too, and torch.fx's own
passes (subgraph_rewriter) work on converted graphs.
"""

from __future__ import annotations

import operator
import re
from typing import Any

import pytest
import torch
import torch.fx
from torch.fx import subgraph_rewriter

import graphlift as gl
from graphlift.errors import GraphliftError, InteropError
from graphlift.interop import from_fx, to_fx
from graphlift.ir.codegen import RESERVED_NAMES
from tests.fx.corpus import CASES
from tests.fx.harness import (
    assert_same_result,
    build_module,
    fresh_inputs,
    plain_containers,
    run,
    trace,
)
from tests.fx.subject import ORACLE
from tests.zoo.models import get_case


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_symbolic_trace_graph_runs_under_fx_and_round_trips(case: Any) -> None:
    gm = trace(gl, case, build_module(case))
    fx_gm = to_fx(gm)
    fx_gm.graph.lint()
    assert [(n.name, n.op, n.target) for n in fx_gm.graph.nodes] == [
        (n.name, n.op, n.target) for n in gm.graph.nodes
    ]
    inputs = fresh_inputs(case)
    expected, expected_inputs = run(gm, inputs)
    actual, actual_inputs = run(fx_gm, inputs)
    assert_same_result(plain_containers(actual), expected)
    assert_same_result(actual_inputs, expected_inputs)  # in-place updates of inputs too
    back = from_fx(fx_gm)
    assert back.code == gm.code
    assert str(back.graph) == str(gm.graph)


def graphlift_keeps(name: str) -> bool:
    """graphlift's namespace drops leading/trailing underscores and reserves the
    globals its generated code uses; every other fx name must survive as it is."""
    return name == name.strip("_") and name not in RESERVED_NAMES


def base_name(name: str) -> str:
    """``_assert_1`` -> ``assert``: a name without its underscores and numbering."""
    return re.sub(r"(_\d+)+$", "", name.strip("_")).strip("_")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_torch_fx_graph_runs_under_graphlift_and_round_trips(case: Any) -> None:
    fx_gm = trace(ORACLE, case, build_module(case))
    gm = from_fx(fx_gm)
    gm.graph.lint()
    pairs = list(zip(fx_gm.graph.nodes, gm.graph.nodes, strict=True))
    keeps_all = all(graphlift_keeps(fx_node.name) for fx_node, _ in pairs)
    for fx_node, node in pairs:
        assert (node.op, node.target, node.meta) == (fx_node.op, fx_node.target, fx_node.meta)
        if keeps_all:
            assert node.name == fx_node.name
        else:  # a renamed `add_` takes `add`, whose node becomes `add_1`
            assert base_name(node.name) == base_name(fx_node.name)
    inputs = fresh_inputs(case)
    expected, expected_inputs = run(fx_gm, inputs)
    actual, actual_inputs = run(gm, inputs)
    assert_same_result(actual, plain_containers(expected))
    assert_same_result(actual_inputs, expected_inputs)
    again = to_fx(gm)
    assert [n.name for n in again.graph.nodes] == [n.name for n in gm.graph.nodes]
    assert_same_result(plain_containers(run(again, inputs)[0]), plain_containers(expected))


# --- torch.export's graphs ---------------------------------------------------------


@pytest.fixture(scope="module")
def torch_exported() -> tuple[Any, torch.nn.Module, Any]:
    case = get_case("nn_transformer_encoder")
    model = case.make_model()
    args, kwargs = case.make_inputs()
    return case, model, torch.export.export(model, args, kwargs)


def test_torch_export_module_keeps_its_call_signature(torch_exported: Any) -> None:
    case, model, ep = torch_exported
    fx_gm = ep.module()
    gm = from_fx(fx_gm)
    assert isinstance(gm, gl.GraphModule)
    assert [n.meta.get("val") for n in gm.graph.nodes] == [
        n.meta.get("val") for n in fx_gm.graph.nodes
    ]
    assert gm.meta["pytree_info"].arg_names == tuple(fx_gm.graph._codegen.pytree_info.orig_args)
    args, kwargs = case.make_inputs()
    with torch.no_grad():
        expected = model(*args, **kwargs)
        flat = gm(*gl.pytree.tree_leaves((args, kwargs)))  # graphlift graphs are flat
        torch.testing.assert_close(flat[0], expected)
        torch.testing.assert_close(to_fx(gm)(*args, **kwargs), expected)  # the layout survives


def test_torch_export_graph_module_with_lifted_state(torch_exported: Any) -> None:
    case, model, ep = torch_exported
    gm = from_fx(ep.graph_module)
    placeholders = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    lifted = [spec.arg.name for spec in ep.graph_signature.input_specs]
    assert placeholders == lifted
    state = {**ep.state_dict, **ep.constants}
    args, kwargs = case.make_inputs()
    flat_state = [state[spec.target] for spec in ep.graph_signature.input_specs if spec.target]
    with torch.no_grad():
        (output,) = gm(*flat_state, *gl.pytree.tree_leaves((args, kwargs)))
        torch.testing.assert_close(output, model(*args, **kwargs))


# --- torch.fx's passes on converted graphs -----------------------------------------


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(6, 6)
        self.second = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.second(torch.relu(self.first(x)))).view(x.shape[0], 2, 3)


class SigmoidBlock(Block):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.second(torch.sigmoid(self.first(x)))).view(x.shape[0], 2, 3)


def test_subgraph_rewriter_on_a_symbolic_trace_graph() -> None:
    model = Block()
    fx_gm = to_fx(gl.symbolic_trace(model))

    def pattern(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)

    def replacement(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)

    assert len(subgraph_rewriter.replace_pattern(fx_gm, pattern, replacement)) == 2
    reference = SigmoidBlock()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(4, 6)
    torch.testing.assert_close(fx_gm(x), reference(x))
    torch.testing.assert_close(from_fx(fx_gm)(x), reference(x))


def test_subgraph_rewriter_on_an_exported_graph() -> None:
    model = Block()
    ep = gl.export(model, (torch.randn(4, 6),), dynamic_shapes={"x": {0: gl.Dim("n")}})
    fx_gm = to_fx(ep)

    def pattern(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.relu.default(x)

    def replacement(x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.sigmoid.default(x)

    assert len(subgraph_rewriter.replace_pattern(fx_gm, pattern, replacement)) == 2
    reference = SigmoidBlock()
    reference.load_state_dict(model.state_dict())
    x = torch.randn(7, 6)
    torch.testing.assert_close(fx_gm(x), reference(x))


# --- nested graphs ---------------------------------------------------------------------


def test_nested_graph_modules_convert_too() -> None:
    inner = gl.symbolic_trace(Block())
    graph = gl.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(operator.neg, (graph.call_module("inner", (x,)),)))
    outer = gl.GraphModule({"inner": inner}, graph)
    fx_gm = to_fx(outer)
    assert isinstance(fx_gm.inner, torch.fx.GraphModule)
    back = from_fx(fx_gm)
    assert isinstance(back.inner, gl.GraphModule) and back.inner.code == inner.code
    x_value = torch.randn(3, 6)
    for module in (fx_gm, back):
        torch.testing.assert_close(module(x_value), -inner(x_value))


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [object(), torch.nn.Linear(2, 2), torch.fx.symbolic_trace(torch.nn.ReLU())],
    ids=["object", "nn.Module", "torch.fx.GraphModule"],
)
def test_to_fx_refuses_what_it_cannot_convert(obj: Any) -> None:
    with pytest.raises(InteropError, match="to_fx converts a graphlift") as info:
        to_fx(obj)
    assert isinstance(info.value, TypeError) and isinstance(info.value, GraphliftError)
    assert type(obj).__name__ in str(info.value)


@pytest.mark.parametrize(
    "obj",
    [object(), gl.symbolic_trace(torch.nn.Sequential(torch.nn.ReLU())), torch.nn.ReLU()],
    ids=["object", "graphlift.GraphModule", "nn.Module"],
)
def test_from_fx_refuses_what_it_cannot_convert(obj: Any) -> None:
    with pytest.raises(InteropError, match=r"from_fx converts a torch\.fx\.GraphModule"):
        from_fx(obj)


def test_from_fx_refuses_a_custom_calling_convention() -> None:
    class Boxed(torch.fx.graph.CodeGen):
        pass

    fx_gm = torch.fx.symbolic_trace(torch.nn.ReLU())
    fx_gm.graph.set_codegen(Boxed())
    with pytest.raises(InteropError, match="custom Boxed"):
        from_fx(fx_gm)
