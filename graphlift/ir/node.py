"""`Node`: one named operation in a `Graph`, and the argument-structure helpers.

A node is a call record with one of six opcodes (the IR is closed; see
STYLE.md). Its vocabulary is torch.fx's, so fx users feel at home:

=============  ==========================  ===================================
op             target                      meaning
=============  ==========================  ===================================
placeholder    parameter name (str)        a function input; ``args[0]`` is
                                           the default value, if any
get_attr       qualified name (str)        fetch a parameter/buffer/attribute
call_function  a callable                  ``target(*args, **kwargs)``
call_method    method name (str)           ``args[0].target(*args[1:], **kwargs)``
call_module    qualified name (str)        ``root.<target>(*args, **kwargs)``
output         ``"output"``                the function's result is ``args[0]``
=============  ==========================  ===================================

Arguments are nested tuples/lists/dicts/slices of Nodes and constants. Lists
and dicts are stored immutably so that use-def edges (``node.users``) cannot go
stale behind the graph's back; edit them with ``node.args = ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.utils._pytree as torch_pytree

from graphlift.errors import FxArgumentError, GraphError, GraphTargetError, ImmutableArgumentError
from graphlift.ir import effects

if TYPE_CHECKING:
    from graphlift.ir.graph import Graph

OPCODES = ("placeholder", "get_attr", "call_function", "call_method", "call_module", "output")

Target = Callable[..., Any] | str
Argument = Any  # nested tuple/list/dict/slice of Node and constants


class ImmutableList(list[Any]):
    """A list that refuses in-place edits (node arguments must be replaced whole)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise ImmutableArgumentError(
            "node arguments are immutable; assign a new value with `node.args = ...` "
            "so that use-def edges stay correct"
        )

    # deliberately not list's signatures: every in-place edit refuses
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse  # type: ignore[assignment]
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self) -> tuple[Any, ...]:
        return (ImmutableList, (list(self),))


class ImmutableDict(dict[Any, Any]):
    """A dict that refuses in-place edits (see ImmutableList)."""

    _refuse = ImmutableList._refuse
    __setitem__ = __delitem__ = __ior__ = _refuse  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (ImmutableDict, (dict(self),))


# Node arguments are pytrees, as torch.fx's immutable collections are: tree_map over
# node.args reaches the Nodes inside and rebuilds the same immutable types.
torch_pytree.register_pytree_node(
    ImmutableList,
    lambda items: (list(items), None),
    lambda values, _: ImmutableList(values),
    serialized_type_name="graphlift.ir.node.ImmutableList",
    flatten_with_keys_fn=lambda items: (
        [(torch_pytree.SequenceKey(i), v) for i, v in enumerate(items)],
        None,
    ),
)
torch_pytree.register_pytree_node(
    ImmutableDict,
    lambda mapping: (list(mapping.values()), list(mapping)),
    lambda values, keys: ImmutableDict(zip(keys, values)),
    serialized_type_name="graphlift.ir.node.ImmutableDict",
    flatten_with_keys_fn=lambda mapping: (
        [(torch_pytree.MappingKey(k), v) for k, v in mapping.items()],
        list(mapping),
    ),
)


def map_aggregate(arg: Argument, fn: Callable[[Any], Any]) -> Argument:
    """Apply ``fn`` to every leaf of a nested argument, rebuilding the containers.

    Tuples (including namedtuples), lists, dicts and slices are containers;
    everything else, Nodes included, is a leaf.
    """
    if isinstance(arg, tuple):
        mapped = tuple(map_aggregate(a, fn) for a in arg)
        return type(arg)(*mapped) if hasattr(arg, "_fields") else mapped
    if isinstance(arg, list):
        return ImmutableList(map_aggregate(a, fn) for a in arg)
    if isinstance(arg, dict):
        return ImmutableDict((k, map_aggregate(v, fn)) for k, v in arg.items())
    if isinstance(arg, slice):
        return slice(
            map_aggregate(arg.start, fn), map_aggregate(arg.stop, fn), map_aggregate(arg.step, fn)
        )
    return fn(arg)


def frozen(arg: Argument) -> Argument:
    """``arg`` with its lists and dicts made immutable (``map_aggregate`` with the
    identity, without a call per leaf: it runs for every node made)."""
    if isinstance(arg, tuple):
        items = tuple(frozen(a) for a in arg)
        return type(arg)(*items) if hasattr(arg, "_fields") else items
    if isinstance(arg, list):
        return ImmutableList(frozen(a) for a in arg)
    if isinstance(arg, dict):
        return ImmutableDict((k, frozen(v)) for k, v in arg.items())
    if isinstance(arg, slice):
        return slice(frozen(arg.start), frozen(arg.stop), frozen(arg.step))
    return arg


def map_arg(arg: Argument, fn: Callable[[Node], Any]) -> Argument:
    """Apply ``fn`` to every Node inside a nested argument."""
    return map_aggregate(arg, lambda a: fn(a) if isinstance(a, Node) else a)


def iter_nodes(arg: Argument) -> Iterator[Node]:
    """The Nodes inside a nested argument, in order (with repeats)."""
    if isinstance(arg, Node):
        yield arg
    elif isinstance(arg, tuple | list):
        for a in arg:
            yield from iter_nodes(a)
    elif isinstance(arg, dict):
        for a in arg.values():
            yield from iter_nodes(a)
    elif isinstance(arg, slice):
        yield from iter_nodes((arg.start, arg.stop, arg.step))


class Node:
    """One operation of a Graph. Create nodes with ``Graph.create_node`` (or its
    ``placeholder``/``call_function``/... shorthands), never directly."""

    def __init__(
        self,
        graph: Graph,
        name: str,
        op: str,
        target: Target,
        args: tuple[Argument, ...],
        kwargs: dict[str, Argument],
        type: Any = None,
    ) -> None:
        if op not in OPCODES and op != "root":
            raise GraphError(f"unknown opcode {op!r}; a node's op is one of {', '.join(OPCODES)}")
        _check_target_type(name, op, target)
        self.graph = graph
        self.name = name
        self.op = op
        self.target = target
        self.type = type
        self.meta: dict[str, Any] = {}
        #: Nodes that use this node's value, in insertion order (a dict as an ordered set).
        self.users: dict[Node, None] = {}
        self._input_nodes: dict[Node, None] = {}
        self._args: tuple[Argument, ...] = ()
        self._kwargs: dict[str, Argument] = ImmutableDict()
        self._prev = self
        self._next = self
        self._erased = False
        self._set_arguments(args, kwargs)

    # --- arguments and use-def edges ---------------------------------------------

    @property
    def args(self) -> tuple[Argument, ...]:
        return self._args

    @args.setter
    def args(self, value: tuple[Argument, ...]) -> None:
        self._set_arguments(value, self._kwargs)

    @property
    def kwargs(self) -> dict[str, Argument]:
        return self._kwargs

    @kwargs.setter
    def kwargs(self, value: dict[str, Argument]) -> None:
        self._set_arguments(self._args, value)

    @property
    def all_input_nodes(self) -> list[Node]:
        """The distinct Nodes this node reads, in order of first appearance."""
        return list(self._input_nodes)

    def _set_arguments(self, args: tuple[Argument, ...], kwargs: dict[str, Argument]) -> None:
        for old in self._input_nodes:
            old.users.pop(self, None)
        self._args = frozen(tuple(args))
        self._kwargs = frozen(dict(kwargs))
        self._input_nodes = dict.fromkeys(iter_nodes((self._args, self._kwargs)))
        for new in self._input_nodes:
            new.users[self] = None

    def update_arg(self, index: int, value: Argument) -> None:
        args = list(self._args)
        args[index] = value
        self.args = tuple(args)

    def insert_arg(self, index: int, value: Argument) -> None:
        """Insert ``value`` into ``args`` before position ``index`` (0..len(args))."""
        if not 0 <= index <= len(self.args):
            raise FxArgumentError(
                f"insert_arg index must be between 0 and {len(self.args)} (the number of "
                f"arguments of {self.name!r}), got {index}"
            )
        self._set_arguments((*self.args[:index], value, *self.args[index:]), self.kwargs)

    def update_kwarg(self, key: str, value: Argument) -> None:
        self.kwargs = {**self._kwargs, key: value}

    def replace_input_with(self, old: Node, new: Node) -> None:
        """Make this node read ``new`` wherever it read ``old``."""
        self._set_arguments(*map_arg((self._args, self._kwargs), lambda n: new if n is old else n))

    def replace_all_uses_with(
        self, replacement: Node, delete_user_cb: Callable[[Node], bool] = lambda user: True
    ) -> list[Node]:
        """Make every user of this node (for which ``delete_user_cb`` holds) read
        ``replacement`` instead. Returns the users that were changed."""
        changed = [user for user in self.users if delete_user_cb(user)]
        for user in changed:
            user.replace_input_with(self, replacement)
        return changed

    # --- position in the graph ---------------------------------------------------

    @property
    def next(self) -> Node:
        return self._next

    @property
    def prev(self) -> Node:
        return self._prev

    def prepend(self, node: Node) -> None:
        """Move ``node`` (new or already in this graph) to just before this node."""
        if node is self:
            return
        if node.graph is not self.graph:
            raise GraphError(f"cannot move node {node.name!r}: it belongs to another graph")
        node._unlink()
        prev = self._prev
        prev._next, node._prev, node._next, self._prev = node, prev, self, node

    def append(self, node: Node) -> None:
        """Move ``node`` to just after this node."""
        self._next.prepend(node)

    def _unlink(self) -> None:
        prev, nxt = self._prev, self._next
        prev._next, nxt._prev = nxt, prev
        self._prev = self._next = self

    # --- conveniences ------------------------------------------------------------

    def is_impure(self) -> bool:
        """True when the node has an effect beyond its value (torch.fx's Node.is_impure)."""
        return effects.has_side_effect(self)

    @property
    def stack_trace(self) -> str | None:
        """The user's source location that produced this node, if recorded."""
        return self.meta.get("stack_trace")

    @stack_trace.setter
    def stack_trace(self, value: str | None) -> None:
        self.meta["stack_trace"] = value

    def format_node(self) -> str:
        """This node as one line of the compact graph printout, e.g.
        ``%add = call_function[operator.add](%x, 1)  # f32[2, 3]``."""
        if self.op == "placeholder":
            default = f" = {format_arg(self.args[0])}" if self.args else ""
            line = f"%{self.name} = placeholder[{self.target}]{default}"
        elif self.op == "output":
            line = f"return {format_arg(self.args[0])}"
        else:
            target = self.target if isinstance(self.target, str) else describe_target(self.target)
            annotation = f" : {describe_type(self.type)}" if self.type is not None else ""
            line = f"%{self.name}{annotation} = {self.op}[{target}]"
            if self.op != "get_attr":
                line += f"({format_call_args(self.args, self.kwargs)})"
        value = describe_value(self.meta.get("val", self.meta.get("tensor_meta")))
        return f"{line}  # {value}" if value else line

    def __repr__(self) -> str:
        return self.name


def last_uses(nodes: Iterable[Node]) -> dict[Node, list[Node]]:
    """For each node, the values it is the last user of (they can be dropped after it)."""
    last_user: dict[Node, Node] = {}
    for node in nodes:
        for used in node.all_input_nodes:
            last_user[used] = node
    dropped: dict[Node, list[Node]] = {}
    for value, user in last_user.items():
        dropped.setdefault(user, []).append(value)
    return dropped


def describe_target(target: Any) -> str:
    """A stable, readable name for a call_function target.

    ``aten.add.Tensor`` for ATen overloads, ``operator.add``, ``torch.relu``,
    ``torch.nn.functional.gelu`` and ``module.qualname`` for other functions.
    """
    if isinstance(target, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        return str(target)
    name = getattr(target, "__name__", None)
    for public in ("torch", "torch.nn.functional"):
        if isinstance(name, str) and getattr(sys.modules[public], name, None) is target:
            return f"{public}.{name}"
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or name or repr(target)
    if module == "_operator":
        module = "operator"
    return f"{module}.{qualname}" if module else qualname


def describe_type(annotation: Any) -> str:
    """A type annotation as torch.fx prints it: ``int``, ``torch.Tensor``, ``typing.List[float]``."""
    if isinstance(annotation, type):
        module = annotation.__module__
        return (
            annotation.__qualname__
            if module == "builtins"
            else f"{module}.{annotation.__qualname__}"
        )
    return annotation if isinstance(annotation, str) else repr(annotation)


def _check_target_type(name: str, op: str, target: Any) -> None:
    """torch.fx refuses a node whose target cannot be right for its opcode (ValueError)."""
    if op == "call_function" and not callable(target):
        raise GraphTargetError(
            f"node {name!r}: a call_function target must be callable, got {target!r}"
        )
    if op not in ("call_function", "root") and not isinstance(target, str):
        raise GraphTargetError(f"node {name!r}: a {op} target must be a string, got {target!r}")


def format_arg(arg: Argument) -> str:
    """Compact, deterministic text for an argument: Nodes as ``%name``."""
    if isinstance(arg, Node):
        return f"%{arg.name}"
    if isinstance(arg, tuple):
        names: tuple[str, ...] | None = getattr(arg, "_fields", None)  # set on namedtuples
        if names is None:
            inner = ", ".join(format_arg(a) for a in arg)
            return f"({inner},)" if len(arg) == 1 else f"({inner})"
        fields = ", ".join(f"{k}={format_arg(v)}" for k, v in zip(names, arg))
        return f"{type(arg).__name__}({fields})"
    if isinstance(arg, list):
        return "[" + ", ".join(format_arg(a) for a in arg) + "]"
    if isinstance(arg, dict):
        return "{" + ", ".join(f"{k!r}: {format_arg(v)}" for k, v in arg.items()) + "}"
    if isinstance(arg, slice):  # subscript notation: 1:, :2, ::2
        bounds = ["" if b is None else format_arg(b) for b in (arg.start, arg.stop, arg.step)]
        return ":".join(bounds if arg.step is not None else bounds[:2])
    if isinstance(arg, torch.Tensor):
        return f"tensor<{describe_value(arg)}>"
    if callable(arg) and not isinstance(arg, type):
        return describe_target(arg)
    return repr(arg)


def format_call_args(args: tuple[Argument, ...], kwargs: dict[str, Argument]) -> str:
    parts = [format_arg(a) for a in args]
    parts += [f"{k}={format_arg(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


_DTYPE_ABBREVIATIONS = {
    torch.float32: "f32", torch.float64: "f64", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "b8", torch.complex64: "c64", torch.complex128: "c128",
}  # fmt: skip


def describe_value(value: Any) -> str:
    """``f32[2, s0]`` for a tensor or tensor metadata, recursively for tuples; "" otherwise."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, torch.dtype) and shape is not None:
        name = _DTYPE_ABBREVIATIONS.get(dtype, str(dtype).removeprefix("torch."))
        return f"{name}[{', '.join(str(d) for d in shape)}]"
    if isinstance(value, tuple | list) and value:
        inner = [describe_value(v) for v in value]
        return f"({', '.join(i or '_' for i in inner)})" if any(inner) else ""
    return ""
