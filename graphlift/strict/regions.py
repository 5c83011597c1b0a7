"""Running part of a frame as a function: the shared engine of ``branches.py``
(each path of an ``if`` on a tensor) and ``loops.py`` (one iteration of a loop
whose trip count depends on data).

A region is a range of the frame's bytecode, run in a child frame that shares
the code, globals and closure cells, starts with the given locals and value
stack, and stops on reaching an offset. It runs as a *traced region*
(``Interpreter.traced_region``): torch records its tensor operations into a
control-flow body, which executes once per run (a cond path) or per
iteration (a loop body), so it may not change Python objects made before it.

What a region hands back are tensors. Which locals it carries out, and whether
a tensor it received was updated in place, is decided here too
(``may_update``, ``updated``), so paths and loop bodies follow the same rules:

- a tensor local the region assigns is carried out;
- a tensor local the region only reads but may update in place (a method
  ending in ``_`` is called on it, or the region stores into a subscript) is
  passed in and carried out too, and written back into the original tensor;
- any other tensor local is closed over; the tracer refuses an in-place
  update of a closed-over tensor (``TraceError``), so a guess that misses an
  update is an error, never a lost write.
"""

from __future__ import annotations

import dis
import itertools
from typing import TYPE_CHECKING, Any, NoReturn

import torch

from graphlift.errors import StrictCaptureError
from graphlift.strict.frame import Frame
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.strict.interpreter import Interpreter

LEAVES = frozenset({"RETURN_VALUE", "YIELD_VALUE", "SEND"})
_SUBSCRIPT_WRITES = frozenset({"STORE_SUBSCR", "DELETE_SUBSCR"})
#: 0-dim tensors eager indexing reads as an integer (bool and uint8 ones are masks).
_INDEX_DTYPES = frozenset({torch.int64, torch.int32, torch.int16, torch.int8})


def instructions(frame: Frame, start: int, end: int) -> list[dis.Instruction]:
    """The frame's instructions at offsets ``[start, end)``."""
    return [i for i in frame.listing.instructions if start <= i.offset < end]


def names(region: list[dis.Instruction], opname: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.argval for i in region if i.opname == opname))


def may_update(region: list[dis.Instruction], name: str) -> bool:
    """Could ``region`` update the local ``name`` in place (``x.add_(...)``, ``x[i] = v``)?"""
    if any(i.opname in _SUBSCRIPT_WRITES for i in region):
        return True
    for load, attribute in itertools.pairwise(region):
        if load.opname == "LOAD_FAST" and load.argval == name:
            method = str(attribute.argval)
            if attribute.opname in ("LOAD_METHOD", "LOAD_ATTR") and _in_place(method):
                return True
    return False


def _in_place(method: str) -> bool:
    return method.endswith("_") and not method.endswith("__")


def run(interp: Interpreter, frame: Frame, description: str, *, start: int, stop: int,
        local_values: dict[str, Any], stack: list[Any], loop: Any = None) -> Frame:  # fmt: skip
    """Run ``frame``'s code from ``start`` until it reaches ``stop``; the child frame."""
    child = Frame(frame.f_code, frame.f_globals, local_values, (), frame)
    child.cells = frame.cells
    child.stack = stack
    child.loop = loop
    child.jump(start)
    child.stop_offset = stop
    with interp.traced_region(description):
        interp.execute(child)
    if not child.stopped:
        refuse(child, f"{description} returns from the function")
    return child


def snapshot(values: dict[str, Any]) -> dict[str, int]:
    """The in-place update count of each traced tensor in ``values``, to compare later."""
    return {name: v.version for name, v in values.items() if isinstance(v, TraceTensor)}


def updated(value: Any, versions: dict[str, int], name: str) -> bool:
    """Was the tensor that ``name`` held (``versions``) updated in place since?"""
    return isinstance(value, TraceTensor) and value.version != versions.get(name, value.version)


def check_unaliased(frame: Frame, description: str, values: dict[str, Any]) -> None:
    """Tensors passed in to be updated must not share storage with each other:
    inside the body each is a separate input, so an update of one would not
    show in the other."""
    seen: dict[int, str] = {}
    for name, value in values.items():
        root = value.base if isinstance(value, TraceTensor) and value.base is not None else value
        other = seen.get(id(root))
        if other is not None or root is not value:
            what = f"{other!r} and {name!r} share storage" if other else f"{name!r} is a view"
            refuse(frame, f"{description} updates tensors in place, and {what}; "
                   "use .clone() before it")  # fmt: skip
        seen[id(root)] = name


def same_layout(before: torch.Tensor, after: Any) -> bool:
    """Same dtype and sizes (symbolic sizes compared as expressions, with no guard)."""
    if not isinstance(after, torch.Tensor) or before.dtype != after.dtype:
        return False
    if before.dim() != after.dim():
        return False
    return all(str(a) == str(b) for a, b in zip(before.shape, after.shape))


def refuse(frame: Frame, why: str) -> NoReturn:
    raise StrictCaptureError(
        f"{why} (docs/strict.md, 'Data-dependent control flow'; strict=False with "
        "data_dependent='specialize' follows the example's data instead)",
        where=frame.where(),
    )


def is_data_dependent_index(container: Any, key: Any) -> bool:
    """``tensor[i]`` with ``i`` a traced 0-dim integer tensor (``expert_idx`` in a loop body)."""
    return (
        isinstance(container, torch.Tensor)
        and isinstance(key, TraceTensor)
        and key.dim() == 0
        and key.dtype in _INDEX_DTYPES
    )


def select_by_tensor(container: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """``container[key]`` as eager computes it (``select`` along dim 0, a view; a
    negative index counts from the end), with the index read as an unbacked value
    whose range is checked when the program runs: Python would ask
    ``int(key)``, which a traced value cannot answer."""
    size = container.shape[0]
    index: Any = torch.where(key < 0, key + size, key).item()  # an unbacked SymInt
    torch._check(index >= 0)  # type: ignore[no-untyped-call]  # torch's is unannotated
    torch._check(index < size)  # type: ignore[no-untyped-call]
    return container.select(0, index)
