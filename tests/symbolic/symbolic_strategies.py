"""Hypothesis strategies for shape expressions, ranges and assignments."""

from __future__ import annotations

import math

from hypothesis import strategies as st

from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Expr, Poly
from graphlift.symbolic.ranges import ValueRange

SYMBOLS = ("s0", "s1", "s2")


def leaves() -> st.SearchStrategy[Poly]:
    return st.one_of(
        st.sampled_from([E.symbol(n) for n in SYMBOLS]),
        st.integers(-4, 6).map(E.integer),
    )


def _binary(children: st.SearchStrategy[Poly]) -> st.SearchStrategy[Poly]:
    ops = st.sampled_from([E.add, E.sub, E.mul, E.floordiv, E.mod, E.maximum, E.minimum])
    return st.tuples(ops, children, children).map(lambda t: t[0](t[1], t[2]))


def int_exprs() -> st.SearchStrategy[Poly]:
    return st.recursive(leaves(), _binary, max_leaves=6)


def comparisons() -> st.SearchStrategy[Expr]:
    ops = st.sampled_from([E.ge, E.gt, E.le, E.lt, E.eq, E.ne])
    return st.tuples(ops, int_exprs(), int_exprs()).map(lambda t: t[0](t[1], t[2]))


def bool_exprs() -> st.SearchStrategy[Expr]:
    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            children.map(E.logical_not),
            st.tuples(children, children).map(lambda t: E.logical_and(*t)),
            st.tuples(children, children).map(lambda t: E.logical_or(*t)),
        )

    return st.recursive(comparisons(), extend, max_leaves=3)


@st.composite
def ranges(draw: st.DrawFn) -> dict[str, ValueRange]:
    found = {}
    for name in SYMBOLS:
        lower = draw(st.integers(-3, 4))
        upper = draw(st.one_of(st.integers(lower, lower + 8), st.just(math.inf)))
        found[name] = ValueRange(lower, upper)
    return found


def assignments(bounds: dict[str, ValueRange]) -> st.SearchStrategy[dict[str, int]]:
    def within(r: ValueRange) -> st.SearchStrategy[int]:
        upper = int(r.upper) if r.upper != math.inf else int(r.lower) + 30
        return st.integers(int(r.lower), upper)

    return st.fixed_dictionaries({name: within(r) for name, r in bounds.items()})
