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
  ``nn_module_stack``, so errors and printouts still name the user's line;
- control-flow bodies are replayed the same way, recursively, and installed
  under their names (``graph_replay.py`` replays one graph, ``body_replay.py``
  a body).

Cost: one meta-kernel run per recorded node and one Python call per
decomposition: no model code, no autograd, no functionalization pass (the
graph is already functional; in-place ops a decomposition uses on fresh
tensors are recorded functionally by the Recorder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import InternalError
from graphlift.export.call_graph import renamed_call_graph
from graphlift.export.constraints import range_constraints
from graphlift.export.decomp_cache import CallCache
from graphlift.export.decomp_table import Decomposition, DecompositionRule, default_decompositions
from graphlift.export.graph_replay import DecomposingMode, GraphReplay, replaying
from graphlift.export.replay_recorder import ReplayRecorder, in_env
from graphlift.export.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputSpec,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.verifier import verify
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.ir.passes import eliminate_dead_code
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import as_symbol
from graphlift.trace.recorder import LiftedConstant
from graphlift.trace.symbolic_values import SymbolicValues

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
    _, input_specs, output_specs, constants = replay.run()
    call_graph = renamed_call_graph(program.module_call_graph, replay.renamed_call_values)
    result = type(program)(
        graph_module=replay.graph_module(),
        graph_signature=ExportGraphSignature(input_specs, output_specs),
        state_dict=dict(program.state_dict),
        constants=constants,
        range_constraints=range_constraints(shape_env) if shape_env else {},
        example_inputs=program.example_inputs,
        module_call_graph=call_graph,
        shape_env=shape_env,
        specializations=program.specializations,
    )
    verify(result, level="core" if decomp_table is None else "export")
    return result


class Replay:
    """One replay of ``program``'s graph into a new graph: the program's inputs,
    constants and signature around a ``GraphReplay`` of its nodes (which also
    replays the control-flow bodies, body_replay.py)."""

    def __init__(
        self,
        program: ExportedProgram,
        rule: DecompositionRule,
        shape_env: ShapeEnv | None,
        cache: bool = True,
    ) -> None:
        self.program = program
        self.shape_env = shape_env
        self.graph = Graph()
        self.recorder = ReplayRecorder(self.graph, default_device=_default_device(program))
        self.recorder.shape_env = shape_env
        if shape_env is not None:
            self.recorder.symbolic = SymbolicValues(self.graph, shape_env)
        self.mode = DecomposingMode(
            self.recorder, rule, CallCache(self.graph, shape_env) if cache else None
        )
        self.nodes = GraphReplay(program.graph_module, self.recorder, rule, shape_env, self.mode)
        self.values = self.nodes.values
        #: old name -> new name of every value the module call graph names
        self.renamed_call_values: dict[str, str] = {}

    def run(
        self,
    ) -> tuple[Graph, tuple[InputSpec, ...], tuple[OutputSpec, ...], dict[str, torch.Tensor]]:
        nodes = list(self.program.graph.nodes)
        for node in nodes:
            if node.op == "placeholder":
                self.values[node] = self._placeholder(node)
        self._known_constants()
        with replaying(self.mode, symbolic=self.shape_env is not None):
            self.nodes.replay_nodes(nodes)
        output = nodes[-1]
        flat_outputs = [
            self.nodes.output_arg(value) for value in map_arg(output.args[0], self.values.get)
        ]
        self.graph.output(tuple(flat_outputs))
        input_specs = self._input_specs()
        output_specs = tuple(
            _renamed_output(spec, arg)
            for spec, arg in zip(self.program.graph_signature.output_specs, flat_outputs)
        )
        _order_placeholders(self.graph, [spec.arg.name for spec in input_specs])
        eliminate_dead_code(self.graph, keep=self._call_values(nodes))
        constants = dict(self.program.constants)
        constants.update({c.target: c.value for c in self.recorder.constants})
        return self.graph, input_specs, output_specs, constants

    def _call_values(self, nodes: list[Node]) -> list[Node]:
        """The new nodes of the values module calls name (kept by dead-code
        elimination: a preserved module's boundary must stay computable)."""
        named = {
            arg.name
            for entry in self.program.module_call_graph
            for arg in (*entry.inputs, *entry.outputs)
            if not isinstance(arg, ConstantArgument) and arg.name
        }
        kept = []
        for node in nodes:
            if node.name in named and node in self.values:
                new = self.nodes.output_arg(self.values[node])
                if isinstance(new, Node):
                    self.renamed_call_values[node.name] = new.name
                    kept.append(new)
        return kept

    def graph_module(self) -> GraphModule:
        """The new graph in a module holding the replayed (decomposed) bodies."""
        module = GraphModule(self.program.graph_module, self.graph)
        for name, body in self.nodes.bodies.items():
            setattr(module, name, body)
        return module

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
