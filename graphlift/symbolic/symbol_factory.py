"""How a :class:`~graphlift.symbolic.shape_env.ShapeEnv` makes its symbols: backed ``s<k>``
for input dimensions, unbacked ``u<k>``/``uf<k>`` for data-dependent values, and the
SymInts/SymBools/SymFloats that carry them through torch.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch

from graphlift.errors import ConstraintViolationError
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Expr, Scalar
from graphlift.symbolic.guards import SymbolInfo
from graphlift.symbolic.ranges import UNBOUNDED, ValueRange
from graphlift.symbolic.sym_node import SymNode, wrap


class SymbolFactory:
    """Creating symbols (a part of ShapeEnv, which owns the fields these methods fill)."""

    def create_symbol(
        self: Any, hint: int, *, min: int = 0, max: int | None = None, source: str = ""
    ) -> torch.SymInt:
        """A backed symbol ``s<k>`` for a dynamic input dimension with example value ``hint``.

        ``source`` is how the dimension is reached from the inputs
        (``"x.size()[0]"``); guards print over it.
        """
        declared = ValueRange(min, math.inf if max is None else max)
        if not declared.contains(hint):
            raise ConstraintViolationError(
                f"example value {hint} of {source or 'a dynamic dimension'} is outside "
                f"its declared range {declared}",
                fixes=(f"use an example input whose size lies in {declared}",),
            )
        name = self._new_name("s", hint, source, declared)
        return cast(torch.SymInt, self._wrap_int(E.symbol(name), hint))

    def mark_auto(self: Any, name: str) -> None:
        """Record that symbol ``name`` is a ``Dim.AUTO`` dim's (the user let the
        program choose its range; a named Dim's range is a promise)."""
        self._auto.add(name)

    def is_auto(self: Any, name: str) -> bool:
        return name in self._auto

    def create_unbacked_symint(
        self: Any,
        *,
        min: int | None = None,
        max: int | None = None,
        size_like: bool = False,
        source: str = "",
    ) -> torch.SymInt:
        """An unbacked symbol ``u<k>`` for a data-dependent value (``.item()``, ``nonzero``)."""
        lower = 0 if size_like and min is None else -math.inf if min is None else min
        declared = ValueRange(lower, math.inf if max is None else max)
        name = self._new_name("u", None, source, declared)
        if size_like:
            self._size_like.add(name)
        return cast(torch.SymInt, self._wrap_int(E.symbol(name), None))

    def create_unbacked_symbool(self: Any, *, source: str = "") -> torch.SymBool:
        """An unbacked bool, modelled as ``u<k> == 1`` for an integer ``u<k>`` in [0, 1]."""
        name = self._new_name("u", None, source, ValueRange(0, 1))
        result = self._wrap(E.eq(E.symbol(name), E.ONE), bool, None)
        assert isinstance(result, torch.SymBool)
        return result

    def create_unbacked_symfloat(self: Any, *, source: str = "") -> torch.SymFloat:
        """An unbacked float ``uf<k>`` (``.item()`` of a floating-point tensor)."""
        name = self._new_name("uf", None, source, UNBOUNDED)
        result = self._wrap(E.float_symbol(name), float, None)
        assert isinstance(result, torch.SymFloat)
        return result

    def note_origin(self: Any, name: str, origin: str) -> None:
        """Say where unbacked ``name`` comes from (``aten.nonzero at model.py:12``), for errors."""
        self._origins[name] = origin

    def symint_of(self: Any, name: str) -> torch.SymInt:
        """The integer symbol ``name`` as a SymInt (the int behind an unbacked bool)."""
        return cast(torch.SymInt, self._wrap_int(E.symbol(name), self._hints.get(name)))

    def _new_name(
        self: Any, prefix: str, hint: int | None, source: str, declared: ValueRange
    ) -> str:
        name = f"{prefix}{self._counts[prefix]}"
        self._counts[prefix] += 1
        self._symbols[name] = SymbolInfo(name, hint, source, declared)
        self._ranges[name] = declared
        if hint is not None:
            self._hints[name] = hint
        self._reset_caches()
        return name

    def _wrap(self: Any, expr: Expr, pytype: type, hint: Scalar | None) -> Any:
        return wrap(SymNode(expr, self, pytype, hint))

    def _wrap_int(self: Any, expr: Expr, hint: int | None) -> torch.SymInt:
        result = self._wrap(expr, int, hint)
        assert isinstance(result, torch.SymInt)
        return result

    def adopt(self: Any, size: torch.SymInt) -> torch.SymInt:
        """``size`` (a SymInt of another env over the same symbols, such as the
        env this one was forked from) as a SymInt of this env."""
        node = size.node
        return cast(torch.SymInt, self._wrap_int(self.simplify(node.symbolic_expr), node._hint))
