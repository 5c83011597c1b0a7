"""Value ranges: closed intervals with interval arithmetic.

A :class:`ValueRange` is ``[lower, upper]`` where either end may be infinite
(``math.inf``). Each operation returns an interval containing every value the
operation can produce from values in its operand intervals: sound, and as
tight as is cheap. Integer ranges keep integer ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

Bound = int | float


@dataclass(frozen=True)
class ValueRange:
    """The closed interval ``[lower, upper]``; ends may be ``-math.inf`` / ``math.inf``."""

    lower: Bound
    upper: Bound

    def __str__(self) -> str:
        return f"[{_show(self.lower)}, {_show(self.upper)}]"

    @property
    def is_singleton(self) -> bool:
        return self.lower == self.upper

    def contains(self, value: Bound) -> bool:
        return self.lower <= value <= self.upper

    def intersect(self, other: ValueRange) -> ValueRange:
        return ValueRange(max(self.lower, other.lower), min(self.upper, other.upper))

    def union(self, other: ValueRange) -> ValueRange:
        return ValueRange(min(self.lower, other.lower), max(self.upper, other.upper))

    @property
    def is_empty(self) -> bool:
        return self.lower > self.upper


def _show(value: Bound) -> str:
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    return str(value)


ROUNDING: dict[str, Callable[[float], int]] = {
    "trunc": math.trunc,
    "floor": math.floor,
    "ceil": math.ceil,
    "round": round,  # Python's: halves to even
}
UNBOUNDED = ValueRange(-math.inf, math.inf)
BOOL_RANGE = ValueRange(0, 1)


def point(value: Bound) -> ValueRange:
    return ValueRange(value, value)


def _product(a: Bound, b: Bound) -> Bound:
    # inf * 0 is nan in IEEE; here an unbounded factor times exactly 0 is 0.
    if a == 0 or b == 0:
        return 0
    return a * b


def add(a: ValueRange, b: ValueRange) -> ValueRange:
    return ValueRange(a.lower + b.lower, a.upper + b.upper)


def neg(a: ValueRange) -> ValueRange:
    return ValueRange(-a.upper, -a.lower)


def mul(a: ValueRange, b: ValueRange) -> ValueRange:
    if a.lower >= 0 and b.lower >= 0:  # the common case for sizes
        return ValueRange(_product(a.lower, b.lower), _product(a.upper, b.upper))
    corners = [_product(x, y) for x in (a.lower, a.upper) for y in (b.lower, b.upper)]
    return ValueRange(min(corners), max(corners))


def scale(a: ValueRange, k: int) -> ValueRange:
    return mul(a, point(k))


def power(a: ValueRange, n: int) -> ValueRange:
    """``x**n`` for a natural ``n``; even powers are nonnegative."""
    if n == 0:
        return point(1)
    if n % 2 == 1 or a.lower >= 0:
        return ValueRange(_pow(a.lower, n), _pow(a.upper, n))
    if a.upper <= 0:
        return ValueRange(_pow(a.upper, n), _pow(a.lower, n))
    return ValueRange(0, max(_pow(a.lower, n), _pow(a.upper, n)))


def _pow(x: Bound, n: int) -> Bound:
    if math.isinf(x):
        return x if n % 2 else math.inf
    return x**n


def _floor_quotient(x: Bound, y: Bound) -> Bound:
    if math.isinf(x) or math.isinf(y):
        if math.isinf(y) and not math.isinf(x):
            return 0 if (x >= 0) == (y > 0) else -1
        return math.inf if (x > 0) == (y > 0) else -math.inf
    return x // y


def floordiv(a: ValueRange, b: ValueRange) -> ValueRange:
    """``x // y``: monotone in each operand when ``y`` keeps one sign."""
    if b.lower <= 0 <= b.upper:
        return UNBOUNDED
    corners = [_floor_quotient(x, y) for x in (a.lower, a.upper) for y in (b.lower, b.upper)]
    return ValueRange(min(corners), max(corners))


def mod(a: ValueRange, b: ValueRange) -> ValueRange:
    """``x % y`` for ``y > 0`` lies in ``[0, y - 1]``, and is ``x`` when ``0 <= x < y``."""
    if b.lower <= 0:
        return UNBOUNDED if b.upper >= 0 else ValueRange(b.lower + 1, 0)
    if a.lower >= 0 and a.upper < b.lower:
        return a
    upper = b.upper - 1
    if a.lower >= 0:
        upper = min(upper, a.upper)
    return ValueRange(0, upper)


def truediv(a: ValueRange, b: ValueRange) -> ValueRange:
    if b.lower <= 0 <= b.upper:
        return UNBOUNDED
    corners = []
    for x in (a.lower, a.upper):
        for y in (b.lower, b.upper):
            if math.isinf(x) and math.isinf(y):
                corners.append(0.0)
                corners.append(math.copysign(math.inf, x * y))
            elif math.isinf(y):
                corners.append(0.0)
            else:
                corners.append(x / y)
    return ValueRange(min(corners), max(corners))


def maximum(a: ValueRange, b: ValueRange) -> ValueRange:
    return ValueRange(max(a.lower, b.lower), max(a.upper, b.upper))


def minimum(a: ValueRange, b: ValueRange) -> ValueRange:
    return ValueRange(min(a.lower, b.lower), min(a.upper, b.upper))


def to_integer(a: ValueRange, rounding: str) -> ValueRange:
    """``trunc``/``floor``/``ceil`` of a float range."""
    fn = ROUNDING[rounding]

    def end(x: Bound) -> Bound:
        return x if math.isinf(x) else int(fn(x))

    return ValueRange(end(a.lower), end(a.upper))
