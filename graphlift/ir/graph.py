"""`Graph`: an ordered list of Nodes with unique names, and the only place nodes
are created, moved or erased.

Nodes live in a doubly linked list around a sentinel, so insertion and erasure
anywhere are O(1), and iterating (forwards or with ``reversed``) tolerates
erasing the current node. New nodes go to the *insertion point*: the end of
the graph, or wherever ``inserting_before``/``inserting_after`` put it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch

from graphlift.errors import GraphError
from graphlift.ir.codegen import (
    INPUT_RESERVED_NAMES,
    RESERVED_NAMES,
    PythonCode,
    generate_python,
)
from graphlift.ir.custom_codegen import CodeGen, StructuredInputsCodeGen, TransformCodeFunc
from graphlift.ir.input_structure import process_inputs
from graphlift.ir.lint import lint_graph
from graphlift.ir.node import (
    OPCODES,
    Argument,
    Node,
    Target,
    describe_target,
    iter_nodes,
    map_aggregate,
    map_arg,
)
from graphlift.ir.passes.dce import eliminate_dead_code
from graphlift.ir.tabular import tabulate_graph


class Namespace:
    """Hands out unique Python identifiers: ``add``, ``add_1``, ``add_2``..."""

    _SUFFIX = re.compile(r"(.*)_(\d+)$")

    def __init__(self, reserved: frozenset[str] = RESERVED_NAMES) -> None:
        self._reserved = reserved
        self._used: set[str] = set()
        self._next_suffix: dict[str, int] = {}

    def create_name(self, candidate: str, input_name: bool = False) -> str:
        """``input_name``: the name of a graph input, which may be a builtin's
        (``input``, ``len``): only keywords and ``self`` are renamed then."""
        reserved = INPUT_RESERVED_NAMES if input_name else self._reserved
        plain = input_name and candidate.isidentifier()  # ``x_`` stays ``x_``, as in torch
        name = candidate if plain else re.sub(r"[^0-9a-zA-Z_]+", "_", candidate).strip("_") or "_"
        if name[0].isdigit():
            name = f"_{name}"
        if name not in self._used and name not in reserved:
            self._used.add(name)
            return name
        match = self._SUFFIX.match(name)
        base, suffix = (match.group(1), int(match.group(2))) if match else (name, 0)
        suffix = max(suffix, self._next_suffix.get(base, 0)) + 1
        while f"{base}_{suffix}" in self._used or f"{base}_{suffix}" in self._reserved:
            suffix += 1
        self._next_suffix[base] = suffix
        self._used.add(f"{base}_{suffix}")
        return f"{base}_{suffix}"


def snake_case(name: str) -> str:
    """``TensorPair`` -> ``tensor_pair``; names already in snake case are unchanged."""
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", name).lower()


def candidate_name(op: str, target: Target) -> str:
    """A node's default name, as torch.fx makes it: the function's or op's name,
    or the string target in snake case (``activations.PascalCase`` ->
    ``activations_pascal_case``, ``__add__`` -> ``add``)."""
    if op == "call_function":
        if callable(target) and hasattr(target, "_schema"):  # ATen overload: aten.add.Tensor
            schema_name: str = target._schema.name
            return schema_name.split("::")[-1]
        return snake_case(describe_target(target).rsplit(".", 1)[-1])
    name = str(target).lstrip("*")
    if name.startswith("__") and name.endswith("__") and len(name) > 4:
        name = name[2:-2]
    return snake_case(name)


class NodeList:
    """A live view of a graph's nodes, in order. Erasing the node being visited
    is safe in both directions."""

    def __init__(self, graph: Graph, reverse: bool = False) -> None:
        self._graph = graph
        self._reverse = reverse

    def __len__(self) -> int:
        return self._graph._len

    def __iter__(self) -> Iterator[Node]:
        # Read the next pointer after yielding, so nodes the caller inserts after
        # the current one are visited; an erased node keeps its pointers into
        # the list, so erasing the current node is safe too.
        root = self._graph._root
        node = root._prev if self._reverse else root._next
        while node is not root:
            if not node._erased:
                yield node
            node = node._prev if self._reverse else node._next

    def __reversed__(self) -> Iterator[Node]:
        return iter(NodeList(self._graph, reverse=not self._reverse))

    def __repr__(self) -> str:
        return f"[{', '.join(node.name for node in self)}]"


class InsertionPoint(AbstractContextManager["InsertionPoint"]):
    """Moves a graph's insertion point at once; restores it when used as a ``with`` block."""

    def __init__(self, graph: Graph, insert: Callable[[Node], None]) -> None:
        self._graph = graph
        self._saved = graph._insert
        graph._insert = insert

    def __exit__(self, *exc: object) -> None:
        self._graph._insert = self._saved


class Graph:
    """A function as a list of Nodes. See graphlift.ir.node for the opcodes."""

    def __init__(
        self,
        owning_module: torch.nn.Module | None = None,
        tracer_cls: type | None = None,
        tracer_extras: dict[str, Any] | None = None,
    ) -> None:
        self._root = Node(self, "", "root", "", (), {})
        self._len = 0
        self._insert: Callable[[Node], None] = self._root.prepend
        self._namespace = Namespace()
        self.owning_module = owning_module
        # the Tracer class (and its constructor's extra arguments) that made this
        # graph, kept for whoever re-traces it, as torch.fx keeps them
        self._tracer_cls = tracer_cls
        self._tracer_extras = tracer_extras
        self._codegen: CodeGen = StructuredInputsCodeGen()

    @property
    def nodes(self) -> NodeList:
        return NodeList(self)

    def output_node(self) -> Node:
        """The graph's output node (the last node); a method, as in torch.fx."""
        last = self._root._prev
        if last.op != "output":
            raise GraphError("the graph has no output node yet; add one with graph.output(...)")
        return last

    def eliminate_dead_code(self) -> bool:
        """Erase unused nodes without side effects (graphlift.ir.passes.eliminate_dead_code);
        True if anything changed, as torch.fx's Graph.eliminate_dead_code."""
        return eliminate_dead_code(self) > 0

    def find_nodes(self, *, op: str, target: Target | None = None) -> list[Node]:
        """Nodes with opcode ``op`` (and, if given, that target), in order."""
        return [n for n in self.nodes if n.op == op and (target is None or n.target == target)]

    # --- creating nodes ----------------------------------------------------------

    def create_node(
        self,
        op: str,
        target: Target,
        args: tuple[Argument, ...] | None = None,
        kwargs: dict[str, Argument] | None = None,
        name: str | None = None,
        type_expr: Any = None,
        *,
        shadows_builtin: bool = False,
    ) -> Node:
        """``shadows_builtin``: a placeholder keeps a builtin's name (``input``),
        as torch.export names inputs; torch.fx renames it (``input_1``)."""
        if op not in OPCODES:
            raise GraphError(f"unknown opcode {op!r}; a node's op is one of {', '.join(OPCODES)}")
        # A node of another graph is accepted here, as torch.fx does, so that
        # copying loops can fix arguments up afterwards; lint() reports any left.
        for used in iter_nodes((args, kwargs)):
            if used._erased:
                raise GraphError(f"node {used.name!r} was erased and cannot be an argument")
        input_name = shadows_builtin and op == "placeholder"
        unique = self._namespace.create_name(name or candidate_name(op, target), input_name)
        node = Node(self, unique, op, target, tuple(args or ()), dict(kwargs or {}), type_expr)
        self._insert(node)
        self._len += 1
        return node

    def reserve_name(self, candidate: str) -> str:
        """A name no node of this graph has or will get, as ``create_node`` would
        give it now (a node built elsewhere and placed here later keeps it)."""
        return self._namespace.create_name(candidate)

    def placeholder(
        self,
        name: str,
        type_expr: Any = None,
        default_value: Any = ...,
        *,
        shadows_builtin: bool = False,
    ) -> Node:
        args = () if default_value is ... else (default_value,)
        return self.create_node(
            "placeholder", name, args, type_expr=type_expr, shadows_builtin=shadows_builtin
        )

    def get_attr(self, qualified_name: str, type_expr: Any = None) -> Node:
        return self.create_node("get_attr", qualified_name, type_expr=type_expr)

    def call_function(
        self,
        the_function: Callable[..., Any],
        args: tuple[Argument, ...] | None = None,
        kwargs: dict[str, Argument] | None = None,
        type_expr: Any = None,
    ) -> Node:
        return self.create_node("call_function", the_function, args, kwargs, type_expr=type_expr)

    def call_method(
        self,
        method_name: str,
        args: tuple[Argument, ...] | None = None,
        kwargs: dict[str, Argument] | None = None,
        type_expr: Any = None,
    ) -> Node:
        return self.create_node("call_method", method_name, args, kwargs, type_expr=type_expr)

    def call_module(
        self,
        module_name: str,
        args: tuple[Argument, ...] | None = None,
        kwargs: dict[str, Argument] | None = None,
        type_expr: Any = None,
    ) -> Node:
        return self.create_node("call_module", module_name, args, kwargs, type_expr=type_expr)

    def output(self, result: Argument, type_expr: Any = None) -> Node:
        return self.create_node("output", "output", (result,), type_expr=type_expr)

    # --- editing -------------------------------------------------------------------

    def inserting_before(self, node: Node | None = None) -> InsertionPoint:
        """New nodes go before ``node`` (default: the start of the graph)."""
        anchor = node if node is not None else self._root._next
        return InsertionPoint(self, anchor.prepend)

    def inserting_after(self, node: Node | None = None) -> InsertionPoint:
        """New nodes go after ``node`` (default: the end of the graph)."""
        anchor = node if node is not None else self._root._prev
        return InsertionPoint(self, anchor.append)

    def erase_node(self, node: Node) -> None:
        """Remove a node that nothing uses any more."""
        if node.graph is not self:
            raise GraphError(f"cannot erase node {node.name!r}: it belongs to another graph")
        if node._erased:
            raise GraphError(f"node {node.name!r} was already erased")
        if node.users:
            users = ", ".join(user.name for user in node.users)
            raise GraphError(
                f"cannot erase node {node.name!r}: it still has {len(node.users)} user(s) ({users}); "
                "replace its uses first (node.replace_all_uses_with(...))"
            )
        node._set_arguments((), {})
        successor = node._next
        node._unlink()
        # Keep the erased node pointing into the list so that an iteration
        # currently standing on it can move on.
        node._prev, node._next = successor._prev, successor
        node._erased = True
        self._len -= 1

    def node_copy(
        self, node: Node, arg_transform: Callable[[Node], Argument] = lambda n: n
    ) -> Node:
        """Copy ``node`` (usually from another graph) into this one, mapping its
        input Nodes with ``arg_transform``."""
        args, kwargs = map_arg((node.args, node.kwargs), arg_transform)
        name = node.name if node.op != "placeholder" else str(node.target)
        # an input already named like a builtin (as export names it) keeps its name
        shadows = node.name == name
        copied = self.create_node(
            node.op, node.target, args, kwargs, name, node.type, shadows_builtin=shadows
        )
        copied.meta = copy.copy(node.meta)
        return copied

    def graph_copy(self, graph: Graph, val_map: dict[Node, Node]) -> Argument:
        """Append every node of ``graph`` but its output; returns the output's
        value in terms of the copies. ``val_map`` collects old -> new nodes;
        nodes already in it are not copied (map placeholders to values to inline)."""
        for node in graph.nodes:
            if node in val_map:  # already stands for a value here (inlining)
                continue
            if node.op == "output":
                return map_arg(node.args[0], val_map.__getitem__)
            val_map[node] = self.node_copy(node, val_map.__getitem__)
        return None

    def __deepcopy__(self, memo: dict[int, Any]) -> Graph:
        copied = Graph(tracer_cls=self._tracer_cls, tracer_extras=self._tracer_extras)
        copied._codegen = copy.deepcopy(self._codegen, memo)
        memo[id(self)] = copied
        val_map: dict[Node, Node] = {}
        result = copied.graph_copy(self, val_map)
        output = next(reversed(self.nodes), None)
        if output is not None and output.op == "output":
            out = copied.output(result, output.type)
            out.meta = copy.copy(output.meta)
        return copied

    # --- pickling: a flat list of nodes (the linked list would recurse deeply) -----

    def __getstate__(self) -> dict[str, Any]:
        records = [
            (n.name, n.op, _OpRef.wrap(n.target), *map_arg((n.args, n.kwargs), _NodeRef.of),
             n.type, n.meta)
            for n in self.nodes
        ]  # fmt: skip
        # a Tracer class defined inside a function cannot be pickled: dropped, as torch.fx does
        tracer_cls = self._tracer_cls
        importable = tracer_cls is not None and "<locals>" not in tracer_cls.__qualname__
        return {
            "nodes": records,
            "codegen": self._codegen,
            "tracer_cls": tracer_cls if importable else None,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Graph.__init__(self, tracer_cls=state.get("tracer_cls"))
        self._codegen = state.get("codegen") or self._codegen
        by_name: dict[str, Node] = {}
        for name, op, target, args, kwargs, type_expr, meta in state["nodes"]:
            args, kwargs = _NodeRef.resolve((args, kwargs), by_name)
            target = target.resolve() if isinstance(target, _OpRef) else target
            node = self.create_node(op, target, args, kwargs, name, type_expr, shadows_builtin=True)
            node.meta = meta
            by_name[name] = node

    # --- checking and printing -----------------------------------------------------

    def lint(self) -> None:
        """Check that the graph is well formed; raise GraphError saying what is not.

        Checks opcodes, ownership, definition before use, unique names,
        consistent use-def edges, one trailing output, target types and, when
        the graph belongs to a module, that attribute targets exist.
        """
        lint_graph(self)

    def print_tabular(self) -> None:
        """Print the nodes as a table (opcode, name, target, args, kwargs), as torch.fx does."""
        print(tabulate_graph(self.nodes))

    # --- code generation ------------------------------------------------------------

    def set_codegen(self, codegen: CodeGen) -> None:
        """Generate ``forward`` with ``codegen`` (a ``CodeGen`` subclass) from now on;
        a GraphModule picks it up at its next ``recompile()``."""
        self._codegen = codegen

    def on_generate_code(
        self, make_transformer: Callable[[TransformCodeFunc | None], TransformCodeFunc]
    ) -> AbstractContextManager[None]:
        """Register a transformer of the generated body's lines (a list of
        statements, each ending in a newline); ``make_transformer`` receives the
        current one to chain it. Used as a ``with`` block, restores the previous one."""
        previous = self._codegen._body_transformer
        self._codegen._body_transformer = make_transformer(previous)
        codegen = self._codegen

        @contextmanager
        def restoring() -> Iterator[None]:
            try:
                yield
            finally:
                codegen._body_transformer = previous

        return restoring()

    def process_inputs(self, *args: Any) -> Any:
        """The function's arguments as one value per placeholder: structured
        inputs flattened (see graphlift.ir.input_structure), or what a custom
        codegen's ``process_inputs`` makes of them."""
        if isinstance(self._codegen, StructuredInputsCodeGen):
            return process_inputs(self.find_nodes(op="placeholder"), args)
        return self._codegen.process_inputs(*args)

    def process_outputs(self, outputs: Any) -> Any:
        """The output node's value as the generated function returns it."""
        return self._codegen.process_outputs(outputs)

    def python_code(self, root_module: str = "self") -> PythonCode:
        """Generate the Python source of this graph as a ``forward`` method."""
        return generate_python(self, root_module)

    def __str__(self) -> str:
        """The compact printout; like torch.export's, each run of nodes from one user
        line is preceded by ``# File: model.py:12 in forward, code: <the line>``."""
        params = ", ".join(n.name for n in self.nodes if n.op == "placeholder")
        lines = [f"graph({params}):"]
        previous = None
        for node in self.nodes:
            if node.op == "placeholder":
                continue
            source = node.meta.get("stack_trace") if node.op != "output" else None
            if source and source != previous:
                lines.append(f"    {format_source_comment(source)}")
            previous = source
            lines.append(f"    {node.format_node()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph with {len(self.nodes)} nodes>"


def format_source_comment(stack_trace: str) -> str:
    """``# File: model.py:12 in forward, code: y = self.fc(x)`` for a node's
    ``meta["stack_trace"]`` (``"model.py:12 in forward\\n    y = self.fc(x)"``)."""
    location, _, code = stack_trace.partition("\n")
    code = code.strip()
    return f"# File: {location}, code: {code}" if code else f"# File: {location}"


class _NodeRef:
    """A stand-in for a Node inside pickled arguments."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_NodeRef, (self.name,))

    @staticmethod
    def of(node: Node) -> _NodeRef:
        return _NodeRef(node.name)

    @staticmethod
    def resolve(arg: Argument, by_name: dict[str, Node]) -> Any:
        return map_aggregate(arg, lambda a: by_name[a.name] if isinstance(a, _NodeRef) else a)


class _OpRef:
    """A torch op target in a pickled graph, by name: some op packets hold
    C++ function records that cannot be pickled."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (_OpRef, (self.path,))

    @staticmethod
    def wrap(target: Any) -> Any:
        if isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
            return _OpRef(str(target))  # aten.add.Tensor or aten.add
        return target

    def resolve(self) -> Any:
        value: Any = torch.ops
        for atom in self.path.split("."):
            value = getattr(value, atom)
        return value
