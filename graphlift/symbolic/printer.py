"""Printing expressions as Python source, deterministically.

The text is valid Python over the symbol names (or over the input sources a
caller substitutes for them, such as ``x.size()[0]``), so a guard can run as an
input check and be stored in an archive. :mod:`.parser` reads it back to the
same expression. Terms are ordered by degree and then by symbol (``s2`` before
``s10``); nothing depends on hashing or set order.
"""

from __future__ import annotations

from collections.abc import Mapping

from graphlift.symbolic.expr import (
    EMPTY_MONO,
    Const,
    Expr,
    Mono,
    Op,
    Poly,
    Sym,
    _mono_key,
    integer,
    lone_factor,
    poly_from,
    use_printer,
)

# Operator precedence (higher binds tighter), as Python's grammar has it.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _POW, _ATOM = range(9)

_INFIX = {"floordiv": ("//", _MUL), "mod": ("%", _MUL), "truediv": ("/", _MUL)}
_INFIX_FLOAT = {"fadd": (" + ", _ADD), "fmul": ("*", _MUL)}
_CALLS = {
    "max": "max",
    "min": "min",
    "fmax": "max",
    "fmin": "min",
    "float": "float",
    "trunc": "math.trunc",
    "floor": "math.floor",
    "ceil": "math.ceil",
    "round": "round",
}


def to_python(expr: Expr, names: Mapping[str, str] | None = None) -> str:
    """``expr`` as a Python expression; ``names`` renames symbols (to input sources)."""
    return _Printer(names or {}).show(expr, 0)


class _Printer:
    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = names

    def show(self, expr: Expr, context: int) -> str:
        text, precedence = self.render(expr)
        return f"({text})" if precedence < context else text

    def render(self, expr: Expr) -> tuple[str, int]:
        if isinstance(expr, Poly):
            return self.poly(expr)
        if isinstance(expr, Const):
            return repr(expr.value), _ATOM
        return self.op(expr)

    def poly(self, p: Poly) -> tuple[str, int]:
        if p.const is not None:
            return str(p.const), (_ATOM if p.const >= 0 else _UNARY)
        lone = lone_factor(p)
        if lone is not None:
            if isinstance(lone, Sym):
                return self.names.get(lone.name, lone.name), _ATOM
            return self.op(lone)
        ordered = sorted(p.terms, key=lambda t: (_mono_key(t[0]), t[1]))
        # Constant term last: "s0 + 1", not "1 + s0".
        ordered = [t for t in ordered if t[0]] + [t for t in ordered if not t[0]]
        pieces: list[str] = []
        for index, (mono, coeff) in enumerate(ordered):
            sign = "-" if coeff < 0 else "+"
            body = self.term(mono, abs(coeff))
            if index == 0:
                pieces.append(f"-{body}" if sign == "-" else body)
            else:
                pieces.append(f" {sign} {body}")
        if len(ordered) == 1:
            return pieces[0], _term_precedence(*ordered[0])
        return "".join(pieces), _ADD

    def term(self, mono: Mono, coeff: int) -> str:
        factors = sorted(mono, key=lambda fp: fp[0].sort_key)
        parts = [] if coeff == 1 and mono else [str(coeff)]
        for factor, power in factors:
            text = self.factor(factor, _POW + 1 if power > 1 else _MUL + 1)
            parts.append(f"{text}**{power}" if power > 1 else text)
        return "*".join(parts)

    def factor(self, factor: Sym | Op, context: int) -> str:
        if isinstance(factor, Sym):
            return self.names.get(factor.name, factor.name)
        text, precedence = self.op(factor)
        return f"({text})" if precedence < context else text

    def op(self, op: Op) -> tuple[str, int]:
        name, args = op.name, op.args
        if name in _INFIX:
            symbol, prec = _INFIX[name]
            return f"{self.show(args[0], prec)} {symbol} {self.show(args[1], prec + 1)}", prec
        if name in _INFIX_FLOAT:
            symbol, prec = _INFIX_FLOAT[name]
            return symbol.join(self.show(a, prec + 1) for a in args), prec
        if name in _CALLS:
            return f"{_CALLS[name]}({', '.join(self.show(a, 0) for a in args)})", _ATOM
        if name in ("pow", "fpow"):
            return f"{self.show(args[0], _POW + 1)}**{self.show(args[1], _UNARY)}", _POW
        if name == "fvar":
            return self.names.get(op.payload, op.payload), _ATOM
        if name == "fneg":
            return f"-{self.show(args[0], _UNARY)}", _UNARY
        if name == "fmath":
            return f"math.{op.payload}({self.show(args[0], 0)})", _ATOM
        if name in ("ite", "fite"):
            cond, then, other = args
            return f"{self.show(then, _OR)} if {self.show(cond, _OR)} else {self.show(other, 0)}", 0
        return self.boolean(op)

    def boolean(self, op: Op) -> tuple[str, int]:
        name, args = op.name, op.args
        if name in ("ge", "eq"):
            assert isinstance(args[0], Poly)
            left, right, swapped = _split_signs(args[0])
            symbol = ("<=" if swapped else ">=") if name == "ge" else "=="
            return f"{self.show(left, _CMP + 1)} {symbol} {self.show(right, _CMP + 1)}", _CMP
        if name == "not":
            inner = args[0]
            if isinstance(inner, Op) and inner.name == "eq":
                return self.boolean_ne(inner)
            return f"not {self.show(inner, _NOT)}", _NOT
        if name in ("and", "or"):
            prec = _AND if name == "and" else _OR
            return f" {name} ".join(self.show(a, prec + 1) for a in args), prec
        if name in ("flt", "fle", "feq"):
            symbol = {"flt": "<", "fle": "<=", "feq": "=="}[name]
            return f"{self.show(args[0], _CMP + 1)} {symbol} {self.show(args[1], _CMP + 1)}", _CMP
        raise AssertionError(f"cannot print op {name!r}")

    def boolean_ne(self, eq: Op) -> tuple[str, int]:
        assert isinstance(eq.args[0], Poly)
        left, right, _ = _split_signs(eq.args[0])
        return f"{self.show(left, _CMP + 1)} != {self.show(right, _CMP + 1)}", _CMP


def _term_precedence(mono: Mono, coeff: int) -> int:
    """How tightly a lone printed term binds.

    ``2*s0`` and ``-2*s0`` (which Python reads as ``(-2)*s0``) are products;
    ``-s0`` and ``-s0**2`` are unary minus; ``s0**2`` is a power.
    """
    if abs(coeff) != 1 or len(mono) > 1:
        return _MUL
    if coeff < 0:
        return _UNARY
    return _POW


def _split_signs(p: Poly) -> tuple[Poly, Poly, bool]:
    """``p`` as ``left - right`` with positive coefficients on both sides.

    ``s1 - s0 - 1 >= 0`` prints as ``s1 >= s0 + 1``; a lone constant stays on
    the right (``s0 >= 2``). When every symbolic term is negative the sides swap
    and the third result is True: ``4 - s0 >= 0`` prints as ``s0 <= 4``.
    """
    positive = {m: c for m, c in p.terms if c > 0 and m}
    negative = {m: -c for m, c in p.terms if c < 0 and m}
    const = dict(p.terms).get(EMPTY_MONO, 0)
    if not positive:
        return poly_from(negative), integer(const), True
    return poly_from(positive), poly_from({**negative, EMPTY_MONO: -const}), False


use_printer(to_python)
