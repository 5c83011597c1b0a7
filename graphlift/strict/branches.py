"""An ``if`` on a tensor's value becomes ``torch.cond``.

Non-strict export cannot see an ``if`` statement: Python asks ``bool(tensor)``
and the trace must either specialize on the example's data or fail with a
DataDependentError. The interpreter sees the jump instead, with both of its
targets, so it can capture both paths:

    if x.sum() > 0:            POP_JUMP_FORWARD_IF_FALSE  else
        y = x * 2              ...then...                 JUMP_FORWARD  merge
    else:                  else:
        y = x - 1              ...else...
    return y               merge:

Each path is run by the interpreter as a function of the tensors it reads,
from its first instruction up to the merge point, and returns the tensor
locals either path assigns; ``torch.cond`` records the two as subgraphs
(graphlift's tracer, ``trace/control_flow.py``), and its results are stored
back into those locals. Only a plain statement ``if`` is converted: the value
stack must be as deep at the merge as at the jump, neither path may
``return``, ``break`` out or jump backwards, and every variable assigned in a
path must hold a tensor afterwards (and be bound on both paths). Anything else
is a StrictCaptureError saying which rule it breaks, with the line.
"""

from __future__ import annotations

import dis
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from graphlift.strict.frame import Frame

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter

_LEAVES = frozenset({"RETURN_VALUE", "RAISE_VARARGS", "RERAISE", "YIELD_VALUE"})
_STORES = frozenset({"STORE_FAST", "DELETE_FAST"})


@dataclass(frozen=True)
class Branches:
    """The two paths of an ``if``: offsets where each starts, and where they meet."""

    when_true: int
    when_false: int
    merge: int
    reads: tuple[str, ...]  # locals either path loads
    writes: tuple[str, ...]  # locals either path stores


def find_branches(frame: Frame, jump: dis.Instruction) -> Branches | str:
    """The paths of the conditional jump ``jump``, or why it is not a plain ``if``."""
    listing = frame.listing
    fall = listing.instructions[listing.index_of[jump.offset] + 1].offset
    target = jump.argval
    if target <= jump.offset:
        return "the condition jumps backwards (a loop condition)"
    first_path = _region(frame, fall, target)
    last = first_path[-1] if first_path else None
    if last is not None and last.opname == "JUMP_FORWARD" and last.argval > target:
        merge, second_path = last.argval, _region(frame, target, last.argval)
        first_path = first_path[:-1]
    else:
        merge, second_path = target, []
    for instruction in (*first_path, *second_path):
        if instruction.opname in _LEAVES:
            return f"a path leaves the function ({instruction.opname})"
        if instruction.opcode in dis.hasjabs or instruction.opcode in dis.hasjrel:
            if not fall <= instruction.argval <= merge:
                return "a path jumps out of the if statement (break, continue or a loop)"
    taken_when_true = target if jump.opname.endswith("IF_TRUE") else fall
    reads = _names(first_path + second_path, "LOAD_FAST")
    writes = tuple(n for n in _names(first_path + second_path, "STORE_FAST"))
    if any(i.opname == "DELETE_FAST" for i in (*first_path, *second_path)):
        return "a path deletes a local variable"
    return Branches(
        when_true=taken_when_true,
        when_false=fall if taken_when_true == target else target,
        merge=merge,
        reads=reads,
        writes=writes,
    )


def convert_if(interp: Interpreter, frame: Frame, jump: dis.Instruction, pred: Any) -> None:
    """Run both paths of ``if pred:`` as ``torch.cond`` and continue at the merge."""
    branches = find_branches(frame, jump)
    if isinstance(branches, str):
        interp._refuse_unsupported(
            f"an if on a tensor's value cannot become torch.cond here: {branches}"
        )
        return
    base = dict(frame.locals)
    for name in branches.writes:
        if name in base and not isinstance(base[name], torch.Tensor):
            interp._refuse_unsupported(
                f"an if on a tensor's value cannot become torch.cond: it assigns {name!r}, "
                f"which holds a {type(base[name]).__name__}, not a tensor"
            )
    inputs = tuple(
        name
        for name in dict.fromkeys((*branches.reads, *branches.writes))
        if isinstance(base.get(name), torch.Tensor)
    )

    def path(start: int) -> Any:
        def run(*operands: torch.Tensor) -> tuple[torch.Tensor, ...]:
            local_values = {**base, **dict(zip(inputs, operands))}
            child = Frame(frame.f_code, frame.f_globals, local_values, (), frame)
            child.cells = frame.cells
            child.stack = list(frame.stack)  # a loop's iterator, which the paths leave alone
            child.jump(start)
            child.stop_offset = branches.merge
            interp.execute(child)
            if len(child.stack) != len(frame.stack):
                interp._refuse_unsupported(
                    "an if on a tensor's value cannot become torch.cond: it is part of an "
                    "expression (a conditional expression or and/or), not a statement"
                )
            outputs: list[torch.Tensor] = []
            for name in branches.writes:
                value = child.locals.get(name)
                if not isinstance(value, torch.Tensor):
                    interp._refuse_unsupported(
                        f"an if on a tensor's value cannot become torch.cond: after one path "
                        f"{name!r} is {'unbound' if value is None else type(value).__name__}, "
                        "not a tensor"
                    )
                outputs.append(value)
            return tuple(outputs)

        return run

    if pred.numel() != 1:
        bool(pred)  # raises as eager does: the truth value of a multi-element tensor
    condition = pred if pred.dtype == torch.bool else pred != 0
    results = torch.cond(
        condition if condition.dim() == 0 else condition.reshape(()),
        path(branches.when_true),
        path(branches.when_false),
        tuple(base[name] for name in inputs),
    )
    for name, value in zip(branches.writes, results):
        frame.locals[name] = value
    frame.jump(branches.merge)


def _region(frame: Frame, start: int, end: int) -> list[dis.Instruction]:
    listing = frame.listing
    return [i for i in listing.instructions if start <= i.offset < end]


def _names(instructions: list[dis.Instruction], opname: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.argval for i in instructions if i.opname == opname))
