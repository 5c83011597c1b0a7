"""Comparisons, booleans, floats and casts, in normal form.

Integer comparisons normalize to ``p >= 0`` / ``p == 0`` with the gcd of the
coefficients divided out, so equal questions are the same node; conjunctions
and disjunctions are flattened, deduplicated and ordered. Float operations fold
constants and otherwise stay opaque.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from graphlift.symbolic.arith import floordiv, neg, sub
from graphlift.symbolic.expr import (
    EMPTY_MONO,
    FALSE,
    ONE,
    TRUE,
    Expr,
    Op,
    Poly,
    _mono_key,
    as_scalar,
    constant,
    int_op,
    integer,
    make_op,
)
from graphlift.symbolic.ranges import ROUNDING


def _gcd_of_terms(p: Poly) -> int:
    g = 0
    for mono, coeff in p.terms:
        if mono:
            g = math.gcd(g, coeff)
    return g


def _ge_zero(p: Poly) -> Expr:
    """``p >= 0``; with ``p == g*q + c`` this is ``q + c // g >= 0`` (divide by the gcd)."""
    if p.const is not None:
        return TRUE if p.const >= 0 else FALSE
    g = _gcd_of_terms(p)
    if g > 1:
        p = floordiv(p, integer(g))
    return make_op("ge", (p,), "bool")


def _eq_zero(p: Poly) -> Expr:
    """``p == 0``; divided by the gcd, sign fixed so the first term is positive."""
    if p.const is not None:
        return TRUE if p.const == 0 else FALSE
    g = _gcd_of_terms(p)
    const = dict(p.terms).get(EMPTY_MONO, 0)
    if const % g:
        return FALSE  # g*q == -c has no integer solution
    p = floordiv(p, integer(g))
    first = min((m for m, _ in p.terms if m), key=_mono_key)
    if dict(p.terms)[first] < 0:
        p = neg(p)
    return make_op("eq", (p,), "bool")


def ge(a: Poly, b: Poly) -> Expr:
    return _ge_zero(sub(a, b))


def gt(a: Poly, b: Poly) -> Expr:
    return _ge_zero(sub(sub(a, b), ONE))


def le(a: Poly, b: Poly) -> Expr:
    return _ge_zero(sub(b, a))


def lt(a: Poly, b: Poly) -> Expr:
    return _ge_zero(sub(sub(b, a), ONE))


def eq(a: Poly, b: Poly) -> Expr:
    return _eq_zero(sub(a, b))


def ne(a: Poly, b: Poly) -> Expr:
    return logical_not(_eq_zero(sub(a, b)))


def logical_not(a: Expr) -> Expr:
    """``not a``; ``not (p >= 0)`` is ``-p - 1 >= 0`` on integers."""
    if a is TRUE:
        return FALSE
    if a is FALSE:
        return TRUE
    assert isinstance(a, Op), a
    if a.name == "not":
        return a.args[0]
    if a.name == "ge":
        arg = a.args[0]
        assert isinstance(arg, Poly)
        return _ge_zero(sub(neg(arg), ONE))
    return make_op("not", (a,), "bool")


def _junction(name: str, items: Iterable[Expr]) -> Expr:
    absorbing, neutral = (FALSE, TRUE) if name == "and" else (TRUE, FALSE)
    args: set[Expr] = set()
    for item in items:
        if item is absorbing:
            return absorbing
        if item is neutral:
            continue
        if isinstance(item, Op) and item.name == name:
            args.update(item.args)
        else:
            args.add(item)
    if not args:
        return neutral
    if len(args) == 1:
        return args.pop()
    if any(logical_not(x) in args for x in args):
        return absorbing  # x and not x / x or not x
    return make_op(name, tuple(sorted(args, key=lambda e: e.sort_key)), "bool")


def logical_and(*items: Expr) -> Expr:
    return _junction("and", items)


def logical_or(*items: Expr) -> Expr:
    return _junction("or", items)


def ite(cond: Expr, then: Expr, other: Expr) -> Expr:
    """``then if cond else other``."""
    if cond is TRUE or then is other:
        return then
    if cond is FALSE:
        return other
    if then.kind == "bool":
        return logical_or(logical_and(cond, then), logical_and(logical_not(cond), other))
    if then.kind == "int":
        return int_op("ite", (cond, then, other))
    return make_op("fite", (cond, then, other), "float")


# --- floats and casts -----------------------------------------------------------------------


def to_float(a: Expr) -> Expr:
    if a.kind == "float":
        return a
    value = as_scalar(a)
    if value is not None:
        return constant(float(value))
    return make_op("float", (a,), "float")


def _float_fold(name: str, args: tuple[Expr, ...]) -> float | None:
    values = [as_scalar(x) for x in args]
    if any(v is None for v in values):
        return None
    x = [float(v) for v in values if v is not None]
    try:
        return float(FLOAT_FOLD[name](*x))
    except (ZeroDivisionError, OverflowError, ValueError):
        return None


FLOAT_FOLD: dict[str, Callable[..., float]] = {
    "truediv": lambda a, b: a / b,
    "fadd": lambda a, b: a + b,
    "fmul": lambda a, b: a * b,
    "fneg": lambda a: -a,
    "fpow": lambda a, b: a**b,
    "fmax": max,
    "fmin": min,
}


def float_op(name: str, *args: Expr) -> Expr:
    """A float-valued operation on float-or-int operands (constants fold)."""
    floats = tuple(to_float(a) for a in args)
    folded = _float_fold(name, floats)
    if folded is not None:
        return constant(folded)
    if name in ("fadd", "fmul", "fmax", "fmin"):
        floats = tuple(sorted(floats, key=lambda e: e.sort_key))
    return make_op(name, floats, "float")


def truediv(a: Expr, b: Expr) -> Expr:
    return float_op("truediv", a, b)


def float_math(fn: str, a: Expr) -> Expr:
    """``math.<fn>(a)`` for fn in sqrt, cos, ..."""
    value = as_scalar(a)
    if value is not None:
        try:
            return constant(float(getattr(math, fn)(value)))
        except (ValueError, OverflowError):
            pass
    return make_op("fmath", (to_float(a),), "float", payload=fn)


def float_compare(name: str, a: Expr, b: Expr) -> Expr:
    """``a < b`` (flt), ``a <= b`` (fle) or ``a == b`` (feq) on floats."""
    va, vb = as_scalar(a), as_scalar(b)
    if va is not None and vb is not None:
        result = va < vb if name == "flt" else va <= vb if name == "fle" else va == vb
        return TRUE if result else FALSE
    return make_op(name, (to_float(a), to_float(b)), "bool")


def to_int(name: str, a: Expr) -> Poly:
    """``trunc``/``floor``/``ceil`` of a float, or of an int (identity)."""
    if isinstance(a, Poly):
        return a
    if isinstance(a, Op) and a.name == "float" and isinstance(a.args[0], Poly):
        return a.args[0]  # int(float(n)) == n for the sizes we handle
    value = as_scalar(a)
    if value is not None:
        return integer(ROUNDING[name](value))
    return int_op(name, (a,))
