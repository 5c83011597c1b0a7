"""Structural checks of a Graph (``Graph.lint``).

Each check raises GraphError naming the offending node, what is wrong and how
to fix it, followed by the graph's printout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from graphlift.errors import GraphError, GraphTargetError
from graphlift.ir.node import OPCODES, Node

if TYPE_CHECKING:
    from graphlift.ir.graph import Graph

Fail = Callable[[str], NoReturn]


def lint_graph(graph: Graph) -> None:
    def fail(message: str) -> NoReturn:
        raise GraphError(f"{message}\n\n{graph}")

    defined: set[Node] = set()
    names: set[str] = set()
    nodes = list(graph.nodes)
    for position, node in enumerate(nodes):
        if node.op not in OPCODES:
            fail(f"node {node.name!r} has unknown opcode {node.op!r}")
        if node.graph is not graph:
            fail(f"node {node.name!r} belongs to another graph")
        if node.name in names:
            fail(f"two nodes are named {node.name!r}; node names must be unique")
        names.add(node.name)
        for used in node.all_input_nodes:
            _check_input(node, used, graph, defined, fail)
        for user in node.users:
            if node not in user._input_nodes:
                fail(f"node {node.name!r} lists {user.name!r} as a user, but it does not read it")
        _check_target(node, fail)
        if node.op == "output" and position != len(nodes) - 1:
            fail(f"output node {node.name!r} is not the last node of the graph")
        if node.op == "placeholder" and any(p.op != "placeholder" for p in nodes[:position]):
            fail(f"placeholder {node.name!r} comes after non-placeholder nodes")
        defined.add(node)
    if graph.owning_module is not None:
        _check_attributes(graph, fail)


def _check_input(node: Node, used: Node, graph: Graph, defined: set[Node], fail: Fail) -> None:
    if used.graph is not graph:
        fail(
            f"node {node.name!r} uses {used.name!r}, which belongs to another graph; "
            "when copying nodes between graphs, map their arguments (node_copy's arg_transform)"
        )
    elif used._erased:
        fail(f"node {node.name!r} uses {used.name!r}, which was erased")
    elif used not in defined:
        fail(
            f"node {node.name!r} uses {used.name!r} before it is defined; "
            "nodes must be in topological order (move the definition earlier)"
        )
    elif node not in used.users:
        fail(f"node {node.name!r} reads {used.name!r} but is missing from its users")


def _check_target(node: Node, fail: Fail) -> None:
    problem = None
    if node.op == "call_function" and not callable(node.target):
        problem = (
            f"call_function node {node.name!r} has a target that is not callable: {node.target!r}"
        )
    elif node.op != "call_function" and not isinstance(node.target, str):
        problem = f"{node.op} node {node.name!r} needs a string target, got {node.target!r}"
    if problem is not None:
        raise GraphTargetError(f"{problem}\n\n{node.graph}")


def _check_attributes(graph: Graph, fail: Fail) -> None:
    root = graph.owning_module
    for node in graph.nodes:
        if node.op not in ("get_attr", "call_module"):
            continue
        owner = root
        for atom in str(node.target).split("."):
            if not hasattr(owner, atom):
                fail(
                    f"{node.op} node {node.name!r} refers to {node.target!r}, which the module does not have"
                )
            owner = getattr(owner, atom)
