"""Common-subexpression elimination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphlift.ir.effects import is_pure, may_mutate
from graphlift.ir.node import Node

if TYPE_CHECKING:
    from graphlift.ir.graph import Graph


def eliminate_common_subexpressions(graph: Graph) -> int:
    """Replace each pure node by an earlier node with the same op, target and
    arguments, and erase it. Returns how many nodes were erased.

    A graph that mutates anything in place is left alone: there, two equal
    expressions can stand for different tensors (``a = x.clone(); b =
    x.clone(); a.add_(1)``), and telling them apart needs alias analysis.
    """
    if any(may_mutate(node) for node in graph.nodes):
        return 0
    seen: dict[Any, Node] = {}
    erased = 0
    for node in graph.nodes:
        if not is_pure(node):
            continue
        key = (node.op, _target_key(node.target), _key(node.args), _key(node.kwargs))
        earlier = seen.setdefault(key, node)
        if earlier is not node:
            node.replace_all_uses_with(earlier)
            graph.erase_node(node)
            erased += 1
    return erased


def _target_key(target: Any) -> Any:
    return target if isinstance(target, str) else ("callable", id(target))


def _key(arg: Any) -> Any:
    """A hashable key equal only for interchangeable arguments.

    Types are part of the key: ``1``, ``1.0`` and ``True`` compare equal in
    Python but promote differently in torch. Floats compare by ``repr`` so that
    ``-0.0 != 0.0`` and ``nan == nan``. Unhashable constants compare by identity.
    """
    if isinstance(arg, Node):
        return ("node", arg)
    if isinstance(arg, tuple | list):
        return (type(arg).__name__, tuple(_key(a) for a in arg))
    if isinstance(arg, dict):
        return ("dict", tuple((k, _key(v)) for k, v in arg.items()))
    if isinstance(arg, slice):
        return ("slice", _key((arg.start, arg.stop, arg.step)))
    if isinstance(arg, float):
        return ("float", repr(arg))
    try:
        hash(arg)
    except TypeError:
        return ("object", id(arg))
    return (type(arg), arg)
