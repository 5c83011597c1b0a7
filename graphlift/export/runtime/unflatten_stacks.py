"""Before ``unflatten`` cuts the flat graph into calls: which call each node belongs to.

A node's call is the innermost key of its ``meta["nn_module_stack"]``. Three
kinds of nodes need a decision first, each for a reason:

- **Size computations** (``sym_size``, ``operator.floordiv`` on sizes, ...)
  are built once per expression while tracing and then shared by every call
  that needs the size. A shared node would make one call depend on another's
  internals, so each group of users in a different call gets its own copy,
  placed just before its first user (the work is the same as eager's, where
  every module reads ``x.size(0)`` itself).
- **Runtime asserts** are recorded without a stack, as soon as their symbols
  exist. They belong to the call that produced the value they check (an
  ``.item()`` inside ``a.b`` is checked inside ``a.b``), or to the root.
- **Write-backs** of mutations (``copy_`` into a buffer) carry the stack of
  the value they write (export/writeback.py), so they run inside the
  submodule that made the mutation, as in eager.
"""

from __future__ import annotations

import math
import operator

import torch

from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.trace.data_dependent import runtime_assert

aten = torch.ops.aten

_SIZE_OPS = frozenset({aten.sym_size.int, aten.sym_stride.int, aten.sym_numel.default,
                       aten.sym_storage_offset.default})  # fmt: skip
_SIZE_FUNCTIONS = frozenset({torch.sym_max, torch.sym_min, torch.sym_not, torch.sym_float,
                             torch.sym_int, torch.sym_ite, torch.sym_sqrt})  # fmt: skip
_SIZE_MODULES = frozenset({operator.__name__, "_operator", math.__name__})
_ASSERTS = frozenset({aten._assert_scalar.default, runtime_assert})
_SCALARS = (torch.SymInt, torch.SymFloat, torch.SymBool, int, float, bool)

Stack = dict[str, tuple[str, str]]


def stack_of(node: Node) -> Stack:
    return node.meta.get("nn_module_stack") or {}


def is_size_computation(node: Node) -> bool:
    """A pure scalar computation on sizes: safe to repeat wherever it is needed."""
    if node.op != "call_function" or not isinstance(node.meta.get("val"), _SCALARS):
        return False
    target = node.target
    return (
        target in _SIZE_OPS
        or target in _SIZE_FUNCTIONS
        or getattr(target, "__module__", None) in _SIZE_MODULES
    )


def assign_calls(graph: Graph) -> None:
    """Decide the call of every runtime assert and size computation (module docstring)."""
    position: dict[Node, float] = {node: float(i) for i, node in enumerate(graph.nodes)}
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in _ASSERTS and not stack_of(node):
            _set_stack(node, stack_of(_checked_producer(node, position)))
    for node in reversed(list(graph.nodes)):
        if is_size_computation(node) and node.users:
            _copy_per_call(graph, node, position)


def _checked_producer(node: Node, position: dict[Node, float]) -> Node:
    """The last node that is not a size computation among what ``node`` reads
    (through size computations)."""
    found: list[Node] = []
    pending = list(node.all_input_nodes)
    seen: set[Node] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if is_size_computation(current) and current.target not in _SIZE_OPS:
            pending.extend(current.all_input_nodes)
        elif current.op == "call_function" and current.target in _SIZE_OPS:
            pending.extend(current.all_input_nodes)
        else:
            found.append(current)
    return max(found, key=position.__getitem__, default=node)


def _copy_per_call(graph: Graph, node: Node, position: dict[Node, float]) -> None:
    groups: dict[tuple[str, ...], list[Node]] = {}
    for user in node.users:
        groups.setdefault(tuple(stack_of(user)), []).append(user)
    for index, users in enumerate(groups.values()):
        first = min(users, key=position.__getitem__)
        before = first.prev
        if before is node:
            before = node.prev
        if index == 0:
            target = node
            first.prepend(node)  # next to its call: extraction walks only the call's span
        else:
            with graph.inserting_before(first):
                target = graph.node_copy(node, lambda arg: arg)
            target.meta = dict(node.meta)
            for user in users:
                user.replace_input_with(node, target)
        # between its new neighbours, so later decisions see the real order
        position[target] = (position.get(before, -1.0) + position[first]) / 2
        _set_stack(target, stack_of(first))


def _set_stack(node: Node, stack: Stack) -> None:
    if stack:
        node.meta["nn_module_stack"] = stack
    else:
        node.meta.pop("nn_module_stack", None)
