"""Dead-code elimination."""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphlift.ir.effects import has_side_effect

if TYPE_CHECKING:
    from collections.abc import Collection

    from graphlift.ir.graph import Graph
    from graphlift.ir.node import Node


def eliminate_dead_code(graph: Graph, keep: Collection[Node] = ()) -> int:
    """Erase nodes whose values are unused and that have no side effects.

    Placeholders, the output node and the nodes in ``keep`` (with what they
    read) are always kept. Visiting nodes from the
    last to the first erases whole dead chains in one sweep. Returns how many
    nodes were erased.
    """
    erased = 0
    kept = set(keep)
    for node in reversed(graph.nodes):
        if node.users or node in kept or has_side_effect(node):
            continue
        graph.erase_node(node)
        erased += 1
    return erased
