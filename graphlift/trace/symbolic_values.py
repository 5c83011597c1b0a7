"""Symbolic sizes as graph values.

When a model passes a symbolic size to an op (``x.view(b, t * 2)``), the graph
needs a node computing it from the inputs. Each symbol is bound to an input
dimension and becomes ``aten.sym_size.int(x, dim)`` the first time it is needed;
an expression over symbols becomes ``operator`` nodes over those (``mul``,
``add``, ``floordiv``...), built once per expression and reused.

Data-dependent (unbacked) symbols are bound the same way: a size of a
``nonzero`` result to ``sym_size`` of that node, the value of ``.item()`` to
the ``_local_scalar_dense`` node itself (:meth:`SymbolicValues.bind_value`).
Boolean facts over them (``torch._check(u0 <= 8)``) become ``operator``
comparisons feeding ``aten._assert_scalar`` (:meth:`emit_runtime_asserts`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from graphlift.errors import ExportError, InternalError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.source import user_where
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import (
    EMPTY_MONO,
    Op,
    Poly,
    Sym,
    as_scalar,
    as_symbol,
    free_symbols,
    poly_from,
)

SIZE_OPERATORS: dict[str, Callable[..., Any]] = {
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "max": torch.sym_max,
    "min": torch.sym_min,
    "round": round,  # round() of a float expression, an int
}

#: float-valued expressions (sizes divided, scaled), folded left over their operands
FLOAT_OPERATORS: dict[str, Callable[..., Any]] = {
    "truediv": operator.truediv,
    "fadd": operator.add,
    "fmul": operator.mul,
    "fpow": operator.pow,  # sdpa's scale: (1.0 / float(s2) ** 0.5) ** 0.5
    "fmax": torch.sym_max,
    "fmin": torch.sym_min,
}

#: what to do about a size operation that has no graph form yet
UNRECORDABLE_HINTS: dict[str, str] = {
    # x.narrow(0, k, n) with k = t.item() wraps a negative k: sym_ite(k < 0, k + size, k)
    "ite": " (a size chosen by a condition on data-dependent values, such as the sign of an "
    ".item() used as an index); decide the condition with torch._check, e.g. "
    "torch._check(k >= 0)",
}

FLOAT_COMPARISONS: dict[str, Callable[..., Any]] = {
    "flt": operator.lt,
    "fle": operator.le,
    "feq": operator.eq,
}


def _bool_symbol(expr: Op) -> str | None:
    """``u`` when ``expr`` is ``u - 1 == 0`` (how an unbacked bool ``u == 1`` is stored)."""
    if expr.name != "eq":
        return None
    poly = expr.args[0]
    if not isinstance(poly, Poly) or len(poly.terms) != 2:
        return None
    constant = dict(poly.terms).get(EMPTY_MONO)
    rest = [(mono, coeff) for mono, coeff in poly.terms if mono]
    if constant != -1 or len(rest) != 1 or rest[0][1] != 1:
        return None
    ((mono, _),) = rest
    return as_symbol(poly_from({mono: 1}))


class SymbolicValues:
    """Nodes for symbolic sizes, built on demand in ``graph``."""

    def __init__(self, graph: Graph, shape_env: ShapeEnv, examples: Any = None) -> None:
        self.graph = graph
        self.shape_env = shape_env
        self.examples = examples  # ExampleValues when data-dependent decisions specialize
        if examples is not None:
            shape_env.example_values = self.example_of
        self.bindings: dict[str, tuple[Node, int | None]] = {}  # symbol -> (input, dim)
        #: A phantom root (export/symbols.py) is (size - offset) // scale of its binding.
        self._derived: dict[str, tuple[int, int]] = {}  # symbol -> (scale, offset)
        self._nodes: dict[Any, tuple[Any, Any]] = {}  # expression -> (node or int, SymInt value)
        self._emitted_asserts = 0
        self._values: dict[str, tuple[Node, Any]] = {}  # unbacked symbol -> node computing it
        self._bools: dict[str, tuple[Node, Any]] = {}  # unbacked bool u (u == 1) -> its node
        self._offsets: dict[str, Node] = {}  # unbacked storage offset -> the view having it
        self._lift: Callable[[Node], Node] | None = None

    @contextmanager
    def scope(self, graph: Graph, lift: Callable[[Node], Node]) -> Iterator[None]:
        """Build nodes in a control-flow body's ``graph`` while the block runs:
        outer nodes are lifted into it, and symbols bound inside are forgotten after."""
        saved = (self.graph, self._nodes, self._lift, self.bindings, self._values, self._bools,
                 self._offsets)  # fmt: skip
        self.graph, self._nodes, self._lift = graph, {}, lift
        self.bindings, self._values, self._bools, self._offsets = (
            dict(self.bindings),
            dict(self._values),
            dict(self._bools),
            dict(self._offsets),
        )
        try:
            yield
        finally:
            (self.graph, self._nodes, self._lift, self.bindings, self._values, self._bools,
             self._offsets) = saved  # fmt: skip

    def _local(self, node: Node) -> Node:
        if self._lift is None or node.graph is self.graph:
            return node
        return self._lift(node)

    def bind(
        self, symbol: str, placeholder: Node, dim: int | None, scale: int = 1, offset: int = 0
    ) -> None:
        """``symbol`` is ``placeholder``'s size at ``dim``, or the (int) input itself for
        None; with a scale or offset, the size is ``scale * symbol + offset``."""
        if symbol not in self.bindings and (scale, offset) != (1, 0):
            self._derived[symbol] = (scale, offset)
        self.bindings.setdefault(symbol, (placeholder, dim))

    def bind_sizes(self, result: Any) -> None:
        """Bind each new unbacked size of an op's result (``nonzero``'s row count)
        to ``sym_size`` of the result node, and a new unbacked storage offset (a
        slice from a data-dependent start) to its ``sym_storage_offset``."""
        values = result if isinstance(result, tuple | list) else (result,)
        for value in values:
            node = getattr(value, "node", None)
            if not isinstance(value, torch.Tensor) or not isinstance(node, Node):
                continue
            for dim, size in enumerate(value.shape):
                if isinstance(size, torch.SymInt):
                    name = as_symbol(size.node.symbolic_expr)
                    if name is not None and not self.is_bound(name):
                        self.bind(name, node, dim)
            offset = value.storage_offset()
            if isinstance(offset, torch.SymInt):
                name = as_symbol(offset.node.symbolic_expr)
                if name is not None and not self.is_bound(name):
                    self._offsets[name] = node

    def example_of(self, symbol: str) -> Any:
        """The value of unbacked ``symbol`` on the example inputs, or None."""
        if self.examples is None:
            return None
        if symbol in self._values or symbol in self._bools:
            node = (self._values.get(symbol) or self._bools[symbol])[0]
            value = self.examples.value_of(node)
            return int(value) if isinstance(value, bool) else value
        if symbol in self._offsets:
            view = self.examples.value_of(self._offsets[symbol])
            return int(view.storage_offset()) if isinstance(view, torch.Tensor) else None
        binding = self.bindings.get(symbol)
        if binding is None:
            return None
        tensor = self.examples.value_of(binding[0])
        if not isinstance(tensor, torch.Tensor) or binding[1] is None:
            return None
        scale, offset = self._derived.get(symbol, (1, 0))
        return (int(tensor.shape[binding[1]]) - offset) // scale

    def bind_value(self, symbol: str, node: Node, value: Any) -> None:
        """``node`` computes the data-dependent ``symbol`` itself (``.item()``);
        ``value`` is its symbolic value (for a bool ``u == 1``, the int ``u``)."""
        self._values.setdefault(symbol, (node, value))

    def is_bound(self, symbol: str) -> bool:
        return (
            symbol in self.bindings
            or symbol in self._values
            or symbol in self._bools
            or symbol in self._offsets
        )

    def node_for(self, value: torch.SymInt | torch.SymBool | torch.SymFloat) -> Any:
        """A node argument computing ``value`` (or a plain constant when it is known)."""
        expr = self.shape_env.simplify(value.node.symbolic_expr)
        return self.expression_node(expr)

    def expression_node(self, expr: Any) -> Any:
        """A node argument computing ``expr`` (int, bool or float)."""
        return self._expression(expr)[0]

    def emit_runtime_asserts(self) -> None:
        """Record ``aten._assert_scalar`` for each runtime assert the ShapeEnv
        made since the last call (``torch._check`` on data-dependent values), as
        soon as every symbol in it has a node. Called before each recorded op,
        so a check runs before the computation that relies on it."""
        pending = self.shape_env.runtime_asserts[self._emitted_asserts :]
        for check in pending:
            if not all(self.is_bound(name) for name in free_symbols(check.expr)):
                return  # keep order: wait until its symbols exist
            condition = self.expression_node(check.expr)
            where = str(check.where).split("\n")[0] if check.where else "the traced model"
            message = f"Runtime assertion failed for expression {check.code} (from {where})"
            node = self.graph.call_function(
                torch.ops.aten._assert_scalar.default, (condition, message)
            )
            node.meta["val"] = None
            if check.where is not None:
                node.meta["stack_trace"] = check.where.stack_trace
            self._emitted_asserts += 1

    def _expression(self, expr: Any) -> tuple[Any, Any]:
        known = self._nodes.get(expr)
        if known is not None:
            return known
        if not isinstance(expr, Poly):
            result = self._non_integer(expr)
            self._nodes[expr] = result
            return result
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

    def _non_integer(self, expr: Any) -> tuple[Any, Any]:
        """Booleans (facts of runtime asserts, ``bool`` of a tensor) and floats
        (``.item()`` of a float tensor) as operator nodes."""
        value = as_scalar(expr)
        if value is not None:
            return value, value
        if isinstance(expr, Op) and expr.name in ("ge", "eq"):
            compare = operator.ge if expr.name == "ge" else operator.eq
            bool_symbol = _bool_symbol(expr)
            if bool_symbol is not None and bool_symbol in self._bools:
                node, value = self._bools[bool_symbol]
                return self._local(node), value
            return self._apply(compare, self._expression(expr.args[0]), (0, 0))
        if isinstance(expr, Op) and expr.name == "not":
            return self._apply_one(torch.sym_not, self._expression(expr.args[0]))
        if isinstance(expr, Op) and expr.name == "fneg":
            return self._apply_one(operator.neg, self._expression(expr.args[0]))
        if isinstance(expr, Op) and expr.name in ("and", "or", *FLOAT_OPERATORS):
            function = FLOAT_OPERATORS.get(expr.name) or (
                operator.and_ if expr.name == "and" else operator.or_
            )
            operands = [self._expression(arg) for arg in expr.args]
            result = operands[0]
            for operand in operands[1:]:
                result = self._apply(function, result, operand)
            return result
        if isinstance(expr, Op) and expr.name in FLOAT_COMPARISONS:
            left, right = (self._expression(arg) for arg in expr.args)
            return self._apply(FLOAT_COMPARISONS[expr.name], left, right)
        if isinstance(expr, Op) and expr.name == "float":
            return self._apply_one(torch.sym_float, self._expression(expr.args[0]))
        if isinstance(expr, Op) and expr.name == "fvar":
            return self._symbol(expr.payload)
        raise ExportError(
            f"the symbolic value {expr} cannot be recorded in the graph yet; compute it with "
            "tensor operations instead"
        )

    def bind_bool(self, symbol: str, node: Node, value: Any) -> None:
        """``node`` computes the data-dependent bool ``symbol == 1`` (``bool(t)``)."""
        self._bools.setdefault(symbol, (node, value))

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
            raise ExportError(
                f"the symbolic size operation {factor.name!r} cannot be recorded yet"
                + UNRECORDABLE_HINTS.get(factor.name, ""),
                where=user_where(),
            )
        operands = [self._expression(arg) for arg in factor.args]
        if len(operands) == 1:  # round(), float()
            return self._apply_one(function, operands[0])
        result = operands[0]
        for operand in operands[1:]:
            result = self._apply(function, result, operand)
        return result

    def _symbol(self, name: str) -> tuple[Any, Any]:
        known = self._nodes.get(("symbol", name))
        if known is not None:
            return known
        if name in self._values:
            node, value = self._values[name]
            return self._local(node), value
        if name in self._offsets:
            return self._offset(name)
        binding = self.bindings.get(name)
        if binding is None and name in self._bools:  # the int of a bool: int(b)
            node, _ = self._bools[name]
            return self._apply_one(int, (self._local(node), self.shape_env.symint_of(name)))
        if binding is None:
            raise ExportError(
                f"symbol {name} is not bound to any input dimension; this is a bug in graphlift"
            )
        placeholder, dim = binding
        if dim is None:  # a dynamic int input: the placeholder is the value
            return self._local(placeholder), placeholder.meta["val"]
        value = placeholder.meta["val"].shape[dim]
        placeholder = self._local(placeholder)
        node = self.graph.call_function(torch.ops.aten.sym_size.int, (placeholder, dim))
        node.meta["val"] = value
        result: tuple[Any, Any] = (node, value)
        if name in self._derived:
            scale, offset = self._derived[name]
            if offset:
                result = self._apply(operator.sub, result, (offset, offset))
            if scale != 1:
                result = self._apply(operator.floordiv, result, (scale, scale))
        self._nodes[("symbol", name)] = result
        return result

    def _offset(self, name: str) -> tuple[Any, Any]:
        """``sym_storage_offset`` of the view whose offset ``name`` is."""
        view = self._offsets[name]
        node = self.graph.call_function(
            torch.ops.aten.sym_storage_offset.default, (self._local(view),)
        )
        node.meta["val"] = view.meta["val"].storage_offset()
        result: tuple[Any, Any] = (node, node.meta["val"])
        self._nodes[("symbol", name)] = result
        return result

    def _apply_one(self, function: Callable[..., Any], operand: tuple[Any, Any]) -> tuple[Any, Any]:
        if not isinstance(operand[0], Node):
            value = function(operand[1])
            return value, value
        node = self.graph.call_function(function, (operand[0],))
        node.meta["val"] = operand[1] if function is int else function(operand[1])
        return node, node.meta["val"]

    def _apply(
        self, function: Callable[..., Any], left: tuple[Any, Any], right: tuple[Any, Any]
    ) -> tuple[Any, Any]:
        value = function(left[1], right[1])
        if not isinstance(left[0], Node) and not isinstance(right[0], Node):
            return value, value
        node = self.graph.call_function(function, (left[0], right[0]))
        node.meta["val"] = value
        return node, value
