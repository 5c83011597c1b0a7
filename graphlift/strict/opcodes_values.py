"""Instructions that build values, make functions and call them, and handle
``with``, ``raise`` and ``except`` (the table and its conventions:
``instructions.py``)."""

from __future__ import annotations

import builtins
import dis
import functools
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from graphlift.strict.classes import build_class
from graphlift.strict.frame import NULL, Frame
from graphlift.strict.instructions import (
    NEXT,
    arg,
    opcode,
)

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter


# --- building values ---------------------------------------------------------------------


@opcode("BUILD_TUPLE")
def _build_tuple(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(tuple(frame.popn(arg(ins))))
    return NEXT


@opcode("BUILD_LIST")
def _build_list(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(interp.provenance.created(frame.popn(arg(ins))))
    return NEXT


@opcode("BUILD_SET")
def _build_set(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(interp.provenance.created(set(frame.popn(arg(ins)))))
    return NEXT


@opcode("BUILD_MAP")
def _build_map(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    items = frame.popn(2 * arg(ins))
    frame.push(interp.provenance.created(dict(zip(items[::2], items[1::2]))))
    return NEXT


@opcode("BUILD_CONST_KEY_MAP")
def _build_const_key_map(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    keys = frame.pop()
    frame.push(interp.provenance.created(dict(zip(keys, frame.popn(arg(ins))))))
    return NEXT


@opcode("BUILD_SLICE")
def _build_slice(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(slice(*frame.popn(arg(ins))))
    return NEXT


@opcode("BUILD_STRING")
def _build_string(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push("".join(frame.popn(arg(ins))))
    return NEXT


@opcode("FORMAT_VALUE")
def _format_value(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    spec = frame.pop() if arg(ins) & 0x04 else ""
    value = frame.pop()
    conversions: dict[int, Callable[[Any], str]] = {1: str, 2: repr, 3: ascii}
    convert = conversions.get(arg(ins) & 0x03)
    frame.push(format(convert(value) if convert else value, spec))
    return NEXT


@opcode("LIST_APPEND", "SET_ADD")
def _list_append(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    value = frame.pop()
    target = frame.stack[-arg(ins)]
    target.append(value) if isinstance(target, list) else target.add(value)
    return NEXT


@opcode("MAP_ADD")
def _map_add(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    value = frame.pop()
    key = frame.pop()
    frame.stack[-arg(ins)][key] = value
    return NEXT


@opcode("LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE")
def _extend(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    values = frame.pop()
    target = frame.stack[-arg(ins)]
    if ins.opname == "DICT_MERGE":
        duplicate = next((key for key in values if key in target), None)
        if duplicate is not None:
            raise TypeError(f"got multiple values for keyword argument {duplicate!r}")
    getattr(target, "extend" if ins.opname == "LIST_EXTEND" else "update")(values)
    return NEXT


@opcode("LIST_TO_TUPLE")
def _list_to_tuple(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(tuple(frame.pop()))
    return NEXT


@opcode("UNPACK_SEQUENCE")
def _unpack_sequence(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    items = list(frame.pop())
    if len(items) != arg(ins):
        raise ValueError(f"expected {arg(ins)} values to unpack, got {len(items)}")
    frame.stack.extend(reversed(items))
    return NEXT


@opcode("UNPACK_EX")
def _unpack_ex(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    before, after = arg(ins) & 0xFF, arg(ins) >> 8
    items = list(frame.pop())
    if len(items) < before + after:
        raise ValueError(f"expected at least {before + after} values to unpack")
    middle = interp.provenance.created(items[before : len(items) - after])
    frame.stack.extend(reversed([*items[:before], middle, *items[len(items) - after :]]))
    return NEXT


# --- functions and calls -----------------------------------------------------------------


@opcode("MAKE_FUNCTION")
def _make_function(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    code = frame.pop()
    closure = frame.pop() if arg(ins) & 0x08 else None
    annotations = frame.pop() if arg(ins) & 0x04 else None
    kwdefaults = frame.pop() if arg(ins) & 0x02 else None
    defaults = frame.pop() if arg(ins) & 0x01 else None
    fn = types.FunctionType(code, frame.f_globals, code.co_name, defaults, closure)
    fn.__kwdefaults__ = kwdefaults
    if annotations is not None:
        fn.__annotations__ = dict(zip(annotations[::2], annotations[1::2]))
    fn.__qualname__ = code.co_qualname
    frame.push(interp.provenance.created(fn))
    return NEXT


@opcode("KW_NAMES")
def _kw_names(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.kw_names = frame.f_code.co_consts[arg(ins)]
    return NEXT


@opcode("CALL")
def _call(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    args = frame.popn(arg(ins))
    second = frame.pop()
    first = frame.pop()
    fn, args = (second, args) if first is NULL else (first, [second, *args])
    names, frame.kw_names = frame.kw_names, ()
    kwargs = {}
    if names:
        kwargs = dict(zip(names, args[-len(names) :]))
        args = args[: -len(names)]
    frame.push(interp.call(fn, args, kwargs))
    return NEXT


@opcode("CALL_FUNCTION_EX")
def _call_function_ex(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    kwargs = dict(frame.pop()) if arg(ins) & 1 else {}
    args = tuple(frame.pop())
    fn = frame.pop()
    if frame.stack and frame.stack[-1] is NULL:
        frame.pop()
    frame.push(interp.call(fn, args, kwargs))
    return NEXT


# --- with, raise and except --------------------------------------------------------------


@opcode("BEFORE_WITH")
def _before_with(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    manager = frame.pop()
    exit_ = manager.__exit__
    entered = interp.call(manager.__enter__, (), {})
    frame.push(exit_)
    frame.push(entered)
    return NEXT


@opcode("LOAD_ASSERTION_ERROR")
def _load_assertion_error(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(AssertionError)
    return NEXT


@opcode("RAISE_VARARGS")
def _raise(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    if arg(ins) == 0:
        raise RuntimeError("No active exception to reraise")
    cause = frame.pop() if arg(ins) == 2 else None
    error = frame.pop()
    if isinstance(error, type):
        error = error()
    if arg(ins) == 2:
        raise error from cause
    raise error


@opcode("PUSH_EXC_INFO")
def _push_exc_info(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    error = frame.pop()
    frame.push(None)  # the previously handled exception: none inside a captured call
    frame.push(error)
    return NEXT


@opcode("WITH_EXCEPT_START")
def _with_except_start(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    error = frame.stack[-1]
    exit_ = frame.stack[-4]
    frame.push(interp.call(exit_, (type(error), error, error.__traceback__), {}))
    return NEXT


@opcode("CHECK_EXC_MATCH")
def _check_exc_match(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    kind = frame.pop()
    frame.push(isinstance(frame.stack[-1], kind))
    return NEXT


@opcode("RERAISE")
def _reraise(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    error = frame.pop()
    if arg(ins):
        frame.pop()  # the offset the exception was raised at (lasti)
    raise error


# --- class bodies and yield from -----------------------------------------------------------


@opcode("LOAD_BUILD_CLASS")
def _load_build_class(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(functools.partial(build_class, interp))  # the class body is interpreted
    return NEXT


@opcode("LOAD_NAME")
def _load_name(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    """A name in a class body: the namespace, then globals (guarded), then builtins."""
    name = ins.argval
    if name in frame.locals:
        frame.push(frame.locals[name])
    elif name in frame.f_globals:
        interp.guard("global", frame.f_globals, name, frame.f_globals[name])
        frame.push(frame.f_globals[name])
    elif hasattr(builtins, name):
        frame.push(getattr(builtins, name))
    else:
        raise NameError(f"name {name!r} is not defined")
    return NEXT


@opcode("GET_YIELD_FROM_ITER")
def _get_yield_from_iter(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    iterable = frame.pop()
    iterator = iter(iterable)
    if iterator is not iterable:
        interp.provenance.created(iterator)
    frame.push(iterator)
    return NEXT


@opcode("SEND")
def _send(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    """``yield from``: the delegate's next value, or its return value at the target."""
    value = frame.pop()
    delegate = frame.stack[-1]
    try:
        result = next(delegate) if value is None else delegate.send(value)
    except StopIteration as stop:
        frame.pop()
        frame.push(stop.value)
        frame.jump(ins.argval)
        return NEXT
    frame.push(result)
    return NEXT
