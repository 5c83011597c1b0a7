"""Finding a pattern graph inside another graph (torch.fx's SubgraphMatcher).

The pattern's placeholders are wildcards: each matches any one value (a node
or a literal), the same value wherever it is used. Every other pattern node
must match a node with the same opcode and target whose arguments match
pairwise; literals must be equal and of the same type. Matching starts from
the pattern's *anchors* (the values its output returns that nothing else in
the pattern uses) and walks arguments backwards, because a value has one
producer but possibly many users.

A match is kept only if it is *contained*: no value computed inside it,
except the ones the pattern returns, is used outside it. Overlapping matches
keep the first one in graph order.

Each attempt to match an anchor works on its own copy of the mapping, so a
failed partial match leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphlift.errors import GraphError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node

Mapping = dict[Node, Any]  # pattern node -> graph node (or literal, for a placeholder)


@dataclass
class InternalMatch:
    """One occurrence of the pattern (torch.fx's field names)."""

    anchors: list[Node]
    nodes_map: Mapping = field(default_factory=dict)
    placeholder_nodes: list[Any] = field(default_factory=list)
    returning_nodes: list[Node] = field(default_factory=list)


class SubgraphMatcher:
    def __init__(self, pattern: Graph, ignore_literals: bool = False) -> None:
        nodes = list(pattern.nodes)
        if not nodes or nodes[-1].op != "output":
            raise GraphError("a pattern graph needs an output node")
        for node in nodes:
            if node.op != "output" and not node.users and not node.is_impure():
                raise GraphError(f"the pattern has dead code: {node.name!r} is never used")
        self.pattern = pattern
        self.ignore_literals = ignore_literals
        self.placeholders = [n for n in nodes if n.op == "placeholder"]
        self.returning = nodes[-1].all_input_nodes
        self.anchors = [n for n in self.returning if len(n.users) == 1]

    def match(self, graph: Graph) -> list[InternalMatch]:
        found: list[InternalMatch] = []
        self._extend({}, 0, list(graph.nodes), found)
        contained = [m for m in found if self._is_contained(m.nodes_map)]
        return _first_of_overlapping(contained)

    def _extend(
        self, mapping: Mapping, index: int, candidates: list[Node], found: list[InternalMatch]
    ) -> None:
        """Backtracking over anchors: match anchor ``index`` and the rest after it."""
        if index == len(self.anchors):
            found.append(self._finish(mapping))
            return
        for node in candidates:
            extended = self._match_node(self.anchors[index], node, dict(mapping))
            if extended is not None:
                self._extend(extended, index + 1, candidates, found)

    def _finish(self, mapping: Mapping) -> InternalMatch:
        return InternalMatch(
            anchors=list(self.anchors),
            nodes_map=mapping,
            placeholder_nodes=[mapping[p] for p in self.placeholders if p in mapping],
            returning_nodes=[mapping[r] for r in self.returning],
        )

    def _match_node(self, pn: Node, gn: Node, mapping: Mapping) -> Mapping | None:
        if pn in mapping:
            return mapping if mapping[pn] is gn else None
        if any(value is gn for value in mapping.values()) or not _same_kind(pn, gn):
            return None
        mapping[pn] = gn
        if pn.op == "placeholder":
            return mapping
        if len(pn.args) != len(gn.args) or list(pn.kwargs) != list(gn.kwargs):
            return None
        return self._match_args(
            [*pn.args, *pn.kwargs.values()], [*gn.args, *gn.kwargs.values()], mapping
        )

    def _match_args(self, pattern: list[Any], graph: list[Any], mapping: Mapping) -> Mapping | None:
        if len(pattern) != len(graph):
            return None
        for pa, ga in zip(pattern, graph):
            if isinstance(pa, Node) and isinstance(ga, Node):
                result = self._match_node(pa, ga, mapping)
            elif isinstance(pa, list | tuple) and isinstance(ga, list | tuple):
                result = self._match_args(list(pa), list(ga), mapping)
            else:
                result = self._match_literal(pa, ga, mapping)
            if result is None:
                return None
            mapping = result
        return mapping

    def _match_literal(self, pa: Any, ga: Any, mapping: Mapping) -> Mapping | None:
        if isinstance(pa, Node):  # only a placeholder stands for a literal
            if pa.op != "placeholder":
                return None
            if pa in mapping:
                return mapping if mapping[pa] == ga else None
            mapping[pa] = ga
            return mapping
        if isinstance(ga, Node):
            return mapping if self.ignore_literals else None
        if self.ignore_literals or (type(pa) is type(ga) and pa == ga):
            return mapping
        return None

    def _is_contained(self, mapping: Mapping) -> bool:
        inside = {gn: pn for pn, gn in mapping.items() if pn.op != "placeholder"}
        return all(
            pn in self.returning or all(user in inside for user in gn.users)
            for gn, pn in inside.items()
        )


def _same_kind(pn: Node, gn: Node) -> bool:
    if pn.op == "placeholder":
        return True
    if pn.op != gn.op:
        return False
    return pn.op == "output" or pn.op == "get_attr" or pn.target == gn.target


def _first_of_overlapping(matches: list[InternalMatch]) -> list[InternalMatch]:
    kept: list[InternalMatch] = []
    taken: set[Node] = set()
    for match in matches:
        computed = [
            gn for pn, gn in match.nodes_map.items() if pn.op not in ("placeholder", "output")
        ]
        if any(gn in taken for gn in computed):
            continue
        kept.append(match)
        taken.update(computed)
    return kept
