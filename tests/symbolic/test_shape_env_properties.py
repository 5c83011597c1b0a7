"""End-to-end soundness of a ShapeEnv: after any sequence of guards, everything it
believes still holds on the example values."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from symbolic_strategies import SYMBOLS, bool_exprs, int_exprs

from graphlift.errors import ConstraintViolationError
from graphlift.symbolic import ShapeEnv, evaluate
from graphlift.symbolic.expr import Expr


def _value(expr: Expr, hints: dict[str, int]) -> object:
    try:
        return evaluate(expr, hints)
    except ArithmeticError:
        return None


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hints=st.lists(st.integers(0, 12), min_size=len(SYMBOLS), max_size=len(SYMBOLS)),
    questions=st.lists(st.one_of(bool_exprs(), int_exprs()), min_size=1, max_size=8),
    probes=st.lists(st.one_of(bool_exprs(), int_exprs()), min_size=1, max_size=6),
)
def test_guarded_env_agrees_with_the_example_values(
    hints: list[int], questions: list[Expr], probes: list[Expr]
) -> None:
    env = ShapeEnv()
    for name, hint in zip(SYMBOLS, hints):
        assert str(env.create_symbol(hint, min=0)) == name
    values = dict(zip(SYMBOLS, hints))
    for question in questions:
        if _value(question, values) is None:
            continue  # undefined on the example (division by zero)
        try:
            answer = env.evaluate(question)
        except (ZeroDivisionError, ConstraintViolationError):
            continue
        assert answer == _value(question, values), question
    for guard in env.guards:
        assert _value(guard.expr, values) is True, guard
    for probe in (*questions, *probes):
        want = _value(probe, values)
        if want is None:
            continue
        assert _value(env.simplify(probe), values) == want, (probe, env.simplify(probe))
        if probe.kind == "bool":
            verdict = env.decide_static(probe)
            assert verdict is None or verdict == want, (probe, verdict)
    for name, value in values.items():
        assert env.range_of(name).contains(value)
