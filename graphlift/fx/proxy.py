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

import dis
import operator
import sys
from bisect import bisect_left
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import TraceError
from graphlift.ir.node import Node, map_aggregate
from graphlift.source import user_location, user_where

if TYPE_CHECKING:
    from graphlift.fx.tracer import Tracer

CONTROL_FLOW_HINT = (
    "symbolic tracing records operations, not Python control flow, so a traced value "
    "cannot decide a branch, a loop or a length. Fixes: pass the value as a constant with "
    "symbolic_trace(..., concrete_args={...}), or move the code into a function marked "
    "with graphlift.wrap(...) so that it is recorded as one call"
)


class Proxy:
    """A traced value: ``proxy.node`` is the Node that computes it."""

    def __init__(self, node: Node, tracer: Tracer | None = None) -> None:
        self.node = node
        self.tracer: Tracer = tracer  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Proxy({self.node.name})"

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
        tracers = {p.tracer for p in _proxies_in((args, kwargs))}
        if len(tracers) != 1:
            raise TraceError("values from two different traces were combined in one operation",
                             where=user_where(sys._getframe(1)))  # fmt: skip
        tracer = tracers.pop()
        if torch.overrides.is_tensor_method_or_property(orig_method):
            return tracer.create_proxy("call_method", orig_method.__name__, args, kwargs)
        return tracer.create_proxy("call_function", orig_method, args, kwargs)


class Attribute(Proxy):
    """``proxy.name``: becomes a ``call_method`` node if called, otherwise a
    ``getattr`` node the first time its value is used."""

    def __init__(self, root: Proxy, attr: str) -> None:
        self.root = root
        self.attr = attr
        self.tracer = root.tracer
        self._node: Node | None = None

    @property  # type: ignore[override]
    def node(self) -> Node:
        if self._node is None:
            self._node = self.tracer.create_proxy(
                "call_function", getattr, (self.root, self.attr), {}
            ).node
        return self._node

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
