"""The instruction table of the interpreter: ``OPCODES`` maps an opcode name to a
small handler, and the ``opcode`` decorator fills it (``opcodes.py``: the stack,
loads and stores, operators, jumps; ``opcodes_values.py``: building values,
calls, ``with`` and exceptions).

Each handler takes the interpreter, the frame and the instruction, changes the
frame's stack, and returns ``NEXT`` to go on, ``YIELD`` for a generator's
yield, or the frame's return value. Semantics follow the ``dis`` documentation
of Python 3.11; an instruction missing from ``OPCODES`` is a
``StrictCaptureError`` naming it.
"""

from __future__ import annotations

import dis
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphlift.strict.frame import Frame

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter

NEXT = object()
YIELD = object()

BINARY_OPS: dict[int, Callable[[Any, Any], Any]] = dict(enumerate([
    operator.add, operator.and_, operator.floordiv, operator.lshift, operator.matmul,
    operator.mul, operator.mod, operator.or_, operator.pow, operator.rshift, operator.sub,
    operator.truediv, operator.xor, operator.iadd, operator.iand, operator.ifloordiv,
    operator.ilshift, operator.imatmul, operator.imul, operator.imod, operator.ior,
    operator.ipow, operator.irshift, operator.isub, operator.itruediv, operator.ixor,
]))  # fmt: skip
COMPARE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
UNARY_OPS: dict[str, Callable[[Any], Any]] = {
    "UNARY_NEGATIVE": operator.neg, "UNARY_POSITIVE": operator.pos,
    "UNARY_NOT": operator.not_, "UNARY_INVERT": operator.invert,
}  # fmt: skip
_IN_PLACE_MUTATES = (list, dict, set, bytearray)

Handler = Callable[["Interpreter", Frame, dis.Instruction], Any]
OPCODES: dict[str, Handler] = {}


def arg(ins: dis.Instruction) -> int:
    """The instruction's argument (every instruction that reads one has one)."""
    return ins.arg or 0


def opcode(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            OPCODES[name] = fn
        return fn

    return register
