"""Dead-code elimination."""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphlift.ir.effects import has_side_effect

if TYPE_CHECKING:
    from graphlift.ir.graph import Graph


def eliminate_dead_code(graph: Graph) -> int:
    """Erase nodes whose values are unused and that have no side effects.

    Placeholders and the output node are always kept. Visiting nodes from the
    last to the first erases whole dead chains in one sweep. Returns how many
    nodes were erased.
    """
    erased = 0
    for node in reversed(graph.nodes):
        if node.users or has_side_effect(node):
            continue
        graph.erase_node(node)
        erased += 1
    return erased
