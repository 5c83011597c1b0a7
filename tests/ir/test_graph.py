"""Graph editing, lint and use-def bookkeeping."""

from __future__ import annotations

import copy
import operator

import pytest
import torch

import graphlift as gl
from graphlift.errors import GraphError, ImmutableArgumentError, MissingAttributeError


def small_graph() -> tuple[gl.Graph, dict[str, gl.Node]]:
    g = gl.Graph()
    x = g.placeholder("x")
    y = g.placeholder("y")
    add = g.call_function(operator.add, (x, y))
    relu = g.call_function(torch.relu, (add,))
    g.output(relu)
    return g, {"x": x, "y": y, "add": add, "relu": relu}


def test_users_follow_argument_edits() -> None:
    g, n = small_graph()
    assert list(n["add"].users) == [n["relu"]]
    n["relu"].args = (n["x"],)
    assert not n["add"].users
    assert n["relu"] in n["x"].users
    g.lint()


def test_arguments_are_immutable() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    cat = g.call_function(torch.cat, ([x, x],))
    with pytest.raises(ImmutableArgumentError, match="immutable") as caught:
        cat.args[0].append(x)
    assert isinstance(caught.value, TypeError)  # as torch.fx's immutable_list raises


def test_replace_all_uses_with() -> None:
    g, n = small_graph()
    with g.inserting_after(n["add"]):
        mul = g.call_function(operator.mul, (n["x"], n["y"]))
    changed = n["add"].replace_all_uses_with(mul)
    assert changed == [n["relu"]]
    assert n["relu"].args == (mul,)
    g.erase_node(n["add"])
    g.lint()
    assert [node.name for node in g.nodes] == ["x", "y", "mul", "relu", "output"]


def test_inserting_before_restores_the_insertion_point() -> None:
    g, n = small_graph()
    with g.inserting_before(n["relu"]):
        neg = g.call_function(operator.neg, (n["add"],))
    assert neg.next is n["relu"]
    n["relu"].args = (neg,)
    g.lint()
    tail = g.call_function(torch.tanh, (n["x"],))  # goes to the end again
    assert tail.prev.op == "output"


def test_erasing_a_used_node_is_refused_with_its_users() -> None:
    g, n = small_graph()
    with pytest.raises(GraphError, match=r"still has 1 user\(s\) \(relu\)"):
        g.erase_node(n["add"])


def test_erasing_while_iterating_visits_every_remaining_node() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    nodes = [g.call_function(torch.relu, (x,)) for _ in range(5)]
    g.output(x)
    seen = []
    for node in g.nodes:
        seen.append(node.name)
        if node in nodes:
            g.erase_node(node)
    assert seen == ["x", "relu", "relu_1", "relu_2", "relu_3", "relu_4", "output"]
    assert [node.name for node in g.nodes] == ["x", "output"]
    assert len(g.nodes) == 2


def test_names_are_unique_and_never_shadow_generated_code_globals() -> None:
    g = gl.Graph()
    x = g.placeholder("x")
    names = [
        g.call_function(torch.max, (x,)).name,
        g.call_function(torch.max, (x,)).name,
        g.create_node("call_function", torch.relu, (x,), name="torch").name,
        g.create_node("call_function", torch.relu, (x,), name="add_1").name,
        g.create_node("call_function", torch.relu, (x,), name="add_1").name,
        g.create_node("call_function", torch.relu, (x,), name="9lives").name,
    ]
    assert names == ["max_1", "max_2", "torch_1", "add_1", "add_2", "_9lives"]


# --- lint ------------------------------------------------------------------------------


def test_lint_reports_use_before_definition() -> None:
    g, n = small_graph()
    n["add"].args = (n["x"], n["relu"])  # add now reads relu, defined after it
    with pytest.raises(GraphError, match="uses 'relu' before it is defined") as info:
        g.lint()
    assert "graph(x, y):" in str(info.value)  # the message shows the graph


def test_lint_reports_nodes_from_another_graph() -> None:
    g, n = small_graph()
    _other, m = small_graph()
    # As in torch.fx, create_node accepts it (copying loops fix arguments up
    # afterwards); lint reports it.
    with g.inserting_before(g.output_node()):
        foreign = g.call_function(torch.relu, (m["x"],))
    with pytest.raises(GraphError, match="uses 'x', which belongs to another graph"):
        g.lint()
    foreign.args = (n["x"],)
    n["relu"].args = (m["x"],)
    with pytest.raises(GraphError, match="uses 'x', which belongs to another graph"):
        g.lint()


def test_lint_reports_missing_attributes_of_the_owning_module() -> None:
    g = gl.Graph()
    w = g.get_attr("weight")
    g.output(w)
    with pytest.raises(MissingAttributeError, match="refers to 'weight'") as info:
        gl.GraphModule(torch.nn.Module(), g)
    assert isinstance(info.value, AttributeError)  # as torch.fx raises


def test_unknown_opcode_is_rejected() -> None:
    with pytest.raises(GraphError, match="unknown opcode 'call_lambda'"):
        gl.Graph().create_node("call_lambda", "f")


def test_node_copy_and_deepcopy_keep_structure_and_meta() -> None:
    g, n = small_graph()
    n["add"].meta["stack_trace"] = "model.py:3 in forward"
    copied = copy.deepcopy(g)
    assert str(copied) == str(g)
    add = next(node for node in copied.nodes if node.name == "add")
    assert add.meta["stack_trace"] == "model.py:3 in forward"
    assert add.graph is copied and add is not n["add"]
    copied.lint()
