"""``ep.module()``: an exported program as a runnable ``nn.Module``.

The lifted placeholders (parameters, buffers, constants) become attributes
again, under their original qualified names, so ``state_dict()`` matches the
original module. Calling the module flattens the inputs, checks their
structure and the generated input checks, runs the graph and rebuilds the
output structure.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
import torch.utils._pytree as torch_pytree

from graphlift.errors import InputStructureError
from graphlift.export.checks import compile_checks, input_check_source
from graphlift.export.signature import InputKind, OutputKind
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule

if TYPE_CHECKING:
    from graphlift.export.program import ExportedProgram

_LIFTED = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)


class ExportedModule(GraphModule):
    """What ``ExportedProgram.module()`` returns."""

    def recompile(self) -> Any:
        code = super().recompile()
        cls = type(self)
        cls._run_graph = cls.forward  # type: ignore[attr-defined]
        cls.forward = ExportedModule._checked_forward  # type: ignore[method-assign]
        return code

    def _checked_forward(self, *args: Any, **kwargs: Any) -> Any:
        flat, spec = torch_pytree.tree_flatten((args, kwargs))
        if spec != self._in_spec:
            raise InputStructureError(
                f"the inputs do not have the structure the program was exported with:\n"
                f"  expected {self._in_spec}\n  got      {spec}"
            )
        self._check_inputs(*flat)
        return torch_pytree.tree_unflatten(self._run_graph(*flat), self._out_spec)  # type: ignore[attr-defined]

    @property
    def input_checks(self) -> str:
        """The generated source of the input checks."""
        return self._input_check_source


def unlift(program: ExportedProgram) -> ExportedModule:
    graph = copy.deepcopy(program.graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    specs = program.graph_signature.input_specs
    anchor = placeholders[-1] if placeholders else None
    attributes: dict[str, Any] = {}
    for node, spec in zip(placeholders, specs):
        if spec.kind not in _LIFTED:
            continue
        target = str(spec.target)
        with graph.inserting_after(anchor):
            attribute = graph.get_attr(target)
        attribute.meta = node.meta
        node.replace_all_uses_with(attribute)
        graph.erase_node(node)
        attributes[target] = _state_value(program, spec.kind, target)
    _keep_user_outputs(graph, program)
    user_inputs = [n for n in graph.nodes if n.op == "placeholder"]
    module = ExportedModule(attributes, graph, "ExportedModule")
    source = input_check_source(
        [n.name for n in user_inputs], [n.meta.get("val") for n in user_inputs]
    )
    module._in_spec = program.call_spec_in
    module._out_spec = program.call_spec_out
    module._input_check_source = source
    module._check_inputs = compile_checks(source)
    return module


def _state_value(program: ExportedProgram, kind: InputKind, target: str) -> Any:
    if kind is InputKind.PARAMETER:
        value = program.state_dict[target]
        return (
            value
            if isinstance(value, torch.nn.Parameter)
            else torch.nn.Parameter(value, requires_grad=False)
        )
    if target in program.state_dict:
        return program.state_dict[target]
    return program.constants[target]


def _keep_user_outputs(graph: Graph, program: ExportedProgram) -> None:
    output = next(reversed(graph.nodes))
    kinds = [spec.kind for spec in program.graph_signature.output_specs]
    user = [value for value, kind in zip(output.args[0], kinds) if kind is OutputKind.USER_OUTPUT]
    output.args = (tuple(user),)
