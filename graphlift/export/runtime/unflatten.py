"""``unflatten(ep)``: the exported program with the original module hierarchy.

``ep.module()`` runs one flat graph. ``unflatten`` cuts that graph back into
the submodule calls the model made, using each node's
``meta["nn_module_stack"]`` (one key per call: ``a``, then ``a@1`` for a second
call of the same module): every call becomes a ``call_module`` node of its
parent's graph, and each submodule is a GraphModule holding its own graph and
the parameters and buffers under its qualified name, so
``unflat.layers[0]`` can be inspected, run or swapped for a module with the
same interface, and ``state_dict()`` has the original keys. The root keeps
``module()``'s input checks and pytree handling.

A module called several times is one submodule when every call produced the
same code; otherwise later calls stay inline in their parent (torch.export
would make ``a@1`` copies). Values flowing into a call are its inputs in
first-use order, values it produces that are used later are its outputs (a
tuple, or the value itself when there is one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import getitem
from typing import TYPE_CHECKING, Any

import torch

from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule, copy_attribute
from graphlift.ir.node import Node

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram
    from graphlift.export.runtime.unlift import ExportedModule


def unflatten(program: ExportedProgram) -> ExportedModule:
    """``torch.export.unflatten``'s counterpart: a module tree mirroring the original."""
    module = program.module()
    graph = module.graph
    _adopt_stacks(graph)
    _extract_calls(graph, module, module, depth=0, prefix="")
    _restore_lists(module)
    module.graph = graph  # recompile the root
    return module


@dataclass
class _Call:
    key: str
    path: str
    kind: str  # the module's class, "transformers.models.bert.modeling_bert.BertLayer"
    nodes: list[Node] = field(default_factory=list)


def _stack(node: Node) -> list[tuple[str, str, str]]:
    """``[(call key, qualified name, class), ...]`` from the outermost module inwards."""
    stack = node.meta.get("nn_module_stack") or {}
    return [(key, value[0], value[1]) for key, value in stack.items()]


def _adopt_stacks(graph: Graph) -> None:
    """Size computations made on demand (``sym_size``, ``mul``) carry no module
    stack; they belong to the call of their first user."""
    position = _position(graph)
    for node in reversed(list(graph.nodes)):
        if node.op == "call_function" and "nn_module_stack" not in node.meta and node.users:
            first_user = min(node.users, key=position)
            if "nn_module_stack" in first_user.meta:
                node.meta["nn_module_stack"] = first_user.meta["nn_module_stack"]


def _position(graph: Graph) -> Any:
    order = {node: index for index, node in enumerate(graph.nodes)}
    return order.__getitem__


def _calls_at(graph: Graph, depth: int) -> Iterator[_Call]:
    """The module calls at ``depth`` of the stack, each with its nodes in graph order."""
    calls: dict[str, _Call] = {}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        stack = _stack(node)
        if len(stack) > depth:
            key, path, kind = stack[depth]
            calls.setdefault(key, _Call(key, path, kind)).nodes.append(node)
    return iter(calls.values())


def _extract_calls(
    graph: Graph, owner: torch.nn.Module, root: torch.nn.Module, *, depth: int, prefix: str
) -> None:
    """Replace each call at ``depth`` in ``graph`` by ``call_module``; recurse into it."""
    installed: dict[str, tuple[Any, ...]] = {}  # relative target -> shape of its graph
    for call in list(_calls_at(graph, depth)):
        members = set(call.nodes)
        if not _extractable(call.nodes, members):
            continue
        relative = call.path[len(prefix) + 1 :] if prefix else call.path
        target_module = _existing(root, call.path)
        inputs, outputs = _interface(call.nodes, members, relative)
        sub_graph = _subgraph(call.nodes, inputs, outputs, relative)
        class_name = call.kind.rsplit(".", 1)[-1]
        sub = GraphModule(target_module, sub_graph, class_name)
        _extract_calls(sub_graph, sub, root, depth=depth + 1, prefix=call.path)
        sub.graph = sub_graph
        shape = _shape(sub_graph)
        if relative in installed:
            if installed[relative] != shape:
                continue  # a later call traced differently: left inline
        else:
            _complete_state(sub, target_module)
            _install(owner, relative, sub)
            installed[relative] = shape
        _replace_with_call(graph, call.nodes, inputs, outputs, relative)
    for node in list(graph.nodes):
        if node.op == "get_attr" and not node.users:
            graph.erase_node(node)  # state now read inside a submodule


def _extractable(nodes: list[Node], members: set[Node]) -> bool:
    """No node outside the call sits between its nodes (``nodes``, in graph
    order) and uses one of them (then a single call_module placed after the last
    member is in order). Walks only the call's span of the graph."""
    node = nodes[0]
    while node is not nodes[-1]:
        node = node.next
        if node not in members and any(arg in members for arg in node.all_input_nodes):
            return False
    return True


def _shape(graph: Graph) -> tuple[Any, ...]:
    """The graph up to node names: two calls with the same shape share a submodule."""
    index = {node: i for i, node in enumerate(graph.nodes)}

    def plain(value: Any) -> Any:
        if isinstance(value, Node):
            return ("%", index[value])
        if isinstance(value, tuple | list):
            return tuple(plain(v) for v in value)
        if isinstance(value, dict):
            return tuple((k, plain(v)) for k, v in value.items())
        return repr(value)

    return tuple(
        (n.op, None if n.op == "placeholder" else repr(n.target), plain(n.args), plain(n.kwargs))
        for n in graph.nodes
    )


def _interface(nodes: list[Node], members: set[Node], path: str) -> tuple[list[Node], list[Node]]:
    inputs: dict[Node, None] = {}
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in members and not _local_state(arg, path):
                inputs[arg] = None
    outputs = [n for n in nodes if any(user not in members for user in n.users)]
    return list(inputs), outputs


def _local_state(node: Node, path: str) -> bool:
    """A ``get_attr`` of state under ``path``: read inside the submodule itself."""
    return node.op == "get_attr" and str(node.target).startswith(path + ".")


def _subgraph(nodes: list[Node], inputs: list[Node], outputs: list[Node], path: str) -> Graph:
    sub = Graph()
    mapping: dict[Node, Node] = {}
    for value in inputs:
        placeholder = sub.placeholder(value.name)
        placeholder.meta = dict(value.meta)
        mapping[value] = placeholder
    for node in nodes:
        for arg in node.all_input_nodes:
            if arg not in mapping and _local_state(arg, path):
                local = sub.get_attr(str(arg.target)[len(path) + 1 :])
                local.meta = dict(arg.meta)
                mapping[arg] = local
        mapping[node] = sub.node_copy(node, mapping.__getitem__)
    results = tuple(mapping[n] for n in outputs)
    # One result is returned as itself, so a submodule with one tensor in and one
    # out can be swapped for the original module.
    sub.output(results[0] if len(results) == 1 else results)
    return sub


def _complete_state(sub: GraphModule, original: torch.nn.Module) -> None:
    """Parameters and buffers of the submodule its graph does not read still
    belong to it (tied weights read elsewhere, unused state), for state_dict."""
    present = {name for name, _ in sub.named_parameters()} | {n for n, _ in sub.named_buffers()}
    for name, _ in [*original.named_parameters(), *original.named_buffers()]:
        if name not in present:
            copy_attribute(original, sub, name)


def _existing(root: torch.nn.Module, path: str) -> torch.nn.Module:
    """The module at ``path`` in ``module()``'s tree, which only has modules
    holding state: a Dropout or an activation gets an empty module."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        return torch.nn.Module()


def _install(owner: torch.nn.Module, relative: str, module: torch.nn.Module) -> None:
    *parents, leaf = relative.split(".")
    for atom in parents:
        child = getattr(owner, atom, None)
        if not isinstance(child, torch.nn.Module):
            child = torch.nn.Module()
            owner.add_module(atom, child)
        owner = child
    owner.add_module(leaf, module)


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
            replacement = torch.nn.ModuleList(child._modules[str(i)] for i in range(len(names)))
            replacement._parameters, replacement._buffers = child._parameters, child._buffers
            setattr(module, name, replacement)


def _replace_with_call(
    graph: Graph, nodes: list[Node], inputs: list[Node], outputs: list[Node], target: str
) -> None:
    with graph.inserting_after(nodes[-1]):
        call = graph.call_module(target, tuple(inputs))
    call.meta = {k: v for k, v in nodes[-1].meta.items() if k != "val"}
    if len(outputs) == 1:
        outputs[0].replace_all_uses_with(call)
        call.meta = dict(outputs[0].meta)
        outputs = []
    anchor = call
    for index, node in enumerate(outputs):
        with graph.inserting_after(anchor):
            element = graph.call_function(getitem, (call, index))
        element.meta = dict(node.meta)
        node.replace_all_uses_with(element)
        anchor = element
    for node in reversed(nodes):
        graph.erase_node(node)
