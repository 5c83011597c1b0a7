"""What a recorded fact teaches: tighter ranges and symbol replacements.

Pure functions from one boolean fact to its consequences, for the ShapeEnv
to apply:

* ``s0 >= 3`` / ``s0 <= 7`` / ``s0 != 0`` (one symbol, coefficient 1)
  tighten that symbol's range;
* ``p == 0`` where some symbol ``s`` occurs once, linearly with coefficient
  +-1, solves to ``s -> value`` (``s1 == s0`` unifies, ``s0 == 4`` specializes).
  Unbacked symbols are eliminated first, then the most recent symbol.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import EMPTY_MONO, Expr, Op, Poly, Sym
from graphlift.symbolic.ranges import ValueRange


@dataclass(frozen=True)
class Tighten:
    """The symbol's range is intersected with ``allowed``."""

    symbol: str
    allowed: ValueRange


@dataclass(frozen=True)
class Exclude:
    """The symbol is not ``value`` (useful when ``value`` is an end of its range)."""

    symbol: str
    value: int


@dataclass(frozen=True)
class Solve:
    """``symbol == value`` everywhere: a replacement."""

    symbol: str
    value: Poly


@dataclass(frozen=True)
class Pin:
    """An integer op the algebra cannot open equals a constant: ``s0 % 2 == 0``,
    ``(s0 + 2) // 3 == 2``. The ShapeEnv replaces the op wherever it appears."""

    op: Op
    value: int


Consequence = Tighten | Exclude | Solve | Pin


def conjuncts(fact: Expr) -> Iterator[Expr]:
    """The parts of a conjunction (the fact itself otherwise)."""
    if isinstance(fact, Op) and fact.name == "and":
        for arg in fact.args:
            yield from conjuncts(arg)
    else:
        yield fact


def linear_in_one_symbol(p: Poly) -> tuple[str, int, int] | None:
    """``(s, a, c)`` when ``p == a*s + c``, else None."""
    found: tuple[str, int] | None = None
    const = 0
    for mono, coeff in p.terms:
        if mono is EMPTY_MONO or not mono:
            const = coeff
            continue
        if found is not None or len(mono) != 1:
            return None
        ((factor, power),) = mono
        if power != 1 or not isinstance(factor, Sym):
            return None
        found = (factor.name, coeff)
    if found is None:
        return None
    return found[0], found[1], const


def consequences(fact: Expr, rank: Callable[[str], tuple[int, int]]) -> list[Consequence]:
    """What ``fact`` implies for ranges and replacements.

    ``rank`` orders symbols by how much we prefer to eliminate them (higher
    first); the ShapeEnv ranks unbacked above backed, then newer above older.
    """
    found: list[Consequence] = []
    for part in conjuncts(fact):
        if not isinstance(part, Op):
            continue
        if part.name == "ge":
            found.extend(_from_ge(_poly(part)))
        elif part.name == "eq":
            found.extend(_from_eq(_poly(part), rank))
        elif part.name == "not":
            inner = part.args[0]
            if isinstance(inner, Op) and inner.name == "eq":
                linear = linear_in_one_symbol(_poly(inner))
                if linear is not None and abs(linear[1]) == 1:
                    name, a, c = linear
                    found.append(Exclude(name, -c * a))
    return found


def _poly(op: Op) -> Poly:
    arg = op.args[0]
    assert isinstance(arg, Poly)
    return arg


def _from_ge(p: Poly) -> list[Consequence]:
    linear = linear_in_one_symbol(p)
    if linear is not None:
        name, a, c = linear  # a*s + c >= 0
        return [_tighten_linear(name, a, c)]
    quotient = _linear_in_one_quotient(p)
    if quotient is not None:
        name, k, a, c = quotient  # a*(s // k) + c >= 0, k > 0
        bound = _tighten_linear(name, a, c)  # the range of s // k ...
        lower, upper = bound.allowed.lower, bound.allowed.upper
        # ... and s // k >= m  <=>  s >= k*m;  s // k <= m  <=>  s <= k*m + k - 1
        return [Tighten(name, ValueRange(lower * k, upper * k + k - 1))]
    return []


def _tighten_linear(name: str, a: int, c: int) -> Tighten:
    """The range of ``s`` from ``a*s + c >= 0``."""
    if a > 0:
        return Tighten(name, ValueRange(-(c // a), math.inf))  # s >= ceil(-c/a)
    return Tighten(name, ValueRange(-math.inf, c // -a))  # s <= floor(c/-a)


def _linear_in_one_quotient(p: Poly) -> tuple[str, int, int, int] | None:
    """``(s, k, a, c)`` when ``p == a*(s // k) + c`` with a constant ``k > 0``."""
    const = 0
    found: tuple[str, int, int] | None = None
    for mono, coeff in p.terms:
        if not mono:
            const = coeff
            continue
        if found is not None or len(mono) != 1:
            return None
        ((factor, power),) = mono
        if power != 1 or not isinstance(factor, Op) or factor.name != "floordiv":
            return None
        name, divisor = E.as_symbol(factor.args[0]), E.as_int(factor.args[1])
        if name is None or divisor is None or divisor <= 0:
            return None
        found = (name, divisor, coeff)
    if found is None:
        return None
    return found[0], found[1], found[2], const


def _from_eq(p: Poly, rank: Callable[[str], tuple[int, int]]) -> list[Consequence]:
    candidates: list[tuple[tuple[int, int], str, int]] = []
    occurrences: dict[str, int] = {}
    for mono, coeff in p.terms:
        for name in E.free_symbols(E.poly_from({mono: 1})) if mono else ():
            occurrences[name] = occurrences.get(name, 0) + 1
        if len(mono) == 1 and abs(coeff) == 1:
            ((factor, power),) = mono
            if power == 1 and isinstance(factor, Sym):
                candidates.append((rank(factor.name), factor.name, coeff))
    usable = [c for c in candidates if occurrences.get(c[1]) == 1]
    if not usable:
        return _pin(p)
    _, name, coeff = max(usable)
    # coeff*s + rest == 0  =>  s == -rest/coeff == -coeff*rest (coeff is +-1)
    rest = E.sub(p, E.scale(E.symbol(name), coeff))
    return [Solve(name, E.scale(rest, -coeff))]


def _pin(p: Poly) -> list[Consequence]:
    """``a*F + c == 0`` for a lone integer op ``F`` and ``a`` dividing ``c``: ``F == -c/a``."""
    const = 0
    found: tuple[Op, int] | None = None
    for mono, coeff in p.terms:
        if not mono:
            const = coeff
            continue
        if found is not None or len(mono) != 1:
            return []
        ((factor, power),) = mono
        if power != 1 or not isinstance(factor, Op):
            return []
        found = (factor, coeff)
    if found is None or const % found[1]:
        return []
    return [Pin(found[0], -const // found[1])]
