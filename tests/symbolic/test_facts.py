"""What a fact teaches (ranges, replacements) must hold wherever the fact holds."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symbolic_strategies import assignments, bool_exprs, ranges

from graphlift.symbolic import algebra as E
from graphlift.symbolic import evaluate, parse_expr
from graphlift.symbolic import facts as F
from graphlift.symbolic.expr import Expr
from graphlift.symbolic.ranges import ValueRange


def _rank(name: str) -> tuple[int, int]:
    return (int(name.startswith("u")), int(name[1:]))


@pytest.mark.parametrize(
    ("fact", "learned"),
    [
        ("s0 >= 3", "Tighten(symbol='s0', allowed=ValueRange(lower=3, upper=inf))"),
        ("2*s0 <= 7", "Tighten(symbol='s0', allowed=ValueRange(lower=-inf, upper=3))"),
        ("s0 // 4 >= 5", "Tighten(symbol='s0', allowed=ValueRange(lower=20, upper=inf))"),
        ("s0 // 4 <= 5", "Tighten(symbol='s0', allowed=ValueRange(lower=-inf, upper=23))"),
        ("s0 != 0", "Exclude(symbol='s0', value=0)"),
        ("s1 == s0", "Solve(symbol='s1', value=s0)"),
        ("u0 == s0 + 1", "Solve(symbol='u0', value=s0 + 1)"),
        ("s0 == 4", "Solve(symbol='s0', value=4)"),
        ("s0*s1 == 4", ""),  # nothing linear to solve for
        ("s0 % 2 == 0", "Pin(op=s0 % 2, value=0)"),
        ("2*((s0 + 2) // 3) == 6", "Pin(op=(s0 + 2) // 3, value=3)"),
    ],
)
def test_consequences_table(fact: str, learned: str) -> None:
    assert "; ".join(repr(c) for c in F.consequences(parse_expr(fact), _rank)) == learned


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), fact=bool_exprs(), bounds=ranges())
def test_consequences_hold_wherever_the_fact_holds(
    data: st.DataObject, fact: Expr, bounds: dict[str, ValueRange]
) -> None:
    learned = F.consequences(fact, _rank)
    for _ in range(8):
        values = data.draw(assignments(bounds))
        try:
            holds = evaluate(fact, values)
        except ArithmeticError:
            continue
        if not holds:
            continue
        for consequence in learned:
            if isinstance(consequence, F.Pin):
                op_value = evaluate(E.factor_poly(consequence.op), values)
                assert op_value == consequence.value, (fact, values, consequence)
                continue
            value = values[consequence.symbol]
            if isinstance(consequence, F.Tighten):
                assert consequence.allowed.contains(value), (fact, values, consequence)
            elif isinstance(consequence, F.Exclude):
                assert value != consequence.value, (fact, values, consequence)
            else:
                assert evaluate(consequence.value, values) == value, (fact, values, consequence)
