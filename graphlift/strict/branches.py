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

from graphlift.strict import regions
from graphlift.strict.frame import Frame
from graphlift.strict.loops import carried_out, truth

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


IF_PATH = "a path of an if on a tensor's value"
REST_OF_ITERATION = "the rest of an iteration after an if on a tensor's value"


def convert_if(interp: Interpreter, frame: Frame, jump: dis.Instruction, pred: Any) -> None:
    """Run both paths of ``if pred:`` as ``torch.cond`` and continue at the merge."""
    branches = find_branches(frame, jump)
    if isinstance(branches, str) and frame.loop is not None:
        _convert_rest_of_iteration(interp, frame, jump, pred)
        return
    if isinstance(branches, str):
        interp._refuse_unsupported(
            f"an if on a tensor's value cannot become torch.cond here: {branches}"
        )
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
    both_paths = [*_region(frame, branches.when_true, branches.merge),
                  *_region(frame, branches.when_false, branches.merge)]  # fmt: skip
    written_back = tuple(n for n in inputs if n not in branches.writes
                         and regions.may_update(both_paths, n))  # fmt: skip
    regions.check_unaliased(frame, IF_PATH, {n: base[n] for n in written_back})
    outputs = (*branches.writes, *written_back)

    def path(start: int) -> Any:
        def run(*operands: torch.Tensor) -> tuple[torch.Tensor, ...]:
            passed = dict(zip(inputs, operands))
            versions = regions.snapshot(passed)
            child = regions.run(interp, frame, IF_PATH, start=start, stop=branches.merge,
                                local_values={**base, **passed}, stack=list(frame.stack))  # fmt: skip
            if len(child.stack) != len(frame.stack):
                interp._refuse_unsupported(
                    "an if on a tensor's value cannot become torch.cond: it is part of an "
                    "expression (a conditional expression or and/or), not a statement"
                )
            return _path_outputs(interp, child, outputs, passed, versions)

        return run

    results = torch.cond(truth(frame, pred, True), path(branches.when_true),
                         path(branches.when_false), tuple(base[name] for name in inputs))  # fmt: skip
    _store(frame, outputs, written_back, results)
    frame.jump(branches.merge)


def _path_outputs(interp: Interpreter, child: Frame, outputs: tuple[str, ...],
                  passed: dict[str, Any], versions: dict[str, int]) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """What a path hands back: its outputs, checked; no update of an input is lost."""
    for name, before in passed.items():
        value = child.locals.get(name)
        if regions.updated(before, versions, name) and (name not in outputs or value is not before):
            regions.refuse(child, f"{IF_PATH} updates {name!r} in place where the interpreter "
                           "cannot carry the update out (through a call, or before assigning "
                           "it); assign the result instead")  # fmt: skip
    values: list[torch.Tensor] = []
    for name in outputs:
        value = child.locals.get(name)
        if not isinstance(value, torch.Tensor):
            interp._refuse_unsupported(
                f"an if on a tensor's value cannot become torch.cond: after one path "
                f"{name!r} is {'unbound' if value is None else type(value).__name__}, "
                "not a tensor"
            )
        values.append(value)
    return tuple(values)


def _store(frame: Frame, outputs: tuple[str, ...], written_back: tuple[str, ...],
           results: Any) -> None:  # fmt: skip
    """Bind the assigned locals to the results; copy updates into updated tensors."""
    for name, value in zip(outputs, results):
        if name in written_back:
            frame.locals[name].copy_(value)
        else:
            frame.locals[name] = value


def _convert_rest_of_iteration(interp: Interpreter, frame: Frame, jump: dis.Instruction,
                               pred: Any) -> None:  # fmt: skip
    """In the body of a converted ``for`` loop, an ``if`` that is not a plain
    statement (``if ...: continue``) splits the iteration: each path runs to
    the end of the iteration and hands back the loop's carried values."""
    loop = frame.loop
    fall = frame.listing.instructions[frame.listing.index_of[jump.offset] + 1].offset
    taken_when_true = jump.argval if jump.opname.endswith("IF_TRUE") else fall
    base = dict(frame.locals)

    def path(start: int) -> Any:
        def run(*operands: torch.Tensor) -> tuple[torch.Tensor, ...]:
            passed = dict(zip(loop.carried, operands))
            versions = regions.snapshot(passed)
            child = regions.run(interp, frame, REST_OF_ITERATION, start=start, stop=loop.head,
                                local_values={**base, **passed}, stack=list(frame.stack),
                                loop=loop)  # fmt: skip
            return carried_out(child, REST_OF_ITERATION, loop, passed, versions)

        return run

    other = fall if taken_when_true == jump.argval else jump.argval
    results = torch.cond(truth(frame, pred, True), path(taken_when_true), path(other),
                         tuple(base[name] for name in loop.carried))  # fmt: skip
    frame.locals.update(zip(loop.carried, results))  # the iteration ends here
    frame.jump(loop.head)


def _region(frame: Frame, start: int, end: int) -> list[dis.Instruction]:
    listing = frame.listing
    return [i for i in listing.instructions if start <= i.offset < end]


def _names(instructions: list[dis.Instruction], opname: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.argval for i in instructions if i.opname == opname))
