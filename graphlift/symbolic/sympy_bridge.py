"""The sympy boundary: what torch's own Python code reads from ``node.expr``.

torch's refs and meta code look at ``node.expr`` in a few places
(``isinstance(expr, sympy.Symbol)`` in ``torch._check_is_size``,
``sympy.Integer`` in ``is_concrete_int``) and hand it back to
``node.shape_env._maybe_evaluate_static``. Symbols and constants become the
real sympy objects; anything compound becomes an :class:`Opaque` atom that
only remembers its text. We convert lazily, cache both directions, and never
do arithmetic in sympy.
"""

from __future__ import annotations

import sympy  # type: ignore[import-untyped]

from graphlift.errors import InternalError
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Const, Expr, Poly
from graphlift.symbolic.printer import to_python

_TO_SYMPY: dict[Expr, sympy.Basic] = {}
_FROM_SYMPY: dict[sympy.Basic, Expr] = {}


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


class Opaque(sympy.Expr):  # type: ignore[misc]
    """A compound graphlift expression as torch code holds it: by name only.

    torch's Python code never needs to look inside a compound ``node.expr``
    (it checks for a bare ``Symbol`` or ``Integer`` and otherwise hands the
    value back to our ShapeEnv), so building real sympy trees — slow for big
    polynomials — is not worth it. Prints as the Python text of the expression.
    """

    def __new__(cls, text: str) -> Opaque:
        obj = sympy.Expr.__new__(cls)
        obj._text = text
        return obj  # type: ignore[no-any-return]

    def _hashable_content(self) -> tuple[str]:
        return (self._text,)

    def _sympystr(self, printer: object) -> str:
        return self._text  # type: ignore[no-any-return]

    @property
    def free_symbols(self) -> set[sympy.Symbol]:
        return set()


def _convert(expr: Expr) -> sympy.Basic:
    if isinstance(expr, Const):
        if expr.kind == "bool":
            return sympy.true if expr.value else sympy.false
        return sympy.Float(expr.value)
    if isinstance(expr, Poly) and expr.const is not None:
        return sympy.Integer(expr.const)
    name = E.as_symbol(expr)
    if name is not None:
        return sympy.Symbol(name, integer=True)
    return Opaque(to_python(expr))
