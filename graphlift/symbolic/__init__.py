"""Symbolic shapes: the algebra, value ranges, the decision procedure and ShapeEnv.

Public names::

    ShapeEnv            symbols, replacements, guards (the one place they are recorded)
    SymNode             torch's SymNode protocol over our expressions
    Guard, RuntimeAssert, Replacement, SymbolInfo   what a ShapeEnv records
    ValueRange          closed integer/float intervals
    decide(expr, ranges, facts) -> bool | None      the pure decision procedure
    parse_expr(text, symbols)   the safe parser (no eval)
    to_python(expr, names)      deterministic printing as Python
    evaluate(expr, values)      the value of an expression (checking guards on new inputs)

See docs/symbolic.md.
"""

from __future__ import annotations

from graphlift.symbolic.decide import bound, decide
from graphlift.symbolic.expr import Expr
from graphlift.symbolic.guards import Guard, Replacement, RuntimeAssert, SymbolInfo
from graphlift.symbolic.parser import parse_expr
from graphlift.symbolic.printer import to_python
from graphlift.symbolic.ranges import ValueRange
from graphlift.symbolic.shape_env import ShapeEnv
from graphlift.symbolic.substitute import evaluate
from graphlift.symbolic.sym_node import SymNode

__all__ = [
    "Expr",
    "Guard",
    "Replacement",
    "RuntimeAssert",
    "ShapeEnv",
    "SymNode",
    "SymbolInfo",
    "ValueRange",
    "bound",
    "decide",
    "evaluate",
    "parse_expr",
    "to_python",
]
