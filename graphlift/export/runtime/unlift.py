"""``ep.module()``: an exported program as a runnable ``nn.Module``.

The lifted placeholders (parameters, buffers, constants) become attributes
again, under their original qualified names, so ``state_dict()`` matches the
original module. Calling the module flattens the inputs, checks their
structure and the generated input checks, runs the graph and rebuilds the
output structure.

Mutation outputs are written back *inside* the graph (``export/writeback.py``),
so after a call the module's buffers and the caller's tensors hold what eager
leaves there.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import InputStructureError, PytreeError
from graphlift.export.program.signature import InputKind, OutputSpec
from graphlift.export.runtime.checks import compile_checks, input_check_source
from graphlift.export.runtime.writeback import apply_mutations
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.pytree import LEAF, TreeSpec, flatten_matching, is_leaf_value, tree_unflatten
from graphlift.trace.data_dependent import runtime_assert
from graphlift.trace.profiled_ops import checked_tensor_metadata

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram

_LIFTED = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)
WriteBack = Callable[[Graph, tuple[OutputSpec, ...], dict[tuple[bool, str], Node]], None]


class WrappedGraphModule(GraphModule):
    """A GraphModule whose ``forward`` is ``_outer_forward``, a method of the
    subclass around the generated graph code (``_run_graph``)."""

    _run_graph: Callable[..., Any]
    _outer_forward: Callable[..., Any]  # each subclass defines it
    _in_spec: TreeSpec
    _out_spec: TreeSpec

    def recompile(self) -> Any:
        code = super().recompile()
        cls = type(self)
        cls._run_graph = cls.forward
        cls.forward = cls._outer_forward
        return code


class ExportedModule(WrappedGraphModule):
    """What ``ExportedProgram.module()`` returns."""

    _flat_layout: tuple[int, tuple[str, ...]] | None
    _input_check_source: str
    _check_inputs: Callable[..., None]
    _python_guards: tuple[Any, ...]  # strict/guards.py: each has check()

    def _outer_forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._checked_forward(*args, **kwargs)

    def _checked_forward(self, *args: Any, **kwargs: Any) -> Any:
        for guard in self._python_guards:  # strict capture: Python values it read
            guard.check()
        flat = self._flat_inputs(args, kwargs)
        self._check_inputs(*flat)
        outputs = self._run_graph(*flat)
        if self._out_spec == LEAF:
            return outputs[0]
        return tree_unflatten(outputs, self._out_spec)

    def _flat_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        """The flat inputs; a fast path when every exported input was a
        top-level leaf and the call has the same arity and keywords."""
        arity, keywords = self._flat_layout or (-1, ())
        if len(args) == arity and kwargs.keys() == set(keywords):
            flat = [*args, *[kwargs[key] for key in keywords]]
            if all(is_leaf_value(value) for value in flat):
                return flat
        kwargs_spec = self._in_spec.children[1]
        if list(kwargs) != list(kwargs_spec.context) and set(kwargs) == set(kwargs_spec.context):
            kwargs = {key: kwargs[key] for key in kwargs_spec.context}  # any keyword order works
        try:
            return flatten_matching((args, kwargs), self._in_spec, root="(args, kwargs)")
        except PytreeError as error:
            raise InputStructureError(str(error)) from None

    @property
    def input_checks(self) -> str:
        """The generated source of the input checks."""
        return self._input_check_source


def unlift(
    program: ExportedProgram,
    *,
    write_back: WriteBack = apply_mutations,
    module_class: type[ExportedModule] | None = None,
) -> ExportedModule:
    """``program`` as a runnable module. ``write_back`` places the mutation
    write-backs (at the end by default; ``unflatten`` writes where they were made)."""
    graph = copy.deepcopy(program.graph)
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    anchor = placeholders[-1] if placeholders else None
    root = torch.nn.Module()
    holders: dict[tuple[bool, str], Node] = {}  # (user input?, target) -> node holding it
    for node, spec in zip(placeholders, program.graph_signature.input_specs):
        if spec.kind not in _LIFTED:
            holders[True, node.name] = node
            continue
        target = str(spec.target)
        with graph.inserting_after(anchor):
            attribute = graph.get_attr(target)
        attribute.meta = node.meta
        node.replace_all_uses_with(attribute)
        graph.erase_node(node)
        holders[False, target] = attribute
        _install_state(root, program, spec.kind, target)
    write_back(graph, program.graph_signature.output_specs, holders)
    _typed_runtime_asserts(graph)
    for name, body in program.graph_module.named_children():  # control-flow bodies
        body = copy.deepcopy(body)
        for inner in body.modules():
            if isinstance(inner, GraphModule) and _typed_runtime_asserts(inner.graph):
                inner.recompile()
        root.add_module(name, body)
    user_inputs = [n for n in graph.nodes if n.op == "placeholder"]
    cls = module_class or ExportedModule
    module = cls(root, graph, cls.__name__)
    source = input_check_source(
        [n.name for n in user_inputs], [n.meta.get("val") for n in user_inputs], program._shape_env
    )
    module._in_spec = program.call_spec_in
    module._flat_layout = _flat_layout(program.call_spec_in)
    module._out_spec = program.call_spec_out
    module._input_check_source = source
    module._check_inputs = compile_checks(source)
    module._python_guards = tuple(program.python_guards)
    return module


def _flat_layout(spec: TreeSpec) -> tuple[int, tuple[str, ...]] | None:
    """(number of positional args, keyword names) when ``(args, kwargs)`` was
    flat: every argument a single leaf. None otherwise."""
    args_spec, kwargs_spec = spec.children
    if all(child.is_leaf() for child in (*args_spec.children, *kwargs_spec.children)):
        return len(args_spec.children), tuple(kwargs_spec.context)
    return None


def _install_state(
    root: torch.nn.Module, program: ExportedProgram, kind: InputKind, target: str
) -> None:
    """Put a lifted value back at its qualified name: parameters as parameters,
    buffers as buffers (persistent ones in state_dict), constants as
    non-persistent buffers (they move with .to() but are not state)."""
    *parents, leaf = target.split(".")
    owner = root
    for atom in parents:
        if not hasattr(owner, atom):
            owner.add_module(atom, torch.nn.Module())
        owner = getattr(owner, atom)
    if kind is InputKind.PARAMETER:
        value = program.state_dict[target]
        if not isinstance(value, torch.nn.Parameter):
            value = torch.nn.Parameter(value, requires_grad=value.requires_grad)
        owner.register_parameter(leaf, value)
    elif target in program.state_dict:
        owner.register_buffer(leaf, program.state_dict[target])
    else:
        owner.register_buffer(leaf, program.constants[target], persistent=False)


#: ATen asserts (bare RuntimeErrors) and the functions checking the same with a typed error.
TYPED_ASSERTS: dict[Any, Callable[..., None]] = {
    torch.ops.aten._assert_scalar.default: runtime_assert,
    torch.ops.aten._assert_tensor_metadata.default: checked_tensor_metadata,
}


def _typed_runtime_asserts(graph: Graph) -> bool:
    """``aten._assert_scalar`` and ``aten._assert_tensor_metadata`` raise a bare
    RuntimeError; the runnable module checks the same with graphlift's typed
    RuntimeAssertError.
    True when the graph had any."""
    found = False
    for node in graph.nodes:
        typed = TYPED_ASSERTS.get(node.target) if node.op == "call_function" else None
        if typed is not None:
            node.target = typed
            found = True
    return found
