"""The pure decision procedure: is a shape question true for every allowed value?

``decide(expr, ranges, facts)`` answers True when ``expr`` holds for every
assignment of the symbols within ``ranges`` that satisfies every fact in
``facts``, False when it holds for none, and None when it cannot tell. It never
records anything: guarding is :class:`~graphlift.symbolic.shape_env.ShapeEnv`'s
job. Like JAX's shape_poly, the method is cheap and incomplete by design:

* interval arithmetic over the polynomial (with one step of factoring, so
  ``s0*s1 - s0 >= 0`` is seen as ``s0*(s1 - 1) >= 0``);
* facts of the form ``q >= 0`` prove ``p >= 0`` when ``p - q`` is bounded
  below by 0, and facts ``q == 0`` are subtracted from ``p`` to cancel a term.

``bound(expr, ranges)`` is the interval this uses; it is exported because the
ShapeEnv simplifies with it too.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping

from graphlift.symbolic import ranges as vr
from graphlift.symbolic.algebra import (
    EMPTY_MONO,
    Const,
    Expr,
    Mono,
    Op,
    Poly,
    Sym,
    add,
    logical_not,
    neg,
    poly_from,
    scale,
    sub,
)
from graphlift.symbolic.ranges import UNBOUNDED, ValueRange

Ranges = Mapping[str, ValueRange]


def bound(expr: Expr, ranges: Ranges) -> ValueRange:
    """An interval containing every value of ``expr`` with symbols in ``ranges``."""
    return Decider(ranges).bound(expr)


class _Bounder:
    """Intervals of expressions under fixed ranges, memoized per node."""

    def __init__(self, ranges: Ranges, decider: Decider) -> None:
        self.ranges = ranges
        self.decider = decider  # ite and bool-valued ops ask it
        self.memo: dict[Expr | Sym, ValueRange] = {}
        self.mono_memo: dict[frozenset[tuple[Sym | Op, int]], ValueRange] = {}

    def of(self, expr: Expr | Sym) -> ValueRange:
        found = self.memo.get(expr)
        if found is None:
            found = self.memo[expr] = self.compute(expr)
        return found

    def compute(self, expr: Expr | Sym) -> ValueRange:
        if isinstance(expr, Sym):
            return self.ranges.get(expr.name, UNBOUNDED)
        if isinstance(expr, Poly):
            return self.poly(expr)
        if isinstance(expr, Const):
            return vr.point(float(expr.value) if expr.kind == "float" else int(expr.value))
        return self.op(expr)

    def poly(self, p: Poly) -> ValueRange:
        if p.const is not None:
            return vr.point(p.const)
        result = self.sum_of_terms(p)
        if len(p.terms) <= 8 and any(c < 0 for _, c in p.terms):
            for factored in self.factorings(p):
                result = result.intersect(factored)
            result = self.extremum_bounds(p, result)
        return result

    def extremum_bounds(self, p: Poly, result: ValueRange) -> ValueRange:
        """``max(a, b) >= a`` and ``min(a, b) <= a``: swap a lone extremum for an argument.

        With ``p == c*max(a, b) + r`` and ``c > 0``, ``p >= c*a + r``, so the
        lower bound of ``c*a + r`` bounds ``p`` too (and symmetrically).
        """
        for mono, coeff in p.terms:
            if len(mono) != 1:
                continue
            ((factor, power),) = mono
            if power != 1 or not isinstance(factor, Op) or factor.name not in ("max", "min"):
                continue
            rest = sub(p, poly_from({mono: coeff}))
            raises_lower = (factor.name == "max") == (coeff > 0)
            for arg in factor.args:
                assert isinstance(arg, Poly)
                swapped = self.poly(add(rest, scale(arg, coeff)))
                if raises_lower:
                    result = ValueRange(max(result.lower, swapped.lower), result.upper)
                else:
                    result = ValueRange(result.lower, min(result.upper, swapped.upper))
        return result

    def sum_of_terms(self, p: Poly) -> ValueRange:
        lower: float = 0
        upper: float = 0
        for mono, coeff in p.terms:
            term = self.monomial(mono)
            if coeff > 0:
                lower, upper = lower + _times(coeff, term.lower), upper + _times(coeff, term.upper)
            else:
                lower, upper = lower + _times(coeff, term.upper), upper + _times(coeff, term.lower)
        return ValueRange(lower, upper)

    def monomial(self, mono: frozenset[tuple[Sym | Op, int]]) -> ValueRange:
        found = self.mono_memo.get(mono)
        if found is None:
            found = vr.point(1)
            for factor, power in mono:
                base = self.of(factor)
                found = vr.mul(found, base if power == 1 else vr.power(base, power))
            self.mono_memo[mono] = found
        return found

    def factorings(self, p: Poly) -> list[ValueRange]:
        """Bounds of ``f*q + r`` for each factor ``f`` shared by several terms.

        When the rest is a constant multiple of the quotient, ``r == c*q``,
        the bound is that of ``(f + c)*q``: ``s0*s1 - s0 - s1 + 1`` is
        ``(s0 - 1)*(s1 - 1)``.
        """
        counts: dict[Sym | Op, int] = {}
        for mono, _ in p.terms:
            for factor, _power in mono:
                counts[factor] = counts.get(factor, 0) + 1
        found = []
        for factor, count in counts.items():
            if count < 2:
                continue
            quotient: dict[frozenset[tuple[Sym | Op, int]], int] = {}
            rest: dict[frozenset[tuple[Sym | Op, int]], int] = {}
            for mono, coeff in p.terms:
                powers = dict(mono)
                if factor in powers:
                    powers[factor] -= 1
                    if not powers[factor]:
                        del powers[factor]
                    quotient[frozenset(powers.items())] = coeff
                else:
                    rest[mono] = coeff
            q_poly = poly_from(quotient)
            q_range = self.poly(q_poly)
            c = _constant_ratio(rest, quotient)
            if c is not None:  # f*q + c*q == (f + c)*q
                shifted = vr.add(self.of(factor), vr.point(c))
                found.append(vr.mul(shifted, q_range))
                continue
            product = vr.mul(self.of(factor), q_range)
            found.append(vr.add(product, self.sum_of_terms(poly_from(rest))))
        return found

    def op(self, op: Op) -> ValueRange:
        name, args = op.name, op.args
        if name in _BINARY:
            result = self.of(args[0])
            for arg in args[1:]:  # max and min are n-ary
                result = _BINARY[name](result, self.of(arg))
            return result
        if name == "fvar":
            return self.ranges.get(op.payload, UNBOUNDED)
        if name in ("trunc", "floor", "ceil", "round"):
            return vr.to_integer(self.of(args[0]), name)
        if name in ("float", "fneg"):
            inner = self.of(args[0])
            return inner if name == "float" else vr.neg(inner)
        if name in ("ite", "fite"):
            verdict = self.decider.decide(args[0])
            if verdict is not None:
                return self.of(args[1] if verdict else args[2])
            return self.of(args[1]).union(self.of(args[2]))
        if name == "pow":
            return self.power(self.of(args[0]), self.of(args[1]))
        if op.kind == "bool":
            verdict = self.decider.decide(op)
            return vr.BOOL_RANGE if verdict is None else vr.point(int(verdict))
        return UNBOUNDED

    @staticmethod
    def power(base: ValueRange, exponent: ValueRange) -> ValueRange:
        if base.lower >= 1 and exponent.lower >= 0:
            return ValueRange(base.lower**exponent.lower, _pow_upper(base.upper, exponent.upper))
        return UNBOUNDED


def _covers(intervals: list[tuple[float, float]], whole: ValueRange) -> bool:
    """Whether the integer points of ``whole`` all lie in the sorted ``intervals``."""
    reached = whole.lower  # every integer below this is covered
    for lo, hi in intervals:
        if lo > reached:
            return False
        reached = max(reached, hi + 1)
    return reached > whole.upper or reached == math.inf


def _constant_ratio(rest: dict[Mono, int], quotient: dict[Mono, int]) -> int | None:
    """``c`` when ``rest == c*quotient`` term by term (both nonzero), else None."""
    if not rest or rest.keys() != quotient.keys():
        return None
    mono, coeff = next(iter(quotient.items()))
    if rest[mono] % coeff:
        return None
    c = rest[mono] // coeff
    return c if all(rest[m] == c * k for m, k in quotient.items()) else None


def _cancelling_multiple(terms: dict[Mono, int], q: Poly) -> int | None:
    """The ``k`` for which ``terms - k*q`` loses a non-constant term, if any."""
    for mono, coeff in q.terms:
        if mono:
            mine = terms.get(mono)
            if mine is not None and mine % coeff == 0:
                return mine // coeff
    return None


def _times(k: int, x: float) -> float:
    return 0 if x == 0 else k * x


def _pow_upper(base: float, exponent: float) -> float:
    if math.isinf(base) or math.isinf(exponent):
        return math.inf if base > 1 else base
    return float(base**exponent) if isinstance(base, float) else base ** int(exponent)


_BINARY = {
    "floordiv": vr.floordiv,
    "mod": vr.mod,
    "max": vr.maximum,
    "min": vr.minimum,
    "fmax": vr.maximum,
    "fmin": vr.minimum,
    "truediv": vr.truediv,
    "fadd": vr.add,
    "fmul": vr.mul,
}


def decide(expr: Expr, ranges: Ranges, facts: Collection[Expr] = ()) -> bool | None:
    """True / False when ``expr`` is decided for all in-range values satisfying ``facts``.

    None means "cannot tell". Pure: no state is read or written besides the
    arguments.
    """
    return Decider(ranges).decide(expr, facts)


class Decider:
    """:func:`decide` for many questions under the same ranges, sharing a memo of intervals.

    Still pure: the memo only caches values of functions of ``ranges``, which
    must not change while the Decider is in use.
    """

    def __init__(self, ranges: Ranges) -> None:
        self.ranges = ranges
        self.bounder = _Bounder(ranges, self)

    def bound(self, expr: Expr) -> ValueRange:
        return self.bounder.of(expr)

    def decide(self, expr: Expr, facts: Collection[Expr] = ()) -> bool | None:
        """See :func:`decide`."""
        if isinstance(expr, Const):
            return bool(expr.value)
        if facts:
            if expr in facts:
                return True
            if logical_not(expr) in facts:
                return False
        assert isinstance(expr, Op), f"decide() needs a boolean expression, got {expr!r}"
        name, args = expr.name, expr.args
        if name == "not":
            inner = self.decide(args[0], facts)
            return None if inner is None else not inner
        if name in ("and", "or"):
            return self._junction(name, args, facts)
        if name == "ge":
            assert isinstance(args[0], Poly)
            return self._decide_ge(args[0], facts)
        if name == "eq":
            assert isinstance(args[0], Poly)
            return self._decide_eq(args[0], facts)
        if name in ("flt", "fle", "feq"):
            return self._decide_float(name, args[0], args[1])
        return None

    def _junction(self, name: str, args: tuple[Expr, ...], facts: Collection[Expr]) -> bool | None:
        short = name == "or"  # the value that decides the whole junction
        unknown = False
        for arg in args:
            verdict = self.decide(arg, facts)
            if verdict is short:
                return short
            unknown = unknown or verdict is None
        if unknown and short and self._cover_range(args):
            return True
        return None if unknown else not short

    def _cover_range(self, args: tuple[Expr, ...]) -> bool:
        """Whether comparisons of one integer polynomial among ``args`` together
        cover its whole range (``n == 0 or n >= 1`` with ``n = b*s >= 0``), which
        no disjunct decides alone."""
        pieces: dict[frozenset[tuple[Mono, int]], list[tuple[float, float]]] = {}
        ranges: dict[frozenset[tuple[Mono, int]], ValueRange] = {}
        for arg in args:
            if not (isinstance(arg, Op) and arg.name in ("eq", "ge")):
                continue
            p = arg.args[0]
            if not isinstance(p, Poly) or p.kind != "int" or p.const is not None:
                continue
            c = dict(p.terms).get(EMPTY_MONO, 0)
            x = frozenset((m, k) for m, k in p.terms if m != EMPTY_MONO)  # p == x + c
            flipped = frozenset((m, -k) for m, k in x)
            sign = -1 if flipped in pieces else 1
            key = flipped if sign < 0 else x
            if key not in ranges:
                whole = self.bound(p)  # the range of x + c: shift by -c, then orient
                ends = (whole.lower - c, whole.upper - c)
                lo, hi = ends if sign > 0 else (-ends[1], -ends[0])
                ranges[key] = ValueRange(lo, hi)
            at = -c * sign  # x == -c; as -x: -x == c
            if arg.name == "eq":
                pieces.setdefault(key, []).append((at, at))
            else:  # x >= -c; as -x: -x <= c
                pieces.setdefault(key, []).append((at, math.inf) if sign > 0 else (-math.inf, at))
        return any(_covers(sorted(pieces[k]), ranges[k]) for k in pieces)

    def _decide_ge(self, p: Poly, facts: Collection[Expr]) -> bool | None:
        """``p >= 0``: by the interval of ``p``, else by a fact ``q >= 0`` / ``q == 0``.

        With ``q >= 0``: ``p >= 0`` when ``p - q >= 0``, and ``p < 0`` when
        ``-p - 1 - q >= 0``. With ``q == 0``: ``p - k*q`` equals ``p``, for the
        ``k`` that cancels a term. Combinations are bounded term by term
        without building their polynomials (this loop is the hot path).
        """
        interval = self.bound(p)
        if interval.lower >= 0:
            return True
        if interval.upper < 0:
            return False
        terms = dict(p.terms)
        negated = {m: -c for m, c in terms.items()}
        negated[EMPTY_MONO] = negated.get(EMPTY_MONO, 0) - 1  # p < 0  <=>  -p - 1 >= 0
        for fact in facts:
            if not isinstance(fact, Op) or fact.name not in ("ge", "eq"):
                continue
            q = fact.args[0]
            assert isinstance(q, Poly)
            for target, verdict in ((terms, True), (negated, False)):
                k = 1 if fact.name == "ge" else _cancelling_multiple(target, q)
                if k is not None and self.lower_of(target, q, k) >= 0:
                    return verdict
        return None

    def lower_of(self, terms: dict[Mono, int], q: Poly, k: int) -> float:
        """A lower bound of ``sum(terms) - k*q``."""
        combined = dict(terms)
        for mono, coeff in q.terms:
            combined[mono] = combined.get(mono, 0) - k * coeff
        lower: float = 0
        for mono, coeff in combined.items():
            if coeff:
                term = self.bounder.monomial(mono)
                lower += _times(coeff, term.lower if coeff > 0 else term.upper)
        return lower

    def _decide_eq(self, p: Poly, facts: Collection[Expr]) -> bool | None:
        interval = self.bound(p)
        if interval.lower > 0 or interval.upper < 0:
            return False
        if interval.lower == interval.upper == 0:
            return True
        terms = dict(p.terms)
        for fact in facts:
            if isinstance(fact, Op) and fact.name == "eq":
                q = fact.args[0]
                assert isinstance(q, Poly)
                k = _cancelling_multiple(terms, q)
                if k is not None:
                    reduced = sub(p, scale(q, k))
                    if reduced.const is not None:
                        return reduced.const == 0
        if facts:
            if self._decide_ge(p, facts) is False or self._decide_ge(neg(p), facts) is False:
                return False
        return None

    def _decide_float(self, name: str, a: Expr, b: Expr) -> bool | None:
        ra, rb = self.bound(a), self.bound(b)
        if name == "flt":
            return True if ra.upper < rb.lower else False if ra.lower >= rb.upper else None
        if name == "fle":
            return True if ra.upper <= rb.lower else False if ra.lower > rb.upper else None
        if ra.is_singleton and rb.is_singleton:
            return ra.lower == rb.lower
        return False if ra.upper < rb.lower or rb.upper < ra.lower else None
