"""Conversion between graphlift graphs and ``torch.fx``: :func:`to_fx`, :func:`from_fx`.

The two IRs share opcodes, field names and conventions (STYLE.md: "fx's
vocabulary for the IR"), so converting is copying node by node: name, opcode,
target (ATen ``OpOverload``, ``operator.*``, ``torch.sym_*``, method and
module names), ``args``/``kwargs`` with Nodes mapped, ``type`` and ``meta``
(a shallow copy: the same ``val``, ``stack_trace`` and ``nn_module_stack``
objects). Only the *boundary* of a graph needs thought, and each choice is
documented in docs/interop.md:

- **State.** An ``ExportedProgram`` is converted in its runnable form, what
  ``ep.module()`` runs: parameters, buffers and constants are attributes under
  their original qualified names, read with ``get_attr``; user inputs are the
  placeholders. Non-persistent buffers stay non-persistent, so ``state_dict()``
  matches ``ep.module()``'s.
- **Structure.** graphlift graphs are flat; ``ep.module()`` flattens nested
  inputs and rebuilds nested outputs around the graph. torch.fx expresses the
  same with a pytree code generator (``_PyTreeCodeGen``, what torch.export's
  own ``ep.module()`` uses), so the fx module takes ``ep.module()``'s call
  signature. ``from_fx`` keeps such a layout in ``gm.meta["pytree_info"]`` so a
  round trip restores it.
- **Input checks.** By default (``checks=True``) ``ep.module()``'s generated
  checks run first, as a ``call_module`` to ``_guards_fn`` (torch.export's name
  and convention for the same thing): the graph is only right for inputs that
  pass them, and dropping them silently would hand out a graph that computes
  wrong results for other sizes. A forward pre-hook checks the structure of
  the inputs, as torch.export's ``ep.module()`` does. ``checks=False`` drops
  both for tools that want the bare computation.
- **Nested graphs** (a graph module stored as an attribute, as higher-order
  operators do) are converted too.
- **Shared block bodies** (``reuse_blocks``): a call of a body,
  ``graphlift.invoke_subgraph(get_attr body, id, operands)``, becomes plain fx,
  ``call_module[body](*operands)``: the body stays one submodule called once
  per layer, fx's tools (``ShapeProp``, ``print_readable``, DCE, pickling,
  ``torch.compile``) know the idiom, and the module does not need graphlift
  to run or unpickle. ``from_fx`` turns such a call back
  (``meta["graphlift_block_call"]`` holds the get_attr's name and the id).
"""

from __future__ import annotations

import copy
import keyword
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.fx
import torch.utils._pytree as torch_pytree
from torch.fx.graph import CodeGen, _PyTreeCodeGen, _PyTreeInfo

from graphlift.errors import (
    InputStructureError,
    InteropError,
    PytreeError,
    reports_internal_errors,
)
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.runtime.checks import compile_checks
from graphlift.export.runtime.unlift import ExportedModule, WrappedGraphModule
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import map_arg
from graphlift.pytree import TreeSpec, flatten_matching, from_torch_spec, to_torch_spec
from graphlift.trace.control_flow import invoke_subgraph

PYTREE_META = "pytree_info"
"""Key of a graphlift GraphModule's ``meta`` holding its :class:`PytreeLayout`."""

BLOCK_CALL_META = "graphlift_block_call"
"""Key of a ``call_module`` node's meta that was a block call: (get_attr name, id)."""

GUARDS_TARGET = "_guards_fn"
"""The submodule that checks an exported program's inputs (torch.export's name)."""


@dataclass(frozen=True)
class PytreeLayout:
    """How a flat graph is called with nested values: the ``forward`` argument
    names, the structure of ``(args, kwargs)`` and of the result (``None``: the
    graph's own output is returned as it is)."""

    arg_names: tuple[str, ...]
    in_spec: TreeSpec
    out_spec: TreeSpec | None


class InputChecks(torch.nn.Module):
    """``ep.module()``'s input checks as a module the fx graph calls first.

    ``_is_impure`` tells torch.fx's dead-code elimination to keep the call
    although nothing uses its result (torch.export marks its ``_guards_fn``
    the same way). ``source`` is the readable check code; the compiled
    function is rebuilt from it after unpickling.
    """

    _is_impure = True

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self._check = compile_checks(source)

    def forward(self, *inputs: Any) -> None:
        self._check(*inputs)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_check"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call]  # torch's is unannotated
        self._check = compile_checks(self.source)


class StructureCheck:
    """A forward pre-hook refusing inputs whose structure differs from the
    exported one, with ``ep.module()``'s ``InputStructureError``.

    torch's pytree code in the generated ``forward`` only reads what the spec
    names: a tuple with an extra element would pass, and a model that looked at
    its length would silently compute something else. torch.export's
    ``ep.module()`` guards against this with a pre-hook too.
    """

    def __init__(self, layout: PytreeLayout) -> None:
        self.layout = layout
        self.torch_spec = to_torch_spec(layout.in_spec)

    def __call__(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        args_spec, kwargs_spec = self.layout.in_spec.children
        positional = self.layout.arg_names[: len(args_spec.children)]
        given, kwargs = list(args), dict(kwargs)
        for name in positional[len(given) :]:  # a positional argument passed by keyword
            if name not in kwargs:
                break
            given.append(kwargs.pop(name))
        if set(kwargs) == set(kwargs_spec.context):  # any keyword order works
            kwargs = {key: kwargs[key] for key in kwargs_spec.context}
        inputs = (tuple(given), kwargs)
        # torch's pytree first: torch.compile traces it natively; ours says where it differs.
        if torch_pytree.tree_structure(inputs) == self.torch_spec:
            return
        try:
            flatten_matching(inputs, self.layout.in_spec, root="(args, kwargs)")
        except PytreeError as error:
            raise InputStructureError(str(error)) from None


@reports_internal_errors
def to_fx(obj: ExportedProgram | GraphModule, *, checks: bool = True) -> torch.fx.GraphModule:
    """A ``torch.fx.GraphModule`` that runs like ``obj``.

    ``obj`` is an ``ExportedProgram`` (converted as ``ep.module()``: same call
    signature, state under the original names, and, unless ``checks=False``,
    the same input and structure checks) or a graphlift ``GraphModule``
    (``gl.symbolic_trace``, ``ep.module()``, ``from_fx``).
    """
    if isinstance(obj, ExportedProgram):
        obj = cast(GraphModule, obj.module())
    if not isinstance(obj, GraphModule):
        raise InteropError(
            f"to_fx converts a graphlift ExportedProgram or GraphModule, got {type(obj).__name__}; "
            "export the model with gl.export(...) or trace it with gl.symbolic_trace(...) first"
        )
    graph = torch.fx.Graph()
    _copy_nodes(obj.graph.nodes, graph, map_arg)
    _block_calls_as_modules(graph)
    for node in graph.find_nodes(op="placeholder"):
        if not _usable([node.target.lstrip("*")]):  # fx's forward takes targets as parameters
            node.target = node.name
    layout = _layout_of(obj)
    if layout is not None:
        out_spec = None if layout.out_spec is None else to_torch_spec(layout.out_spec)
        info = _PyTreeInfo(list(layout.arg_names), to_torch_spec(layout.in_spec), out_spec)
        graph._codegen = _PyTreeCodeGen(info)
    fx_gm = torch.fx.GraphModule(obj, graph, class_name=type(obj).__name__)
    _mirror_attributes(obj, fx_gm, graph.nodes, _to_fx_nested)
    fx_gm.meta = {k: v for k, v in obj.meta.items() if k != PYTREE_META}
    if checks and layout is not None:
        fx_gm.register_forward_pre_hook(StructureCheck(layout), with_kwargs=True)
    if checks and isinstance(obj, ExportedModule):
        _insert_input_checks(fx_gm, InputChecks(obj.input_checks))
    return fx_gm


def from_fx(fx_gm: torch.fx.GraphModule) -> GraphModule:
    """A graphlift ``GraphModule`` with the same nodes, names, targets and meta.

    Accepts what ``torch.fx.symbolic_trace`` and torch.export (``ep.graph_module``,
    ``ep.module()``) make, and ``to_fx``'s results. The graphlift module is flat;
    a pytree calling convention is kept in ``meta["pytree_info"]`` for ``to_fx``.
    """
    if not isinstance(fx_gm, torch.fx.GraphModule):
        raise InteropError(
            f"from_fx converts a torch.fx.GraphModule, got {type(fx_gm).__name__}; "
            "trace the model with torch.fx.symbolic_trace(...) or take torch.export's ep.module()"
        )
    codegen = fx_gm.graph._codegen
    if type(codegen) not in (CodeGen, _PyTreeCodeGen):
        raise InteropError(
            f"this fx graph calls with a custom {type(codegen).__name__}, which graphlift cannot "
            "represent; reset it with fx_gm.graph.set_codegen(torch.fx.graph.CodeGen()) to convert "
            "the flat graph"
        )
    graph = Graph()
    _copy_nodes(fx_gm.graph.nodes, graph, torch.fx.node.map_arg)
    _module_calls_as_blocks(graph)
    module = GraphModule(fx_gm, graph, class_name=type(fx_gm).__name__)
    _mirror_attributes(fx_gm, module, graph.nodes, _from_fx_nested)
    module.meta = dict(fx_gm.meta)
    info = getattr(codegen, "pytree_info", None)
    if info is not None:
        out_spec = None if info.out_spec is None else from_torch_spec(info.out_spec)
        layout = PytreeLayout(tuple(info.orig_args), from_torch_spec(info.in_spec), out_spec)
        module.meta[PYTREE_META] = layout
    return module


# --- nodes ------------------------------------------------------------------------------


def _copy_nodes(nodes: Iterable[Any], destination: Any, map_nodes: Callable[..., Any]) -> None:
    """Append a copy of every node to ``destination`` (an fx or graphlift Graph);
    ``map_nodes`` is the *source* IR's ``map_arg``, which finds its Nodes."""
    copies: dict[Any, Any] = {}
    for node in nodes:
        args, kwargs = map_nodes((node.args, node.kwargs), copies.__getitem__)
        copied = destination.create_node(
            node.op, node.target, tuple(args), dict(kwargs), name=node.name, type_expr=node.type
        )
        copied.meta = copy.copy(node.meta)
        copies[node] = copied


def _block_calls_as_modules(graph: torch.fx.Graph) -> None:
    """Each ``invoke_subgraph(get_attr body, id, operands)`` as ``call_module[body]``
    under the call's name; the get_attr goes (its name is kept in the meta)."""
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not invoke_subgraph:
            continue
        attr, identifier, operands = node.args
        with graph.inserting_before(node):
            call = graph.create_node("call_module", attr.target, tuple(operands), {})
        call.meta = copy.copy(node.meta)
        call.meta[BLOCK_CALL_META] = (attr.name, identifier)
        node.replace_all_uses_with(call)
        name = node.name
        graph.erase_node(node)
        call.name = name  # the call's own name (reserved already, so no other node has it)
        if not attr.users:
            graph.erase_node(attr)


def _module_calls_as_blocks(graph: Graph) -> None:
    """``from_fx``'s inverse of :func:`_block_calls_as_modules`."""
    for node in list(graph.nodes):
        if node.op != "call_module" or BLOCK_CALL_META not in node.meta:
            continue
        attr_name, identifier = node.meta[BLOCK_CALL_META]
        meta = {k: v for k, v in node.meta.items() if k != BLOCK_CALL_META}
        with graph.inserting_before(node):
            attr = graph.create_node("get_attr", node.target, (), {}, name=attr_name)
            call = graph.create_node(
                "call_function", invoke_subgraph, (attr, identifier, tuple(node.args)), {},
                name=node.name + "_block",
            )  # fmt: skip
        call.meta = meta
        node.replace_all_uses_with(call)
        name = node.name
        graph.erase_node(node)
        call.name = name


# --- attributes --------------------------------------------------------------------------


def _mirror_attributes(
    source: torch.nn.Module,
    destination: torch.nn.Module,
    nodes: Iterable[Any],
    convert_nested: Callable[[Any], Any],
) -> None:
    """Fix up the attributes the GraphModule constructor copied from ``source``:
    non-persistent buffers stay non-persistent (both constructors register every
    tensor as a persistent buffer otherwise), nested graph modules are converted.
    Where the constructor shared a whole submodule, it stays as it is."""
    for node in nodes:
        if node.op not in ("get_attr", "call_module"):
            continue
        *parents, leaf = str(node.target).split(".")
        source_owner, owner = source, destination
        for atom in parents:
            source_owner, owner = getattr(source_owner, atom), getattr(owner, atom)
        if leaf in getattr(source_owner, "_non_persistent_buffers_set", ()):
            owner._non_persistent_buffers_set.add(leaf)
        if owner is source_owner:  # a submodule the two share: never edit the source
            continue
        value = getattr(owner, leaf)
        converted = convert_nested(value)
        if converted is not value:
            setattr(owner, leaf, converted)


def _to_fx_nested(value: Any) -> Any:
    return to_fx(value) if isinstance(value, GraphModule) else value


def _from_fx_nested(value: Any) -> Any:
    return from_fx(value) if isinstance(value, torch.fx.GraphModule) else value


# --- the boundary: call signature and input checks --------------------------------------


def _layout_of(module: GraphModule) -> PytreeLayout | None:
    """The calling convention to give the fx module, None for flat. ``module()``
    and a preserved call of ``unflatten`` take their recorded pytree structure."""
    if not isinstance(module, WrappedGraphModule):
        layout = module.meta.get(PYTREE_META)
        return layout if isinstance(layout, PytreeLayout) else None
    in_spec, out_spec = module._in_spec, module._out_spec
    placeholders = [str(n.target) for n in module.graph.nodes if n.op == "placeholder"]
    names = _argument_names(in_spec, placeholders)
    return None if names is None else PytreeLayout(names, in_spec, out_spec)


def _argument_names(in_spec: TreeSpec, placeholders: list[str]) -> tuple[str, ...] | None:
    """``forward``'s parameter names for ``(args, kwargs)`` spec ``in_spec``: a
    positional argument that is one leaf keeps its placeholder's target, others
    are ``arg_<i>``; keyword arguments keep their keys. None when a key cannot
    be a Python parameter name (the module then takes flat inputs)."""
    args_spec, kwargs_spec = in_spec.children
    names, leaf_index = [], 0
    for position, child in enumerate(args_spec.children):
        names.append(placeholders[leaf_index] if child.is_leaf() else f"arg_{position}")
        leaf_index += child.num_leaves
    names += list(kwargs_spec.context)
    if _usable(names):
        return tuple(names)
    names[: len(args_spec.children)] = [f"arg_{i}" for i in range(len(args_spec.children))]
    return tuple(names) if _usable(names) else None


def _usable(names: list[str]) -> bool:
    return len(set(names)) == len(names) and all(
        isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)
        and name != "self"
        for name in names
    )  # fmt: skip


def _insert_input_checks(fx_gm: torch.fx.GraphModule, checks: InputChecks) -> None:
    """Call ``checks`` on the user inputs before anything else runs."""
    placeholders = list(fx_gm.graph.find_nodes(op="placeholder"))
    fx_gm.add_submodule(GUARDS_TARGET, checks)
    graph = fx_gm.graph
    # fx: inserting_before(None) is the start of the graph, inserting_after(None) its end.
    where = graph.inserting_after(placeholders[-1]) if placeholders else graph.inserting_before()
    with where:
        graph.call_module(GUARDS_TARGET, tuple(placeholders))
    fx_gm.recompile()
