"""The ``graphs`` table: subgraphs (control-flow bodies) referenced with get_attr.

Exported programs do not contain subgraphs yet (control flow is being added);
the format already has their place, so this tests the table itself.
"""

from __future__ import annotations

import json
import operator

import pytest
import torch

from graphlift.errors import ArchiveError
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.serialize.decode import decode_graphs
from graphlift.serialize.encode import encode_graphs
from graphlift.serialize.reader import Data
from graphlift.serialize.schema import LIMITS
from graphlift.serialize.shape_env_state import ExprReader
from graphlift.serialize.values import ValueDecoder

aten = torch.ops.aten


def body(op: torch._ops.OpOverload, inner: GraphModule | None = None) -> GraphModule:
    graph = Graph()
    x = graph.placeholder("x")
    if inner is not None:
        graph.get_attr("inner_0")
    graph.output((graph.call_function(op, (x,)),))
    return GraphModule({"inner_0": inner} if inner is not None else torch.nn.Module(), graph)


def program_with_subgraphs() -> GraphModule:
    graph = Graph()
    x = graph.placeholder("x")
    total = graph.call_function(aten.sum.default, (x,))
    pred = graph.call_function(aten.gt.Scalar, (total, 0))
    true_graph = graph.get_attr("true_graph_0")
    false_graph = graph.get_attr("false_graph_0")
    cond = graph.call_function(torch.ops.higher_order.cond, (pred, true_graph, false_graph, (x,)))
    graph.output((graph.call_function(operator.getitem, (cond, 0)),))
    subgraphs = {
        "true_graph_0": body(aten.cos.default, inner=body(aten.neg.default)),
        "false_graph_0": body(aten.sin.default),
    }
    return GraphModule(subgraphs, graph)


def decode(data: object) -> GraphModule:
    values = ValueDecoder(None, ExprReader(LIMITS.max_expression_chars))
    return decode_graphs(Data(json.loads(json.dumps(data)), "graphs"), values, LIMITS)


def test_subgraphs_round_trip_by_qualified_name() -> None:
    original = program_with_subgraphs()
    data = encode_graphs(original)
    assert list(data) == ["root", "true_graph_0", "true_graph_0.inner_0", "false_graph_0"]
    assert data["root"]["nodes"][5]["target"] == "higher_order::cond"
    loaded = decode(data)
    assert str(loaded.graph) == str(original.graph)
    for name in ("true_graph_0", "true_graph_0.inner_0", "false_graph_0"):
        assert str(loaded.get_submodule(name).graph) == str(original.get_submodule(name).graph)
    assert encode_graphs(loaded) == data


def test_a_get_attr_of_a_missing_subgraph_is_an_archive_error() -> None:
    data = encode_graphs(program_with_subgraphs())
    del data["false_graph_0"]
    with pytest.raises(ArchiveError, match="false_graph_0"):
        decode(data)
    with pytest.raises(ArchiveError, match="unknown higher-order operator"):
        data = encode_graphs(program_with_subgraphs())
        data["root"]["nodes"][5]["target"] = "higher_order::no_such_thing"
        decode(data)
