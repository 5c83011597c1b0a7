"""The sympy boundary: what torch's own Python code reads from ``node.expr``.

torch's refs and meta code look at ``node.expr`` in a few places
(``isinstance(expr, sympy.Symbol)`` in ``torch._check_is_size``,
``sympy.Integer`` in ``is_concrete_int``) and hand it back to
``node.shape_env._maybe_evaluate_static``. We convert lazily, cache both
directions, and never do arithmetic in sympy.
"""

from __future__ import annotations

import sympy  # type: ignore[import-untyped]

from graphlift.errors import InternalError
from graphlift.symbolic import expr as E
from graphlift.symbolic.expr import Const, Expr, Op, Poly, Sym

_TO_SYMPY: dict[Expr, sympy.Basic] = {}
_FROM_SYMPY: dict[sympy.Basic, Expr] = {}
_FUNCTIONS: dict[str, type[sympy.Function]] = {}


def to_sympy(expr: Expr) -> sympy.Basic:
    """A sympy rendering of ``expr`` (uninterpreted functions for non-polynomial ops)."""
    found = _TO_SYMPY.get(expr)
    if found is None:
        found = _TO_SYMPY[expr] = _convert(expr)
        _FROM_SYMPY.setdefault(found, expr)
    return found


def from_sympy(value: object) -> Expr:
    """The expression ``to_sympy`` produced ``value`` from (or a plain constant)."""
    if isinstance(value, bool | int | float):
        return E.constant(value)
    if isinstance(value, sympy.Basic):
        found = _FROM_SYMPY.get(value)
        if found is not None:
            return found
        if isinstance(value, sympy.Symbol):
            return E.symbol(value.name)
        if value is sympy.true or value is sympy.false:
            return E.constant(bool(value))
        if isinstance(value, sympy.Integer):
            return E.integer(int(value))
        if isinstance(value, sympy.Float):
            return E.constant(float(value))
    raise InternalError(f"cannot read sympy expression {value!r} back into graphlift's algebra")


def _function(name: str) -> type[sympy.Function]:
    found = _FUNCTIONS.get(name)
    if found is None:
        found = _FUNCTIONS[name] = sympy.Function(name)
    return found


def _convert(expr: Expr | Sym) -> sympy.Basic:
    if isinstance(expr, Sym):
        return sympy.Symbol(expr.name, integer=True)
    if isinstance(expr, Const):
        return (
            sympy.true
            if expr.value is True
            else sympy.false
            if expr.value is False
            else sympy.Float(expr.value)
        )
    if isinstance(expr, Poly):
        if expr.const is not None:
            return sympy.Integer(expr.const)
        total = sympy.Integer(0)
        for mono, coeff in expr.terms:
            term: sympy.Basic = sympy.Integer(coeff)
            for factor, power in mono:
                term = term * _convert(factor) ** power
            total = total + term
        return total
    return _convert_op(expr)


def _convert_op(op: Op) -> sympy.Basic:
    args = [_convert(a) for a in op.args]
    if op.name == "ge":
        return sympy.Ge(args[0], 0)
    if op.name == "eq":
        return sympy.Eq(args[0], 0)
    if op.name == "not":
        return sympy.Not(args[0])
    if op.name == "and":
        return sympy.And(*args)
    if op.name == "or":
        return sympy.Or(*args)
    return _function(op.name.capitalize() + op.payload.capitalize())(*args)
