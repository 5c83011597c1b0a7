"""Replaying one graph's nodes under ``DecomposingMode``: the piece
``run_decompositions`` uses for the program's graph and, recursively, for every
control-flow body (``body_replay.py``).

A ``GraphReplay`` maps each node of a source graph to its replayed value
(``values``) while ``recorder.graph`` receives the new nodes. Who supplies the
placeholders' values and what becomes of the outputs is the caller's business:
the program-level ``Replay`` (decompositions.py) binds inputs and builds the
signature, ``body_replay.replay_body`` binds a body's operands and returns its
flat tuple.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch._dispatch.python import enable_python_dispatcher

from graphlift.errors import ConstraintViolationError
from graphlift.export.decomp_cache import CallCache
from graphlift.export.decomp_table import Decomposition, DecompositionRule
from graphlift.export.decomp_zero_one import check_decomposition
from graphlift.export.replay_recorder import CARRIED_META, ReplayRecorder
from graphlift.export.verifier import CONTROL_FLOW_TARGETS
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.symbolic import ShapeEnv
from graphlift.trace.leaf import LeafFunction
from graphlift.trace.mode import SPECIAL_OPS, TraceMode, exporting_flags
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.export.body_replay import ReplayedBody


class DecomposingMode(TraceMode):
    """TraceMode that runs an op's decomposition (under itself) instead of
    recording the op, whenever the rule says so; equal calls are replayed from
    the first one's nodes (``decomp_cache``)."""

    def __init__(
        self,
        recorder: ReplayRecorder,
        rule: Callable[[Any], Decomposition | None],
        cache: CallCache | None,
    ) -> None:
        super().__init__(recorder)
        self.rule = rule
        self.cache = cache

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten.alias.default:
            # A functional graph has no aliasing to express: CIA kernels such as
            # contiguous() and dropout() in eval return their input through alias.
            return args[0]
        if self.cache is None:
            return self._dispatch(func, types, args, kwargs)
        return self.cache.call(
            func, args, kwargs, lambda: self._dispatch(func, types, args, kwargs), self._meta
        )

    def _dispatch(self, func: Any, types: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        decomposition = self.rule(func)
        if decomposition is not None:
            with self:
                result = decomposition(*args, **kwargs)
            if result is not NotImplemented:
                return result
        return super().__torch_dispatch__(func, types, args, kwargs)

    def _meta(self) -> dict[str, Any]:
        source = self.recorder.source  # type: ignore[attr-defined]
        """The carried meta of the node being replayed; a key it lacks is None, so a
        cached template made from another node does not pass its own value on."""
        return {k: None if source is None else source.meta.get(k) for k in CARRIED_META}


class GraphReplay:
    """Replays the ``call_function`` and ``get_attr`` nodes of one graph into
    ``recorder.graph``, decomposing as ``rule`` says. ``module`` owns the
    graph's control-flow bodies; ``label`` names the body in errors (None for
    the program's graph). Replayed bodies land in ``bodies`` by name."""

    def __init__(
        self,
        module: torch.nn.Module,
        recorder: ReplayRecorder,
        rule: DecompositionRule,
        shape_env: ShapeEnv | None,
        mode: DecomposingMode,
        label: str | None = None,
    ) -> None:
        self.module = module
        self.recorder = recorder
        self.rule = rule
        self.shape_env = shape_env
        self.mode = mode
        self.label = label
        self.values: dict[Node, Any] = {}
        self.bodies: dict[str, GraphModule] = {}
        self._pending: dict[Node, ReplayedBody] = {}  # new get_attr -> its replayed body

    def child(self, module: GraphModule, label: str) -> GraphReplay:
        """A replay of a body of this graph, sharing recorder, rule and mode."""
        return GraphReplay(module, self.recorder, self.rule, self.shape_env, self.mode, label)

    def replay_nodes(self, nodes: list[Node]) -> None:
        for node in nodes:
            if node.op == "call_function":
                self.values[node] = self._call(node)
            elif node.op == "get_attr":
                self.values[node] = self._subgraph(node)

    def output_arg(self, value: Any) -> Any:
        if isinstance(value, TraceTensor):
            return self.recorder.local(value.node)
        if isinstance(value, torch.SymInt) and self.recorder.symbolic is not None:
            return self.recorder.symbolic.node_for(value)
        return value

    def _subgraph(self, node: Node) -> Node:
        """A control-flow body: replayed (decomposed) into a new body under the same
        name; the ``get_attr`` stays. The body is installed when its call is
        replayed, once every body of the call is known (``body_replay.finish_call``)."""
        from graphlift.export.body_replay import replay_body  # body_replay builds on this module

        name = str(node.target)
        body = getattr(self.module, name)
        label = name if self.label is None else f"{self.label}.{name}"
        replayed = replay_body(self, body, label)
        new = self.recorder.graph.get_attr(name)
        new.meta = dict(node.meta)
        self._pending[new] = replayed
        return new

    def _call(self, node: Node) -> Any:
        args = map_arg(node.args, self.values.__getitem__)
        kwargs = map_arg(node.kwargs, self.values.__getitem__)
        if node.target in CONTROL_FLOW_TARGETS:
            return self._control_flow(node, args, kwargs)
        if isinstance(node.target, LeafFunction):  # opaque: recorded as it was
            return self._leaf_call(node, args, kwargs)
        size_query = SIZE_QUERIES.get(node.target)
        if size_query is not None:  # a size, recomputed; emitted again where an op needs it
            return size_query(*args, **kwargs)
        self.recorder.source = node
        self.recorder.module_stack = node.meta.get("nn_module_stack", {})
        known = len(self.shape_env.guards) if self.shape_env is not None else 0
        try:
            kept, result = self._record_as_before(node, args, kwargs)
            if not kept:
                result = self._decompose(node, args, kwargs)
        finally:
            self.recorder.source = None
        if self.shape_env is not None and len(self.shape_env.guards) > known:
            self._refuse_new_guard(node, self.shape_env.guards[known])
        return result

    def _control_flow(self, node: Node, args: Any, kwargs: Any) -> Any:
        """The call as it was (same result metadata), over the replayed bodies;
        values the bodies newly lifted are appended to its operands."""
        from graphlift.export.body_replay import finish_call

        return self._leaf_call(node, finish_call(self, args), kwargs)

    def _leaf_call(self, node: Node, args: Any, kwargs: Any) -> Any:
        """A call recorded whole, with the result metadata it had: a control-flow
        operator, or a leaf function (its fake implementation is not run again)."""
        self.recorder.source = node
        try:
            return self.recorder.record_opaque(node.target, args, kwargs, node)
        finally:
            self.recorder.source = None

    def _decompose(self, node: Node, args: Any, kwargs: Any) -> Any:
        """Run ``node``'s op under the mode (decomposing it); 0/1 questions its
        decomposition asks are assumed away and checked on numbers (decomp_zero_one.py)."""
        if self.shape_env is None:
            return node.target(*args, **kwargs)
        graph = self.recorder.graph
        anchor = next(reversed(graph.nodes), None)
        with self.shape_env.assuming_not_0_or_1() as assumptions:
            result = node.target(*args, **kwargs)
        if assumptions:
            recorded = []  # the nodes the decomposition appended
            current = anchor.next if anchor is not None else next(iter(graph.nodes), None)
            while current is not None and current.op != "root":
                recorded.append(current)
                current = current.next
            constants = {c.name: c.value for c in self.recorder.constants}
            check_decomposition(
                self.shape_env, node.target, args, kwargs, result, recorded, constants, assumptions
            )
        return result

    def _record_as_before(self, node: Node, args: Any, kwargs: Any) -> tuple[bool, Any]:
        """Record an op the table keeps from its original metadata (see replay_recorder)."""
        op = node.target
        if (
            not isinstance(op, torch._ops.OpOverload)
            or op in SPECIAL_OPS
            or op is torch.ops.aten.alias.default
            or op._schema.is_mutable
            or self.rule(op) is not None
        ):
            return False, None
        return self.recorder.record_as_before(op, args, kwargs, node)

    def _refuse_new_guard(self, node: Node, guard: Any) -> None:
        """A decomposition must not narrow what the program accepts: a guard it
        adds (a loop unrolled over a dynamic length, a size-1 branch) is refused."""
        where = "" if self.label is None else f" (in the control-flow body {self.label})"
        raise ConstraintViolationError(
            f"decomposing {node.format_node()}{where} would restrict the program's dynamic "
            f"shapes to {guard.code}; keep {node.target} whole (del table[{node.target}] in the "
            "decomposition table) or export that dimension as static",
            where=node.meta.get("stack_trace"),
        )


SIZE_QUERIES: dict[Any, Callable[..., Any]] = {
    torch.ops.aten.sym_size.int: lambda tensor, dim: tensor.shape[dim],
    torch.ops.aten.sym_stride.int: lambda tensor, dim: tensor.stride(dim),
    torch.ops.aten.sym_numel.default: lambda tensor: tensor.numel(),
    torch.ops.aten.sym_storage_offset.default: lambda tensor: tensor.storage_offset(),
}


@contextmanager
def replaying(mode: TraceMode, *, symbolic: bool) -> Iterator[None]:
    """The context ``tracing()`` gives export, with ``mode`` as the dispatch mode:
    below autograd (composite ops arrive whole), the python dispatcher on for
    symbolic sizes, and backend-specific paths off (as torch.export does):
    ``lstm``'s decomposition would otherwise call ``mkldnn_rnn_layer`` on CPU.
    Grad mode is off as in torch.export's inference IR: decompositions such as
    ``matmul`` choose between ``mm`` and ``bmm`` by ``requires_grad``."""
    with ExitStack() as stack:
        stack.enter_context(exporting_flags())
        stack.enter_context(torch.no_grad())
        stack.enter_context(_backend_paths_off())
        if symbolic:
            stack.enter_context(enable_python_dispatcher())
        stack.enter_context(torch._C._AutoDispatchBelowADInplaceOrView())
        stack.enter_context(mode)
        yield


@contextmanager
def _backend_paths_off() -> Iterator[None]:
    saved = torch._C._get_mkldnn_enabled(), torch._C._get_nnpack_enabled()
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_nnpack_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(saved[0])
        torch._C._set_nnpack_enabled(saved[1])
