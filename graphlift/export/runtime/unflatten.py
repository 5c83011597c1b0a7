"""``unflatten(ep)``: the exported program with the original module hierarchy.

``ep.module()`` runs one flat graph. ``unflatten`` cuts that graph back into
the submodule calls the model made (export/unflatten_calls.py), using each
node's ``meta["nn_module_stack"]`` (one key per call: ``a``, then ``a@1``):
every call becomes a ``call_module`` node of its parent's graph, and each
submodule is a GraphModule holding its own graph and the parameters and
buffers under its qualified name, so ``unflat.layers[0]`` can be inspected,
run or swapped, and ``state_dict()`` has the original keys. The root keeps
``module()``'s input checks.

The tree then follows the program's ``module_call_graph``: submodules in the
model's order, modules that were never called present (with their state), a
module registered under two names one object under both. Mutations are
written back where the model made them (inside the submodule that mutates
its buffer, in call order), so each submodule is also correct on its own.

Modules named in ``export(..., preserve_module_call_signature=...)`` keep
their exact call signature: they are called with the original argument
structure and can be swapped for any module with the same signature
(export/unflatten_module.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch

from graphlift.errors import reports_internal_errors
from graphlift.export.program.signature import InputKind
from graphlift.export.runtime.unflatten_calls import VALUE_NAME, CallExtraction, install
from graphlift.export.runtime.unflatten_module import FlatArgsAdapter, UnflattenedModule
from graphlift.export.runtime.unflatten_stacks import assign_calls
from graphlift.export.runtime.unlift import unlift
from graphlift.export.runtime.writeback import apply_mutations_where_made
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.trace.block_inlining import has_blocks

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram

__all__ = ["FlatArgsAdapter", "UnflattenedModule", "unflatten"]


@reports_internal_errors
def unflatten(
    program: ExportedProgram, flat_args_adapter: FlatArgsAdapter | None = None
) -> UnflattenedModule:
    """``torch.export.unflatten``'s counterpart: a module tree mirroring the original.
    Shared block bodies are inlined first: each call becomes its own submodule."""
    if has_blocks(program.graph_module):
        program = program.inline_subgraphs()
    module = cast(
        UnflattenedModule,
        unlift(program, write_back=apply_mutations_where_made, module_class=UnflattenedModule),
    )
    graph = module.graph
    values = _values_by_name(program, graph)
    assign_calls(graph)
    entries = {entry.fqn: entry for entry in program.module_call_graph}
    extraction = CallExtraction(module, entries, values, flat_args_adapter)
    extraction.run(graph, module)
    module._dispatchers = tuple(extraction.install())
    module._adapter = flat_args_adapter
    _complete_tree(module, program)
    for node in graph.nodes:
        node.meta.pop(VALUE_NAME, None)
    module.graph = graph  # recompile the root
    return module


def _values_by_name(program: ExportedProgram, graph: Graph) -> dict[str, Node]:
    """The program's node names -> nodes of ``module()``'s graph (lifted state is
    read there by ``get_attr`` of its qualified name)."""
    values = {node.name: node for node in graph.nodes}
    by_target = {str(n.target): n for n in graph.nodes if n.op == "get_attr"}
    for spec in program.graph_signature.input_specs:
        if spec.kind is not InputKind.USER_INPUT and str(spec.target) in by_target:
            values[spec.arg.name] = by_target[str(spec.target)]
    return values


def _complete_tree(module: torch.nn.Module, program: ExportedProgram) -> None:
    """Every module of the model at its name, shared modules shared, children in
    the model's order; containers named 0, 1, 2... as ModuleLists."""
    order: list[str] = []
    for entry in program.module_call_graph:
        if not entry.fqn or "@" in entry.fqn:
            continue
        order.append(entry.fqn)
        if entry.alias_of is not None:
            original = _find(module, entry.alias_of)
            if original is not None:
                install(module, entry.fqn, original)
        elif _find(module, entry.fqn) is None:
            install(module, entry.fqn, torch.nn.Module())
    _restore_lists(module)
    _order_children(module, "", {fqn: index for index, fqn in enumerate(order)}, set())


def _find(module: torch.nn.Module, fqn: str) -> torch.nn.Module | None:
    try:
        return module.get_submodule(fqn)
    except AttributeError:
        return None


def _order_children(
    module: torch.nn.Module, prefix: str, rank: dict[str, int], seen: set[int]
) -> None:
    if id(module) in seen:
        return
    seen.add(id(module))
    names = list(module._modules)
    key = {name: rank.get(f"{prefix}{name}", len(rank) + index) for index, name in enumerate(names)}
    module._modules = {name: module._modules[name] for name in sorted(names, key=key.__getitem__)}
    for name, child in module._modules.items():
        if child is not None:
            _order_children(child, f"{prefix}{name}.", rank, seen)


def _restore_lists(module: torch.nn.Module) -> None:
    """A plain container whose children are named 0, 1, 2... was a ModuleList
    (never called, so no stack entry says so): make it one again, so that
    ``unflat.layers[0]`` works as on the model."""
    for name, child in list(module.named_children()):
        _restore_lists(child)
        names = set(child._modules)
        if (
            type(child) is torch.nn.Module
            and names
            and names == {str(i) for i in range(len(names))}
        ):
            children = [child._modules[str(i)] for i in range(len(names))]
            replacement = torch.nn.ModuleList(c for c in children if c is not None)
            replacement._parameters, replacement._buffers = child._parameters, child._buffers
            setattr(module, name, replacement)
