"""Decomposing inside control-flow bodies (``torch.cond``/``map``/``while_loop``/``scan``).

A body is a ``GraphModule`` submodule of the program (``true_graph_0``...),
called by the parent graph through a ``get_attr``. ``run_decompositions``
replays it like the program's graph (``GraphReplay``, same recorder, rule and
mode), into a new ``Graph`` installed under the same name:

- each placeholder becomes a TraceTensor (or SymInt) built from its
  ``meta["val"]`` in the forked ShapeEnv, under its old name and in its old
  position, so the calling convention is kept; its symbolic dimensions are
  bound to it *inside the body* (a body receives the sizes it uses as lifted
  operands, see trace/control_flow.py), overriding the parent's bindings so
  that ``sym_size`` nodes read the body's own placeholders;
- nested bodies are replayed recursively when their ``get_attr`` is met;
- the outputs are a flat tuple, as before.

A decomposition may need an outer value the body does not receive: a tensor
constant it creates (lifted as a program input) or a size the body never
needed before. Such a value is lifted exactly as tracing lifts it
(``control_flow.Subgraph.lift``): a new placeholder at the end of the body, and
a new operand appended to the call's last operand tuple. The bodies of one call
(both ``cond`` branches, ``while_loop``'s cond and body) take the same
operands, so each gets a placeholder for every value any of them lifted
(``finish_call``). The call's result metadata does not change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from graphlift.errors import InternalError
from graphlift.export.decomp_cache import CallCache
from graphlift.export.graph_replay import GraphReplay
from graphlift.export.replay_recorder import in_env, shadow_like
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.ir.passes import eliminate_dead_code
from graphlift.symbolic.expr import as_symbol
from graphlift.trace.control_flow import Subgraph


@dataclass
class ReplayedBody:
    """A body replayed into ``sub.graph``; ``bodies`` are its own (nested) bodies."""

    sub: Subgraph
    bodies: dict[str, GraphModule] = field(default_factory=dict)


def replay_body(parent: GraphReplay, body: GraphModule, label: str) -> ReplayedBody:
    """``body`` decomposed into a new graph (installed later by ``finish_call``)."""
    sub = Subgraph(Graph())
    replay = parent.child(body, label)
    nodes = list(body.graph.nodes)
    with _body_scope(parent, sub):
        for node in nodes:
            if node.op == "placeholder":
                replay.values[node] = _operand(replay, sub.graph, node)
        replay.replay_nodes(nodes)
        outputs = map_arg(nodes[-1].args[0], replay.values.__getitem__)
        sub.graph.output(tuple(replay.output_arg(value) for value in outputs))
    eliminate_dead_code(sub.graph)  # placeholders stay: they are the calling convention
    return ReplayedBody(sub, replay.bodies)


def finish_call(parent: GraphReplay, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Install the bodies a control-flow call takes (its ``get_attr`` arguments) in
    ``parent.bodies``; the call's arguments with the values they lifted appended
    to its last operand tuple (every operator keeps lifted values last)."""
    attrs = [arg for arg in args if isinstance(arg, Node) and arg in parent._pending]
    replayed = [parent._pending.pop(attr) for attr in attrs]
    lifted: list[Node] = []
    for body in replayed:
        lifted.extend(outer for outer in body.sub.captured if outer not in lifted)
    for attr, body in zip(attrs, replayed):
        _take(body.sub, lifted)
        parent.bodies[str(attr.target)] = GraphModule(dict(body.bodies), body.sub.graph)
    if not lifted:
        return args
    operands = tuple(args[-1]) + tuple(parent.recorder.local(outer) for outer in lifted)
    return (*args[:-1], operands)


def _take(sub: Subgraph, lifted: list[Node]) -> None:
    """Give ``sub`` one placeholder per value in ``lifted``, last and in that order."""
    for outer in lifted:
        sub.lift(outer)
    first = next(node for node in sub.graph.nodes if node.op != "placeholder")
    for outer in lifted:
        first.prepend(sub.lifted[outer])


@contextmanager
def _body_scope(parent: GraphReplay, sub: Subgraph) -> Iterator[None]:
    """Record into ``sub.graph`` while the block runs: outer nodes are lifted,
    symbolic sizes are built inside, and the call cache starts empty (its
    templates refer to nodes of the graph they were recorded in)."""
    recorder, mode = parent.recorder, parent.mode
    saved = (recorder.graph, recorder.lift, mode.cache)
    recorder.graph, recorder.lift = sub.graph, sub.lift
    if mode.cache is not None:
        mode.cache = CallCache(sub.graph, parent.shape_env)
    symbolic = recorder.symbolic
    try:
        with symbolic.scope(sub.graph, sub.lift) if symbolic is not None else nullcontext():
            yield
    finally:
        recorder.graph, recorder.lift, mode.cache = saved


def _operand(replay: GraphReplay, graph: Graph, node: Node) -> Any:
    """The replayed value of a body placeholder, its symbols bound to it."""
    new = graph.placeholder(node.name)
    if new.name != node.name:
        raise InternalError(f"body placeholder {node.name!r} was renamed to {new.name!r}")
    value = node.meta.get("val")
    recorder, env = replay.recorder, replay.shape_env
    if isinstance(value, torch.Tensor):
        traced = recorder.wrap(shadow_like(value, env), new, value.device, False)
        for dim, size in enumerate(traced.shape):
            _bind(replay, size, new, dim)
        return traced
    if isinstance(value, torch.SymInt):
        value = in_env(value, env)
        _bind(replay, value, new, None)
    new.meta["val"] = value
    return value


def _bind(replay: GraphReplay, size: Any, node: Node, dim: int | None) -> None:
    """``size`` (a plain symbol) is read from ``node`` inside the body, not lifted;
    the first placeholder carrying a symbol binds it."""
    symbolic = replay.recorder.symbolic
    if symbolic is None or not isinstance(size, torch.SymInt):
        return
    symbol = as_symbol(size.node.symbolic_expr)
    if symbol is None:
        return
    known = symbolic.bindings.get(symbol)
    if known is None or known[0].graph is not node.graph:
        symbolic.bindings[symbol] = (node, dim)
