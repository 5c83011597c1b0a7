"""Integer arithmetic in the polynomial normal form.

Every rewrite here is sound for *all* integer values of the symbols (no range
knowledge; range-dependent simplification is the ShapeEnv's, through
:mod:`.decide`). Each rule is commented with its algebra.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from graphlift.symbolic.expr import (
    ONE,
    ZERO,
    Mono,
    Op,
    Poly,
    as_int,
    int_op,
    integer,
    mono_sort_key,
    poly_from,
)


def add(a: Poly, b: Poly) -> Poly:
    if a.const is not None and b.const is not None:
        return integer(a.const + b.const)
    if b.const == 0:
        return a
    if a.const == 0:
        return b
    coeffs = dict(a.terms)
    for mono, coeff in b.terms:
        coeffs[mono] = coeffs.get(mono, 0) + coeff
    return poly_from(coeffs)


def sum_all(items: Iterable[Poly]) -> Poly:
    coeffs: dict[Mono, int] = {}
    for item in items:
        for mono, coeff in item.terms:
            coeffs[mono] = coeffs.get(mono, 0) + coeff
    return poly_from(coeffs)


def scale(a: Poly, k: int) -> Poly:
    if k == 1:
        return a
    if a.const is not None:
        return integer(a.const * k)
    return poly_from({m: c * k for m, c in a.terms} if k else {})


def neg(a: Poly) -> Poly:
    return scale(a, -1)


def sub(a: Poly, b: Poly) -> Poly:
    if a.const is not None and b.const is not None:
        return integer(a.const - b.const)
    return add(a, scale(b, -1))


def _mono_mul(m1: Mono, m2: Mono) -> Mono:
    if not m1:
        return m2
    if not m2:
        return m1
    powers = dict(m1)
    for factor, power in m2:
        powers[factor] = powers.get(factor, 0) + power
    return frozenset(powers.items())


def mul(a: Poly, b: Poly) -> Poly:
    if a.const is not None:
        return scale(b, a.const)
    if b.const is not None:
        return scale(a, b.const)
    coeffs: dict[Mono, int] = {}
    for m1, c1 in a.terms:
        for m2, c2 in b.terms:
            mono = _mono_mul(m1, m2)
            coeffs[mono] = coeffs.get(mono, 0) + c1 * c2
    return poly_from(coeffs)


def _mono_div(m: Mono, d: Mono) -> Mono | None:
    """``m / d`` when the monomial ``d`` divides ``m``, else None."""
    powers = dict(m)
    for factor, power in d:
        left = powers.get(factor, 0) - power
        if left < 0:
            return None
        if left:
            powers[factor] = left
        else:
            del powers[factor]
    return frozenset(powers.items())


def _split_by_monomial(a: Poly, mono: Mono, k: int) -> tuple[Poly, Poly]:
    """``a == (k*mono)*q + r``: terms of ``a`` divisible by ``k*mono`` go to ``q``.

    For ``k > 0`` the remaining constant-monomial coefficients are reduced
    modulo ``k`` (Python's ``%``), so ``r`` is as small as the algebra allows.
    """
    quotient: dict[Mono, int] = {}
    rest: dict[Mono, int] = {}
    for m, c in a.terms:
        divided = _mono_div(m, mono)
        if divided is not None and c % k == 0:
            quotient[divided] = c // k
        elif divided is not None and not mono and k > 0:
            quotient[divided] = c // k
            rest[m] = c % k
        else:
            rest[m] = c
    return poly_from(quotient), poly_from(rest)


def _single_term(b: Poly) -> tuple[Mono, int] | None:
    if len(b.terms) == 1:
        ((mono, coeff),) = b.terms
        return mono, coeff
    return None


def floordiv(a: Poly, b: Poly) -> Poly:
    """Python's ``a // b`` on integers.

    Rules (sound for every integer value where ``a // b`` is defined):
    ``(b*q + r) // b == q + r // b`` for a monomial ``b``; ``a // 1 == a``;
    ``(a // m) // n == a // (m*n)`` for ``m, n > 0``.
    """
    if a.const is not None and b.const is not None and b.const != 0:
        return integer(a.const // b.const)
    ratio = _exact_ratio(a, b)
    if ratio is not None:
        return integer(ratio)  # (k*x) // x == k wherever it is defined (x != 0)
    common = _common_factor(a, b)
    if common is not None:  # (m*x) // (m*y) == x // y for every m != 0
        return floordiv(_divide(a, common), _divide(b, common))
    if b.const == 1:
        return a
    if b.const == -1:
        return neg(a)
    single = _single_term(b)
    if single is not None and (single[1] > 0 or single[0]):
        mono, k = single
        if k > 0:
            quotient, rest = _split_by_monomial(a, mono, k)
            if rest.const == 0:
                return quotient
            if rest.const is not None and not mono:
                return add(quotient, integer(rest.const // k))
            return add(quotient, _floordiv_atom(rest, b))
    return _floordiv_atom(a, b)


def _floordiv_atom(a: Poly, b: Poly) -> Poly:
    inner = _single_op(a, "floordiv")
    if inner is not None and b.const is not None and b.const > 0:
        m = as_int(inner.args[1])
        if m is not None and m > 0:  # (x // m) // n == x // (m*n)
            return int_op("floordiv", (inner.args[0], integer(m * b.const)))
    return int_op("floordiv", (a, b))


def _single_op(a: Poly, name: str) -> Op | None:
    """The op when ``a`` is exactly one int op factor named ``name``."""
    single = _single_term(a)
    if single is not None and single[1] == 1 and len(single[0]) == 1:
        ((factor, power),) = single[0]
        if power == 1 and isinstance(factor, Op) and factor.name == name:
            return factor
    return None


def mod(a: Poly, b: Poly) -> Poly:
    """Python's ``a % b`` on integers.

    ``(b*q + r) % b == r % b`` for a monomial ``b`` and integer ``q``;
    ``(x % n) % n == x % n``.
    """
    if a.const is not None and b.const is not None and b.const != 0:
        return integer(a.const % b.const)
    if b.const in (1, -1) or _exact_ratio(a, b) is not None:  # (k*x) % x == 0 where defined
        return ZERO
    common = _common_factor(a, b)
    if common is not None:  # (m*x) % (m*y) == m*(x % y) for every m != 0
        return mul(poly_from({common[0]: common[1]}), mod(_divide(a, common), _divide(b, common)))
    single = _single_term(b)
    if single is not None and single[1] > 0:
        _, rest = _split_by_monomial(a, single[0], single[1])
        if rest.const is not None and b.const is not None:
            return integer(rest.const % b.const)
        if rest.const == 0:
            return ZERO
        a = rest
    inner = _single_op(a, "mod")
    if inner is not None and inner.args[1] is b:
        return a
    return int_op("mod", (a, b))


def _exact_ratio(a: Poly, b: Poly) -> int | None:
    """``k`` when ``a == k*b`` for an integer ``k`` (``b`` not a constant)."""
    if b.const is not None or not b.terms:
        return None
    mono, coeff = min(b.terms, key=lambda t: mono_sort_key(t[0]))
    numerator = dict(a.terms).get(mono, 0)
    if numerator % coeff:
        return None
    k = numerator // coeff
    return k if scale(b, k) is a else None


def _common_factor(a: Poly, b: Poly) -> tuple[Mono, int] | None:
    """The greatest monomial times positive integer dividing every term of ``a``
    and ``b`` (neither a constant), when it is not 1."""
    if a.const is not None or b.const is not None:
        return None
    terms = [*a.terms, *b.terms]
    gcd = math.gcd(*(c for _, c in terms))
    powers = dict(terms[0][0])
    for mono, _ in terms[1:]:
        present = dict(mono)
        powers = {f: min(p, present[f]) for f, p in powers.items() if f in present}
    if gcd == 1 and not powers:
        return None
    return frozenset(powers.items()), gcd


def _divide(a: Poly, common: tuple[Mono, int]) -> Poly:
    """``a / common`` for a ``common`` factor that divides every term of ``a``."""
    mono, k = common
    divided = {_mono_div(m, mono): c // k for m, c in a.terms}
    return poly_from({m: c for m, c in divided.items() if m is not None})


def pow_int(a: Poly, b: Poly) -> Poly:
    """``a ** b`` for a natural exponent ``b`` (expanded when ``b`` is a small constant)."""
    if b.const is not None and 0 <= b.const <= 8:
        result = ONE
        for _ in range(b.const):
            result = mul(result, a)
        return result
    if a.const is not None and b.const is not None and b.const >= 0:
        return integer(a.const**b.const)
    if a.const == 1:
        return ONE
    return int_op("pow", (a, b))


def _minmax(name: str, a: Poly, b: Poly) -> Poly:
    """n-ary ``max``/``min``, flattened; an argument is dropped when another one
    differs from it by a constant in the winning direction (``max(s0, s0 + 1)``
    is ``s0 + 1``; constants fold)."""
    args: list[Poly] = []
    for x in (a, b):
        nested = _single_op(x, name)
        for arg in nested.args if nested is not None else (x,):
            assert isinstance(arg, Poly)
            if arg not in args:
                args.append(arg)
    sign = 1 if name == "max" else -1
    kept = [
        x
        for i, x in enumerate(args)
        if not any(_dominates(y, x, sign, j < i) for j, y in enumerate(args) if j != i)
    ]
    if len(kept) == 1:
        return kept[0]
    return int_op(name, tuple(sorted(kept, key=lambda e: e.sort_key)))


def _dominates(y: Poly, x: Poly, sign: int, earlier: bool) -> bool:
    """``y`` makes ``x`` redundant: ``sign*(y - x)`` is a positive constant (or zero, for ties)."""
    diff = sub(y, x).const
    return diff is not None and (sign * diff > 0 or (diff == 0 and earlier))


def maximum(a: Poly, b: Poly) -> Poly:
    return _minmax("max", a, b)


def minimum(a: Poly, b: Poly) -> Poly:
    return _minmax("min", a, b)
