"""Cutting one graph into the submodule calls it made (``unflatten``'s engine).

Each call at a given depth of ``meta["nn_module_stack"]`` becomes a
``call_module`` node of its parent's graph and a GraphModule of its own,
recursively. A call's interface is:

- for a module named in ``preserve_module_call_signature``: exactly its
  recorded signature. The parent rebuilds the call's arguments with their
  pytree structure (``self.foo(x, y={"key": t})``) and flattens its result
  against the recorded ``out_spec``, so any module with the same call
  signature can take its place. Sizes the call needs are recomputed from its
  own inputs; anything else it would need from outside is an UnflattenError.
- otherwise: the values it reads from outside in first-use order, and the
  values it produces that are used later (one value is returned as itself).

A module called several times gets one submodule; when the calls traced
differently, a :class:`CallDispatcher` runs the right graph for each call in
order (torch.export's ``InterpreterModuleDispatcher``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import getitem
from typing import Any, TypeVar

import torch

from graphlift.errors import UnflattenError
from graphlift.export.program.call_graph import ModuleCallEntry
from graphlift.export.program.signature import ConstantArgument
from graphlift.export.runtime.unflatten_module import CallDispatcher, PreservedCall, flat_outputs
from graphlift.export.runtime.unflatten_stacks import is_size_computation, stack_of
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule, copy_attribute
from graphlift.ir.node import Node
from graphlift.pytree import TreeSpec, tree_unflatten

VALUE_NAME = "unflatten_value"  # meta key of the program's name for a node, while cutting
ModuleT = TypeVar("ModuleT", bound=GraphModule)  # what CallExtraction._module makes


@dataclass
class _Call:
    key: str
    path: str
    kind: str  # the module's class, "transformers.models.bert.modeling_bert.BertLayer"
    nodes: list[Node] = field(default_factory=list)


@dataclass
class _Installed:
    """Every extracted call of one module, in call order, and where it goes."""

    calls: list[GraphModule] = field(default_factory=list)
    places: list[tuple[torch.nn.Module, str]] = field(default_factory=list)


class CallExtraction:
    """One unflatten: ``run`` cuts the root graph recursively, ``install`` puts
    each module's extracted calls in the tree."""

    def __init__(
        self,
        state_tree: torch.nn.Module,
        entries: dict[str, ModuleCallEntry],
        values: dict[str, Node],
        adapter: Any,
    ) -> None:
        self.state_tree = state_tree  # module()'s tree: the state under its qualified names
        self.entries = entries
        # node name in the program -> node: nodes are tagged with it (VALUE_NAME in meta),
        # which follows them into the submodule graphs they are copied to
        for name, node in values.items():
            node.meta[VALUE_NAME] = name
        self.adapter = adapter
        self.installed: dict[str, _Installed] = {}

    def run(self, graph: Graph, owner: torch.nn.Module, depth: int = 0, prefix: str = "") -> bool:
        """Replace each call at ``depth`` in ``graph`` by ``call_module``; recurse into
        it. True when any call was cut out."""
        cut = False
        values = self.values = {n.meta[VALUE_NAME]: n for n in graph.nodes if VALUE_NAME in n.meta}
        for call in list(_calls_at(graph, depth)):
            entry = self.entries.get(call.key)
            preserved = entry is not None and entry.preserved and entry.in_spec is not None
            members = set(call.nodes)
            if not _extractable(call.nodes, members):
                if preserved:
                    raise UnflattenError(
                        f"cannot keep the call signature of {call.key!r}: a computation outside "
                        "it uses one of its intermediate values; this is a bug in graphlift"
                    )
                continue  # left inline in its parent
            if prefix and not call.path.startswith(prefix + "."):
                continue  # a call of a module outside this one (through a closure): inline
            relative = call.path[len(prefix) + 1 :] if prefix else call.path
            if preserved:
                assert entry is not None
                sub = self._preserved(graph, owner, call, entry, relative)
            else:
                sub = self._by_use(graph, call, members, relative)
            if self.run(sub.graph, sub, depth + 1, call.path):
                sub.graph = sub.graph  # recompile after the nested calls were cut
            self.values = values
            cut = True
            place = self.installed.setdefault(call.path, _Installed())
            place.calls.append(sub)
            if (owner, relative) not in place.places:
                place.places.append((owner, relative))
        for node in list(graph.nodes):
            if node.op == "get_attr" and not node.users:
                graph.erase_node(node)  # state now read inside a submodule
                cut = True
        return cut

    def install(self) -> list[CallDispatcher]:
        """Put each module's calls in the tree: one GraphModule when every call
        traced the same graph, else a dispatcher. Returns the dispatchers."""
        dispatchers = []
        for path, place in self.installed.items():
            for sub in place.calls:
                for node in sub.graph.nodes:
                    node.meta.pop(VALUE_NAME, None)
            module: torch.nn.Module = place.calls[0]
            shapes = {_shape(sub.graph) for sub in place.calls}
            if len(shapes) > 1:
                module = CallDispatcher(place.calls, self._existing(path))
                dispatchers.append(module)
            else:
                _complete_state(module, self._existing(path))
            for owner, relative in place.places:
                install(owner, relative, module)
        return dispatchers

    def _by_use(self, graph: Graph, call: _Call, members: set[Node], relative: str) -> GraphModule:
        inputs, outputs = _interface(call.nodes, members, relative)
        sub_graph = _subgraph(call.nodes, inputs, relative, lambda node: None)
        # One result is returned as itself, so a submodule with one tensor in and
        # one out can be swapped for the original module.
        results = [sub_graph.mapping[n] for n in outputs]
        sub_graph.graph.output(results[0] if len(results) == 1 else tuple(results))
        self._retag(_replace_with_call(graph, call.nodes, inputs, outputs, relative))
        return self._module(call, sub_graph.graph, GraphModule)

    def _preserved(
        self,
        graph: Graph,
        owner: torch.nn.Module,
        call: _Call,
        entry: ModuleCallEntry,
        relative: str,
    ) -> GraphModule:
        flat_in = [self._value(arg, entry, "input") for arg in entry.inputs]
        flat_out = [self._value(arg, entry, "output") for arg in entry.outputs]
        placeholders = [v if isinstance(v, Node) else None for v in flat_in]
        sub_graph = _subgraph(
            call.nodes, [], relative, lambda node: _outside_value(node, call.key), placeholders
        )
        sub_graph.graph.output(tuple(sub_graph.mapping.get(v, v) if isinstance(v, Node) else v
                                     for v in flat_out))  # fmt: skip
        self._retag(
            _replace_with_structured_call(graph, owner, call, entry, flat_in, flat_out, relative)
        )
        module = self._module(call, sub_graph.graph, PreservedCall)
        module.expect(entry, self.adapter)
        return module

    def _retag(self, new_nodes: list[Node]) -> None:
        """Values a call now returns are read from its new nodes."""
        for node in new_nodes:
            if VALUE_NAME in node.meta:
                self.values[node.meta[VALUE_NAME]] = node

    def _value(self, arg: Any, entry: ModuleCallEntry, what: str) -> Any:
        if isinstance(arg, ConstantArgument):
            return arg.value
        node = self.values.get(arg.name) if arg.name else None
        if node is None:
            raise UnflattenError(
                f"an {what} of the preserved call {entry.fqn!r} is no longer computed by the "
                "program (a pass removed it); export again without that pass"
            )
        return node

    def _module(self, call: _Call, graph: Graph, cls: type[ModuleT]) -> ModuleT:
        class_name = call.kind.rsplit(".", 1)[-1]
        return cls(self._existing(call.path), graph, class_name)

    def _existing(self, path: str) -> torch.nn.Module:
        """The module at ``path`` in ``module()``'s tree, which only has modules
        holding state: a Dropout or an activation gets an empty module."""
        try:
            return self.state_tree.get_submodule(path)
        except AttributeError:
            return torch.nn.Module()


def _calls_at(graph: Graph, depth: int) -> Iterator[_Call]:
    """The module calls at ``depth`` of the stack, each with its nodes in graph order."""
    calls: dict[str, _Call] = {}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        stack = list(stack_of(node).items())
        if len(stack) > depth:
            key, (path, kind) = stack[depth]
            calls.setdefault(key, _Call(key, path, kind)).nodes.append(node)
    return iter(calls.values())


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


@dataclass
class _SubGraph:
    graph: Graph
    mapping: dict[Node, Node]


def _subgraph(
    nodes: list[Node],
    inputs: list[Node],
    path: str,
    outside: Any,
    flat_inputs: list[Node | None] | None = None,
) -> _SubGraph:
    """The call's nodes copied into a new graph: a placeholder per input (or
    per flat input of a preserved call), a local ``get_attr`` per piece of its
    own state; ``outside(node)`` decides any other value read from outside
    (None: it is an input)."""
    sub = Graph()
    mapping: dict[Node, Node] = {}
    for index, value in enumerate(flat_inputs if flat_inputs is not None else inputs):
        placeholder = sub.placeholder(value.name if value is not None else f"arg_{index}")
        if value is not None:
            placeholder.meta = dict(value.meta)
            mapping.setdefault(value, placeholder)
    for node in nodes:
        if flat_inputs is not None and _size_of_outside_tensor(node, mapping, path):
            mapping[node] = _recomputed_size(sub, node, mapping, outside)
            continue
        for arg in node.all_input_nodes:
            if arg in mapping:
                continue
            if _local_state(arg, path):
                mapping[arg] = sub.get_attr(str(arg.target)[len(path) + 1 :])
                mapping[arg].meta = dict(arg.meta)
            else:
                mapping[arg] = outside(arg) or _recomputed_size(sub, arg, mapping, outside)
        mapping[node] = sub.node_copy(node, mapping.__getitem__)
    return _SubGraph(sub, mapping)


def _size_of_outside_tensor(node: Node, mapping: dict[Node, Node], path: str) -> bool:
    """``sym_size(t, d)`` of a tensor ``t`` the call does not receive."""
    return (
        node.op == "call_function"
        and node.target is torch.ops.aten.sym_size.int
        and node.args[0] not in mapping
        and not _local_state(node.args[0], path)
    )


def _outside_value(node: Node, key: str) -> None:
    """A preserved call reads only its inputs, its state and sizes it can
    recompute; report anything else."""
    if is_size_computation(node):
        return None
    raise UnflattenError(
        f"the preserved call {key!r} reads {node.name!r}, which it does not receive as an "
        "argument (a tensor computed outside the module, or state of another module); "
        "such a module cannot be swapped: pass the value as an argument, or do not preserve it"
    )


def _recomputed_size(sub: Graph, node: Node, mapping: dict[Node, Node], outside: Any) -> Node:
    """``node`` (a size computation) in ``sub``, recomputed from the sub-graph's
    own placeholders."""
    if node.target is torch.ops.aten.sym_size.int and node.args[0] not in mapping:
        source, dim = _size_source(sub, node.meta["val"])
        copy = sub.call_function(torch.ops.aten.sym_size.int, (source, dim))
        copy.meta = dict(node.meta)
        return copy
    for arg in node.all_input_nodes:
        if arg not in mapping:
            mapping[arg] = outside(arg) or _recomputed_size(sub, arg, mapping, outside)
    return sub.node_copy(node, mapping.__getitem__)


def _size_source(sub: Graph, size: Any) -> tuple[Node, int]:
    """A placeholder dimension of ``sub`` whose size is ``size``."""
    for placeholder in sub.nodes:
        value = placeholder.meta.get("val")
        if placeholder.op == "placeholder" and isinstance(value, torch.Tensor):
            for dim, candidate in enumerate(value.shape):
                if str(candidate) == str(size):
                    return placeholder, dim
    raise UnflattenError(
        f"a preserved call uses the size {size}, which none of its inputs has; pass a tensor "
        "of that size to the module, or do not preserve it"
    )


def _complete_state(sub: torch.nn.Module, original: torch.nn.Module) -> None:
    """Parameters and buffers of the submodule its graph does not read still
    belong to it (tied weights read elsewhere, unused state), for state_dict."""
    present = {name for name, _ in sub.named_parameters()} | {n for n, _ in sub.named_buffers()}
    for name, _ in [*original.named_parameters(), *original.named_buffers()]:
        if name not in present:
            copy_attribute(original, sub, name)


def install(owner: torch.nn.Module, relative: str, module: torch.nn.Module) -> None:
    *parents, leaf = relative.split(".")
    for atom in parents:
        child = getattr(owner, atom, None)
        if not isinstance(child, torch.nn.Module):
            child = torch.nn.Module()
            owner.add_module(atom, child)
        owner = child
    owner.add_module(leaf, module)


def _replace_with_call(
    graph: Graph, nodes: list[Node], inputs: list[Node], outputs: list[Node], target: str
) -> list[Node]:
    with graph.inserting_after(nodes[-1]):
        call = graph.call_module(target, tuple(inputs))
    call.meta = {k: v for k, v in nodes[-1].meta.items() if k not in ("val", VALUE_NAME)}
    call.meta["val"] = tuple(node.meta.get("val") for node in outputs)
    new = [call]
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
        new.append(element)
    for node in reversed(nodes):
        graph.erase_node(node)
    return new


def _replace_with_structured_call(
    graph: Graph,
    owner: torch.nn.Module,
    call: _Call,
    entry: ModuleCallEntry,
    flat_in: list[Any],
    flat_out: list[Any],
    target: str,
) -> list[Node]:
    """``self.<target>(*args, **kwargs)`` with the recorded argument structure,
    then its result flattened against the recorded output structure. The
    structures are attributes of the parent (``_spec_<n>``), read by ``get_attr``
    as torch.export.unflatten does, so the graph prints as plain Python."""
    assert entry.in_spec is not None and entry.out_spec is not None
    members = set(call.nodes)
    meta = {k: v for k, v in call.nodes[-1].meta.items() if k not in ("val", VALUE_NAME)}
    with graph.inserting_before(call.nodes[-1].next):  # in order, after the call's nodes
        args_spec, kwargs_spec = entry.in_spec.children
        leaves = iter(flat_in)
        args = tuple(_argument(graph, owner, leaves, child, meta) for child in args_spec.children)
        kwargs = {key: _argument(graph, owner, leaves, child, meta)
                  for key, child in zip(kwargs_spec.context, kwargs_spec.children)}  # fmt: skip
        node = graph.call_module(target, args, kwargs)
        out_spec = _spec_node(graph, owner, entry.out_spec)
        flat = graph.call_function(flat_outputs, (node, out_spec, entry.fqn))
    values = [v.meta.get("val") if isinstance(v, Node) else v for v in flat_out]
    node.meta = {**meta, "val": tree_unflatten(values, entry.out_spec)}
    flat.meta = {**meta, "val": values}
    anchor = flat
    new = []
    for index, value in enumerate(flat_out):
        if not isinstance(value, Node):
            continue
        with graph.inserting_after(anchor):
            element = graph.call_function(getitem, (flat, index))
        element.meta = dict(value.meta)
        readers = _outside_of(members) if value in members else _later_than(element)
        value.replace_all_uses_with(element, _except(element, readers))
        anchor = element
        new.append(element)
    for member in reversed(call.nodes):
        if any(user not in members for user in member.users):
            raise UnflattenError(
                f"{member.name!r}, computed inside the preserved call {entry.fqn!r}, is used "
                "outside it without being one of its outputs; this is a bug in graphlift"
            )
        graph.erase_node(member)
    return new


def _argument(
    graph: Graph, owner: torch.nn.Module, leaves: Iterator[Any], spec: TreeSpec, meta: Any
) -> Any:
    """One call argument from the next flat values: a leaf itself, a container
    a ``tree_unflatten`` node."""
    values = [next(leaves) for _ in range(spec.num_leaves)]
    if spec.is_leaf():
        return values[0]
    node = graph.call_function(tree_unflatten, (values, _spec_node(graph, owner, spec)))
    example = [v.meta.get("val") if isinstance(v, Node) else v for v in values]
    node.meta = {**meta, "val": tree_unflatten(example, spec)}
    return node


def _spec_node(graph: Graph, owner: torch.nn.Module, spec: TreeSpec) -> Node:
    """A ``get_attr`` of ``spec``, kept on ``owner`` as ``_spec_<n>``."""
    name = f"_spec_{sum(1 for key in vars(owner) if key.startswith('_spec_'))}"
    setattr(owner, name, spec)
    node = graph.get_attr(name)
    node.meta["val"] = spec
    return node


def _except(node: Node, test: Callable[[Node], bool]) -> Callable[[Node], bool]:
    return lambda user: user is not node and test(user)


def _outside_of(members: set[Node]) -> Callable[[Node], bool]:
    """A test for "not one of the call's nodes" (readers of a value the call computes)."""
    return lambda user: user not in members


def _later_than(anchor: Node) -> Callable[[Node], bool]:
    """A test for "comes after ``anchor``" (a value the call returns unchanged
    keeps its earlier readers)."""
    later: set[Node] = set()
    node = anchor.next
    while node.op != "root":
        later.add(node)
        node = node.next
    return later.__contains__
