"""Shared block bodies inlined back into a flat graph (``ep.inline_subgraphs()``).

Each ``invoke_subgraph`` call is replaced by a copy of its body's nodes, placed
where the call was, over the call's operands; the ``getitem`` nodes reading the
call's results become the copied outputs. A copy takes the name the flat trace
gave that node (``meta["inlined_names"]``, reserved when the call was
recorded) and the call's own module path in ``nn_module_stack`` (the body
holds the first call's), so inlining an exported program gives the graph
``reuse_blocks=False`` gives, node for node and name for name. Copies nothing
reads (a result the caller dropped) are erased, as the flat export's
dead-code elimination erased them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from operator import getitem
from typing import Any

from graphlift.ir.effects import has_side_effect
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.trace.control_flow import invoke_subgraph


def has_blocks(module: GraphModule) -> bool:
    """Whether ``module``'s graph calls a shared block body."""
    return any(node.target is invoke_subgraph for node in module.graph.nodes)


def inlined_names(module: GraphModule) -> set[str]:
    """The names the nodes of ``module``'s block calls take when inlined: the
    module call graph names a value computed inside a body (``layers.3.mlp``'s
    output) by the name it has in ``inline_subgraphs()``."""
    return {
        name
        for node in module.graph.nodes
        if node.target is invoke_subgraph
        for name in (node.meta.get("inlined_names") or {}).values()
    }


def inline_blocks(module: GraphModule) -> tuple[GraphModule, dict[str, str]]:
    """A new GraphModule with every block call of ``module`` inlined, and the new
    names of the nodes that read a call's results (``block_output`` -> ``add_4``,
    for the signature and the call graph); ``module`` is not changed. Other
    submodules (control-flow bodies) are kept."""
    flat, renamed = inline_block_graph(module.graph, lambda name: getattr(module, name))
    used = {str(n.target) for n in flat.nodes if n.op == "get_attr"}
    children = {name: child for name, child in module.named_children() if name in used}
    inlined = GraphModule(children, flat)
    inlined.meta = dict(module.meta)
    return inlined, renamed


def inline_block_graph(
    graph: Graph, body: Callable[[str], GraphModule]
) -> tuple[Graph, dict[str, str]]:
    """``graph`` with every block call inlined (``body(name)``: the submodule
    ``name``), as a new Graph, and the renamed result readers (``inline_blocks``).
    Needs no GraphModule, so no code is generated: the small-size proof reads
    the flat graph of a capture this way."""
    flat = Graph()
    values: dict[Node, Any] = {}
    results: dict[Node, tuple[Any, ...]] = {}
    copies: list[Node] = []
    renamed: dict[str, str] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is invoke_subgraph:
            results[node] = _inline_call(flat, body, node, values, copies)
        elif node.op == "call_function" and node.target is getitem and node.args[0] in results:
            values[node] = results[node.args[0]][node.args[1]]
            renamed[node.name] = values[node].name
        elif (
            node.op == "get_attr"
            and node.users
            and all(u.target is invoke_subgraph for u in node.users)
        ):
            continue
        elif node.op == "output":
            out = flat.output(map_arg(node.args[0], values.__getitem__), node.type)
            out.meta = copy.copy(node.meta)
        else:  # under its own name (a placeholder's may differ from its target)
            args, kwargs = map_arg((node.args, node.kwargs), values.__getitem__)
            values[node] = flat.create_node(
                node.op, node.target, args, kwargs, node.name, node.type, shadows_builtin=True
            )
            values[node].meta = copy.copy(node.meta)
    for node in reversed(copies):  # what the caller dropped, as the flat export drops it
        if not node.users and not has_side_effect(node):
            flat.erase_node(node)
    return flat, renamed


def _inline_call(flat: Graph, bodies: Callable[[str], GraphModule], call: Node,
                 values: dict[Node, Any], copies: list[Node]) -> tuple[Any, ...]:  # fmt: skip
    attr, _identifier, operands = call.args
    body = bodies(str(attr.target))
    names = call.meta.get("inlined_names") or {}
    stacks = _StackRemap(call.meta.get("nn_module_stack") or {})
    mapping: dict[Node, Any] = {}
    placeholders = [n for n in body.graph.nodes if n.op == "placeholder"]
    for placeholder, operand in zip(placeholders, operands):
        mapping[placeholder] = values[operand] if isinstance(operand, Node) else operand
    for node in body.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            return tuple(map_arg(node.args[0], mapping.__getitem__))
        args, kwargs = map_arg((node.args, node.kwargs), mapping.__getitem__)
        name = names.get(node.name, node.name)
        new = flat.create_node(node.op, node.target, args, kwargs, name, node.type)
        new.meta = copy.copy(node.meta)
        if "nn_module_stack" in node.meta:
            new.meta["nn_module_stack"] = stacks.remap(node.meta["nn_module_stack"])
        mapping[node] = new
        copies.append(new)
    return ()


class _StackRemap:
    """A body node's module stack (the first call's) as this call's: the entries
    down to the block are the call's own, the block's inner modules are moved
    from the first call's path to this call's."""

    def __init__(self, call_stack: dict[str, tuple[str, str]]) -> None:
        self.call_stack = call_stack
        self.depth = len(call_stack)
        self.path = list(call_stack.values())[-1][0] if call_stack else ""
        self.done: dict[int, dict[str, tuple[str, str]]] = {}

    def remap(self, stack: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        known = self.done.get(id(stack))
        if known is not None:
            return known
        entries = list(stack.items())
        if len(entries) < self.depth or not self.depth:
            return stack
        first_path = entries[self.depth - 1][1][0]
        remapped = dict(self.call_stack)
        for key, (path, kind) in entries[self.depth :]:
            remapped[self._moved(key, first_path)] = (self._moved(path, first_path), kind)
        self.done[id(stack)] = remapped
        return remapped

    def _moved(self, text: str, first_path: str) -> str:
        return self.path + text[len(first_path) :] if text.startswith(first_path) else text
