"""The entry points torch's own Python code calls on ``node.shape_env``: they adapt
torch's calling conventions (sympy expressions, keyword options) to a
:class:`~graphlift.symbolic.shape_env.ShapeEnv` and delegate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from graphlift.source import user_location
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Scalar
from graphlift.symbolic.ranges import ValueRange
from graphlift.symbolic.sym_node import SymNode
from graphlift.symbolic.sympy_bridge import from_sympy


class TorchEntryPoints:
    """torch's calling conventions (a part of ShapeEnv)."""

    def evaluate_sym_node(
        self: Any,
        node: SymNode,
        size_oblivious: bool = False,
        fallback_value: bool | None = None,
    ) -> Scalar:
        """torch's entry point; its ``guard_or_false``/``guard_or_true`` arrive
        here with a ``fallback_value`` and follow :meth:`guard_or`'s rules."""
        if fallback_value is not None and node.symbolic_expr.kind == "bool":
            return cast(Scalar, self.guard_or(node.symbolic_expr, fallback_value, hint=node._hint))
        return cast(
            Scalar,
            self.evaluate(
                node.symbolic_expr,
                hint=node._hint,
                size_oblivious=size_oblivious,
                fallback=fallback_value,
            ),
        )

    def _maybe_evaluate_static(self: Any, expr: object, **_options: object) -> Scalar | None:
        ours = from_sympy(expr)
        if ours.kind == "bool":
            verdict = self.decide_static(ours, size_oblivious=bool(_options.get("size_oblivious")))
            return cast("bool | None", verdict)
        return E.as_scalar(self.simplify(ours))

    def is_unbacked_symint(self: Any, symbol: object) -> bool:
        name = E.as_symbol(from_sympy(symbol))
        return name is not None and self.is_unbacked(name)

    def _constrain_range_for_size(
        self: Any, symbol: object, min: int | None = None, max: int | None = None
    ) -> None:
        name = E.as_symbol(from_sympy(symbol))
        assert name is not None
        self._size_like.add(name)
        upper = math.inf if max is None else max
        self._tighten(name, ValueRange(0 if min is None else min, upper), user_location())
        self._reset_caches()

    def constrain_range(
        self: Any, name: str, *, min: int | None = None, max: int | None = None
    ) -> None:
        """Tighten a symbol's range (``torch._check`` on a single symbol ends up here too)."""
        lower = -math.inf if min is None else min
        self._tighten(name, ValueRange(lower, math.inf if max is None else max), user_location())
        self._reset_caches()

    def guarding_hint_or_throw(self: Any, expr: object) -> Scalar:
        ours = from_sympy(expr)
        hint = self.hint_of(ours)
        if hint is None:
            raise self._data_dependent(ours)
        return cast(Scalar, hint)

    def optimization_hint(self: Any, expr: object, fallback: int | None = None) -> Scalar | None:
        hint = self.hint_of(from_sympy(expr))
        return fallback if hint is None else hint

    @contextmanager
    def ignore_fresh_unbacked_symbols(self: Any) -> Iterator[None]:
        yield
