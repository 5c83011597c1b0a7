"""The decision procedure: tables of cases, and Hypothesis for soundness."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symbolic_strategies import assignments, bool_exprs, int_exprs, ranges

from graphlift.symbolic import algebra as E
from graphlift.symbolic import bound, decide, parse_expr
from graphlift.symbolic.expr import Expr
from graphlift.symbolic.ranges import ValueRange
from graphlift.symbolic.substitute import evaluate

SIZES = {
    "s0": ValueRange(2, math.inf),
    "s1": ValueRange(2, math.inf),
    "u0": ValueRange(0, math.inf),
}


def _expect(
    text: str, *, current: bool | None, best: bool | None = None, facts: tuple[str, ...] = ()
) -> None:
    """``current`` is what decide answers today; ``best`` what it ideally would.
    ``best`` is checked too: on every point of a grid inside the ranges that
    satisfies the facts, the expression must agree with it (True: holds
    everywhere; False: nowhere), and ``current`` may only fall short of it
    (None), never contradict it."""
    expr = parse_expr(text)
    verdict = decide(expr, SIZES, [parse_expr(f) for f in facts])
    assert verdict is current, f"{text}: {verdict}"
    assert current is None or current is best, f"{text}: current {current} contradicts best {best}"
    if best is not None:
        for point in _grid(facts):
            assert bool(evaluate(expr, point)) is best, f"{text} is not {best} at {point}"


def _grid(facts: tuple[str, ...]) -> list[dict[str, int]]:
    """Points of SIZES' ranges (each symbol up to 9) where every fact holds."""
    parsed = [parse_expr(f) for f in facts]
    names = sorted(SIZES)
    points = []
    for values in itertools.product(*(range(int(SIZES[n].lower), 10) for n in names)):
        point = dict(zip(names, values))
        if all(bool(evaluate(fact, point)) for fact in parsed):
            points.append(point)
    return points


@pytest.mark.parametrize(
    ("text", "current", "best", "facts"),
    [
        ("s0 >= 2", True, True, ()),
        ("s0 >= 3", None, None, ()),
        ("s0 == 1", False, False, ()),
        ("s0 != 0", True, True, ()),
        ("s0*s1 >= s0", True, True, ()),  # s0*(s1 - 1) >= 0 by factoring
        ("s0*s1 - s0 - s1 + 1 >= 0", True, True, ()),  # (s0 - 1)*(s1 - 1): f*q + c*q
        ("s0 // 2 >= 1", True, True, ()),
        ("s0 % 2 <= 1", True, True, ()),
        ("max(s0, s1) >= s0", True, True, ()),
        ("min(s0, 3) <= 3", True, True, ()),
        ("2*s0 == 3", False, False, ()),  # no integer solution
        ("u0 >= 1", None, None, ()),
        ("u0 >= 1", True, True, ("u0 >= s0",)),
        ("u0 < 0", False, False, ()),
        ("u0 + s0 >= 3", None, None, ()),  # u0 = 0, s0 = 2 gives 2: truly open
        ("u0 + s0 >= 2", True, True, ()),  # the sum of the lower bounds
        ("u0 == s0 + 1", True, True, ("u0 - s0 == 1",)),
        ("s0 >= s1", True, True, ("s0 - s1 >= 0",)),
        ("s0 >= s1 + 1", False, False, ("s1 >= s0",)),
        ("s0 >= 2 and s1 >= 2", True, True, ()),
        ("s0 >= 3 or s0 <= 100", True, True, ()),  # the two rays cover the range
    ],
)
def test_decide_table(
    text: str, current: bool | None, best: bool | None, facts: tuple[str, ...]
) -> None:
    _expect(text, current=current, best=best, facts=facts)


def test_decide_is_pure() -> None:
    facts = [parse_expr("s0 >= s1")]
    ranges_before = dict(SIZES)
    decide(parse_expr("s0 >= s1"), SIZES, facts)
    assert SIZES == ranges_before and facts == [parse_expr("s0 >= s1")]


def _holds(expr: Expr, values: dict[str, int]) -> bool | None:
    try:
        return bool(evaluate(expr, values))
    except (ArithmeticError, ValueError):
        return None  # undefined here (division by zero)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expr=bool_exprs(), bounds=ranges())
def test_decide_never_contradicts_evaluation(
    data: st.DataObject, expr: Expr, bounds: dict[str, ValueRange]
) -> None:
    verdict = decide(expr, bounds)
    if verdict is None:
        return
    for _ in range(5):
        values = data.draw(assignments(bounds))
        actual = _holds(expr, values)
        assert actual is None or actual is verdict, (expr, values, verdict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expr=bool_exprs(), fact=bool_exprs(), bounds=ranges())
def test_decide_with_facts_is_sound(
    data: st.DataObject, expr: Expr, fact: Expr, bounds: dict[str, ValueRange]
) -> None:
    verdict = decide(expr, bounds, [fact])
    if verdict is None:
        return
    for _ in range(8):
        values = data.draw(assignments(bounds))
        if _holds(fact, values) is not True:
            continue
        actual = _holds(expr, values)
        assert actual is None or actual is verdict, (expr, fact, values, verdict)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), expr=int_exprs(), bounds=ranges())
def test_bound_contains_every_value(
    data: st.DataObject, expr: E.Poly, bounds: dict[str, ValueRange]
) -> None:
    interval = bound(expr, bounds)
    for _ in range(5):
        values = data.draw(assignments(bounds))
        try:
            value = evaluate(expr, values)
        except ArithmeticError:
            continue
        assert interval.contains(value), (expr, values, interval)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s0*s1 == 0 or s0*s1 >= 1", True),  # b*s >= 0: the two pieces cover it
        ("s0*s1 >= 1 or s0*s1 == 0", True),
        ("s0 - 3 >= 0 or s0 == 2 or s0 <= 1", True),  # a point between two rays
        ("s0*s1 == 0 or s0*s1 >= 2", None),  # 1 is left out
        ("s0 == 0 or s1 >= 2", None),  # different polynomials cover nothing together
    ],
)
def test_a_disjunction_covering_its_range_is_decided(text: str, expected: bool | None) -> None:
    """A guard a decomposition leaves after its 0/1 exemptions (``n == 0 or n >= 1``
    for ``n = batch*seq``) holds everywhere although no disjunct does."""
    ranges = {"s0": ValueRange(0, math.inf), "s1": ValueRange(1, math.inf)}
    assert decide(parse_expr(text), ranges) is expected
