"""``run_decompositions``: rewrite an exported program into core ATen, graph to graph.

torch.export re-runs the whole program through its export pipeline
(functionalization, autograd-level tracing, a new FakeTensor/ShapeEnv) to
decompose it. Here the *graph* is replayed once, node by node, through the same
Recorder and TraceMode that export uses:

- placeholders become TraceTensors built from their ``meta["val"]``, over a
  fork of the program's ShapeEnv (same symbols, ranges and guards; the
  original program is not touched);
- each ``call_function`` node is called on the replayed values under
  ``DecomposingMode``: an op the table (``decomp_table.DecompositionRule``)
  keeps is recorded as is; an op it decomposes runs its decomposition under
  the same mode, so every ATen op the decomposition calls is itself recorded
  or decomposed, recursively, down to ops the table keeps;
- symbolic sizes (``sym_size``, ``operator.mul``) are recomputed from the
  replayed values and re-emitted on demand, as during export;
- every node a source node produced inherits its ``stack_trace`` and
  ``nn_module_stack``, so errors and printouts still name the user's line.

Cost: one meta-kernel run per recorded node and one Python call per
decomposition: no model code, no autograd, no functionalization pass (the
graph is already functional; in-place ops a decomposition uses on fresh
tensors are recorded functionally by the Recorder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch._dispatch.python import enable_python_dispatcher

from graphlift.errors import ConstraintViolationError, InternalError
from graphlift.export.constraints import range_constraints
from graphlift.export.decomp_cache import CallCache
from graphlift.export.decomp_table import Decomposition, DecompositionRule, default_decompositions
from graphlift.export.decomp_zero_one import check_decomposition
from graphlift.export.replay_recorder import CARRIED_META, ReplayRecorder, in_env
from graphlift.export.signature import (
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputSpec,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.verifier import CONTROL_FLOW_TARGETS, verify
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.ir.passes import eliminate_dead_code
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import as_symbol
from graphlift.trace.mode import SPECIAL_OPS, TraceMode, exporting_flags
from graphlift.trace.recorder import LiftedConstant
from graphlift.trace.symbolic_values import SymbolicValues
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.export.program import ExportedProgram


def run_decompositions(
    program: ExportedProgram,
    decomp_table: Mapping[Any, Decomposition] | None = None,
    *,
    cache: bool = True,
) -> ExportedProgram:
    """A new ExportedProgram whose graph calls only ops ``decomp_table`` keeps
    (core ATen with the default table); ``program`` is left unchanged.
    ``cache=False`` decomposes every call afresh (for tests of the cache)."""
    table = default_decompositions() if decomp_table is None else decomp_table
    shape_env = fork_shape_env(program._shape_env) if program._shape_env is not None else None
    replay = Replay(program, DecompositionRule(table), shape_env, cache)
    graph, input_specs, output_specs, constants = replay.run()
    result = type(program)(
        graph_module=GraphModule(program.graph_module, graph),  # with control-flow bodies
        graph_signature=ExportGraphSignature(input_specs, output_specs),
        state_dict=dict(program.state_dict),
        constants=constants,
        range_constraints=range_constraints(shape_env) if shape_env else {},
        example_inputs=program.example_inputs,
        module_call_graph=program.module_call_graph,
        shape_env=shape_env,
        specializations=program.specializations,
    )
    verify(result, level="core" if decomp_table is None else "export")
    return result


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
        return {k: source.meta[k] for k in CARRIED_META if source is not None and k in source.meta}


class Replay:
    """One replay of ``program``'s graph into a new graph."""

    def __init__(
        self,
        program: ExportedProgram,
        rule: DecompositionRule,
        shape_env: ShapeEnv | None,
        cache: bool = True,
    ) -> None:
        self.program = program
        self.rule = rule
        self.shape_env = shape_env
        self.graph = Graph()
        self.recorder = ReplayRecorder(self.graph, default_device=_default_device(program))
        self.recorder.shape_env = shape_env
        if shape_env is not None:
            self.recorder.symbolic = SymbolicValues(self.graph, shape_env)
        self.values: dict[Node, Any] = {}
        self.cache = CallCache(self.graph, shape_env) if cache else None

    def run(
        self,
    ) -> tuple[Graph, tuple[InputSpec, ...], tuple[OutputSpec, ...], dict[str, torch.Tensor]]:
        nodes = list(self.program.graph.nodes)
        for node in nodes:
            if node.op == "placeholder":
                self.values[node] = self._placeholder(node)
        self._known_constants()
        with replaying(
            DecomposingMode(self.recorder, self.rule, self.cache),
            symbolic=self.shape_env is not None,
        ):
            for node in nodes:
                if node.op == "call_function":
                    self.values[node] = self._call(node)
                elif node.op == "get_attr":  # a control-flow body, carried as it is
                    self.values[node] = self._subgraph(node)
        output = nodes[-1]
        flat_outputs = [
            self._output_arg(value) for value in map_arg(output.args[0], self.values.get)
        ]
        self.graph.output(tuple(flat_outputs))
        input_specs = self._input_specs()
        output_specs = tuple(
            _renamed_output(spec, arg)
            for spec, arg in zip(self.program.graph_signature.output_specs, flat_outputs)
        )
        _order_placeholders(self.graph, [spec.arg.name for spec in input_specs])
        eliminate_dead_code(self.graph)
        constants = dict(self.program.constants)
        constants.update({c.target: c.value for c in self.recorder.constants})
        return self.graph, input_specs, output_specs, constants

    def _placeholder(self, node: Node) -> Any:
        value = node.meta.get("val")
        new = self.recorder.new_input(node.name)
        if new.name != node.name:
            raise InternalError(f"placeholder {node.name!r} was renamed to {new.name!r}")
        if isinstance(value, torch.SymInt):  # a dynamic int input
            value = in_env(value, self.shape_env)
            new.meta["val"] = value
            symbol = as_symbol(value.node.symbolic_expr)
            if symbol is not None and self.recorder.symbolic is not None:
                self.recorder.symbolic.bind(symbol, new, None)
            return value
        if not isinstance(value, torch.Tensor):
            new.meta["val"] = value
            return value
        sizes = [in_env(size, self.shape_env) for size in value.shape]
        symbolic = any(isinstance(s, torch.SymInt) for s in sizes)
        traced = self.recorder.bind_input(
            new, value, requires_grad=value.requires_grad, sizes=sizes if symbolic else None
        )
        if symbolic and self.recorder.symbolic is not None:
            for dim, size in enumerate(sizes):
                symbol = (
                    as_symbol(size.node.symbolic_expr) if isinstance(size, torch.SymInt) else None
                )
                if symbol is not None:
                    self.recorder.symbolic.bind(symbol, new, dim)
        return traced

    def _known_constants(self) -> None:
        """The program's lifted constants, so a decomposition reusing one finds its
        placeholder and a new one gets a fresh name."""
        placeholders = {n.name: self.values[n] for n in self.values}
        for spec in self.program.graph_signature.input_specs:
            if spec.kind is InputKind.CONSTANT_TENSOR:
                value = self.program.constants[str(spec.target)]
                self.recorder.constants.append(
                    LiftedConstant(spec.arg.name, str(spec.target), value)
                )
                self.recorder._constants_by_id[id(value)] = placeholders[spec.arg.name]

    def _subgraph(self, node: Node) -> Node:
        """The body of a cond/map/while_loop/scan: referenced again by name (the new
        program's graph module gets the submodule). Bodies are not decomposed yet."""
        new = self.graph.get_attr(str(node.target))
        new.meta = dict(node.meta)
        return new

    def _call(self, node: Node) -> Any:
        args = map_arg(node.args, self.values.__getitem__)
        kwargs = map_arg(node.kwargs, self.values.__getitem__)
        if node.target in CONTROL_FLOW_TARGETS:
            self.recorder.source = node
            try:
                return self.recorder.record_opaque(node.target, args, kwargs, node)
            finally:
                self.recorder.source = None
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

    def _decompose(self, node: Node, args: Any, kwargs: Any) -> Any:
        """Run ``node``'s op under the mode (decomposing it); 0/1 questions its
        decomposition asks are assumed away and checked on numbers (decomp_zero_one.py)."""
        if self.shape_env is None:
            return node.target(*args, **kwargs)
        anchor = next(reversed(self.graph.nodes), None)
        with self.shape_env.assuming_not_0_or_1() as assumptions:
            result = node.target(*args, **kwargs)
        if assumptions:
            recorded = []
            current = anchor.next if anchor is not None else next(iter(self.graph.nodes))
            while current.op != "root" and current is not None:
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
        raise ConstraintViolationError(
            f"decomposing {node.format_node()} would restrict the program's dynamic shapes "
            f"to {guard.code}; keep {node.target} whole (del table[{node.target}] in the "
            "decomposition table) or export that dimension as static",
            where=node.meta.get("stack_trace"),
        )

    def _output_arg(self, value: Any) -> Any:
        if isinstance(value, TraceTensor):
            return value.node
        if isinstance(value, torch.SymInt) and self.recorder.symbolic is not None:
            return self.recorder.symbolic.node_for(value)
        return value

    def _input_specs(self) -> tuple[InputSpec, ...]:
        """The program's input specs, with constants the decompositions created
        (``torch.tensor`` inside a decomposition) lifted after the existing ones."""
        specs = list(self.program.graph_signature.input_specs)
        known = {spec.arg.name for spec in specs}
        new = [
            InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(c.name), c.target)
            for c in self.recorder.constants
            if c.name not in known
        ]
        if not new:
            return tuple(specs)
        position = next(
            (i for i, s in enumerate(specs) if s.kind is InputKind.USER_INPUT), len(specs)
        )
        return tuple(specs[:position] + new + specs[position:])


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


def fork_shape_env(shape_env: ShapeEnv) -> ShapeEnv:
    """A ShapeEnv with the same symbols, ranges, replacements and guards whose
    later changes do not reach ``shape_env`` (expressions are immutable and
    interned, so only the containers are copied)."""
    fork = object.__new__(ShapeEnv)
    for name, value in vars(shape_env).items():
        if isinstance(value, dict):
            value = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
        elif isinstance(value, list | set):
            value = type(value)(value)
        setattr(fork, name, value)
    fork._reset_caches()
    return fork


def _renamed_output(spec: OutputSpec, arg: Any) -> OutputSpec:
    if isinstance(spec.arg, TensorArgument) and isinstance(arg, Node):
        return replace(spec, arg=TensorArgument(arg.name))
    if isinstance(spec.arg, SymIntArgument) and isinstance(arg, Node):
        return replace(spec, arg=SymIntArgument(arg.name))
    return spec


def _order_placeholders(graph: Graph, order: list[str]) -> None:
    placeholders = {node.name: node for node in graph.nodes if node.op == "placeholder"}
    for name in reversed(order):
        next(iter(graph.nodes)).prepend(placeholders[name])


def _default_device(program: ExportedProgram) -> torch.device:
    for node in program.graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder" and isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")
