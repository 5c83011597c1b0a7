"""Our ``SymNode``: torch's SymNode protocol over graphlift's algebra.

``torch.SymInt(node)`` / ``SymFloat`` / ``SymBool`` accept any object that
answers the protocol torch's C++ (``PythonSymNodeImpl``) and Python
(``torch.fx.experimental.sym_node``'s magic methods, ``torch._refs``) call:
arithmetic (``add``, ``int_floordiv``, ``sym_max``, ``sym_sum``, ...),
comparisons and boolean ops returning new nodes, layout predicates
(``is_contiguous(sizes, strides)``, ...), the questions that force a value
(``guard_int``/``guard_bool``/``guard_float``, ``expect_true``,
``guard_size_oblivious``, ``guard_or_false``/``guard_or_true``,
``statically_known_true``), and introspection (``is_int``, ``maybe_as_int``,
``has_hint``, ``expr``, ``_hint``, ``shape_env``).

A node is immutable: its expression (``symbolic_expr``, ours; ``expr`` is the
sympy rendering torch code inspects), its Python type, and its hint — the value
on the example inputs, computed eagerly from the operands' hints with plain
Python arithmetic (None when an unbacked symbol is involved). Every question
that forces a value is delegated to the ShapeEnv, the only place guards are
recorded.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import sympy  # type: ignore[import-untyped]
import torch

from graphlift.errors import UnsupportedTraceError
from graphlift.symbolic import algebra as E
from graphlift.symbolic import layout
from graphlift.symbolic.expr import Expr, Poly, Scalar
from graphlift.symbolic.printer import to_python
from graphlift.symbolic.ranges import ROUNDING
from graphlift.symbolic.sympy_bridge import to_sympy

if TYPE_CHECKING:
    from graphlift.symbolic.shape_env import ShapeEnv

Hint = Scalar | None


def wrap(node: SymNode) -> Any:
    """The torch symbolic scalar over ``node``."""
    if node.pytype is int:
        return torch.SymInt(node)  # type: ignore[no-untyped-call]
    if node.pytype is float:
        return torch.SymFloat(node)  # type: ignore[no-untyped-call]
    return torch.SymBool(node)  # type: ignore[no-untyped-call]


def _apply(fn: Callable[..., Any], *hints: Hint) -> Hint:
    """``fn`` on the operands' hints; None when one is missing or the op fails."""
    if any(h is None for h in hints):
        return None
    try:
        result: Hint = fn(*hints)
    except (ZeroDivisionError, OverflowError, ValueError):
        return None
    return result


class SymNode:
    """A symbolic int, float or bool for torch, backed by a graphlift expression."""

    __slots__ = ("_hint", "_sympy", "pytype", "shape_env", "symbolic_expr")

    def __init__(self, expr: Expr, shape_env: ShapeEnv, pytype: type, hint: Hint) -> None:
        self.symbolic_expr = expr
        self.shape_env = shape_env
        self.pytype = pytype
        self._hint = hint if hint is None else pytype(hint)
        self._sympy: sympy.Basic | None = None

    def _new(self, expr: Expr, pytype: type, hint: Hint) -> SymNode:
        return SymNode(self.shape_env.simplify(expr), self.shape_env, pytype, hint)

    # --- introspection --------------------------------------------------------------------

    @property
    def expr(self) -> sympy.Basic:
        if self._sympy is None:
            self._sympy = to_sympy(self.symbolic_expr)
        return self._sympy

    @property
    def hint(self) -> Hint:
        return self._hint

    def has_hint(self) -> bool:
        return self._hint is not None

    def is_int(self) -> bool:
        return self.pytype is int

    def is_float(self) -> bool:
        return self.pytype is float

    def is_bool(self) -> bool:
        return self.pytype is bool

    def is_nested_int(self) -> bool:
        return False

    def nested_int(self) -> None:
        return None

    def nested_int_coeff(self) -> None:
        return None

    def is_symbolic(self) -> bool:
        return True

    def is_constant(self) -> bool:
        return E.as_scalar(self.symbolic_expr) is not None

    def maybe_as_int(self) -> int | None:
        return E.as_int(self.symbolic_expr)

    def constant_int(self) -> int | None:
        return E.as_int(self.symbolic_expr)

    def maybe_as_float(self) -> float | None:
        value = E.as_scalar(self.symbolic_expr)
        return float(value) if self.pytype is float and value is not None else None

    def maybe_as_bool(self) -> bool | None:
        value = E.as_scalar(self.symbolic_expr)
        return bool(value) if self.pytype is bool and value is not None else None

    def str(self) -> builtins.str:
        return to_python(self.symbolic_expr)

    def _graph_repr(self) -> builtins.str:
        return self.str()

    def __str__(self) -> builtins.str:
        return self.str()

    def __repr__(self) -> builtins.str:
        return f"SymNode({self.str()})"

    def clone(self) -> SymNode:
        return self

    def with_shape_env(self, shape_env: ShapeEnv) -> SymNode:
        return SymNode(self.symbolic_expr, shape_env, self.pytype, self._hint)

    # A constant is already simplified (no symbol to replace, no op to rewrite).
    def wrap_int(self, num: int) -> SymNode:
        return SymNode(E.integer(num), self.shape_env, int, num)

    def wrap_float(self, num: float) -> SymNode:
        return SymNode(E.constant(float(num)), self.shape_env, float, num)

    def wrap_bool(self, num: bool) -> SymNode:
        return SymNode(E.constant(bool(num)), self.shape_env, bool, num)

    # --- arithmetic ---------------------------------------------------------------------------

    def _int_expr(self) -> Poly:
        """The node as an integer expression (a bool counts as 0/1, as in Python)."""
        expr = self.symbolic_expr
        if self.pytype is bool:
            value = E.as_scalar(expr)
            if value is not None:
                return E.integer(int(bool(value)))
            return E.int_op("ite", (expr, E.ONE, E.ZERO))
        assert isinstance(expr, Poly), f"expected an int node, got {self}"
        return expr

    def _arith(
        self,
        other: SymNode,
        int_build: Callable[[Poly, Poly], Expr] | None,
        float_name: builtins.str | None,
        fn: Callable[[Any, Any], Any],
    ) -> SymNode:
        hint = _apply(fn, self._hint, other._hint)
        if self.pytype is not float and other.pytype is not float and int_build is not None:
            a, b = self._int_expr(), other._int_expr()
            expr = self.shape_env.derive((int_build, a, b), lambda: int_build(a, b))
            return SymNode(expr, self.shape_env, int, hint)
        if float_name is None:
            raise UnsupportedTraceError(f"symbolic float operation {fn.__name__} is not supported")
        left, right = self.symbolic_expr, other.symbolic_expr
        return self._new(E.float_op(float_name, left, right), float, hint)

    def add(self, other: SymNode) -> SymNode:
        return self._arith(other, E.add, "fadd", operator.add)

    def sub(self, other: SymNode) -> SymNode:
        if self.pytype is float or other.pytype is float:  # a - b == a + (-b)
            hint = _apply(operator.sub, self._hint, other._hint)
            negated = E.float_op("fneg", other.symbolic_expr)
            return self._new(E.float_op("fadd", self.symbolic_expr, negated), float, hint)
        return self._arith(other, E.sub, None, operator.sub)

    def _with_hint(self, hint: Hint) -> SymNode:
        return SymNode(self.symbolic_expr, self.shape_env, self.pytype, hint)

    def mul(self, other: SymNode) -> SymNode:
        return self._arith(other, E.mul, "fmul", operator.mul)

    def mod(self, other: SymNode) -> SymNode:
        return self._arith(other, E.mod, None, operator.mod)

    def int_floordiv(self, other: SymNode) -> SymNode:
        if self.pytype is float or other.pytype is float:
            quotient = self.float_truediv(other)
            floored = E.to_float(E.to_int("floor", quotient.symbolic_expr))
            return self._new(floored, float, _apply(operator.floordiv, self._hint, other._hint))
        return self._arith(other, E.floordiv, None, operator.floordiv)

    floordiv = int_floordiv

    def float_truediv(self, other: SymNode) -> SymNode:
        hint = _apply(operator.truediv, self._hint, other._hint)
        return self._new(E.truediv(self.symbolic_expr, other.symbolic_expr), float, hint)

    truediv = int_truediv = float_truediv

    def pow_by_natural(self, other: SymNode) -> SymNode:
        return self._arith(other, E.pow_int, "fpow", operator.pow)

    def float_pow(self, other: SymNode) -> SymNode:
        hint = _apply(lambda a, b: float(a) ** float(b), self._hint, other._hint)
        return self._new(E.float_op("fpow", self.symbolic_expr, other.symbolic_expr), float, hint)

    def pow(self, other: SymNode) -> SymNode:
        if self.pytype is float or other.pytype is float:
            return self.float_pow(other)
        return self.pow_by_natural(other)

    def _two_to_the(self) -> SymNode:
        hint = _apply(lambda b: 2**b, self._hint)
        return self._new(E.pow_int(E.integer(2), self._int_expr()), int, hint)

    def lshift(self, other: SymNode) -> SymNode:
        return self.mul(other._two_to_the())  # a << b == a * 2**b

    def rshift(self, other: SymNode) -> SymNode:
        return self.int_floordiv(other._two_to_the())  # a >> b == a // 2**b

    def sym_max(self, other: SymNode) -> SymNode:
        return self._arith(other, E.maximum, "fmax", max)

    def sym_min(self, other: SymNode) -> SymNode:
        return self._arith(other, E.minimum, "fmin", min)

    def sym_sum(self, args: Sequence[SymNode]) -> SymNode:
        if all(a.pytype is not float for a in args):
            hints = [a._hint for a in args]
            hint = None if any(h is None for h in hints) else sum(h for h in hints if h is not None)
            return self._new(E.sum_all(a._int_expr() for a in args), int, hint)
        total = self.wrap_int(0)
        for arg in args:
            total = total.add(arg)
        return total

    def neg(self) -> SymNode:
        if self.pytype is float:
            return self._new(
                E.float_op("fneg", self.symbolic_expr), float, _apply(operator.neg, self._hint)
            )
        return self._new(E.neg(self._int_expr()), int, _apply(operator.neg, self._hint))

    def pos(self) -> SymNode:
        return self

    def abs(self) -> SymNode:
        return self.sym_max(self.neg())._with_hint(_apply(abs, self._hint))

    def sym_float(self) -> SymNode:
        return self._new(E.to_float(self.symbolic_expr), float, _apply(float, self._hint))

    def _rounding(self, name: builtins.str) -> SymNode:
        return self._new(
            E.to_int(name, self.symbolic_expr), int, _apply(ROUNDING[name], self._hint)
        )

    def sym_int(self) -> SymNode:
        return self._rounding("trunc")

    def trunc(self) -> SymNode:
        return self._rounding("trunc")

    def floor(self) -> SymNode:
        return self._rounding("floor")

    def ceil(self) -> SymNode:
        return self._rounding("ceil")

    def round(self, ndigits: int | None = None) -> SymNode:
        if ndigits is not None:
            raise UnsupportedTraceError(
                "round(x, ndigits) of a symbolic float is not supported; use round(x) or math.floor"
            )
        return self._rounding("round")

    def is_integer(self) -> SymNode:
        expr = E.float_compare(
            "feq", E.to_float(E.to_int("trunc", self.symbolic_expr)), self.symbolic_expr
        )
        return self._new(expr, bool, _apply(lambda v: float(v).is_integer(), self._hint))

    def _math(self, name: builtins.str) -> SymNode:
        fn = getattr(math, name)
        return self._new(E.float_math(name, self.symbolic_expr), float, _apply(fn, self._hint))

    def sym_sqrt(self) -> SymNode:
        return self._math("sqrt")

    def sym_log2(self) -> SymNode:
        return self._math("log2")

    def sym_cos(self) -> SymNode:
        return self._math("cos")

    def sym_sin(self) -> SymNode:
        return self._math("sin")

    # --- comparisons and booleans -------------------------------------------------------------

    def _compare(
        self, other: SymNode, name: builtins.str, fn: Callable[[Any, Any], bool]
    ) -> SymNode:
        hint = _apply(fn, self._hint, other._hint)
        if self.pytype is bool and other.pytype is bool and name in ("eq", "ne"):
            a, b = self.symbolic_expr, other.symbolic_expr
            same = E.logical_or(
                E.logical_and(a, b), E.logical_and(E.logical_not(a), E.logical_not(b))
            )
            return self._new(same if name == "eq" else E.logical_not(same), bool, hint)
        if self.pytype is float or other.pytype is float:
            return self._new(
                _float_compare(name, self.symbolic_expr, other.symbolic_expr), bool, hint
            )
        build = _INT_COMPARE[name]
        a, b = self._int_expr(), other._int_expr()
        expr = self.shape_env.derive((build, a, b), lambda: build(a, b))
        return SymNode(expr, self.shape_env, bool, hint)

    def eq(self, other: SymNode) -> SymNode:
        return self._compare(other, "eq", operator.eq)

    def ne(self, other: SymNode) -> SymNode:
        return self._compare(other, "ne", operator.ne)

    def lt(self, other: SymNode) -> SymNode:
        return self._compare(other, "lt", operator.lt)

    def le(self, other: SymNode) -> SymNode:
        return self._compare(other, "le", operator.le)

    def gt(self, other: SymNode) -> SymNode:
        return self._compare(other, "gt", operator.gt)

    def ge(self, other: SymNode) -> SymNode:
        return self._compare(other, "ge", operator.ge)

    def _bool_expr(self) -> Expr:
        if self.pytype is bool:
            return self.symbolic_expr
        return E.ne(self._int_expr(), E.ZERO)

    def sym_and(self, other: SymNode) -> SymNode:
        hint = _apply(lambda a, b: bool(a) and bool(b), self._hint, other._hint)
        return self._new(E.logical_and(self._bool_expr(), other._bool_expr()), bool, hint)

    def sym_or(self, other: SymNode) -> SymNode:
        hint = _apply(lambda a, b: bool(a) or bool(b), self._hint, other._hint)
        return self._new(E.logical_or(self._bool_expr(), other._bool_expr()), bool, hint)

    and_ = bitwise_and = sym_and
    or_ = bitwise_or = sym_or

    def bitwise_xor(self, other: SymNode) -> SymNode:
        return self.ne(other)

    def sym_not(self) -> SymNode:
        return self._new(E.logical_not(self._bool_expr()), bool, _apply(operator.not_, self._hint))

    def sym_ite(self, then: SymNode, other: SymNode) -> SymNode:
        hint = None if self._hint is None else (then._hint if self._hint else other._hint)
        return self._new(
            E.ite(self._bool_expr(), then.symbolic_expr, other.symbolic_expr), then.pytype, hint
        )

    # --- layout predicates ----------------------------------------------------------------------

    def _layout(
        self,
        build: Callable[[list[Poly], list[Poly]], Expr],
        sizes: Sequence[SymNode],
        strides: Sequence[SymNode],
    ) -> SymNode:
        size_exprs = [s._int_expr() for s in sizes]
        stride_exprs = [s._int_expr() for s in strides]
        expr = build(size_exprs, stride_exprs)
        hints = [int(n._hint) for n in (*sizes, *strides) if n._hint is not None]
        hint = None
        if len(hints) == len(sizes) + len(strides):
            concrete = [E.integer(h) for h in hints]
            hint = E.as_scalar(build(concrete[: len(sizes)], concrete[len(sizes) :]))
        return self._new(expr, bool, hint)

    def is_contiguous(self, sizes: Sequence[SymNode], strides: Sequence[SymNode]) -> SymNode:
        return self._layout(layout.is_contiguous, sizes, strides)

    def is_channels_last_contiguous_2d(
        self, sizes: Sequence[SymNode], strides: Sequence[SymNode]
    ) -> SymNode:
        return self._layout(layout.is_channels_last_contiguous, sizes, strides)

    is_channels_last_contiguous_3d = is_channels_last_contiguous_2d

    def is_channels_last_strides_2d(
        self, sizes: Sequence[SymNode], strides: Sequence[SymNode]
    ) -> SymNode:
        return self._decided_layout(layout.is_channels_last_strides, sizes, strides)

    is_channels_last_strides_3d = is_channels_last_strides_2d

    def is_non_overlapping_and_dense(
        self, sizes: Sequence[SymNode], strides: Sequence[SymNode]
    ) -> SymNode:
        return self._decided_layout(layout.is_non_overlapping_and_dense, sizes, strides)

    def is_non_overlapping_and_dense_indicator(
        self, sizes: Sequence[SymNode], strides: Sequence[SymNode]
    ) -> SymNode:
        result = self.is_non_overlapping_and_dense(sizes, strides)
        value = E.as_scalar(result.symbolic_expr)
        return self.wrap_int(int(bool(value)))

    def _decided_layout(
        self, algorithm: Callable[..., bool], sizes: Sequence[SymNode], strides: Sequence[SymNode]
    ) -> SymNode:
        """Heuristic layout questions (which memory format results get): answered
        size-obliviously where possible, as torch does, so that a size-1
        question inside a meta kernel does not guard; else with guards."""
        env = self.shape_env

        def holds(question: Expr) -> bool:
            verdict = env.decide_static(question, size_oblivious=True)
            return verdict if verdict is not None else env.guard_or(question, False)

        answer = algorithm([s._int_expr() for s in sizes], [s._int_expr() for s in strides], holds)
        return self.wrap_bool(answer)

    # --- questions that force a value (delegated to the ShapeEnv) ---------------------------------

    def guard_int(self, file: builtins.str = "", line: int = 0) -> int:
        return int(self.shape_env.evaluate(self.symbolic_expr, hint=self._hint))

    def guard_float(self, file: builtins.str = "", line: int = 0) -> float:
        return float(self.shape_env.evaluate(self.symbolic_expr, hint=self._hint))

    def guard_bool(self, file: builtins.str = "", line: int = 0) -> bool:
        """Called by torch's C++ code (Python's ``bool(sym)`` arrives at
        :meth:`bool_`). Outside an op's metadata computation that is a tensor's
        layout being computed (``_compute_contiguous`` asks "size == 1?" to
        skip a dim): see :meth:`ShapeEnv.layout_verdict`."""
        verdict = self.shape_env.layout_verdict(self._bool_expr())
        if verdict is not None:
            return verdict
        return self.bool_()

    def int_(self) -> int:
        return self.guard_int()

    def bool_(self) -> bool:
        return bool(self.shape_env.evaluate(self._bool_expr(), hint=self._hint))

    def evaluate(self, size_oblivious: bool = False) -> Scalar:
        return self.shape_env.evaluate(
            self.symbolic_expr, hint=self._hint, size_oblivious=size_oblivious
        )

    def expect_true(self, file: builtins.str = "", line: int = 0) -> bool:
        return self.shape_env.expect_true(self._bool_expr(), hint=self._hint)

    def expect_size(self, file: builtins.str = "", line: int = 0) -> bool:
        return self.shape_env.expect_true(E.ge(self._int_expr(), E.ZERO))

    def guard_size_oblivious(self, file: builtins.str = "", line: int = 0) -> bool:
        env = self.shape_env
        return bool(env.evaluate(self._bool_expr(), hint=self._hint, size_oblivious=True))

    # torch's C++ code calls these two directly (Python's ``guard_or_false``
    # goes through ``evaluate_sym_node``): outside an op, that is the layout
    # computation of a tensor (``is_contiguous`` skipping size-1 dims).
    def guard_or_false(self, file: builtins.str = "", line: int = 0) -> bool:
        return self.shape_env.guard_or(self._bool_expr(), False, hint=self._hint, layout=True)

    def guard_or_true(self, file: builtins.str = "", line: int = 0) -> bool:
        return self.shape_env.guard_or(self._bool_expr(), True, hint=self._hint, layout=True)

    def statically_known_true(self, file: builtins.str = "", line: int = 0) -> bool:
        return self.shape_env.statically_known_true(self._bool_expr())


_INT_COMPARE: dict[str, Callable[[Poly, Poly], Expr]] = {
    "eq": E.eq,
    "ne": E.ne,
    "lt": E.lt,
    "le": E.le,
    "gt": E.gt,
    "ge": E.ge,
}


def _float_compare(name: str, a: Expr, b: Expr) -> Expr:
    if name in ("eq", "ne"):
        equal = E.float_compare("feq", a, b)
        return equal if name == "eq" else E.logical_not(equal)
    if name in ("gt", "ge"):
        a, b = b, a
    return E.float_compare("flt" if name in ("lt", "gt") else "fle", a, b)
