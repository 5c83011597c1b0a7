"""``ExportedProgram.run_decompositions``: a program's graph decomposed into a new program.

The graph-level work (replaying every node, decomposing as the table says,
control-flow bodies) is ``graphlift.decompose``. This module is the
program-level wrapper around it: it forks the program's ShapeEnv (the source
program is never touched), tells the engine which placeholders are lifted
constants, and builds the new program's signature (constants that
decompositions created are lifted after the existing ones), range constraints
and verification.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from graphlift.decompose.engine import GraphEngine
from graphlift.decompose.replay import BlockLayoutChanged
from graphlift.decompose.table import Decomposition, DecompositionRule, default_decompositions
from graphlift.export.program.call_graph import renamed_call_graph
from graphlift.export.program.constraints import range_constraints
from graphlift.export.program.decomposition_narrowing import announce_narrowings
from graphlift.export.program.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputSpec,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.program.verifier import verify
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.ir.passes import eliminate_dead_code
from graphlift.trace.recorder import LiftedConstant

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram


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
    shape_env = program._shape_env.fork() if program._shape_env is not None else None
    known = {
        spec.arg.name: (str(spec.target), program.constants[str(spec.target)])
        for spec in program.graph_signature.input_specs
        if spec.kind is InputKind.CONSTANT_TENSOR
    }
    engine = GraphEngine(
        program.graph_module, DecompositionRule(table), shape_env, known, cache=cache
    )
    try:
        with program._shape_env.sealed() if program._shape_env is not None else nullcontext():
            replayed = engine.run()
    except BlockLayoutChanged:  # a block body cannot serve every call once decomposed
        return run_decompositions(program.inline_subgraphs(), decomp_table, cache=cache)
    input_specs = _input_specs(program, replayed.constants)
    output_specs = tuple(
        _renamed_output(spec, arg)
        for spec, arg in zip(program.graph_signature.output_specs, replayed.outputs)
    )
    _order_placeholders(replayed.graph, [spec.arg.name for spec in input_specs])
    call_values = _call_values(program, engine)
    eliminate_dead_code(replayed.graph, keep=list(call_values.values()))
    renamed = {old: new.name for old, new in call_values.items()}
    renamed.update(_name_block_values(program, engine))
    constants = dict(program.constants)
    constants.update({c.target: c.value for c in replayed.constants})
    # the bodies as replayed, and those decompositions made (a recurrent op's scan)
    module = GraphModule(dict(replayed.bodies), replayed.graph)
    result = type(program)(
        graph_module=module,
        graph_signature=ExportGraphSignature(input_specs, output_specs),
        state_dict=dict(program.state_dict),
        constants=constants,
        range_constraints=range_constraints(shape_env, replayed.graph) if shape_env else {},
        example_inputs=program.example_inputs,
        module_call_graph=renamed_call_graph(program.module_call_graph, renamed),
        shape_env=shape_env,
        specializations=(
            *program.specializations,
            *announce_narrowings(program._shape_env, shape_env, replayed.narrowings),
        ),
    )
    verify(result, level="core" if decomp_table is None else "export")
    return result


def _call_values(program: ExportedProgram, engine: GraphEngine) -> dict[str, Node]:
    """Old name -> new node of every value the module call graph names (kept by
    dead-code elimination: a preserved module's boundary must stay computable)."""
    named = {
        arg.name
        for entry in program.module_call_graph
        for arg in (*entry.inputs, *entry.outputs)
        if not isinstance(arg, ConstantArgument) and arg.name
    }
    found = {}
    for node in program.graph.nodes:
        if node.name in named:
            new = engine.replayed(node)
            if isinstance(new, Node):
                found[node.name] = new
    return found


def _name_block_values(program: ExportedProgram, engine: GraphEngine) -> dict[str, str]:
    """Old name -> new name of each value the module call graph names inside a
    shared block body (``layers.5.mlp``'s output, docs/block_reuse.md): the
    body was replayed into new nodes, whose names when inlined each new call
    reserved (``GraphReplay._block_call``); a named value follows its body node."""
    renamed: dict[str, str] = {}
    for call, names in engine.nodes.block_names.items():
        body_renames = engine.body_renames(str(call.args[0].target))
        for old_body_name, old_name in (call.meta.get("inlined_names") or {}).items():
            new_body_name = body_renames.get(old_body_name)
            if new_body_name in names:
                renamed[old_name] = names[new_body_name]
    return renamed


def _input_specs(
    program: ExportedProgram, constants: tuple[LiftedConstant, ...]
) -> tuple[InputSpec, ...]:
    """The program's input specs, with constants the decompositions created
    (``torch.tensor`` inside a decomposition) lifted after the existing ones."""
    specs = list(program.graph_signature.input_specs)
    known = {spec.arg.name for spec in specs}
    new = [
        InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(c.name), c.target)
        for c in constants
        if c.name not in known
    ]
    if not new:
        return tuple(specs)
    position = next((i for i, s in enumerate(specs) if s.kind is InputKind.USER_INPUT), len(specs))
    return tuple(specs[:position] + new + specs[position:])


def _renamed_output(spec: OutputSpec, arg: Any) -> OutputSpec:
    named = spec.arg
    if isinstance(named, TensorArgument | SymIntArgument | SymFloatArgument) and isinstance(
        arg, Node
    ):
        return replace(spec, arg=type(named)(arg.name))
    return spec


def _order_placeholders(graph: Graph, order: list[str]) -> None:
    placeholders = {node.name: node for node in graph.nodes if node.op == "placeholder"}
    for name in reversed(order):
        next(iter(graph.nodes)).prepend(placeholders[name])
