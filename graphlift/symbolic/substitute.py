"""Rebuilding an expression with symbols replaced, and concrete evaluation.

Substitution goes back through the algebra's constructors, so the result is in
normal form again; substituting constants for every symbol therefore *is*
evaluation (:func:`evaluate`). An optional hook lets the ShapeEnv simplify each
rebuilt integer op with range knowledge (``s0 % 8`` -> ``s0`` when ``s0`` is in
``[0, 7]``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Const, Expr, Op, Poly, Scalar, Sym, lone_factor

OpHook = Callable[[Op], Expr]


def _poly_arg(x: Expr) -> Poly:
    assert isinstance(x, Poly), x
    return x


_BUILDERS: dict[str, Callable[..., Expr]] = {
    "floordiv": lambda a, b: E.floordiv(_poly_arg(a), _poly_arg(b)),
    "mod": lambda a, b: E.mod(_poly_arg(a), _poly_arg(b)),
    "max": lambda *xs: _fold(E.maximum, xs),
    "min": lambda *xs: _fold(E.minimum, xs),
    "pow": lambda a, b: E.pow_int(_poly_arg(a), _poly_arg(b)),
    "ite": E.ite,
    "fite": E.ite,
    "trunc": lambda a: E.to_int("trunc", a),
    "floor": lambda a: E.to_int("floor", a),
    "ceil": lambda a: E.to_int("ceil", a),
    "round": lambda a: E.to_int("round", a),
    "float": E.to_float,
    "truediv": E.truediv,
    "ge": lambda p: E.ge(_poly_arg(p), E.ZERO),
    "eq": lambda p: E.eq(_poly_arg(p), E.ZERO),
    "not": E.logical_not,
    "and": E.logical_and,
    "or": E.logical_or,
    "flt": lambda a, b: E.float_compare("flt", a, b),
    "fle": lambda a, b: E.float_compare("fle", a, b),
    "feq": lambda a, b: E.float_compare("feq", a, b),
}
for _name in ("fadd", "fmul", "fneg", "fpow", "fmax", "fmin"):
    _BUILDERS[_name] = lambda *xs, _n=_name: E.float_op(_n, *xs)


def _fold(fn: Callable[[Poly, Poly], Poly], items: tuple[Expr, ...]) -> Poly:
    result = _poly_arg(items[0])
    for item in items[1:]:
        result = fn(result, _poly_arg(item))
    return result


def rebuild_op(op: Op, args: tuple[Expr, ...]) -> Expr:
    """The op applied to new arguments, through the algebra's constructors."""
    if op.name == "fmath":
        return E.float_math(op.payload, args[0])
    return _BUILDERS[op.name](*args)


class Substitution:
    """Replace symbols by expressions throughout; results are memoized per node."""

    def __init__(self, mapping: Mapping[str, Expr], hook: OpHook | None = None) -> None:
        self.mapping = mapping
        self.hook = hook
        self.memo: dict[Expr, Expr] = {}

    def __call__(self, expr: Expr) -> Expr:
        if not (E.free_symbols(expr) & self.mapping.keys()) and (
            self.hook is None or not E.has_ops(expr)
        ):
            return expr
        found = self.memo.get(expr)
        if found is None:
            found = self.memo[expr] = self.compute(expr)
        return found

    def compute(self, expr: Expr) -> Expr:
        if isinstance(expr, Const):
            return expr
        if isinstance(expr, Op):
            return self.op(expr)
        if expr.const is not None:
            return expr
        values = {f: self.factor(f) for mono, _ in expr.terms for f, _ in mono}
        if all(lone_factor(value) is f for f, value in values.items()):
            return expr  # nothing changed: skip rebuilding the polynomial
        total = E.ZERO
        for mono, coeff in expr.terms:
            term = E.integer(coeff)
            for factor, power in mono:
                value = values[factor]
                term = E.mul(term, value if power == 1 else E.pow_int(value, E.integer(power)))
            total = E.add(total, term)
        return total

    def factor(self, factor: Sym | Op) -> Poly:
        if isinstance(factor, Sym):
            value = self.mapping.get(factor.name)
            return E.symbol(factor.name) if value is None else _poly_arg(value)
        return _poly_arg(self.op(factor))

    def op(self, op: Op) -> Expr:
        if op.name == "fvar":
            return self.mapping.get(op.payload, op)
        args = tuple(self(arg) for arg in op.args)
        if args == op.args:
            rebuilt: Expr = E.factor_poly(op) if op.kind == "int" else op
        else:
            rebuilt = rebuild_op(op, args)
        if self.hook is not None:
            target = rebuilt if isinstance(rebuilt, Op) else _lone_op(rebuilt)
            if target is not None:
                return self.hook(target)
        return rebuilt


def _lone_op(p: Expr) -> Op | None:
    if isinstance(p, Poly) and len(p.terms) == 1:
        ((mono, coeff),) = p.terms
        if coeff == 1 and len(mono) == 1:
            ((factor, power),) = mono
            if power == 1 and isinstance(factor, Op):
                return factor
    return None


def substitute(expr: Expr, mapping: Mapping[str, Expr]) -> Expr:
    """``expr`` with each symbol named in ``mapping`` replaced by its value."""
    return Substitution(mapping)(expr)


class EvaluationError(ArithmeticError):
    """Concrete evaluation failed (division by zero, or a symbol without a value)."""


def evaluate(expr: Expr, values: Mapping[str, Scalar]) -> Scalar:
    """The Python value of ``expr`` with every symbol given a value in ``values``."""
    mapping = {name: E.constant(values[name]) for name in E.free_symbols(expr) if name in values}
    result = E.as_scalar(substitute(expr, mapping))
    if result is None:
        missing = sorted(E.free_symbols(expr) - values.keys())
        raise EvaluationError(f"cannot evaluate {expr!r} (missing: {missing or 'none'})")
    return result
