"""Kernels that refuse an input not dense in the memory format torch suggests for it.

The CPU ``native_group_norm`` checks ``X.is_contiguous(X.suggest_memory_format())``,
and ``suggest_memory_format`` (torch's channels-last heuristic) reads the stride
of *every* dim, also of a dim of size 1. A dynamic program records the strides
of a dim that may be 1 as computed for sizes >= 2 (the per-op check compares
strides of dims larger than 1 only, docs/zero_one.md), and the kernels give such
a dim other strides at size 1: diffusers' attention block hands ``group_norm`` a
tensor that is channels-last-like at batch 2 and neither layout at batch 1. The
``group_norm`` composite decides from the recorded strides that no copy is
needed, and the real kernel then refuses the batch of 1.

So before such a kernel, an input whose suggested format is not the same for
every admitted size (a dynamic tensor with a dim that may be 0 or 1 and not
contiguous at every size) is copied into the format the example suggests. A
copy is laid out canonically in that format, which the heuristic recognizes at
every size, so the recorded program is right for every layout its input has.
Static tensors are recorded with the kernels' own strides and need nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch._prims_common import suggest_memory_format

from graphlift.symbolic import algebra as E
from graphlift.symbolic import layout
from graphlift.symbolic.expr import Poly
from graphlift.symbolic.substitute import EvaluationError
from graphlift.trace.tensor import TraceTensor

aten = torch.ops.aten

#: Op -> the position of the input its kernel wants dense in its suggested format.
LAYOUT_PRECONDITIONS: dict[Any, int] = {
    aten.native_group_norm.default: 0,
}


def with_dense_inputs(
    call: Callable[..., Any], op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """``args`` with the input ``op``'s kernel checks replaced by a copy (recorded
    through ``call``) when its suggested memory format may differ between sizes."""
    index = LAYOUT_PRECONDITIONS.get(op)
    if index is None or index >= len(args):
        return args
    input = args[index]
    if not isinstance(input, TraceTensor) or not _layout_unproven(input):
        return args
    copy = call(aten.clone.default, (input,), {"memory_format": _example_format(input)})
    return (*args[:index], copy, *args[index + 1 :])


def _layout_unproven(tensor: torch.Tensor) -> bool:
    """Whether the recorded strides may not tell the kernel's heuristic how the
    real tensor is laid out: some size or stride is symbolic, a dim may be 0 or
    1, and the tensor is not contiguous at every size."""
    env = next(
        (
            v.node.shape_env
            for v in (*tensor.shape, *tensor.stride())
            if isinstance(v, torch.SymInt)
        ),
        None,
    )
    if env is None:
        return False
    sizes, strides = _exprs(tensor.shape), _exprs(tensor.stride())
    if all(env.decide_static(E.ge(size, E.integer(2))) is True for size in sizes):
        return False
    return env.decide_static(layout.is_contiguous(sizes, strides)) is not True


def _exprs(values: Sequence[Any]) -> list[Poly]:
    return [v.node.symbolic_expr if isinstance(v, torch.SymInt) else E.integer(v) for v in values]


def _example_format(tensor: torch.Tensor) -> torch.memory_format:
    """The memory format torch suggests for ``tensor`` at the example sizes."""
    try:
        sizes, strides = _example(tensor.shape), _example(tensor.stride())
    except EvaluationError:  # a data-dependent size: no example to read
        return torch.contiguous_format
    return suggest_memory_format(torch.empty_strided(sizes, strides, device="meta"))


def _example(values: Sequence[Any]) -> list[int]:
    return [
        int(v.node.shape_env.value_at(v.node.symbolic_expr, {}))
        if isinstance(v, torch.SymInt)
        else int(v)
        for v in values
    ]
