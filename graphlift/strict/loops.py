"""Loops whose trip count depends on data become ``scan`` and ``while_loop``.

Non-strict export runs a Python loop for real, so a loop over ``nonzero()``
(Mixtral's eager experts: ``for expert_idx in expert_hit:``) or a ``while``
on a tensor's value must be unrolled for the example's data, or fail. The
interpreter sees the loop's bytecode instead, and captures one iteration as a
function of the tensors the loop carries:

    for x in t:           GET_ITER; FOR_ITER exit     ->  scan(body, carried, [t])
        body              ...; JUMP_BACKWARD head
    while pred:           pred; POP_JUMP_FORWARD_IF_FALSE exit
        body              body; pred; POP_JUMP_BACKWARD_IF_TRUE start
                                                      ->  while_loop(cond, body, [pred, *carried])

A ``for`` is converted when it iterates a tensor whose first size is
data-dependent (an unbacked size, no example value); a ``while`` when its
condition is a tensor. A loop of known length runs in Python as in
non-strict export, so zoo models record the same program in both modes.

**Carried values** (``Loop.carried``): a tensor local bound before the loop
that the body assigns, or that it only reads but updates in place (the MoE
pattern ``final_hidden_states.index_add_(0, idx, y)``: functionalized into a
carried value, written back into the original tensor after the loop). Each
keeps its dtype and sizes from one iteration to the next. Locals the body
binds and nobody reads after the loop are the body's own; everything else the
body reads is closed over. ``if ...: continue`` on a tensor inside the body
becomes a ``cond`` over the rest of the iteration (``branches.py``).

Refused with the reason and the line (``StrictCaptureError``): ``break``,
``return`` or ``yield`` in the body, ``continue`` in a ``while``, a
non-tensor carried from one iteration to the next or read after the loop, a
carried tensor that changes dtype or size, and writes to Python objects made
before the loop.
"""

from __future__ import annotations

import dis
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from graphlift.strict import regions
from graphlift.strict.frame import Frame
from graphlift.strict.regions import refuse

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter

FOR_BODY = "the body of a for loop over a tensor of data-dependent length"
WHILE_BODY = "the body of a while loop on a tensor's value"
_ITERATOR = object()  # stands for the loop's iterator on the body's stack; never used
_UNBOUND = object()


@dataclass(frozen=True)
class Loop:
    head: int  # an iteration ends on reaching this offset
    start: int  # the body's first instruction
    exit: int  # where the frame goes on after the loop
    depth: int  # the value stack's depth at the end of an iteration
    carried: tuple[str, ...]
    written_back: tuple[str, ...]  # carried, updated in place but never assigned


def has_data_dependent_length(value: Any) -> bool:
    """A tensor whose first size has no example value (``nonzero``, ``.item()`` sizes)."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return False
    size = value.shape[0]
    return isinstance(size, torch.SymInt) and not size.node.has_hint()


def is_unbacked(value: Any) -> bool:
    """A symbolic bool or int with no example value (from ``nonzero`` sizes, ``.item()``)
    whose truth the shape env cannot decide (a decidable one is decided, as in
    non-strict export, without a branch)."""
    if not isinstance(value, torch.SymBool | torch.SymInt) or value.node.has_hint():
        return False
    truth = value if isinstance(value, torch.SymBool) else value != 0
    if not isinstance(truth, torch.SymBool):
        return False
    return truth.node.shape_env.decide_static(truth.node.symbolic_expr) is None


def loop_condition(frame: Frame, jump: dis.Instruction) -> dis.Instruction | None:
    """The backward jump that repeats ``while``, when ``jump`` is its first test."""
    listing = frame.listing
    fall = listing.instructions[listing.index_of[jump.offset] + 1].offset
    if jump.argval <= jump.offset:
        return None
    body = regions.instructions(frame, fall, jump.argval)
    last = body[-1] if body else None
    if last is None or not last.opname.startswith("POP_JUMP_BACKWARD_IF_"):
        return None
    if last.argval != fall or last.opname[-5:] == jump.opname[-5:]:
        return None  # the repeat test must continue when the first one enters
    return last


def convert_for(interp: Interpreter, frame: Frame, get_iter: dis.Instruction, tensor: Any) -> None:
    """``for x in tensor:`` over a data-dependent length, as ``scan``; continue after it."""
    listing = frame.listing
    for_iter = listing.instructions[listing.index_of[get_iter.offset] + 1]
    if for_iter.opname != "FOR_ITER":
        refuse(
            frame,
            "a tensor of data-dependent length is iterated outside a for statement "
            "(by a comprehension, unpacking or a call): that would make a Python list of "
            "unknown length; write a for statement that accumulates into a tensor",
        )
    start = listing.instructions[listing.index_of[for_iter.offset] + 1].offset
    loop = _analyse(frame, FOR_BODY, head=for_iter.offset, start=start, exit=for_iter.argval,
                    end=for_iter.argval, depth=len(frame.stack) + 1)  # fmt: skip
    base = dict(frame.locals)

    def body(*values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        passed = dict(zip(loop.carried, values[:-1]))
        stack = [*frame.stack, _ITERATOR, values[-1]]
        versions = regions.snapshot(passed)
        child = regions.run(interp, frame, FOR_BODY, start=loop.start, stop=loop.head,
                            local_values={**base, **passed}, stack=stack, loop=loop)  # fmt: skip
        return carried_out(child, FOR_BODY, loop, passed, versions)

    initial = [base[name] for name in loop.carried]
    results = torch.ops.higher_order.scan(body, initial, [tensor], [])
    _finish(frame, loop, base, results)


def convert_while(interp: Interpreter, frame: Frame, jump: dis.Instruction, pred: Any,
                  repeat: dis.Instruction) -> None:  # fmt: skip
    """``while pred:`` on a tensor, as ``while_loop``; continue after the loop."""
    fall = frame.listing.instructions[frame.listing.index_of[jump.offset] + 1].offset
    loop = _analyse(frame, WHILE_BODY, head=repeat.offset, start=fall, exit=jump.argval,
                    end=repeat.offset, depth=len(frame.stack))  # fmt: skip
    enters_when = jump.opname.endswith("IF_FALSE")  # `while p` jumps out when p is false
    base = dict(frame.locals)

    def condition(pred: torch.Tensor, *carried: torch.Tensor) -> torch.Tensor:
        return pred

    def body(pred: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        passed = dict(zip(loop.carried, values))
        versions = regions.snapshot(passed)
        child = regions.run(interp, frame, WHILE_BODY, start=loop.start, stop=loop.head,
                            local_values={**base, **passed}, stack=list(frame.stack))  # fmt: skip
        again = truth(child, child.stack[-1] if child.stack else None, enters_when)
        child.stack.pop()
        return (again, *carried_out(child, WHILE_BODY, loop, passed, versions))

    initial = [truth(frame, pred, enters_when), *[base[name] for name in loop.carried]]
    results = torch.ops.higher_order.while_loop(condition, body, initial, [])
    _finish(frame, loop, base, results[1:])


def truth(frame: Frame, pred: Any, when: bool) -> Any:
    """``pred`` as the 0-dim bool tensor (or SymBool) a loop or branch condition is
    (negated if not ``when``)."""
    if is_unbacked(pred):
        pred = pred if isinstance(pred, torch.SymBool) else pred != 0
        return pred if when else torch.sym_not(pred)  # type: ignore[no-untyped-call]
    if not isinstance(pred, torch.Tensor):
        refuse(
            frame, f"a while loop's condition is a tensor at first, then a {type(pred).__name__}"
        )
    if pred.numel() != 1:
        bool(pred)  # raises as eager does: the truth value of a multi-element tensor
    condition = pred if pred.dtype == torch.bool else pred != 0
    condition = condition if condition.dim() == 0 else condition.reshape(())
    return condition if when else torch.logical_not(condition)


def carried_out(child: Frame, description: str, loop: Loop, passed: dict[str, Any],
                versions: dict[str, int]) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """The carried values at the end of an iteration (or a path of one), checked."""
    if len(child.stack) != loop.depth:
        refuse(child, f"{description} leaves values on the stack (is it part of an expression?)")
    out = []
    for name in loop.carried:
        value = child.locals.get(name, _UNBOUND)
        before = passed[name]
        rebound = value is not before and name not in loop.written_back  # (by a cond)
        if regions.updated(before, versions, name) and rebound:
            refuse(child, f"{description} updates {name!r} in place and also assigns it; "
                   "do one or the other")  # fmt: skip
        if not regions.same_layout(before, value):
            now = "unbound" if value is _UNBOUND else _layout(value)
            refuse(
                child,
                f"{description} carries {name!r} from one iteration to the next, "
                f"and it changes from {_layout(before)} to {now}: a carried tensor keeps its "
                "dtype and sizes (preallocate it, or collect results with index_copy_)",
            )
        out.append(value)
    return tuple(out)


def _layout(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return f"a {type(value).__name__}"


def _finish(frame: Frame, loop: Loop, base: dict[str, Any], results: Any) -> None:
    for name, value in zip(loop.carried, results):
        if name in loop.written_back:
            base[name].copy_(value)  # the original tensor, wherever else it is referenced
        else:
            frame.locals[name] = value
    frame.jump(loop.exit)


def _analyse(frame: Frame, description: str, *, head: int, start: int, exit: int, end: int,
             depth: int) -> Loop:  # fmt: skip
    """Check the body's shape and sort its locals into carried, own and closed over."""
    body = regions.instructions(frame, start, end)
    lowest = min(head, start)
    if head < start and (not body or body[-1].argval != head):  # a for loop's body ends
        refuse(frame, f"{description} leaves the loop early (break)")  # by jumping to its head
    for instruction in body:
        if instruction.opname in regions.LEAVES:
            refuse(frame, f"{description} leaves the function ({instruction.opname})")
        if instruction.opname == "DELETE_FAST":
            refuse(frame, f"{description} deletes the local {instruction.argval!r}")
        jumps = instruction.opcode in dis.hasjabs or instruction.opcode in dis.hasjrel
        if jumps and not lowest <= instruction.argval < exit:
            what = "break" if instruction.argval >= exit else "continue"
            refuse(frame, f"{description} jumps out of the loop ({what})")
    carried: list[str] = []
    written_back: list[str] = []
    for name in regions.names(body, "STORE_FAST"):
        before = frame.locals.get(name, _UNBOUND)
        if isinstance(before, torch.Tensor):
            carried.append(name)
        elif _read_first(body, name) or _read_after(frame, name, head, start, exit):
            held = "is unbound" if before is _UNBOUND else f"holds a {type(before).__name__}"
            refuse(frame, f"{description} assigns {name!r}, which {held} before the loop and is "
                   "read in a later iteration or after the loop: only tensors bound before the "
                   "loop can be carried through it")  # fmt: skip
    for name in regions.names(body, "LOAD_FAST"):
        value = frame.locals.get(name)
        if name not in carried and isinstance(value, torch.Tensor):
            if regions.may_update(body, name):
                carried.append(name)
                written_back.append(name)
    regions.check_unaliased(frame, description, {n: frame.locals[n] for n in written_back})
    return Loop(head, start, exit, depth, tuple(carried), tuple(written_back))


def _read_first(body: list[dis.Instruction], name: str) -> bool:
    """Is ``name`` read in the body before the body first assigns it?"""
    for instruction in body:
        if instruction.argval == name and instruction.opname in ("LOAD_FAST", "STORE_FAST"):
            return instruction.opname == "LOAD_FAST"
    return False


def _read_after(frame: Frame, name: str, head: int, start: int, exit: int) -> bool:
    """Could ``name`` be read after the loop (later in the code, or by an enclosing loop)?"""
    outside = [i for i in frame.listing.instructions
               if i.opname == "LOAD_FAST" and i.argval == name
               and not min(head, start) <= i.offset < exit]  # fmt: skip
    enclosed = any(
        i.opname.startswith("JUMP_BACKWARD") and i.offset >= exit and i.argval <= head
        for i in frame.listing.instructions
    )
    return any(i.offset >= exit for i in outside) or (enclosed and bool(outside))
