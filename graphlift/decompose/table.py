"""The decomposition table: which ops ``run_decompositions`` rewrites, and into what.

``default_decompositions()`` mirrors ``torch.export.default_decompositions()``:
torch's core-ATen decomposition table (``torch._decomp``) plus, for every
functional CompositeImplicitAutograd (CIA) ATen op, its CIA kernel
(``aten.linear`` -> ``t`` + ``addmm``). It is a plain ``dict`` the caller owns:
delete an entry to keep that op, add an entry to decompose an op your way.

Which ops are decomposed (``decomposition_for``) follows torch.export's rule:

- an op listed in the table is decomposed with the table's callable;
- a CIA ATen op that aliases or mutates (``reshape``, ``contiguous``, ``t``)
  is always decomposed with its CIA kernel, listed or not: whether it returns
  a view depends on its input at run time, which a functional graph cannot say;
- everything else stays as it is: core ATen ops, CIA ops the caller removed,
  and custom ops (``mylib::op``) unless listed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch._decomp import _core_aten_decompositions_post_autograd

from graphlift.errors import DecompositionTableError

aten = torch.ops.aten
_CIA = torch._C.DispatchKey.CompositeImplicitAutograd

Decomposition = Callable[..., Any]

# CIA ops torch.export keeps in its default table (torch/export/decomp_utils.py):
# the upsample ops are core ATen; the C++ kernels of the backward ops are not functional.
PRESERVED_CIA_OPS = frozenset({
    aten.upsample_bilinear2d.vec,
    aten.upsample_nearest2d.vec,
    aten.silu_backward.default,
    aten.mish_backward.default,
    aten._fused_rms_norm.default,
})  # fmt: skip


# Ops torch's functionalization rewrites before any table is consulted, and
# which graphlift's tracer records as the model called them: decomposed with
# their functional form whatever the table says (torch.tensor(3.0) in a model
# is ``lift_fresh``; torch records ``lift_fresh_copy`` and decomposes it to ``clone``).
FUNCTIONALIZED_FORMS: dict[Any, Decomposition] = {
    aten.lift_fresh.default: aten.clone.default,
}


# Ops that read a tensor's metadata: they are answered from the traced values,
# never recorded, so there is nothing to decompose (torch: FunctionalTensor.metadata_fns).
METADATA_OPS = frozenset({
    aten.is_contiguous.default, aten.is_contiguous.memory_format,
    aten.is_strides_like_format.default, aten.is_non_overlapping_and_dense.default,
    aten.size.default, aten.sym_size.default, aten.stride.default, aten.sym_stride.default,
    aten.storage_offset.default, aten.sym_storage_offset.default, aten.numel.default,
    aten.sym_numel.default, aten.dim.default,
})  # fmt: skip


def default_decompositions() -> dict[Any, Decomposition]:
    """A new table from every ATen op outside core ATen to its decomposition.

    The same contents as ``torch.export.default_decompositions()``; the caller may
    change it freely (``del table[aten.linear.default]`` keeps ``linear`` whole).
    """
    return dict(_default_table())


@functools.cache
def _default_table() -> Mapping[Any, Decomposition]:
    table: dict[Any, Decomposition] = dict(_core_aten_decompositions_post_autograd())
    for op in _aten_cia_ops():
        if op not in table and op not in PRESERVED_CIA_OPS and is_preservable_cia(op):
            table[op] = cia_kernel(op)
    return table


def _aten_cia_ops() -> list[torch._ops.OpOverload]:
    """Every ATen overload with a CompositeImplicitAutograd kernel: those the C++
    dispatcher lists, then those with a Python CIA kernel only (``upsample_nearest2d``)."""
    ops: list[torch._ops.OpOverload] = []
    for qualified in torch._C._dispatch_get_registrations_for_dispatch_key(
        "CompositeImplicitAutograd"
    ):
        namespace, _, rest = qualified.partition("::")
        if namespace != "aten":
            continue
        name, _, overload = rest.partition(".")
        packet = getattr(aten, name, None)
        op = getattr(packet, overload or "default", None) if packet is not None else None
        if isinstance(op, torch._ops.OpOverload):
            ops.append(op)
    for name in list(aten):
        for overload in getattr(aten, name).overloads():
            op = getattr(getattr(aten, name), overload)
            if _CIA in op.py_kernels and op not in ops:
                ops.append(op)
    return [op for op in ops if op not in METADATA_OPS]


def is_cia(op: Any) -> bool:
    """True when ``op`` has a CompositeImplicitAutograd kernel (C++ or Python)."""
    if not isinstance(op, torch._ops.OpOverload):
        return False
    name: str = op.name()  # type: ignore[no-untyped-call]  # torch's is unannotated
    return torch._C._dispatch_has_kernel_for_dispatch_key(name, _CIA) or _CIA in op.py_kernels


def is_preservable_cia(op: torch._ops.OpOverload) -> bool:
    """A CIA op that may stay whole in a functional graph: it neither aliases nor
    mutates, and it has a real kernel to run (torch.export's rule)."""
    if torch.Tag.maybe_aliasing_or_mutating in op.tags or op is aten.native_batch_norm.default:
        return False
    schema = op._schema
    if schema.is_mutable or any(a.alias_info is not None for a in schema.arguments):
        return False
    return bool(torch._C._dispatch_has_kernel(op.name()))  # type: ignore[no-untyped-call]  # unannotated


def cia_kernel(op: torch._ops.OpOverload) -> Decomposition:
    """The op's CompositeImplicitAutograd kernel as a decomposition: a Python one
    when registered, else the C++ kernel (which calls ATen ops, recorded one by one)."""
    python = op.py_kernels.get(_CIA)
    if python is not None and not isinstance(python, torch._C.DispatchKey):
        return python
    return functools.partial(op._op_dk, _CIA)


def as_table(table: Mapping[Any, Decomposition]) -> dict[Any, Decomposition]:
    """Any decomposition table as a plain dict of overloads, read through the
    mapping protocol only: ``torch.export.default_decompositions()`` is a dict
    subclass whose entries live outside the dict itself (``dict.get`` on it
    finds nothing; ``items()`` materializes them), and ``torch._decomp``
    tables may key a whole op packet (``aten.linear``) for all its overloads."""
    if not isinstance(table, Mapping) and not hasattr(table, "items"):
        raise DecompositionTableError(
            f"a decomposition table maps ops to callables, got {type(table).__name__}"
        )
    plain: dict[Any, Decomposition] = {}
    for op, decomposition in table.items():
        if isinstance(op, torch._ops.OpOverloadPacket):
            for overload in op.overloads():  # type: ignore[no-untyped-call]  # torch's is unannotated
                plain.setdefault(getattr(op, overload), decomposition)
        else:
            plain[op] = decomposition
    return plain


class DecompositionRule:
    """``decomposition_for(op)`` for one table: the rule in the module docstring,
    answered once per op (a graph calls few distinct ops many times)."""

    def __init__(self, table: Mapping[Any, Decomposition]) -> None:
        self.table = as_table(table)
        self._answers: dict[Any, Decomposition | None] = {}

    def __call__(self, op: Any) -> Decomposition | None:
        try:
            return self._answers[op]
        except KeyError:
            answer = self._answers[op] = self._decide(op)
            return answer

    def _decide(self, op: Any) -> Decomposition | None:
        listed = self.table.get(op) or FUNCTIONALIZED_FORMS.get(op)
        if listed is not None:
            return listed
        if (
            isinstance(op, torch._ops.OpOverload)
            and op.namespace == "aten"
            and op not in PRESERVED_CIA_OPS
            and is_cia(op)
            and not is_preservable_cia(op)
            and torch.Tag.core not in op.tags
        ):
            return cia_kernel(op)
        return None


def is_core_aten(op: Any) -> bool:
    """True for ops in torch's core ATen opset (``torch.Tag.core``)."""
    return isinstance(op, torch._ops.OpOverload) and torch.Tag.core in op.tags
