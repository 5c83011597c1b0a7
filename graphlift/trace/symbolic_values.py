"""Symbolic sizes as graph values.

When a model passes a symbolic size to an op (``x.view(b, t * 2)``), the graph
needs a node computing it from the inputs. Each symbol is bound to an input
dimension and becomes ``aten.sym_size.int(x, dim)`` the first time it is needed;
an expression over symbols becomes ``operator`` nodes over those (``mul``,
``add``, ``floordiv``...), built once per expression and reused.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch

from graphlift.errors import ExportError, InternalError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import EMPTY_MONO, Op, Poly, Sym

SIZE_OPERATORS: dict[str, Callable[..., Any]] = {
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "max": torch.sym_max,
    "min": torch.sym_min,
}


class SymbolicValues:
    """Nodes for symbolic sizes, built on demand in ``graph``."""

    def __init__(self, graph: Graph, shape_env: ShapeEnv) -> None:
        self.graph = graph
        self.shape_env = shape_env
        self.bindings: dict[str, tuple[Node, int | None]] = {}  # symbol -> (input, dim)
        self._nodes: dict[Any, tuple[Any, Any]] = {}  # expression -> (node or int, SymInt value)

    def bind(self, symbol: str, placeholder: Node, dim: int | None) -> None:
        """``symbol`` is ``placeholder``'s size at ``dim``, or the (int) input itself for None."""
        self.bindings.setdefault(symbol, (placeholder, dim))

    def node_for(self, value: torch.SymInt) -> Any:
        """A node argument computing ``value`` (or a plain int when it is known)."""
        expr = self.shape_env.simplify(value.node.symbolic_expr)
        return self._expression(expr)[0]

    def _expression(self, expr: Any) -> tuple[Any, Any]:
        known = self._nodes.get(expr)
        if known is not None:
            return known
        if not isinstance(expr, Poly):
            raise ExportError(f"a {getattr(expr, 'kind', 'non-integer')} symbolic value reached an op; "
                              "only integer sizes are supported so far")  # fmt: skip
        if expr.const is not None:
            return expr.const, expr.const
        total: tuple[Any, Any] | None = None
        for mono, coeff in sorted(expr.terms, key=lambda term: repr(term[0])):
            term = self._monomial(mono, coeff)
            total = term if total is None else self._apply(operator.add, total, term)
        if total is None:
            raise InternalError(f"the non-constant size {expr} has no terms")
        self._nodes[expr] = total
        return total

    def _monomial(self, mono: Any, coeff: int) -> tuple[Any, Any]:
        if mono == EMPTY_MONO:
            return coeff, coeff
        product: tuple[Any, Any] | None = None
        for factor, power in sorted(mono, key=lambda item: item[0].sort_key):
            base = self._factor(factor)
            for _ in range(power):
                product = base if product is None else self._apply(operator.mul, product, base)
        if product is None:
            raise InternalError(f"empty monomial {mono}")
        return product if coeff == 1 else self._apply(operator.mul, product, (coeff, coeff))

    def _factor(self, factor: Sym | Op) -> tuple[Any, Any]:
        if isinstance(factor, Sym):
            return self._symbol(factor.name)
        function = SIZE_OPERATORS.get(factor.name)
        if function is None:
            raise ExportError(f"the symbolic size operation {factor.name!r} cannot be recorded yet")
        operands = [self._expression(arg) for arg in factor.args]
        result = operands[0]
        for operand in operands[1:]:
            result = self._apply(function, result, operand)
        return result

    def _symbol(self, name: str) -> tuple[Any, Any]:
        known = self._nodes.get(("symbol", name))
        if known is not None:
            return known
        binding = self.bindings.get(name)
        if binding is None:
            raise ExportError(
                f"symbol {name} is not bound to any input dimension; this is a bug in graphlift"
            )
        placeholder, dim = binding
        if dim is None:  # a dynamic int input: the placeholder is the value
            self._nodes[("symbol", name)] = (placeholder, placeholder.meta["val"])
            return placeholder, placeholder.meta["val"]
        value = placeholder.meta["val"].shape[dim]
        node = self.graph.call_function(torch.ops.aten.sym_size.int, (placeholder, dim))
        node.meta["val"] = value
        self._nodes[("symbol", name)] = (node, value)
        return node, value

    def _apply(
        self, function: Callable[..., Any], left: tuple[Any, Any], right: tuple[Any, Any]
    ) -> tuple[Any, Any]:
        value = function(left[1], right[1])
        if isinstance(left[0], int) and isinstance(right[0], int):
            return value, value
        node = self.graph.call_function(function, (left[0], right[0]))
        node.meta["val"] = value
        return node, value
