"""Instructions for the stack, loading and storing, operators, jumps and loops
(the table and its conventions: ``instructions.py``)."""

from __future__ import annotations

import dis
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from graphlift.strict import regions
from graphlift.strict.branches import convert_if
from graphlift.strict.classes import user_property
from graphlift.strict.frame import NULL, Frame
from graphlift.strict.instructions import (
    _IN_PLACE_MUTATES,
    BINARY_OPS,
    COMPARE_OPS,
    NEXT,
    OPCODES,
    UNARY_OPS,
    YIELD,
    Handler,
    arg,
    opcode,
)
from graphlift.strict.loops import (
    convert_for,
    convert_while,
    has_data_dependent_length,
    is_unbacked,
    loop_condition,
)

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter


# --- no-ops and the stack ----------------------------------------------------------------


@opcode("NOP", "RESUME", "PRECALL", "CACHE", "EXTENDED_ARG", "COPY_FREE_VARS")
def _nop(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    return NEXT


@opcode("RETURN_GENERATOR")
def _return_generator(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(None)  # the generator object, popped at once by the next POP_TOP
    return NEXT


@opcode("POP_TOP", "POP_EXCEPT")  # POP_EXCEPT pops the previously handled exception
def _pop_top(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.pop()
    return NEXT


@opcode("PUSH_NULL")
def _push_null(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(NULL)
    return NEXT


@opcode("COPY")
def _copy(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(frame.stack[-arg(ins)])
    return NEXT


@opcode("SWAP")
def _swap(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    stack = frame.stack
    stack[-1], stack[-arg(ins)] = stack[-arg(ins)], stack[-1]
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


@opcode("STORE_FAST", "STORE_NAME")  # a class body's names are its frame's locals
def _store_fast(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.locals[ins.argval] = frame.pop()
    return NEXT


@opcode("DELETE_FAST", "DELETE_NAME")
def _delete_fast(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    del frame.locals[ins.argval]
    return NEXT


@opcode("LOAD_GLOBAL")
def _load_global(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    if arg(ins) & 1:
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
    owner = frame.pop()
    getter = user_property(owner, ins.argval)
    if getter is not None:  # a property in user code: its getter is interpreted
        frame.push(interp.call(getter.fget, (owner,), {}))
        return NEXT
    frame.push(getattr(owner, ins.argval))
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
    setter = user_property(owner, ins.argval)
    if setter is not None and setter.fset is not None:  # interpreted like the getter
        interp.call(setter.fset, (owner, value), {})
        return NEXT
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
    if interp.region is not None and regions.is_data_dependent_index(container, key):
        frame.push(regions.select_by_tensor(container, key))  # expert_mask[expert_idx]
        return NEXT
    frame.push(container[key])
    return NEXT


@opcode("STORE_SUBSCR")
def _store_subscr(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    key, container, value = frame.pop(), frame.pop(), frame.pop()
    interp.will_change_contents(container)
    if interp.region is not None and regions.is_data_dependent_index(container, key):
        regions.select_by_tensor(container, key).copy_(value)  # out[c] = ..., as eager
        return NEXT
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
    if arg(ins) >= 13 and isinstance(left, _IN_PLACE_MUTATES):
        interp.will_change_contents(left)
    frame.push(BINARY_OPS[arg(ins)](left, right))
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
    frame.push((left is right) != bool(arg(ins)))
    return NEXT


@opcode("CONTAINS_OP")
def _contains_op(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    container = frame.pop()
    item = frame.pop()
    frame.push((item in container) != bool(arg(ins)))
    return NEXT


@opcode("UNARY_NEGATIVE", "UNARY_POSITIVE", "UNARY_NOT", "UNARY_INVERT")
def _unary(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    frame.push(UNARY_OPS[ins.opname](frame.pop()))
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
            repeat = loop_condition(frame, ins)
            if repeat is not None:  # a while loop on a tensor's value: while_loop
                convert_while(interp, frame, ins, value, repeat)
            else:  # an if on a tensor's value: torch.cond
                convert_if(interp, frame, ins, value)
        elif is_unbacked(value) and condition in (bool, _CONDITIONS["FALSE"]):
            convert_if(interp, frame, ins, value)  # an if on a data-dependent size or .item()
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
    iterable = frame.pop()
    if has_data_dependent_length(iterable):  # for x in nonzero(...): scan
        convert_for(interp, frame, ins, iterable)
        return NEXT
    iterator = iter(iterable)
    if iterator is not iterable:  # a new iterator: the call's own (iter(gen) is gen)
        interp.provenance.created(iterator)
    frame.push(iterator)
    return NEXT


@opcode("FOR_ITER")
def _for_iter(interp: Interpreter, frame: Frame, ins: dis.Instruction) -> Any:
    if interp.region is not None:
        interp._fresh(frame.stack[-1])  # advancing an iterator made before a loop body
    try:
        frame.push(next(frame.stack[-1]))
    except StopIteration:
        frame.pop()
        frame.jump(ins.argval)
    return NEXT
