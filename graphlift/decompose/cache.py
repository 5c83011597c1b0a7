"""Replaying an op call from the nodes an equal call recorded before.

A model repeats itself: every layer of a transformer calls ``linear``,
``layer_norm`` and ``softmax`` on tensors of the same shapes. Decomposing (or
recording) such a call runs Python decompositions and meta kernels, which with
symbolic sizes means thousands of small shape decisions. The outcome depends
only on the op and its *argument signature*: for tensors their sizes, strides,
dtype, device and which arguments are the same tensor; for symbolic sizes
their expressions; other arguments by value. So the nodes the first call
recorded (a ``Template``) are copied for every later call with the same
signature, with the new arguments substituted, and no kernel runs.

A call is only cached when it did not change the ShapeEnv (no new symbols, no
guards or runtime asserts: a data-dependent op makes a new unbacked symbol per
call, which must not be shared) and did not rebind its inputs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.ir.graph import Graph
from graphlift.ir.node import Node, map_arg
from graphlift.symbolic import ShapeEnv
from graphlift.trace.tensor import TraceTensor

_SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout,
            torch.memory_format)  # fmt: skip


class Uncacheable(Exception):
    """An argument the signature cannot describe (a real tensor, an unknown object)."""


def signature(op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
    """A hashable description of a call that fixes what it records, or None."""
    seen: dict[int, int] = {}
    try:
        return (op, _describe(args, seen), _describe(kwargs, seen))
    except Uncacheable:
        return None


def _describe(value: Any, seen: dict[int, int]) -> Hashable:
    if isinstance(value, TraceTensor):
        first = seen.setdefault(id(value), len(seen))
        return ("T", first, _sizes(value.shape), _sizes(value.stride()),
                _size(value.storage_offset()), value.dtype, value.device,
                value.requires_grad)  # fmt: skip
    if isinstance(value, torch.SymInt):
        return ("S", value.node.symbolic_expr)
    if isinstance(value, float):
        return (float, repr(value))  # 0.0 and -0.0, nan
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if isinstance(value, tuple | list):
        return (type(value), tuple(_describe(item, seen) for item in value))
    if isinstance(value, dict):
        return (dict, tuple((key, _describe(item, seen)) for key, item in value.items()))
    raise Uncacheable


def _size(size: Any) -> Hashable:
    return ("S", size.node.symbolic_expr) if isinstance(size, torch.SymInt) else size


def _sizes(sizes: Any) -> tuple[Hashable, ...]:
    return tuple(_size(size) for size in sizes)


def _tensors(value: Any) -> list[TraceTensor]:
    if isinstance(value, TraceTensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


# Nodes that compute symbolic sizes belong to the whole graph (SymbolicValues
# builds each once and reuses it), not to the call that first needed them.
_SIZE_TARGETS = {torch.ops.aten.sym_size.int}


def _is_call_node(node: Node) -> bool:
    target = node.target
    if target in _SIZE_TARGETS:
        return False
    return isinstance(target, torch._ops.OpOverload) or target is operator.getitem


@dataclass(frozen=True)
class Template:
    """The nodes one call recorded, the argument tensors it read, and its result."""

    inputs: tuple[TraceTensor, ...]
    input_nodes: tuple[Node, ...]
    nodes: tuple[Node, ...]
    result: Any

    def replay(self, graph: Graph, args: Any, kwargs: Any, meta: dict[str, Any]) -> Any:
        """Record the template's nodes again over ``args``/``kwargs``; ``meta`` is
        set on every new node (its source line and module stack)."""
        inputs = _tensors((args, kwargs))
        node_map = {old: new.node for old, new in zip(self.input_nodes, inputs)}
        values: dict[int, Any] = {id(old): new for old, new in zip(self.inputs, inputs)}
        new_nodes = []
        for node in self.nodes:
            target = node.target
            assert callable(target), node.format_node()
            new = graph.call_function(
                target,
                map_arg(node.args, lambda n: node_map.get(n, n)),
                map_arg(node.kwargs, lambda n: node_map.get(n, n)),
            )
            new.meta.update({k: v for k, v in node.meta.items() if k != "val"})
            for key, value in meta.items():  # None: the replayed node has no such key
                if value is None:
                    new.meta.pop(key, None)
                else:
                    new.meta[key] = value
            node_map[node] = new
            new_nodes.append((node, new))

        def convert(value: Any) -> Any:
            if isinstance(value, TraceTensor):
                known = values.get(id(value))
                if known is None:
                    node = node_map.get(value.node)
                    if node is None:
                        return value  # a tensor from outside the call (a lifted constant)
                    known = TraceTensor(value.shadow, node, value.device, value.requires_grad)
                    values[id(value)] = known
                return known
            if isinstance(value, tuple | list):
                return type(value)(convert(item) for item in value)
            return value

        for old, new in new_nodes:
            new.meta["val"] = convert(old.meta["val"])
        return convert(self.result)


class CallCache:
    """Templates by call signature, and the bookkeeping to capture new ones."""

    def __init__(self, graph: Graph, shape_env: ShapeEnv | None) -> None:
        self.graph = graph
        self.shape_env = shape_env
        self.templates: dict[Hashable, Template] = {}
        self.hits = 0

    def call(
        self,
        op: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        run: Callable[[], Any],
        meta: Callable[[], dict[str, Any]],
    ) -> Any:
        """``run()``'s result, replayed from a template when one matches."""
        key = signature(op, args, kwargs)
        if key is None:
            return run()
        template = self.templates.get(key)
        if template is not None:
            self.hits += 1
            return template.replay(self.graph, args, kwargs, meta())
        inputs = _tensors((args, kwargs))
        input_nodes = tuple(t.node for t in inputs)
        last = next(reversed(self.graph.nodes), None)
        state = self._state()
        result = run()
        if state == self._state() and input_nodes == tuple(t.node for t in inputs):
            nodes = self._nodes_after(last)
            if nodes is not None and all("val" in node.meta for node in nodes):
                self.templates[key] = Template(tuple(inputs), input_nodes, nodes, result)
        return result

    def _state(self) -> tuple[int, int, int]:
        env = self.shape_env
        if env is None:
            return (0, 0, 0)
        return (len(env.symbols), len(env.guards), len(env.runtime_asserts))

    def _nodes_after(self, last: Node | None) -> tuple[Node, ...] | None:
        """The op nodes recorded after ``last``; None when the call recorded control
        flow (a body and its call), which a template cannot copy."""
        nodes = []
        node = last.next if last is not None else next(iter(self.graph.nodes), None)
        while node is not None and node.op != "root":
            if node.op == "get_attr":
                return None
            if node.op == "call_function" and _is_call_node(node):
                nodes.append(node)
            node = node.next
        return tuple(nodes)
