"""``replace_pattern``: replace every occurrence of a pattern with a replacement
(torch.fx.subgraph_rewriter's API and semantics).

The pattern and the replacement are functions (traced with `symbolic_trace`),
GraphModules or Graphs with the same number of inputs and outputs. Each
contained, non-overlapping match (see graphlift.ir.passes.matcher) is
replaced: the replacement's nodes are copied in just before the first user of
the match's results, its inputs bound to what the pattern's placeholders
matched, and the matched nodes are erased. The GraphModule is recompiled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from graphlift.errors import RewriteError
from graphlift.fx.tracer import symbolic_trace
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule, copy_attribute
from graphlift.ir.node import Node
from graphlift.ir.passes.matcher import InternalMatch, SubgraphMatcher

Pattern = Callable[..., Any] | Graph | GraphModule
MatchFilter = Callable[[InternalMatch, Graph, Graph], bool]


class Match(NamedTuple):
    anchor: Node  # the pattern node the match was found from
    nodes_map: dict[Node, Any]  # pattern node -> graph node


@dataclass
class ReplacedPatterns:
    anchor: Node
    nodes_map: dict[Node, Any]
    replacements: list[Node]  # the nodes the replacement added


def replace_pattern(gm: GraphModule, pattern: Pattern, replacement: Pattern) -> list[Match]:
    """Replace each match of ``pattern`` in ``gm`` with ``replacement``; returns the matches."""
    replaced = replace_pattern_with_filters(gm, pattern, replacement)
    return [Match(anchor=r.anchor, nodes_map=r.nodes_map) for r in replaced]


def replace_pattern_with_filters(
    gm: GraphModule,
    pattern: Pattern,
    replacement: Pattern,
    match_filters: list[MatchFilter] | None = None,
    ignore_literals: bool = False,
) -> list[ReplacedPatterns]:
    """``replace_pattern`` keeping only matches every filter accepts;
    ``ignore_literals`` lets literals in the pattern match any value."""
    pattern_graph, replacement_graph = _graph_of(pattern), _graph_of(replacement)
    graph = gm.graph
    matches = SubgraphMatcher(pattern_graph, ignore_literals).match(graph)
    matches = [m for m in matches if all(f(m, graph, pattern_graph) for f in match_filters or ())]
    replaced_by: dict[Node, Node] = {}  # a returned node of an earlier match -> its replacement
    results = []
    for match in matches:
        inputs = [
            replaced_by.get(v, v) if isinstance(v, Node) else v for v in match.placeholder_nodes
        ]
        new_nodes = _substitute(graph, match, replacement_graph, inputs)
        for old, new in zip(match.returning_nodes, new_nodes):
            old.replace_all_uses_with(new)
            replaced_by[old] = new
        for pattern_node in reversed(list(pattern_graph.nodes)):
            if pattern_node.op not in ("placeholder", "output"):
                graph.erase_node(match.nodes_map[pattern_node])
        added = [n for n in new_nodes if n not in inputs]
        results.append(ReplacedPatterns(match.anchors[0], match.nodes_map, added))
    if isinstance(replacement, torch.nn.Module):
        _copy_used_attributes(replacement, gm)
    gm.recompile()
    return results


def _graph_of(pattern: Pattern) -> Graph:
    if isinstance(pattern, GraphModule):
        return pattern.graph
    if isinstance(pattern, Graph):
        return pattern
    return symbolic_trace(pattern).graph


def _substitute(
    graph: Graph, match: InternalMatch, replacement: Graph, inputs: list[Any]
) -> list[Node]:
    placeholders = [n for n in replacement.nodes if n.op == "placeholder"]
    if len(placeholders) != len(inputs):
        raise RewriteError(
            f"the pattern takes {len(inputs)} inputs but the replacement takes "
            f"{len(placeholders)}; they must take the same inputs"
        )
    users = {user for node in match.returning_nodes for user in node.users}
    anchor = next((n for n in graph.nodes if n in users), None)
    if anchor is None:  # results unused: insert after the last returned node
        anchor = max(match.returning_nodes, key=list(graph.nodes).index).next
    val_map: dict[Node, Any] = dict(zip(placeholders, inputs))
    with graph.inserting_before(anchor):
        result = graph.graph_copy(replacement, val_map)
    results = list(result) if isinstance(result, tuple | list) else [result]
    if len(results) != len(match.returning_nodes):
        raise RewriteError(
            f"the pattern returns {len(match.returning_nodes)} values but the replacement "
            f"returns {len(results)}"
        )
    return results


def _copy_used_attributes(replacement: torch.nn.Module, gm: GraphModule) -> None:
    """Parameters, buffers and submodules the replacement uses move into ``gm``."""
    for node in gm.graph.nodes:
        if node.op not in ("get_attr", "call_module"):
            continue
        try:
            gm.get_submodule(str(node.target)) if node.op == "call_module" else _fetch(gm, node)
        except AttributeError:
            copy_attribute(replacement, gm, str(node.target))


def _fetch(root: torch.nn.Module, node: Node) -> Any:
    value: Any = root
    for atom in str(node.target).split("."):
        value = getattr(value, atom)
    return value
