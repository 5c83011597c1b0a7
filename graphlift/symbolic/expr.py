"""The shape algebra: immutable, hash-consed expressions in a normal form.

Integer-valued expressions are always a :class:`Poly`: a sum of monomials with
integer coefficients, where a monomial is a product of *factors* raised to
positive powers. A factor is a :class:`Sym` (``s0``, ``u3``) or an integer-valued
:class:`Op` the polynomial normal form cannot open up (``s0 // 2``, ``s0 % 3``,
``max(s0, s1)``, ``t if c else f``, ...). Float- and bool-valued expressions are
:class:`Op` nodes (or a :class:`Const`). Comparisons of integers normalize to
``p >= 0`` and ``p == 0`` over a polynomial ``p`` whose coefficients share no
common factor, so equal questions are the same object.

Every node is interned: constructing an equal expression twice returns the same
object, so equality is identity and hashing is O(1). This is what keeps the
algebra fast (JAX's shape_poly takes the same route; torch's sympy engine is
slow exactly here). Sympy is never used in this module; see
:mod:`graphlift.symbolic.sympy_bridge`.

Every rewrite here is sound for *all* integer values of the symbols (no range
knowledge); range-dependent simplification lives in :mod:`.decide`. The rules
are commented with their algebra.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Union

from graphlift.symbolic.ranges import ROUNDING

Scalar = int | float | bool
Factor = Union["Sym", "Op"]
Mono = frozenset[tuple[Factor, int]]
Expr = Union["Poly", "Op", "Const"]

EMPTY_MONO: Mono = frozenset()
_INTERNED: dict[object, object] = {}
_SYM_NAME = re.compile(r"([a-z]+)(\d+)$")

# Op names by result kind. Integer ops appear as Poly factors.
INT_OPS = frozenset({"floordiv", "mod", "max", "min", "ite", "pow", "trunc", "floor", "ceil"})
FLOAT_OPS = frozenset(
    {"float", "truediv", "fadd", "fmul", "fneg", "fpow", "fmax", "fmin", "fite", "fmath"}
)
BOOL_OPS = frozenset({"ge", "eq", "not", "and", "or", "flt", "fle", "feq", "bite"})


@dataclass(frozen=True, eq=False)
class Sym:
    """An integer symbol: ``s<k>`` is backed (has an example value), ``u<k>`` is not."""

    name: str
    sort_key: tuple[object, ...]

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, eq=False)
class Op:
    """An operation the polynomial form cannot open up; ``kind`` is its value type."""

    name: str
    args: tuple[Expr, ...]
    kind: str
    payload: str = ""  # e.g. the math function name of "fmath"

    @cached_property
    def sort_key(self) -> tuple[object, ...]:
        """Deterministic order for printing and for commutative arguments."""
        return (1, self.name, self.payload, tuple(a.sort_key for a in self.args))

    def __repr__(self) -> str:
        from graphlift.symbolic.printer import to_python

        return to_python(self)


@dataclass(frozen=True, eq=False)
class Const:
    """A float or bool constant (integer constants are constant :class:`Poly`)."""

    value: float | bool
    kind: str
    sort_key: tuple[object, ...]

    def __repr__(self) -> str:
        return repr(self.value)


@dataclass(frozen=True, eq=False)
class Poly:
    """An integer polynomial: ``terms`` maps monomials to nonzero coefficients."""

    terms: frozenset[tuple[Mono, int]]
    const: int | None  # the value when the polynomial is a constant
    kind: str = "int"

    @cached_property
    def sort_key(self) -> tuple[object, ...]:
        """Deterministic order for printing and for commutative arguments."""
        return (2, tuple(sorted((_mono_key(m), c) for m, c in self.terms)))

    def __repr__(self) -> str:
        from graphlift.symbolic.printer import to_python

        return to_python(self)


# --- construction (interning) --------------------------------------------------------


def symbol(name: str) -> Poly:
    """The polynomial consisting of the symbol ``name`` alone."""
    key = ("sym", name)
    found = _INTERNED.get(key)
    if found is None:
        match = _SYM_NAME.match(name)
        sort_key: tuple[object, ...] = (match.group(1), int(match.group(2))) if match else (name, 0)
        found = _INTERNED[key] = Sym(name, (0, *sort_key))
    assert isinstance(found, Sym)
    return poly_from({frozenset({(found, 1)}): 1})


def integer(value: int) -> Poly:
    return poly_from({EMPTY_MONO: value} if value else {})


def constant(value: Scalar) -> Expr:
    """The expression for a Python scalar (bool, int or float)."""
    if isinstance(value, bool):
        return TRUE if value else FALSE
    if isinstance(value, int):
        return integer(value)
    return _const(float(value), "float")


def _const(value: float | bool, kind: str) -> Const:
    key = ("const", kind, value)
    found = _INTERNED.get(key)
    if found is None:
        found = _INTERNED[key] = Const(value, kind, (-1, kind, value))
    assert isinstance(found, Const)
    return found


def _mono_key(mono: Mono) -> tuple[object, ...]:
    degree = sum(power for _, power in mono)
    return (degree, tuple(sorted((f.sort_key, p) for f, p in mono)))


def poly_from(coeffs: dict[Mono, int]) -> Poly:
    """Intern the polynomial with these coefficients (zero coefficients are dropped)."""
    terms = frozenset((m, c) for m, c in coeffs.items() if c)
    found = _INTERNED.get(terms)
    if found is None:
        const: int | None = None
        if not terms:
            const = 0
        elif len(terms) == 1:
            ((mono, coeff),) = terms
            const = coeff if not mono else None
        found = _INTERNED[terms] = Poly(terms, const)
    assert isinstance(found, Poly)
    return found


def make_op(name: str, args: tuple[Expr, ...], kind: str, payload: str = "") -> Op:
    key = ("op", name, args, payload)
    found = _INTERNED.get(key)
    if found is None:
        found = _INTERNED[key] = Op(name, args, kind, payload)
    assert isinstance(found, Op)
    return found


def factor_poly(factor: Factor) -> Poly:
    return poly_from({frozenset({(factor, 1)}): 1})


def int_op(name: str, args: tuple[Expr, ...]) -> Poly:
    return factor_poly(make_op(name, args, "int"))


ZERO = integer(0)
ONE = integer(1)
TRUE = _const(True, "bool")
FALSE = _const(False, "bool")


# --- inspection -------------------------------------------------------------------------


def kind_of(expr: Expr) -> str:
    return expr.kind


def as_int(expr: Expr) -> int | None:
    return expr.const if isinstance(expr, Poly) else None


def as_scalar(expr: Expr) -> Scalar | None:
    """The Python value of a constant expression, else None."""
    if isinstance(expr, Poly):
        return expr.const
    if isinstance(expr, Const):
        return expr.value
    return None


def as_symbol(expr: Expr) -> str | None:
    """The name when ``expr`` is a bare symbol, else None."""
    if isinstance(expr, Poly) and len(expr.terms) == 1:
        ((mono, coeff),) = expr.terms
        if coeff == 1 and len(mono) == 1:
            ((factor, power),) = mono
            if power == 1 and isinstance(factor, Sym):
                return factor.name
    return None


def free_symbols(expr: Expr) -> frozenset[str]:
    """Names of all symbols occurring in ``expr`` (cached per node)."""
    found = _FREE.get(expr)
    if found is None:
        names: set[str] = set()
        if isinstance(expr, Poly):
            for mono, _ in expr.terms:
                for factor, _ in mono:
                    if isinstance(factor, Sym):
                        names.add(factor.name)
                    else:
                        names |= free_symbols(factor)
        elif isinstance(expr, Op):
            for arg in expr.args:
                names |= free_symbols(arg)
        found = _FREE[expr] = frozenset(names)
    return found


_FREE: dict[object, frozenset[str]] = {}
_HAS_OPS: dict[object, bool] = {}


def has_ops(expr: Expr) -> bool:
    """Whether ``expr`` is anything but a plain polynomial in symbols."""
    found = _HAS_OPS.get(expr)
    if found is None:
        if isinstance(expr, Poly):
            found = any(isinstance(f, Op) for mono, _ in expr.terms for f, _ in mono)
        else:
            found = isinstance(expr, Op)
        _HAS_OPS[expr] = found
    return found


# --- integer arithmetic ------------------------------------------------------------------


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
    if b.const in (1, -1):
        return ZERO
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


# --- booleans ---------------------------------------------------------------------------------


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
