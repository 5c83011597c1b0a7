"""`Proxy`: the stand-in value a traced function computes with.

Every operation on a Proxy records a Node instead of computing: operators
become ``call_function`` nodes on ``operator.*``, attribute reads become
``getattr`` nodes (or ``call_method`` nodes when called), and torch functions
reach ``Proxy.__torch_function__``. Python control flow cannot be recorded:
``bool()``, iteration and ``len()`` raise TraceError naming the user's line —
except for the two patterns whose outcome is known from the bytecode: tuple
unpacking (``a, b = x.chunk(2)``) and ``assert`` (recorded as ``torch._assert``).
"""

from __future__ import annotations

import dataclasses
import dis
import operator
import sys
from bisect import bisect_left
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import GraphError, TraceError, UnsupportedTraceError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Argument, Node, Target, map_aggregate
from graphlift.source import user_location, user_where

CONTROL_FLOW_HINT = (
    "symbolic tracing records operations, not Python control flow, so a traced value "
    "cannot decide a branch, a loop or a length. Fixes: pass the value as a constant with "
    "symbolic_trace(..., concrete_args={...}), or move the code into a function marked "
    "with graphlift.wrap(...) so that it is recorded as one call"
)


# Python values that go into a graph as they are.
LITERAL_TYPES = (
    bool, int, float, complex, str, bytes, type(None), type(Ellipsis), range,
    torch.dtype, torch.device, torch.layout, torch.memory_format, torch.Size,
)  # fmt: skip


class TracerBase:
    """What a Proxy needs to record: turn values into node arguments and
    create nodes in ``self.graph`` (torch.fx's TracerBase). `Tracer` adds
    running a module; `GraphAppendingTracer` is this alone."""

    graph: Graph
    record_stack_traces = False
    module_stack: dict[str, tuple[str, type]]

    def create_arg(self, a: Any) -> Argument:
        """Turn a value the traced code passes to an operation into a node argument."""
        if isinstance(a, Proxy):
            return a.node
        if hasattr(a, "__fx_create_arg__"):
            return a.__fx_create_arg__(self)
        if isinstance(a, tuple) and hasattr(a, "_fields"):
            # A namedtuple is built by a node of its own (as torch.fx does), so
            # its construction shows in the graph and in generated code.
            fields = tuple(self.create_arg(x) for x in a)
            return self.create_node("call_function", type(a), fields, {})
        if isinstance(a, tuple):
            return tuple(self.create_arg(x) for x in a)
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            # built by a node of its own, from its fields, as torch.fx does
            values = {f.name: self.create_arg(getattr(a, f.name)) for f in dataclasses.fields(a)}
            return self.create_node("call_function", type(a), (), values)
        if isinstance(a, list):
            return [self.create_arg(x) for x in a]
        if isinstance(a, dict):
            return {self._dict_key(k): self.create_arg(v) for k, v in a.items()}
        if isinstance(a, slice):
            return slice(self.create_arg(a.start), self.create_arg(a.stop), self.create_arg(a.step))
        if isinstance(a, LITERAL_TYPES) or (callable(a) and not isinstance(a, torch.nn.Module)):
            return a
        if type(a).__module__ == "enum" or hasattr(type(a), "__members__"):
            return a
        raise UnsupportedTraceError(
            f"cannot record an argument of type {type(a).__name__}: graphs hold tensors, "
            "Python scalars, strings, dtypes, devices and containers of those",
            where=user_where(),
        )

    def _dict_key(self, key: Any) -> Any:
        if isinstance(key, Proxy | Node):
            raise GraphError(
                "a traced value is used as a dictionary key; keys of a recorded dict "
                "cannot contain a Node (use a constant key)"
                + (f"\n  at {user_where()}" if user_where() else "")
            )
        return key

    def create_node(
        self,
        kind: str,
        target: Target,
        args: tuple[Argument, ...],
        kwargs: dict[str, Argument],
        name: str | None = None,
        type_expr: Any = None,
    ) -> Node:
        node = self.graph.create_node(kind, target, args, kwargs, name, type_expr)
        if self.record_stack_traces and kind not in ("placeholder", "output"):
            location = user_location(sys._getframe(1))
            if location is not None:
                node.meta["stack_trace"] = location.stack_trace
        if getattr(self, "module_stack", None):
            node.meta["nn_module_stack"] = dict(self.module_stack)
        return node

    def create_proxy(
        self,
        kind: str,
        target: Target,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
        type_expr: Any = None,
        proxy_factory_fn: Callable[[Node], Proxy] | None = None,
    ) -> Proxy:
        # A placeholder's args are its default value, kept as it is (a tensor
        # default must not become a get_attr defined after the signature).
        node_args = args if kind == "placeholder" else self.create_arg(args)
        node = self.create_node(kind, target, node_args, self.create_arg(kwargs), name, type_expr)
        return proxy_factory_fn(node) if proxy_factory_fn else self.proxy(node)

    def proxy(self, node: Node) -> Proxy:
        return Proxy(node, self)

    def iter(self, obj: Proxy) -> Iterator[Proxy]:
        raise TraceError(
            f"cannot iterate over a traced value: {CONTROL_FLOW_HINT}", where=user_where()
        )

    def keys(self, obj: Proxy) -> Any:
        raise TraceError(
            f"cannot unpack a traced value with **: {CONTROL_FLOW_HINT}", where=user_where()
        )

    def to_bool(self, obj: Proxy) -> bool:
        raise TraceError(
            f"a traced value is used as a condition (if/while/and/or/not): {CONTROL_FLOW_HINT}",
            where=user_where(),
        )


class GraphAppendingTracer(TracerBase):
    """Records into an existing graph, at its insertion point: the tracer of
    ``Proxy(node)`` made outside any trace (graph editing through proxies)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.module_stack = {}


class Proxy:
    """A traced value: ``proxy.node`` is the Node that computes it.

    Without a tracer (``Proxy(node)``), operations on it are recorded in
    ``node.graph`` at its insertion point, as torch.fx does.
    """

    def __init__(self, node: Node, tracer: TracerBase | None = None) -> None:
        self.node = node
        self.tracer: TracerBase = tracer if tracer is not None else GraphAppendingTracer(node.graph)

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

    if TYPE_CHECKING:  # installed with the other operators by _install_operators

        def __getitem__(self, index: Any) -> Proxy: ...

    def __getattr__(self, name: str) -> Attribute:
        if name.startswith("__") and name.endswith("__"):
            # Python's own protocols (copy, pickle, inspect) probe dunders; they
            # are not tensor attributes.
            raise AttributeError(name)
        return Attribute(self, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Proxy:
        return self.tracer.create_proxy("call_method", "__call__", (self, *args), kwargs)

    def __setitem__(self, index: Any, value: Any) -> None:
        self.tracer.create_proxy("call_function", operator.setitem, (self, index, value), {})

    def __iter__(self) -> Iterator[Proxy]:
        frame = sys._getframe(1)
        instruction = _current_instruction(frame)
        if instruction.opname == "UNPACK_SEQUENCE":
            return (self[i] for i in range(instruction.argval))
        return self.tracer.iter(self)

    def __bool__(self) -> bool:
        frame = sys._getframe(1)
        message = _assert_message(frame)
        if message is not None:
            location = user_location(frame)
            text = message or f"assertion failed at {location}".split("\n")[0]
            self.tracer.create_proxy("call_function", torch._assert, (self, text), {})
            return True
        return self.tracer.to_bool(self)

    def __len__(self) -> int:
        raise TraceError(f"len() of a traced value is not known while tracing: {CONTROL_FLOW_HINT}",
                         where=user_where(sys._getframe(1)))  # fmt: skip

    def keys(self) -> Any:
        return self.tracer.keys(self)

    @classmethod
    def __torch_function__(
        cls, orig_method: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        tracers = {_recording_identity(p.tracer): p.tracer for p in _proxies_in((args, kwargs))}
        if len(tracers) != 1:
            raise TraceError("values from two different traces were combined in one operation",
                             where=user_where(sys._getframe(1)))  # fmt: skip
        tracer = next(iter(tracers.values()))
        if torch.overrides.is_tensor_method_or_property(orig_method):
            return tracer.create_proxy("call_method", orig_method.__name__, args, kwargs)
        return tracer.create_proxy("call_function", orig_method, args, kwargs)


def _recording_identity(tracer: TracerBase) -> object:
    """Proxies made with ``Proxy(node)`` on one graph each have their own
    GraphAppendingTracer; they record into the same place, so they combine."""
    return tracer.graph if isinstance(tracer, GraphAppendingTracer) else tracer


class Attribute(Proxy):
    """``proxy.name``: becomes a ``call_method`` node if called, otherwise a
    ``getattr`` node the first time its value is used."""

    def __init__(self, root: Proxy, attr: str) -> None:
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node: Node | None = None

    @property
    def node(self) -> Node:
        if self._node is None:
            self._node = self.tracer.create_proxy(
                "call_function", getattr, (self.root, self.attr), {}
            ).node
        return self._node

    @node.setter
    def node(self, node: Node) -> None:  # a Proxy's node is writable, so an Attribute's is too
        self._node = node

    def __call__(self, *args: Any, **kwargs: Any) -> Proxy:
        return self.tracer.create_proxy("call_method", self.attr, (self.root, *args), kwargs)


# --- operators ---------------------------------------------------------------------

BINARY_OPERATORS = (
    "add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "lshift", "rshift",
    "and_", "or_", "xor", "matmul", "getitem", "eq", "ne", "lt", "le", "gt", "ge",
)  # fmt: skip
REFLECTABLE = {"add", "sub", "mul", "floordiv", "truediv", "mod", "pow", "lshift",
               "rshift", "and_", "or_", "xor", "matmul"}  # fmt: skip
UNARY_OPERATORS = ("neg", "pos", "invert", "abs")
# x += y mutates x in place when x is a tensor; record that, not x = x + y.
IN_PLACE_OPERATORS = ("iadd", "isub", "imul", "ifloordiv", "itruediv", "imod", "ipow",
                      "ilshift", "irshift", "iand", "ior", "ixor", "imatmul")  # fmt: skip


def _dunder(name: str) -> str:
    return f"__{name.rstrip('_')}__"


def _install_operators() -> None:
    def binary(target: Any) -> Any:
        return lambda self, other: self.tracer.create_proxy(
            "call_function", target, (self, other), {}
        )

    def reflected(target: Any) -> Any:
        return lambda self, other: self.tracer.create_proxy(
            "call_function", target, (other, self), {}
        )

    def unary(target: Any) -> Any:
        return lambda self: self.tracer.create_proxy("call_function", target, (self,), {})

    for name in BINARY_OPERATORS:
        setattr(Proxy, _dunder(name), binary(getattr(operator, name)))
        if name in REFLECTABLE:
            setattr(Proxy, f"__r{name.rstrip('_')}__", reflected(getattr(operator, name)))
    for name in IN_PLACE_OPERATORS:
        setattr(Proxy, _dunder(name), binary(getattr(operator, name)))
    for name in UNARY_OPERATORS:
        setattr(Proxy, _dunder(name), unary(getattr(operator, name)))


_install_operators()


# --- reading the caller's bytecode -----------------------------------------------------


def _current_instruction(frame: FrameType) -> dis.Instruction:
    instructions = list(dis.get_instructions(frame.f_code))
    index = bisect_left(instructions, frame.f_lasti, key=lambda i: i.offset)
    return instructions[index]


def _assert_message(frame: FrameType) -> str | None:
    """If ``bool()`` is being taken for an ``assert`` statement, its message
    ("" when it has none or it is not a constant); otherwise None."""
    instructions = list(dis.get_instructions(frame.f_code))
    index = bisect_left(instructions, frame.f_lasti, key=lambda i: i.offset)
    if (
        not instructions[index].opname.startswith("POP_JUMP")
        or "IF_TRUE" not in instructions[index].opname
    ):
        return None
    following = instructions[index + 1 : index + 3]
    if not following or following[0].opname != "LOAD_ASSERTION_ERROR":
        return None
    if (
        len(following) == 2
        and following[1].opname == "LOAD_CONST"
        and isinstance(following[1].argval, str)
    ):
        return following[1].argval
    return ""


def _proxies_in(arg: Any) -> list[Proxy]:
    found: list[Proxy] = []
    map_aggregate(arg, lambda a: found.append(a) if isinstance(a, Proxy) else None)
    return found
