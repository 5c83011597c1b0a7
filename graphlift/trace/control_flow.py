"""Control-flow operators: ``torch.cond``, ``map``, ``while_loop`` and ``scan``
captured as subgraphs.

Users call torch's own functions; torch turns them into its higher-order
operators (``torch.ops.higher_order.cond`` ...), which reach ``TraceMode``
like any op (the mode sets ``supports_higher_order_operators``). We recognise
them by identity and never call torch's implementation: each branch or body
is traced by the same Recorder into its own ``Graph``, stored as a
``GraphModule`` submodule of the program (``true_graph_0``, ``body_graph_0``,
...), and the parent graph calls one of this module's functions on
``get_attr`` nodes for those submodules:

    %true_graph_0 = get_attr[true_graph_0]
    %cond = call_function[graphlift.trace.control_flow.cond](%pred, %true_graph_0, %false_graph_0, (%x, %p_weight))

Values a body closes over (parameters, buffers, outer intermediates, symbolic
sizes) are lifted: they become extra placeholders of the subgraph and extra
operands of the call, as torch.export does. Outputs whose sizes differ
between branches get fresh unbacked sizes.

The functions below are also what runs in ``ep.module()``: plain Python
loops and branches over the subgraph modules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from graphlift.errors import TraceError
from graphlift.ir.effects import register_side_effect
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.pytree import tree_flatten, tree_unflatten
from graphlift.source import user_where
from graphlift.trace.recorder import META, Recorder
from graphlift.trace.tensor import TraceTensor

higher_order = torch.ops.higher_order

# --- what runs in ep.module() -------------------------------------------------------------


def cond(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any],
         operands: Sequence[Any]) -> Any:  # fmt: skip
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``."""
    return true_fn(*operands) if bool(pred) else false_fn(*operands)


def map_impl(body: Callable[..., Any], xs: Sequence[torch.Tensor], args: Sequence[Any]) -> Any:
    """``body`` on each slice of ``xs`` along dim 0, results stacked."""
    steps = [body(*[x[i] for x in xs], *args) for i in range(xs[0].shape[0])]
    return tuple(torch.stack([step[j] for step in steps]) for j in range(len(steps[0])))


def while_loop(cond_fn: Callable[..., Any], body_fn: Callable[..., Any],
               carried: Sequence[Any], additional: Sequence[Any]) -> Any:  # fmt: skip
    """Run ``body_fn`` while ``cond_fn`` holds; the final carried values."""
    carried = tuple(carried)
    while bool(cond_fn(*carried, *additional)[0]):
        carried = tuple(body_fn(*carried, *additional))
    return carried


def scan(combine_fn: Callable[..., Any], init: Sequence[torch.Tensor],
         xs: Sequence[torch.Tensor], additional: Sequence[Any]) -> Any:  # fmt: skip
    """``(carry, y) = combine_fn(carry, x)`` over dim 0 of ``xs``: final carry, stacked ys."""
    carry = tuple(init)
    ys: list[tuple[Any, ...]] = []
    for i in range(xs[0].shape[0]):
        out = combine_fn(*carry, *[x[i] for x in xs], *additional)
        carry, y = tuple(out[: len(carry)]), tuple(out[len(carry) :])
        ys.append(y)
    stacked = tuple(torch.stack([y[j] for y in ys]) for j in range(len(ys[0]))) if ys else ()
    return (*carry, *stacked)


@register_side_effect
def invoke_subgraph(body: Callable[..., Any], identifier: str, operands: Sequence[Any]) -> Any:
    """A shared body of a repeated block (trace/blocks.py), called on ``operands``:
    torch's ``invoke_subgraph`` semantics, one body for every equal call. Kept by
    dead-code elimination even when its results are unused, as the flat program
    keeps the body's eval-mode dropouts (``ep.inline_subgraphs()`` equals it)."""
    return body(*operands)


# --- tracing a body into its own graph -------------------------------------------------------


@dataclass
class Subgraph:
    """A body traced into ``graph``; ``captured`` are the outer nodes it lifted."""

    graph: Graph
    captured: list[Node] = field(default_factory=list)
    lifted: dict[Node, Node] = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=list)
    out_spec: Any = None
    children: dict[str, GraphModule] = field(default_factory=dict)  # its own bodies

    def lift(self, outer: Node) -> Node:
        """The placeholder standing for ``outer`` (a node of an enclosing graph)."""
        known = self.lifted.get(outer)
        if known is None:
            first = next((n for n in self.graph.nodes if n.op != "placeholder"), None)
            if first is None:  # only placeholders so far: append
                known = self.graph.placeholder(outer.name)
            else:
                with self.graph.inserting_before(first):
                    known = self.graph.placeholder(outer.name)
            known.meta["val"] = outer.meta.get("val")
            self.lifted[outer] = known
            self.captured.append(outer)
        return known


@contextmanager
def _scope(recorder: Recorder, sub: Subgraph) -> Iterator[None]:
    """Record into ``sub.graph`` while the block runs; outer values get lifted."""
    saved = (recorder.graph, recorder.lift, recorder.subgraphs)
    recorder.graph, recorder.lift, recorder.subgraphs = sub.graph, sub.lift, {}
    symbolic = recorder.ensure_symbolic()
    try:
        with symbolic.scope(sub.graph, sub.lift):
            yield
            symbolic.emit_runtime_asserts()
    finally:
        sub.children = recorder.subgraphs
        recorder.graph, recorder.lift, recorder.subgraphs = saved


def trace_body(
    recorder: Recorder, fn: Callable[..., Any], inputs: Sequence[Any], seed: Sequence[Node] = ()
) -> Subgraph:
    """Trace ``fn(*inputs)`` into a new graph. ``inputs`` are meta-like values
    (TraceTensors of the parent, or shadow tensors for slices) giving each
    placeholder's metadata; ``seed`` lifts outer nodes first, in that order."""
    sub = Subgraph(Graph())
    with _scope(recorder, sub):
        placeholders = []
        for index, value in enumerate(inputs):
            placeholders.append(_input(recorder, sub.graph, f"arg{index}_1", value))
        for outer in seed:
            sub.lift(outer)
        with recorder.trace_mode:  # torch pops the mode while it dispatches an operator
            result = fn(*placeholders)
        flat, sub.out_spec = tree_flatten(result)
        nodes = []
        for leaf in flat:
            if isinstance(leaf, torch.Tensor) and not isinstance(leaf, TraceTensor):
                leaf = recorder.constant(leaf)
            if not isinstance(leaf, TraceTensor):
                raise TraceError(
                    f"a control-flow body returned a {type(leaf).__name__}; bodies of cond, map, "
                    "while_loop and scan return tensors",
                    where=user_where(),
                )
            nodes.append(recorder.local(leaf.node))
            sub.outputs.append(leaf)
        sub.graph.output(tuple(nodes))
    return sub


def _input(recorder: Recorder, graph: Graph, name: str, value: Any) -> TraceTensor:
    if not isinstance(value, torch.Tensor):
        raise TraceError(
            f"control-flow operands must be tensors, got {type(value).__name__}",
            where=user_where(),
        )
    shadow = value.shadow if isinstance(value, TraceTensor) else value
    fresh = torch.empty_strided(shadow.shape, shadow.stride(), dtype=shadow.dtype, device=META)
    node = graph.placeholder(name)
    return recorder.bind_input(node, fresh, sizes=list(shadow.shape), device=value.device)


def _module(recorder: Recorder, prefix: str, sub: Subgraph) -> Node:
    """Store ``sub`` as a submodule of the program being recorded; a get_attr node for it."""
    index = sum(1 for name in recorder.subgraphs if name.startswith(prefix))
    name = f"{prefix}_{index}"
    while name in recorder.subgraphs or name in recorder.reserved_subgraph_names:
        index += 1
        name = f"{prefix}_{index}"
    recorder.subgraphs[name] = GraphModule(dict(sub.children), sub.graph)
    return recorder.graph.get_attr(name)


def _operands(recorder: Recorder, values: Sequence[Any]) -> list[Any]:
    """Parent-graph operands: TraceTensors stay, real tensors become lifted constants."""
    result = []
    for value in values:
        if isinstance(value, torch.Tensor) and not isinstance(value, TraceTensor):
            value = recorder.constant(value)
        result.append(value)
    return result


def _record(recorder: Recorder, target: Callable[..., Any], args: tuple[Any, ...],
            shadows: list[torch.Tensor], operands: Sequence[Any]) -> Any:  # fmt: skip
    if recorder.symbolic is not None:
        recorder.symbolic.emit_runtime_asserts()
    node = recorder.record(target, args, {})
    device = next((v.device for v in operands if isinstance(v, torch.Tensor)), None)
    requires_grad = torch.is_grad_enabled() and any(
        isinstance(v, torch.Tensor) and v.requires_grad for v in operands
    )
    wrapped = recorder.wrap_results(node, tuple(shadows), device or recorder.default_device,
                                    requires_grad)  # fmt: skip
    if recorder.symbolic is not None:
        recorder.symbolic.bind_sizes(wrapped)
    return wrapped


def _nodes(recorder: Recorder, values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(recorder.convert(value) for value in values)


# --- the operators ------------------------------------------------------------------------------


def trace_cond(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``torch.cond(pred, true_fn, false_fn, operands)``: both branches become subgraphs."""
    pred, true_fn, false_fn, operands = args
    flat = _operands(recorder, tree_flatten(tuple(operands))[0])
    true_sub = trace_body(recorder, true_fn, flat)
    false_sub = trace_body(recorder, false_fn, flat, seed=true_sub.captured)
    for outer in false_sub.captured[len(true_sub.captured) :]:
        true_sub.lift(outer)  # both branches take the same operands
    if len(true_sub.outputs) != len(false_sub.outputs):
        raise TraceError(
            f"torch.cond branches return {len(true_sub.outputs)} and {len(false_sub.outputs)} "
            "tensors; both branches must return the same structure",
            where=user_where(),
        )
    shadows = [_merge(recorder, a, b) for a, b in zip(true_sub.outputs, false_sub.outputs)]
    true_attr = _module(recorder, "true_graph", true_sub)
    false_attr = _module(recorder, "false_graph", false_sub)
    pred_node = recorder.convert(pred)
    operand_nodes = (*_nodes(recorder, flat), *[recorder.local(n) for n in true_sub.captured])
    call = (pred_node, true_attr, false_attr, operand_nodes)
    results = _record(recorder, cond, call, shadows, flat)
    return tree_unflatten(list(results), true_sub.out_spec)


def _merge(recorder: Recorder, a: TraceTensor, b: TraceTensor) -> torch.Tensor:
    """The metadata of a cond output: sizes both branches agree on, a fresh
    unbacked size where they may differ."""
    if a.dtype != b.dtype or a.dim() != b.dim():
        raise TraceError(
            f"torch.cond branches return tensors of different dtype or rank ({a.dtype}, "
            f"{a.dim()} dims vs {b.dtype}, {b.dim()} dims)",
            where=user_where(),
        )
    sizes: list[int | torch.SymInt] = []
    for x, y in zip(a.shape, b.shape):
        if isinstance(x, int) and isinstance(y, int) and x == y:
            sizes.append(x)
            continue
        env = recorder.ensure_symbolic().shape_env
        if not isinstance(x, int) or not isinstance(y, int):
            same = x == y  # a plain True when both sizes are the same expression
            if same is True or (isinstance(same, torch.SymBool) and env.statically_known_true(
                same.node.symbolic_expr
            )):  # fmt: skip
                sizes.append(x)
                continue
        sizes.append(env.create_unbacked_symint(size_like=True))
    return torch.empty(sizes, dtype=a.dtype, device=META)


def trace_map(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``map(f, xs, *args)``: the body sees one slice of each ``xs`` along dim 0."""
    body, xs, pos_args = args
    xs = _operands(recorder, list(xs))
    extra = _operands(recorder, list(pos_args))
    slices = [_slice_shadow(x) for x in xs]
    sub = trace_body(recorder, body, [*slices, *extra])
    count = xs[0].shape[0]
    shadows = [
        torch.empty((count, *out.shape), dtype=out.dtype, device=META) for out in sub.outputs
    ]
    attr = _module(recorder, "body_graph", sub)
    lifted = [recorder.local(n) for n in sub.captured]
    args_nodes = (attr, _nodes(recorder, xs), (*_nodes(recorder, extra), *lifted))
    results = _record(recorder, map_impl, args_nodes, shadows, xs)
    return tree_unflatten(list(results), sub.out_spec)


def trace_while_loop(
    recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``while_loop(cond_fn, body_fn, carried_inputs, additional_inputs)``."""
    cond_fn, body_fn, carried, additional = args
    carried = _operands(recorder, list(carried))
    additional = _operands(recorder, list(additional))
    cond_sub = trace_body(recorder, cond_fn, [*carried, *additional])
    body_sub = trace_body(recorder, body_fn, [*carried, *additional], seed=cond_sub.captured)
    for outer in body_sub.captured[len(cond_sub.captured) :]:
        cond_sub.lift(outer)
    for before, after in zip(carried, body_sub.outputs):
        if before.dtype != after.dtype or list(before.shape) != list(after.shape):
            raise TraceError(
                "while_loop's body must return carried values of the same shape and dtype as it "
                f"received: {before.dtype}{list(before.shape)} became {after.dtype}{list(after.shape)}",
                where=user_where(),
            )
    shadows = [_shadow(value) for value in carried]
    cond_attr = _module(recorder, "while_loop_cond_graph", cond_sub)
    body_attr = _module(recorder, "while_loop_body_graph", body_sub)
    lifted = [recorder.local(n) for n in cond_sub.captured]
    call = (
        cond_attr,
        body_attr,
        _nodes(recorder, carried),
        (*_nodes(recorder, additional), *lifted),
    )
    return tuple(_record(recorder, while_loop, call, shadows, carried))


def trace_scan(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``scan(combine_fn, init, xs, additional_inputs)`` (torch moved the scan dim to 0)."""
    combine_fn, init, xs, additional = args
    init = _operands(recorder, list(init))
    xs = _operands(recorder, list(xs))
    additional = _operands(recorder, list(additional))
    slices = [_slice_shadow(x) for x in xs]
    sub = trace_body(recorder, combine_fn, [*init, *slices, *additional])
    count = xs[0].shape[0]
    ys = sub.outputs[len(init) :]
    shadows = [_shadow(value) for value in init] + [
        torch.empty((count, *y.shape), dtype=y.dtype, device=META) for y in ys
    ]
    attr = _module(recorder, "scan_combine_graph", sub)
    lifted = [recorder.local(n) for n in sub.captured]
    call = (attr, _nodes(recorder, init), _nodes(recorder, xs),
            (*_nodes(recorder, additional), *lifted))  # fmt: skip
    results = _record(recorder, scan, call, shadows, init)
    return tree_unflatten(list(results), sub.out_spec)  # (carry, ys) as combine_fn returns


def _slice_shadow(value: Any) -> torch.Tensor:
    """The metadata of one slice along dim 0, made without indexing: ``shadow[0]``
    would teach the shape env that the length is at least 1, which is false for an
    empty scan (a loop over ``nonzero()`` may run zero times)."""
    shadow = value.shadow if isinstance(value, TraceTensor) else value
    return torch.empty_strided(shadow.shape[1:], shadow.stride()[1:], dtype=shadow.dtype,
                               device=META)  # fmt: skip


def _shadow(value: Any) -> torch.Tensor:
    shadow = value.shadow if isinstance(value, TraceTensor) else value
    return torch.empty_strided(shadow.shape, shadow.stride(), dtype=shadow.dtype, device=META)


CONTROL_FLOW_OPS: dict[Any, Callable[..., Any]] = {
    higher_order.cond: trace_cond,
    higher_order.map_impl: trace_map,
    higher_order.while_loop: trace_while_loop,
    higher_order.scan: trace_scan,
}

# The graph targets of recorded control flow (what a graph's call_function node calls).
CONTROL_FLOW_TARGETS = {cond, map_impl, while_loop, scan, invoke_subgraph}
