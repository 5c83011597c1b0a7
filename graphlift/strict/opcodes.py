"""What each CPython 3.11 instruction does, one small function per opcode.

Each handler takes the interpreter, the frame and the instruction, changes the
frame's stack, and returns ``NEXT`` to go on, ``YIELD`` for a generator's
yield, or the frame's return value. Semantics follow the ``dis`` documentation
of Python 3.11; an instruction missing from ``OPCODES`` is a
``StrictCaptureError`` naming it.
"""

from __future__ import annotations

import dis
import operator
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from graphlift.strict.branches import convert_if
from graphlift.strict.frame import NULL, Frame

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
_IN_PLACE_MUTATES = (list, dict, set, bytearray)

Handler = Callable[["Interpreter", Frame, dis.Instruction], Any]
OPCODES: dict[str, Handler] = {}


def opcode(*names: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for name in names:
            OPCODES[name] = fn
        return fn

    return register


# --- no-ops and the stack ----------------------------------------------------------------


@opcode("NOP", "RESUME", "PRECALL", "CACHE", "EXTENDED_ARG", "COPY_FREE_VARS")
def _nop(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    return NEXT


@opcode("RETURN_GENERATOR")
def _return_generator(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(None)  # the generator object, popped at once by the next POP_TOP
    return NEXT


@opcode("POP_TOP")
def _pop_top(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.pop()
    return NEXT


@opcode("PUSH_NULL")
def _push_null(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(NULL)
    return NEXT


@opcode("COPY")
def _copy(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(frame.stack[-ins.arg])
    return NEXT


@opcode("SWAP")
def _swap(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    stack = frame.stack
    stack[-1], stack[-ins.arg] = stack[-ins.arg], stack[-1]
    return NEXT


@opcode("RETURN_VALUE")
def _return(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    return frame.pop()


@opcode("YIELD_VALUE")
def _yield(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    return YIELD


# --- loading and storing -----------------------------------------------------------------


@opcode("LOAD_CONST")
def _load_const(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(ins.argval)
    return NEXT


@opcode("LOAD_FAST")
def _load_fast(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    try:
        frame.push(frame.locals[ins.argval])
    except KeyError:
        raise UnboundLocalError(
            f"local variable {ins.argval!r} referenced before assignment"
        ) from None
    return NEXT


@opcode("STORE_FAST")
def _store_fast(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.locals[ins.argval] = frame.pop()
    return NEXT


@opcode("DELETE_FAST")
def _delete_fast(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    del frame.locals[ins.argval]
    return NEXT


@opcode("LOAD_GLOBAL")
def _load_global(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    if ins.arg & 1:
        frame.push(NULL)
    name = ins.argval
    if name in frame.f_globals:
        value = frame.f_globals[name]
        interp.guard("global", frame.f_globals, name, value)
    else:
        builtins = frame.f_globals.get("__builtins__", __builtins__)
        table = builtins if isinstance(builtins, dict) else vars(builtins)
        if name not in table:
            raise NameError(f"name {name!r} is not defined")
        value = table[name]
    frame.push(value)
    return NEXT


@opcode("STORE_GLOBAL")
def _store_global(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    interp.will_set_item(frame.f_globals, ins.argval)
    frame.f_globals[ins.argval] = frame.pop()
    return NEXT


@opcode("DELETE_GLOBAL")
def _delete_global(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    interp.will_set_item(frame.f_globals, ins.argval)
    del frame.f_globals[ins.argval]
    return NEXT


@opcode("MAKE_CELL")
def _make_cell(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    name = ins.argval
    cell = types.CellType(frame.locals[name]) if name in frame.locals else types.CellType()
    frame.cells[name] = interp.provenance.created(cell)
    return NEXT


@opcode("LOAD_CLOSURE")
def _load_closure(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(frame.cells[ins.argval])
    return NEXT


@opcode("LOAD_DEREF", "LOAD_CLASSDEREF")
def _load_deref(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    cell = frame.cells[ins.argval]
    try:
        value = cell.cell_contents
    except ValueError:
        raise NameError(f"free variable {ins.argval!r} referenced before assignment") from None
    if not interp.provenance.is_fresh(cell):
        interp.guard("closure", cell, ins.argval, value)
    frame.push(value)
    return NEXT


@opcode("STORE_DEREF")
def _store_deref(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    cell = frame.cells[ins.argval]
    interp.will_set_cell(cell, ins.argval)
    cell.cell_contents = frame.pop()
    return NEXT


@opcode("LOAD_ATTR")
def _load_attr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(getattr(frame.pop(), ins.argval))
    return NEXT


@opcode("LOAD_METHOD")
def _load_method(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    owner = frame.pop()
    frame.push(NULL)
    frame.push(getattr(owner, ins.argval))
    return NEXT


@opcode("STORE_ATTR")
def _store_attr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    owner = frame.pop()
    value = frame.pop()
    interp.will_set_attribute(owner, ins.argval)
    setattr(owner, ins.argval, value)
    return NEXT


@opcode("DELETE_ATTR")
def _delete_attr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    owner = frame.pop()
    interp.will_set_attribute(owner, ins.argval)
    delattr(owner, ins.argval)
    return NEXT


@opcode("BINARY_SUBSCR")
def _binary_subscr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    key = frame.pop()
    container = frame.pop()
    frame.push(container[key])
    return NEXT


@opcode("STORE_SUBSCR")
def _store_subscr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    key, container, value = frame.pop(), frame.pop(), frame.pop()
    interp.will_change_contents(container)
    container[key] = value
    return NEXT


@opcode("DELETE_SUBSCR")
def _delete_subscr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    key, container = frame.pop(), frame.pop()
    interp.will_change_contents(container)
    del container[key]
    return NEXT


@opcode("IMPORT_NAME")
def _import_name(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    fromlist = frame.pop()
    level = frame.pop()
    frame.push(__import__(ins.argval, frame.f_globals, None, fromlist, level))
    return NEXT


@opcode("IMPORT_FROM")
def _import_from(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(getattr(frame.stack[-1], ins.argval))
    return NEXT


# --- operators ---------------------------------------------------------------------------


@opcode("BINARY_OP")
def _binary_op(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    right = frame.pop()
    left = frame.pop()
    if ins.arg >= 13 and isinstance(left, _IN_PLACE_MUTATES):
        interp.will_change_contents(left)
    frame.push(BINARY_OPS[ins.arg](left, right))
    return NEXT


@opcode("COMPARE_OP")
def _compare_op(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    right = frame.pop()
    left = frame.pop()
    frame.push(COMPARE_OPS[ins.argval](left, right))
    return NEXT


@opcode("IS_OP")
def _is_op(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    right = frame.pop()
    left = frame.pop()
    frame.push((left is right) != bool(ins.arg))
    return NEXT


@opcode("CONTAINS_OP")
def _contains_op(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    container = frame.pop()
    item = frame.pop()
    frame.push((item in container) != bool(ins.arg))
    return NEXT


@opcode("UNARY_NEGATIVE", "UNARY_POSITIVE", "UNARY_NOT", "UNARY_INVERT")
def _unary(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    fn = {"UNARY_NEGATIVE": operator.neg, "UNARY_POSITIVE": operator.pos,
          "UNARY_NOT": operator.not_, "UNARY_INVERT": operator.invert}[ins.opname]  # fmt: skip
    frame.push(fn(frame.pop()))
    return NEXT


# --- jumps and loops ---------------------------------------------------------------------


@opcode("JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT")
def _jump(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.jump(ins.argval)
    return NEXT


_CONDITIONS: dict[str, Callable[[Any], bool]] = {
    "TRUE": bool,
    "FALSE": lambda value: not value,
    "NONE": lambda value: value is None,
    "NOT_NONE": lambda value: value is not None,
}


def _pop_jump(condition: Callable[[Any], bool]) -> Handler:
    def handler(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
        value = frame.pop()
        if isinstance(value, torch.Tensor) and condition in (bool, _CONDITIONS["FALSE"]):
            convert_if(interp, frame, ins, value)  # an if on a tensor's value: torch.cond
        elif condition(value):
            frame.jump(ins.argval)
        return NEXT

    return handler


for _direction in ("FORWARD", "BACKWARD"):
    for _test, _condition in _CONDITIONS.items():
        OPCODES[f"POP_JUMP_{_direction}_IF_{_test}"] = _pop_jump(_condition)


@opcode("JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP")
def _jump_or_pop(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    if bool(frame.stack[-1]) == (ins.opname == "JUMP_IF_TRUE_OR_POP"):
        frame.jump(ins.argval)
    else:
        frame.pop()
    return NEXT


@opcode("GET_ITER")
def _get_iter(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(iter(frame.pop()))
    return NEXT


@opcode("FOR_ITER")
def _for_iter(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    try:
        frame.push(next(frame.stack[-1]))
    except StopIteration:
        frame.pop()
        frame.jump(ins.argval)
    return NEXT


# --- building values ---------------------------------------------------------------------


@opcode("BUILD_TUPLE")
def _build_tuple(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(tuple(frame.popn(ins.arg)))
    return NEXT


@opcode("BUILD_LIST")
def _build_list(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(interp.provenance.created(frame.popn(ins.arg)))
    return NEXT


@opcode("BUILD_SET")
def _build_set(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(interp.provenance.created(set(frame.popn(ins.arg))))
    return NEXT


@opcode("BUILD_MAP")
def _build_map(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    items = frame.popn(2 * ins.arg)
    frame.push(interp.provenance.created(dict(zip(items[::2], items[1::2]))))
    return NEXT


@opcode("BUILD_CONST_KEY_MAP")
def _build_const_key_map(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    keys = frame.pop()
    frame.push(interp.provenance.created(dict(zip(keys, frame.popn(ins.arg)))))
    return NEXT


@opcode("BUILD_SLICE")
def _build_slice(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(slice(*frame.popn(ins.arg)))
    return NEXT


@opcode("BUILD_STRING")
def _build_string(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push("".join(frame.popn(ins.arg)))
    return NEXT


@opcode("FORMAT_VALUE")
def _format_value(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    spec = frame.pop() if ins.arg & 0x04 else ""
    value = frame.pop()
    convert = {1: str, 2: repr, 3: ascii}.get(ins.arg & 0x03)
    frame.push(format(convert(value) if convert else value, spec))
    return NEXT


@opcode("LIST_APPEND", "SET_ADD")
def _list_append(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    value = frame.pop()
    target = frame.stack[-ins.arg]
    target.append(value) if isinstance(target, list) else target.add(value)
    return NEXT


@opcode("MAP_ADD")
def _map_add(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    value = frame.pop()
    key = frame.pop()
    frame.stack[-ins.arg][key] = value
    return NEXT


@opcode("LIST_EXTEND", "SET_UPDATE", "DICT_UPDATE", "DICT_MERGE")
def _extend(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    values = frame.pop()
    target = frame.stack[-ins.arg]
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
    if len(items) != ins.arg:
        raise ValueError(f"expected {ins.arg} values to unpack, got {len(items)}")
    frame.stack.extend(reversed(items))
    return NEXT


@opcode("UNPACK_EX")
def _unpack_ex(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    before, after = ins.arg & 0xFF, ins.arg >> 8
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
    closure = frame.pop() if ins.arg & 0x08 else None
    annotations = frame.pop() if ins.arg & 0x04 else None
    kwdefaults = frame.pop() if ins.arg & 0x02 else None
    defaults = frame.pop() if ins.arg & 0x01 else None
    fn = types.FunctionType(code, frame.f_globals, code.co_name, defaults, closure)
    fn.__kwdefaults__ = kwdefaults
    if annotations is not None:
        fn.__annotations__ = dict(zip(annotations[::2], annotations[1::2]))
    fn.__qualname__ = code.co_qualname
    frame.push(interp.provenance.created(fn))
    return NEXT


@opcode("KW_NAMES")
def _kw_names(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.kw_names = frame.f_code.co_consts[ins.arg]
    return NEXT


@opcode("CALL")
def _call(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    args = frame.popn(ins.arg)
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
    kwargs = dict(frame.pop()) if ins.arg & 1 else {}
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
    if ins.arg == 0:
        raise RuntimeError("No active exception to reraise")
    cause = frame.pop() if ins.arg == 2 else None
    error = frame.pop()
    if isinstance(error, type):
        error = error()
    if ins.arg == 2:
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


@opcode("POP_EXCEPT")
def _pop_except(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.pop()
    return NEXT


@opcode("RERAISE")
def _reraise(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    error = frame.pop()
    if ins.arg:
        frame.pop()  # the offset the exception was raised at (lasti)
    raise error
