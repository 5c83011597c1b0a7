"""One interpreted call: its code, value stack, locals, cells and position.

A ``Frame`` also stands in for a Python frame where graphlift asks "where in
the user's code are we?" (``graphlift.source.user_frame``): it has the
``f_code``, ``f_lineno``, ``f_lasti`` and ``f_back`` that question reads, so
guards, errors and ``meta["stack_trace"]`` name the user's line exactly as in
non-strict export, although no real frame of the user's code is running.
"""

from __future__ import annotations

import dis
import types
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphlift.source import SourceLocation

NULL = type("NULL", (), {"__repr__": lambda self: "NULL"})()  # the 3.11 call-protocol marker


@dataclass(frozen=True)
class Handler:
    """An exception-table entry: instructions [start, end) jump to ``target``
    with the stack cut to ``depth`` (and the raising offset pushed if ``lasti``)."""

    start: int
    end: int
    target: int
    depth: int
    lasti: bool


@dataclass(frozen=True)
class Listing:
    instructions: tuple[dis.Instruction, ...]
    index_of: dict[int, int]  # offset -> index
    handlers: tuple[Handler, ...]


@lru_cache(maxsize=4096)
def listing(code: types.CodeType) -> Listing:
    instructions = tuple(dis.get_instructions(code))
    handlers = tuple(
        Handler(e.start, e.end, e.target, e.depth, e.lasti)
        for e in dis._parse_exception_table(code)  # type: ignore[attr-defined]
    )
    return Listing(instructions, {i.offset: n for n, i in enumerate(instructions)}, handlers)


class Frame:
    def __init__(
        self,
        code: types.CodeType,
        globals_: dict[str, Any],
        locals_: dict[str, Any],
        closure: tuple[Any, ...],
        back: Frame | None,
    ) -> None:
        self.f_code = code
        self.f_globals = globals_
        self.f_back = back
        self.locals = locals_
        self.stack: list[Any] = []
        self.cells: dict[str, Any] = dict(zip(code.co_freevars, closure))
        self.listing = listing(code)
        self.index = 0
        self.f_lasti = 0
        self.kw_names: tuple[str, ...] = ()
        #: Stop (as if returning None) on reaching this offset: one path of an ``if``
        #: run as a function (branches.py).
        self.stop_offset: int | None = None
        self.stopped = False  # reached stop_offset (rather than returning)
        #: In the body of a ``for`` loop converted to ``scan`` (loops.py): the loop,
        #: so an ``if`` with ``continue`` becomes a cond over the rest of the iteration.
        self.loop: Any = None

    @property
    def f_lineno(self) -> int:
        current = self.listing.instructions[self.listing.index_of[self.f_lasti]]
        position = current.positions  # the executing instruction (index is the next one)
        line = position.lineno if position is not None else None
        return line if line is not None else self.f_code.co_firstlineno

    def where(self) -> str:
        """The user's line, as errors print it (``file:line in function`` and the code)."""
        return str(SourceLocation(self.f_code.co_filename, self.f_lineno, self.f_code.co_name))

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        return self.stack.pop()

    def popn(self, count: int) -> list[Any]:
        if count == 0:
            return []
        values = self.stack[-count:]
        del self.stack[-count:]
        return values

    def jump(self, offset: int) -> None:
        self.index = self.listing.index_of[offset]

    def handler_for(self, offset: int) -> Handler | None:
        for handler in self.listing.handlers:
            if handler.start <= offset < handler.end:
                return handler
        return None
