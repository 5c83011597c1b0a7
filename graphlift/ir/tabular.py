"""A graph as a table, one row per node: what ``Graph.print_tabular`` prints.

The layout is torch.fx's (its ``tabulate`` call with the "simple" format):
left-aligned columns two spaces apart, no trailing spaces, each at least its header plus two
wide, a dashed rule under the header. Targets print as ``str(target)`` like
torch.fx, except that a text holding a memory address (``<built-in method relu
of type object at 0x7f...>``) is replaced by the target's stable name, so the
table is the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphlift.ir.node import Node, describe_target

HEADERS = ("opcode", "name", "target", "args", "kwargs")
HEADER_PADDING = 2  # tabulate's MIN_PADDING for the simple format
COLUMN_GAP = "  "


def target_text(target: Any) -> str:
    text = str(target)
    return describe_target(target) if " at 0x" in text else text


def node_row(node: Node) -> tuple[str, ...]:
    return (node.op, node.name, target_text(node.target), str(node.args), str(node.kwargs))


def format_table(rows: Iterable[tuple[str, ...]], headers: tuple[str, ...] = HEADERS) -> str:
    rows = list(rows)
    widths = [
        max([len(header) + HEADER_PADDING, *(len(row[i]) for row in rows)])
        for i, header in enumerate(headers)
    ]

    def line(cells: Iterable[str]) -> str:
        return COLUMN_GAP.join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    rule = COLUMN_GAP.join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def tabulate_graph(nodes: Iterable[Node]) -> str:
    """The table ``Graph.print_tabular`` prints."""
    return format_table(node_row(node) for node in nodes)
