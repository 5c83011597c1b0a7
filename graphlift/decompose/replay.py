"""Replaying graphs under ``DecomposingMode``: the engine behind ``run_decompositions``,
for the program's graph and, recursively, for every control-flow body.

A ``GraphReplay`` maps each node of a source graph to its replayed value
(``values``) while ``recorder.graph`` receives the new nodes. Who supplies the
placeholders' values and what becomes of the outputs is the caller's business:
``engine.replay_program`` binds a program's inputs, ``replay_body`` below binds
a body's operands and returns its flat tuple.

Control-flow bodies (``torch.cond``/``map``/``while_loop``/``scan``).

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

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.utils._python_dispatch import _disable_current_modes
from torch.utils._pytree import tree_map

from graphlift.decompose.cache import CallCache
from graphlift.decompose.recorder import CARRIED_META, ReplayRecorder, in_env, shadow_like
from graphlift.decompose.table import Decomposition, DecompositionRule
from graphlift.decompose.zero_one import check_decomposition, excludes_only_failing_sizes
from graphlift.decompose.zero_one_structure import ConcreteRun
from graphlift.errors import ConstraintViolationError, InternalError
from graphlift.ir.graph import Graph, candidate_name
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.ir.passes import eliminate_dead_code
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import as_symbol, free_symbols
from graphlift.symbolic.guards import Guard
from graphlift.trace.control_flow import CONTROL_FLOW_TARGETS, Subgraph, invoke_subgraph
from graphlift.trace.leaf import LeafFunction
from graphlift.trace.mode import SPECIAL_OPS, TraceMode, exporting_flags
from graphlift.trace.tensor import TraceTensor


# torch's TorchDispatchMode.__init_subclass__ is unannotated
class DecomposingMode(TraceMode):  # type: ignore[no-untyped-call]
    """TraceMode that runs an op's decomposition (under itself) instead of
    recording the op, whenever the rule says so; equal calls are replayed from
    the first one's nodes (``cache.py``)."""

    recorder: ReplayRecorder

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
        if isinstance(func, torch._ops.HigherOrderOperator):
            # A decomposition's own control flow (recurrent.py): its body is a new
            # graph, where templates recorded in this one must not be replayed.
            cache, self.cache = self.cache, None
            try:
                return self._dispatch(func, types, args, kwargs)
            finally:
                self.cache = cache
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
        source = self.recorder.source
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
        self.narrowings: list[Narrowing] = []  # kept guards over Dim.AUTO sizes (top level)
        self._pending: dict[Node, ReplayedBody] = {}  # new get_attr -> its replayed body
        self._replayed: dict[str, ReplayedBody] = {}  # a body shared by calls: replayed once
        # a shared block's call -> the names its new body's nodes take when inlined
        self.block_names: dict[Node, dict[str, str]] = {}

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
        symbolic = isinstance(value, torch.SymInt | torch.SymFloat)
        if symbolic and self.recorder.symbolic is not None:
            return self.recorder.symbolic.node_for(value)
        return value

    def _subgraph(self, node: Node) -> Node:
        """A control-flow body: replayed (decomposed) into a new body under the same
        name; the ``get_attr`` stays. The body is installed when its call is
        replayed, once every body of the call is known (``finish_call``)."""
        name = str(node.target)
        replayed = self._replayed.get(name)
        if replayed is None:
            body = getattr(self.module, name)
            label = name if self.label is None else f"{self.label}.{name}"
            replayed = self._replayed[name] = replay_body(self, body, label)
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
        if self.shape_env is not None:
            for guard in self.shape_env.guards[known:]:
                self._judge_new_guard(node, args, kwargs, guard, known)
        return result

    def _judge_new_guard(
        self, node: Node, args: Any, kwargs: Any, guard: Guard, known: int
    ) -> None:
        """A guard decomposing ``node`` added, at the top level: kept when it refuses
        only sizes where the op itself raises (every input the original program
        could run still runs), or when it is over ``Dim.AUTO`` sizes only (the user
        let the program choose their ranges; kept and announced as a narrowing).
        Anything else is refused: a named Dim's declared range is a promise."""
        assert self.shape_env is not None
        if self.label is None:
            before = [g.expr for g in self.shape_env.guards[:known]]
            if excludes_only_failing_sizes(
                self.shape_env, node.target, args, kwargs, guard.expr, before
            ):
                return
            symbols = free_symbols(guard.expr)
            if symbols and all(self.shape_env.is_auto(name) for name in symbols):
                self.narrowings.append(Narrowing(node, guard))
                return
        self._refuse_new_guard(node, guard)

    def _control_flow(self, node: Node, args: Any, kwargs: Any) -> Any:
        """The call as it was (same result metadata), over the replayed bodies;
        values the bodies newly lifted are appended to its operands."""
        if node.target is invoke_subgraph:
            body = getattr(self.module, str(node.args[0].target))
            check_block_layouts(body, args[2])
        args = finish_call(self, args)
        if node.target is invoke_subgraph and self.label is None:
            return self._block_call(node, args, kwargs)
        return self._leaf_call(node, args, kwargs)

    def _block_call(self, node: Node, args: Any, kwargs: Any) -> Any:
        """A shared block's call, recorded as export records one (trace/blocks.py):
        first the names its body's nodes take when inlined are reserved, in the
        order the body's replay recorded them, the nodes it then erased as dead
        too (the names replaying the flat program gives those nodes),
        then the call, its results named ``block_output``. Inlining the replayed
        program thus names its nodes, and its module call graph, as the flat one."""
        graph = self.recorder.graph
        replayed = self._replayed[str(args[0].target)]
        kept = {n.name for n in replayed.sub.graph.nodes}
        reserved = {name: graph.reserve_name(candidate) for name, candidate in replayed.recorded}
        names = {name: flat for name, flat in reserved.items() if name in kept}
        result = self._leaf_call(node, args, kwargs, element_name="block_output")
        call = next(iter(reversed(graph.nodes)))
        while call.target is not invoke_subgraph:
            call = call.prev
        call.meta["inlined_names"] = names
        self.block_names[node] = names
        return result

    def _leaf_call(
        self, node: Node, args: Any, kwargs: Any, element_name: str | None = None
    ) -> Any:
        """A call recorded whole, with the result metadata it had: a control-flow
        operator, or a leaf function (its fake implementation is not run again)."""
        self.recorder.source = node
        try:
            return self.recorder.record_opaque(_target(node), args, kwargs, node, element_name)
        finally:
            self.recorder.source = None

    def _decompose(self, node: Node, args: Any, kwargs: Any) -> Any:
        """Run ``node``'s op under the mode (decomposing it); 0/1 questions its
        decomposition asks are assumed away and checked on numbers (zero_one.py)."""
        if self.shape_env is None:
            return _target(node)(*args, **kwargs)
        graph = self.recorder.graph
        anchor = next(reversed(graph.nodes), None)
        with self.shape_env.assuming_not_0_or_1() as assumptions:
            result = _target(node)(*args, **kwargs)
        if assumptions:
            recorded = []  # the nodes the decomposition appended
            current = anchor.next if anchor is not None else next(iter(graph.nodes), None)
            while current is not None and current.op != "root":
                recorded.append(current)
                current = current.next
            constants = {c.name: c.value for c in self.recorder.constants}
            constants.update(self.recorder.subgraphs)  # bodies the decomposition made
            rerun = partial(decompose_concretely, self.rule, self.recorder.default_device)
            check_decomposition(
                self.shape_env, node.target, args, kwargs, result, recorded, constants,
                assumptions, rerun,
            )  # fmt: skip
        return result

    def _record_as_before(self, node: Node, args: Any, kwargs: Any) -> tuple[bool, Any]:
        """Record an op the table keeps from its original metadata (see recorder.py)."""
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


def decompose_concretely(
    rule: Callable[[Any], Decomposition | None], default_device: torch.device, op: Any,
    args: tuple[Any, ...], kwargs: dict[str, Any], devices: Mapping[int, torch.device],
) -> ConcreteRun:  # fmt: skip
    """``op`` decomposed as ``rule`` says on concrete meta tensors (each standing for
    a tensor on ``devices[id(tensor)]``), into a graph of its own: what a replay
    of a static program records for this call (``zero_one_structure.py``)."""
    graph = Graph()
    recorder = ReplayRecorder(graph, default_device=default_device)
    mode = DecomposingMode(recorder, rule, None)
    inputs: dict[int, Node] = {}

    def bind(value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        if id(value) not in inputs:
            node = recorder.new_input(f"arg{len(inputs)}")
            traced = recorder.bind_input(node, value, device=devices[id(value)])
            inputs[id(value)] = node
            return traced
        return inputs[id(value)].meta["val"]

    with _disable_current_modes():  # the replay's own mode must not record this
        traced_args, traced_kwargs = tree_map(bind, (args, kwargs))
        with replaying(mode, symbolic=True):
            result = op(*traced_args, **traced_kwargs)
    constants = {c.name: c.value for c in recorder.constants}
    return ConcreteRun(graph, inputs, result, constants)


class BlockLayoutChanged(Exception):
    """A shared block body is decomposed once, for its operands' strides at the first
    call; a later call whose operands, as decomposed, are laid out otherwise cannot
    share it (the body's ``linear`` became a ``view`` those first strides allow: the
    diffusers UNet's cross-attention output projection). ``run_decompositions``
    catches it and decomposes the flat program (``ep.inline_subgraphs()``) instead;
    it never reaches a user."""


def check_block_layouts(body: GraphModule, operands: Any) -> None:
    """Raise :class:`BlockLayoutChanged` unless every tensor operand has the strides
    and storage offset the body's placeholder was decomposed for."""
    placeholders = [node.meta.get("val") for node in body.graph.nodes if node.op == "placeholder"]
    for expected, value in zip(placeholders, operands):
        if isinstance(expected, torch.Tensor) and isinstance(value, torch.Tensor):
            if _layout(expected) != _layout(value):
                raise BlockLayoutChanged(body)


def _layout(tensor: torch.Tensor) -> tuple[Any, ...]:
    def expression(size: Any) -> Any:
        return size.node.symbolic_expr if isinstance(size, torch.SymInt) else size

    return tuple(map(expression, (*tensor.stride(), tensor.storage_offset())))


@dataclass(frozen=True)
class Narrowing:
    """A guard decomposing ``node`` needed over ``Dim.AUTO`` sizes only."""

    node: Node
    guard: Guard


@dataclass
class ReplayedBody:
    """A body replayed into ``sub.graph``; ``bodies`` are its own (nested) bodies;
    ``renamed`` maps each old body node's name to the name of the new body node
    its value became (a shared block's call graph names body values)."""

    sub: Subgraph
    bodies: dict[str, GraphModule] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    recorded: list[tuple[str, str]] = field(default_factory=list)  # (name, candidate), all


def replay_body(parent: GraphReplay, body: GraphModule, label: str) -> ReplayedBody:
    """``body`` decomposed into a new graph (installed later by ``finish_call``)."""
    sub = Subgraph(Graph())
    replay = parent.child(body, label)
    nodes = list(body.graph.nodes)
    created: dict[str, Any] = {}
    with _body_scope(parent, sub, created, body_names(body)):
        for node in nodes:
            if node.op == "placeholder":
                replay.values[node] = _operand(replay, sub.graph, node)
        replay.replay_nodes(nodes)
        outputs = map_arg(nodes[-1].args[0], replay.values.__getitem__)
        sub.graph.output(tuple(replay.output_arg(value) for value in outputs))
    recorded = [(n.name, candidate_name(n.op, n.target)) for n in sub.graph.nodes
                if n.op not in ("placeholder", "output")]  # fmt: skip
    eliminate_dead_code(sub.graph)  # placeholders stay: they are the calling convention
    kept = set(sub.graph.nodes)
    renamed = {
        old.name: value.node.name
        for old, value in replay.values.items()
        if isinstance(value, TraceTensor) and value.node in kept
    }
    return ReplayedBody(sub, {**replay.bodies, **created}, renamed, recorded)


def body_names(module: torch.nn.Module) -> frozenset[str]:
    """The names of ``module``'s control-flow bodies (its GraphModule children)."""
    return frozenset(
        name for name, child in module.named_children() if isinstance(child, GraphModule)
    )


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
        installed = parent.bodies.get(str(attr.target))
        if installed is not None and installed.graph is body.sub.graph:
            continue  # a shared block body, installed by its first call
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
def _body_scope(
    parent: GraphReplay, sub: Subgraph, created: dict[str, Any], reserved: frozenset[str]
) -> Iterator[None]:
    """Record into ``sub.graph`` while the block runs: outer nodes are lifted,
    symbolic sizes are built inside, the call cache starts empty (its
    templates refer to nodes of the graph they were recorded in), and bodies a
    decomposition creates land in ``created``, named apart from ``reserved``."""
    recorder, mode = parent.recorder, parent.mode
    saved = (recorder.graph, recorder.lift, mode.cache, recorder.subgraphs,
             recorder.reserved_subgraph_names)  # fmt: skip
    recorder.graph, recorder.lift, recorder.subgraphs = sub.graph, sub.lift, created
    recorder.reserved_subgraph_names = reserved
    if mode.cache is not None:
        mode.cache = CallCache(sub.graph, parent.shape_env)
    symbolic = recorder.symbolic
    try:
        with symbolic.scope(sub.graph, sub.lift) if symbolic is not None else nullcontext():
            yield
    finally:
        recorder.graph, recorder.lift, mode.cache = saved[:3]
        recorder.subgraphs, recorder.reserved_subgraph_names = saved[3:]


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


def _target(node: Node) -> Callable[..., Any]:
    """A call_function node's target (always a callable in a traced graph)."""
    target = node.target
    assert callable(target), node.format_node()
    return target


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
        stack.enter_context(backend_paths_off())
        if symbolic:
            stack.enter_context(enable_python_dispatcher())
        stack.enter_context(torch._C._AutoDispatchBelowADInplaceOrView())
        stack.enter_context(mode)
        yield


@contextmanager
def backend_paths_off() -> Iterator[None]:
    saved = torch._C._get_mkldnn_enabled(), torch._C._get_nnpack_enabled()
    torch._C._set_mkldnn_enabled(False)
    torch._C._set_nnpack_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(saved[0])
        torch._C._set_nnpack_enabled(saved[1])
