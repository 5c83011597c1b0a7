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

This module holds the node types, their interning and inspection;
:mod:`.arith` (integer arithmetic) and :mod:`.logic` (comparisons, booleans,
floats, casts) build nodes in normal form, and :mod:`.algebra` gathers all
constructors in one namespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Union

Scalar = int | float | bool
Factor = Union["Sym", "Op"]
Mono = frozenset[tuple[Factor, int]]
Expr = Union["Poly", "Op", "Const"]

EMPTY_MONO: Mono = frozenset()
_INTERNED: dict[object, object] = {}
_SYM_NAME = re.compile(r"([a-z]+)(\d+)$")


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
        return _print(self)


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
        return _print(self)


# How an expression prints: printer.py builds on this module, so it installs its
# ``to_python`` here when imported (``graphlift.symbolic`` imports it) rather
# than this module importing it back.
_printers: list[Callable[[Any], str]] = []


def use_printer(to_python: Callable[[Any], str]) -> None:
    _printers[:] = [to_python]


def _print(expr: Any) -> str:
    return _printers[0](expr) if _printers else object.__repr__(expr)


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


def float_symbol(name: str) -> Op:
    """An unbacked float symbol (``uf0``): an op with no arguments, named by its payload."""
    return make_op("fvar", (), "float", payload=name)


def integer(value: int) -> Poly:
    key = ("int", value)  # torch wraps every plain int it meets in sizes: a fast path
    found = _INTERNED.get(key)
    if found is None:
        found = _INTERNED[key] = poly_from({EMPTY_MONO: value} if value else {})
    assert isinstance(found, Poly)
    return found


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


def mono_sort_key(mono: Mono) -> tuple[object, ...]:
    """Deterministic order of monomials: by degree, then by factors."""
    return _mono_key(mono)


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


def lone_factor(expr: Expr) -> Factor | None:
    """The factor when ``expr`` is exactly one factor (coefficient 1, power 1)."""
    if isinstance(expr, Poly) and len(expr.terms) == 1:
        ((mono, coeff),) = expr.terms
        if coeff == 1 and len(mono) == 1:
            ((factor, power),) = mono
            if power == 1:
                return factor
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
        elif isinstance(expr, Op) and expr.name == "fvar":
            names.add(expr.payload)
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
