"""Replaying a whole exported graph into a new one, decomposing as a rule says.

torch.export re-runs the whole program through its export pipeline
(functionalization, autograd-level tracing, a new FakeTensor/ShapeEnv) to
decompose it. Here the *graph* is replayed once, node by node, through the same
Recorder and TraceMode that export uses:

- placeholders become TraceTensors built from their ``meta["val"]``, over the
  ShapeEnv the caller gives (``run_decompositions`` gives a fork of the
  program's, so the original program is not touched);
- each ``call_function`` node is called on the replayed values under
  ``DecomposingMode``: an op the rule (``table.DecompositionRule``) keeps is
  recorded as is; an op it decomposes runs its decomposition under the same
  mode, so every ATen op the decomposition calls is itself recorded or
  decomposed, recursively, down to ops the table keeps;
- symbolic sizes (``sym_size``, ``operator.mul``) are recomputed from the
  replayed values and re-emitted on demand, as during export;
- every node a source node produced inherits its ``stack_trace`` and
  ``nn_module_stack``, so errors and printouts still name the user's line;
- control-flow bodies are replayed the same way, recursively (``replay.py``).

Cost: one meta-kernel run per recorded node and one Python call per
decomposition: no model code, no autograd, no functionalization pass (the
graph is already functional; in-place ops a decomposition uses on fresh
tensors are recorded functionally by the Recorder).

This layer knows graphs, not programs: the caller says which placeholders are
lifted constants and turns the result into a program (signature, verification;
``export/program/decompositions.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.decompose.cache import CallCache
from graphlift.decompose.recorder import ReplayRecorder, in_env
from graphlift.decompose.replay import (
    DecomposingMode,
    GraphReplay,
    Narrowing,
    body_names,
    replaying,
)
from graphlift.decompose.table import DecompositionRule
from graphlift.errors import InternalError
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import Poly, as_symbol
from graphlift.symbolic.facts import linear_in_one_symbol
from graphlift.trace.recorder import LiftedConstant
from graphlift.trace.symbolic_values import SymbolicValues


@dataclass(frozen=True)
class ReplayedGraph:
    """A replayed graph: its flat outputs (one per source output, in order), the
    constants it lifts (the known ones first, then those decompositions created),
    and its replayed control-flow bodies by name."""

    graph: Graph
    outputs: tuple[Any, ...]
    constants: tuple[LiftedConstant, ...]
    bodies: Mapping[str, GraphModule]
    narrowings: tuple[Narrowing, ...] = ()  # guards kept over Dim.AUTO sizes (replay.py)


class GraphEngine:
    """One replay of ``module``'s graph into a new graph. ``constants`` maps the
    placeholders that are lifted constants to their (target, value)."""

    def __init__(
        self,
        module: GraphModule,
        rule: DecompositionRule,
        shape_env: ShapeEnv | None,
        constants: Mapping[str, tuple[str, torch.Tensor]],
        *,
        cache: bool = True,
    ) -> None:
        self.module = module
        self.shape_env = shape_env
        self.known_constants = constants
        self.graph = Graph()
        self.recorder = ReplayRecorder(self.graph, default_device=_default_device(module))
        self.recorder.shape_env = shape_env
        if shape_env is not None:
            self.recorder.symbolic = SymbolicValues(self.graph, shape_env)
        self.mode = DecomposingMode(
            self.recorder, rule, CallCache(self.graph, shape_env) if cache else None
        )
        self.nodes = GraphReplay(module, self.recorder, rule, shape_env, self.mode)
        self.values = self.nodes.values

    def run(self) -> ReplayedGraph:
        nodes = list(self.module.graph.nodes)
        for node in nodes:
            if node.op == "placeholder":
                self.values[node] = self._placeholder(node)
        self._known_constants()
        self.recorder.reserved_subgraph_names = body_names(self.module)
        with replaying(self.mode, symbolic=self.shape_env is not None):
            self.nodes.replay_nodes(nodes)
        output = nodes[-1]
        flat_outputs = tuple(
            self.nodes.output_arg(value) for value in map_arg(output.args[0], self.values.get)
        )
        self.graph.output(flat_outputs)
        bodies = {**self.nodes.bodies, **self.recorder.subgraphs}  # those decompositions made
        return ReplayedGraph(
            self.graph,
            flat_outputs,
            tuple(self.recorder.constants),
            bodies,
            tuple(self.nodes.narrowings),
        )

    def replayed(self, node: Node) -> Any:
        """What ``node`` of the source graph became after ``run``: a node of the
        new graph, a constant, or None when it was never replayed."""
        if node not in self.values:
            return None
        return self.nodes.output_arg(self.values[node])

    def body_renames(self, name: str) -> Mapping[str, str]:
        """Old node name -> new node name inside the program's body ``name``."""
        replayed = self.nodes._replayed.get(name)
        return {} if replayed is None else replayed.renamed

    def _placeholder(self, node: Node) -> Any:
        value = node.meta.get("val")
        requires_grad = isinstance(value, torch.Tensor) and value.requires_grad
        return replay_placeholder(self.recorder, self.shape_env, node, requires_grad=requires_grad)

    def _known_constants(self) -> None:
        """The graph's lifted constants, so a decomposition reusing one finds its
        placeholder and a new one gets a fresh name."""
        placeholders = {n.name: self.values[n] for n in self.values}
        for name, (target, value) in self.known_constants.items():
            self.recorder.constants.append(LiftedConstant(name, target, value))
            self.recorder._constants_by_id[id(value)] = placeholders[name]


def replay_placeholder(
    recorder: ReplayRecorder, shape_env: ShapeEnv | None, node: Node, *, requires_grad: bool
) -> Any:
    """The replayed value of placeholder ``node`` (same name) in ``recorder``'s graph:
    a TraceTensor with ``node``'s metadata in ``shape_env`` (its symbols bound to
    the new placeholder), a symbolic int, or the constant it holds."""
    value = node.meta.get("val")
    new = recorder.new_input(node.name)
    if new.name != node.name:
        raise InternalError(f"placeholder {node.name!r} was renamed to {new.name!r}")
    if isinstance(value, torch.SymInt):  # a dynamic int input
        value = in_env(value, shape_env)
        new.meta["val"] = value
        symbol = as_symbol(value.node.symbolic_expr)
        if symbol is not None and recorder.symbolic is not None:
            recorder.symbolic.bind(symbol, new, None)
        return value
    if not isinstance(value, torch.Tensor):
        new.meta["val"] = value
        return value
    sizes = [in_env(size, shape_env) for size in value.shape]
    symbolic = any(isinstance(s, torch.SymInt) for s in sizes)
    # The strides too are read over to this env: ordering the source's symbolic
    # strides would ask (and guard) questions on the source program's env.
    strides = [in_env(stride, shape_env) for stride in value.stride()]
    traced = recorder.bind_input(
        new,
        value,
        requires_grad=requires_grad,
        sizes=sizes if symbolic else None,
        strides=strides if symbolic else None,
    )
    if symbolic and recorder.symbolic is not None:
        bind_size_symbols(recorder.symbolic, new, sizes)
    return traced


def bind_size_symbols(symbolic: SymbolicValues, placeholder: Node, sizes: list[Any]) -> None:
    """Bind each symbol of ``placeholder``'s sizes to the dim that computes it: a bare
    symbol ``s`` to its size; the root of a derived dim (``8*s``, ``2*s + 1``, declared
    as ``8 * Dim(...)`` with ``s`` on no input) to ``(size - offset) // scale``, as
    export binds it. Bare symbols first: they need no arithmetic."""
    exprs = [
        (dim, size.node.symbolic_expr)
        for dim, size in enumerate(sizes)
        if isinstance(size, torch.SymInt)
    ]
    for dim, expr in exprs:
        symbol = as_symbol(expr)
        if symbol is not None:
            symbolic.bind(symbol, placeholder, dim)
    for dim, expr in exprs:
        linear = linear_in_one_symbol(expr) if isinstance(expr, Poly) else None
        if linear is not None and linear[1] >= 1 and not symbolic.is_bound(linear[0]):
            symbol, scale, offset = linear
            symbolic.bind(symbol, placeholder, dim, scale, offset)


def _default_device(module: GraphModule) -> torch.device:
    for node in module.graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder" and isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")
