"""The safe parser: Python expression text back to a shape expression.

Reads what :mod:`.printer` writes. The text is parsed with
``ast.parse(mode="eval")`` and walked with a whitelist: numbers, names, the
arithmetic / comparison / boolean operators, ``x if c else y``, and calls of
``max``, ``min``, ``float``, ``int``, ``math.trunc/floor/ceil`` and the math
functions the algebra knows. Nothing is ever evaluated; anything else raises
:class:`~graphlift.errors.ExpressionParseError`.

``symbols`` maps names *or source texts* to expressions: a guard printed over
input sources (``x.size()[0] >= 2``) parses back when the caller passes
``{"x.size()[0]": s0}``. Bare names shaped like ``s3`` / ``u0`` are symbols.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping

from graphlift.errors import ExpressionParseError
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Expr, Poly

_SYMBOL_NAME = re.compile(r"[su]\d+$")
_FLOAT_SYMBOL_NAME = re.compile(r"uf\d+$")
_MATH_FUNCTIONS = frozenset(
    {"sqrt", "cos", "cosh", "sin", "sinh", "tan", "tanh", "asin", "acos", "atan", "log2"}
)


def parse_expr(text: str, symbols: Mapping[str, Expr] | None = None) -> Expr:
    """Parse ``text`` (Python syntax) into an expression, without evaluating anything."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionParseError(f"not a Python expression: {text!r} ({error.msg})") from None
    return _Reader(text, symbols or {}).read(tree.body)


class _Reader:
    def __init__(self, text: str, symbols: Mapping[str, Expr]) -> None:
        self.text = text
        self.symbols = symbols

    def fail(self, node: ast.AST, why: str) -> ExpressionParseError:
        return ExpressionParseError(f"{why} in shape expression {self.text!r}: {ast.unparse(node)}")

    def read(self, node: ast.expr) -> Expr:
        if self.symbols:  # unparsing every subtree is costly; only needed to match sources
            source = ast.unparse(node)
            if source in self.symbols:
                return self.symbols[source]
        method = getattr(self, f"read_{type(node).__name__}", None)
        if method is None:
            raise self.fail(node, "unsupported syntax")
        result: Expr = method(node)
        return result

    def int_arg(self, node: ast.expr) -> Poly:
        value = self.read(node)
        if not isinstance(value, Poly):
            raise self.fail(node, "expected an integer expression")
        return value

    def read_Constant(self, node: ast.Constant) -> Expr:
        if isinstance(node.value, bool | int | float):
            return E.constant(node.value)
        raise self.fail(node, "unsupported constant")

    def read_Name(self, node: ast.Name) -> Expr:
        if _SYMBOL_NAME.match(node.id):
            return E.symbol(node.id)
        if _FLOAT_SYMBOL_NAME.match(node.id):
            return E.float_symbol(node.id)
        if node.id in ("True", "False"):
            return E.constant(node.id == "True")
        raise self.fail(node, "unknown name")

    def read_UnaryOp(self, node: ast.UnaryOp) -> Expr:
        operand = self.read(node.operand)
        if isinstance(node.op, ast.Not):
            return E.logical_not(operand)
        if isinstance(node.op, ast.USub):
            return E.neg(operand) if isinstance(operand, Poly) else E.float_op("fneg", operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.fail(node, "unsupported unary operator")

    def read_BinOp(self, node: ast.BinOp) -> Expr:
        left, right = self.read(node.left), self.read(node.right)
        if isinstance(node.op, ast.Div):
            return E.truediv(left, right)
        both_int = isinstance(left, Poly) and isinstance(right, Poly)
        if both_int:
            assert isinstance(left, Poly) and isinstance(right, Poly)
            builder = _INT_BINARY.get(type(node.op))
            if builder is not None:
                return builder(left, right)
        floating = _FLOAT_BINARY.get(type(node.op))
        if floating is not None and not both_int:
            return floating(left, right)
        raise self.fail(node, "unsupported operator")

    def read_Compare(self, node: ast.Compare) -> Expr:
        parts: list[Expr] = []
        left = self.read(node.left)
        for op, comparator in zip(node.ops, node.comparators):
            right = self.read(comparator)
            parts.append(self.compare(node, op, left, right))
            left = right
        return E.logical_and(*parts)

    def compare(self, node: ast.AST, op: ast.cmpop, left: Expr, right: Expr) -> Expr:
        if isinstance(left, Poly) and isinstance(right, Poly):
            builder = _INT_COMPARE.get(type(op))
            if builder is not None:
                return builder(left, right)
        elif left.kind != "bool" and right.kind != "bool":
            swapped = isinstance(op, ast.Gt | ast.GtE)
            a, b = (right, left) if swapped else (left, right)
            name = {ast.Lt: "flt", ast.Gt: "flt", ast.LtE: "fle", ast.GtE: "fle"}.get(type(op))
            if name is not None:
                return E.float_compare(name, a, b)
            if isinstance(op, ast.Eq | ast.NotEq):
                equal = E.float_compare("feq", a, b)
                return equal if isinstance(op, ast.Eq) else E.logical_not(equal)
        raise self.fail(node, "unsupported comparison")

    def read_BoolOp(self, node: ast.BoolOp) -> Expr:
        values = [self.read(v) for v in node.values]
        if isinstance(node.op, ast.And):
            return E.logical_and(*values)
        return E.logical_or(*values)

    def read_IfExp(self, node: ast.IfExp) -> Expr:
        return E.ite(self.read(node.test), self.read(node.body), self.read(node.orelse))

    def read_Call(self, node: ast.Call) -> Expr:
        name = ast.unparse(node.func)
        if node.keywords:
            raise self.fail(node, "keyword arguments are not allowed")
        args = [self.read(a) for a in node.args]
        if name in ("max", "min") and len(args) >= 2:
            if all(isinstance(a, Poly) for a in args):
                fold = E.maximum if name == "max" else E.minimum
                result = self.int_arg(node.args[0])
                for arg in node.args[1:]:
                    result = fold(result, self.int_arg(arg))
                return result
            return E.float_op("fmax" if name == "max" else "fmin", *args)
        if len(args) != 1:
            raise self.fail(node, "unsupported call")
        if name == "float":
            return E.to_float(args[0])
        if name in ("int", "round", "math.trunc", "math.floor", "math.ceil"):
            return E.to_int({"int": "trunc", "round": "round"}.get(name, name[5:]), args[0])
        if name.startswith("math.") and name[5:] in _MATH_FUNCTIONS:
            return E.float_math(name[5:], args[0])
        raise self.fail(node, "unsupported call")


_INT_BINARY: dict[type, Callable[[Poly, Poly], Expr]] = {
    ast.Add: E.add,
    ast.Sub: E.sub,
    ast.Mult: E.mul,
    ast.FloorDiv: E.floordiv,
    ast.Mod: E.mod,
    ast.Pow: E.pow_int,
}
_FLOAT_BINARY: dict[type, Callable[[Expr, Expr], Expr]] = {
    ast.Add: lambda a, b: E.float_op("fadd", a, b),
    ast.Sub: lambda a, b: E.float_op("fadd", a, E.float_op("fneg", b)),
    ast.Mult: lambda a, b: E.float_op("fmul", a, b),
    ast.Pow: lambda a, b: E.float_op("fpow", a, b),
}
_INT_COMPARE: dict[type, Callable[[Poly, Poly], Expr]] = {
    ast.GtE: E.ge,
    ast.Gt: E.gt,
    ast.LtE: E.le,
    ast.Lt: E.lt,
    ast.Eq: E.eq,
    ast.NotEq: E.ne,
}
