"""Memory-layout predicates over symbolic sizes and strides.

``is_contiguous`` and ``is_channels_last_contiguous`` are built as boolean
*formulas*, so nothing is guarded until a kernel actually asks (and a formula
over unbacked sizes can still be decided by ``guard_or_false``). The heuristic
predicates torch uses to pick a memory format (``is_channels_last_strides``,
``is_non_overlapping_and_dense``) sort dimensions by stride, which is not a
formula; they run as algorithms whose comparisons are answered by a ``holds``
callback (the ShapeEnv's ``guard_or_false``), so they are exact on the example
inputs and conservative on unbacked sizes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Expr, Poly

Holds = Callable[[Expr], bool]


def _dense_in_order(sizes: Sequence[Poly], strides: Sequence[Poly], order: Sequence[int]) -> Expr:
    """True when the dims, innermost first in ``order``, have the packed strides.

    Dims of size 1 may have any stride; a tensor with no elements is trivially
    laid out in every way.
    """
    expected = E.ONE
    conditions: list[Expr] = []
    for dim in order:
        size = sizes[dim]
        conditions.append(E.logical_or(E.eq(size, E.ONE), E.eq(strides[dim], expected)))
        expected = E.mul(expected, size)
    empty = E.logical_or(*(E.eq(size, E.ZERO) for size in sizes))
    return E.logical_or(empty, E.logical_and(*conditions))


def is_contiguous(sizes: Sequence[Poly], strides: Sequence[Poly]) -> Expr:
    return _dense_in_order(sizes, strides, range(len(sizes) - 1, -1, -1))


def is_channels_last_contiguous(sizes: Sequence[Poly], strides: Sequence[Poly]) -> Expr:
    """NHWC (4 dims) or NDHWC (5 dims) packing; False for other ranks."""
    order = _CHANNELS_LAST_ORDER.get(len(sizes))
    return E.FALSE if order is None else _dense_in_order(sizes, strides, order)


_CHANNELS_LAST_ORDER = {4: (1, 3, 2, 0), 5: (1, 4, 3, 2, 0)}


def is_channels_last_strides(sizes: Sequence[Poly], strides: Sequence[Poly], holds: Holds) -> bool:
    """torch's heuristic: do the strides *look* channels-last (decreasing in NHWC order)?"""
    order = _CHANNELS_LAST_ORDER.get(len(sizes))
    if order is None or holds(E.eq(strides[1], E.ZERO)):
        return False
    minimum = E.ZERO
    for dim in order:
        if holds(E.eq(sizes[dim], E.ZERO)) or holds(E.lt(strides[dim], minimum)):
            return False
        if dim == 0 and holds(E.eq(minimum, strides[1])):
            return False
        minimum = strides[dim]
        if holds(E.gt(sizes[dim], E.ONE)):
            minimum = E.mul(minimum, sizes[dim])
    return True


def is_non_overlapping_and_dense(
    sizes: Sequence[Poly], strides: Sequence[Poly], holds: Holds
) -> bool:
    """Some permutation of the dims is packed (torch's definition, dims of size < 2 last)."""
    if len(sizes) == 1:
        return holds(E.lt(sizes[0], E.integer(2))) or holds(E.eq(strides[0], E.ONE))

    def before(a: int, b: int) -> int:
        if holds(E.lt(sizes[a], E.integer(2))):
            return 1
        if holds(E.lt(sizes[b], E.integer(2))):
            return -1
        return (
            -1
            if holds(E.lt(strides[a], strides[b]))
            else 1
            if holds(E.lt(strides[b], strides[a]))
            else 0
        )

    order = sorted(range(len(sizes)), key=functools.cmp_to_key(before))
    expected = E.ONE
    for dim in order:
        if holds(E.lt(sizes[dim], E.integer(2))):
            return True
        if not holds(E.eq(strides[dim], expected)):
            return False
        expected = E.mul(expected, sizes[dim])
    return True
