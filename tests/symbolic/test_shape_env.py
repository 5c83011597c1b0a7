"""ShapeEnv: guards with the user's line, replacements, unbacked symbols, torch's entry points."""

from __future__ import annotations

import math

import pytest
import torch
from torch.fx.experimental.symbolic_shapes import (
    guard_or_false,
    guard_or_true,
    guard_size_oblivious,
    statically_known_true,
)

from graphlift.errors import ConstraintViolationError, DataDependentError
from graphlift.symbolic import ShapeEnv, ValueRange, parse_expr
from graphlift.symbolic import algebra as E


def sizes(env: ShapeEnv, *hints: int) -> list[torch.SymInt]:
    return [env.create_symbol(h, min=0, source=f"x.size()[{i}]") for i, h in enumerate(hints)]


def test_symbols_are_named_in_order_and_print() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 3, 4)
    u = env.create_unbacked_symint()
    assert (str(a), str(b), str(u)) == ("s0", "s1", "u0")
    assert str(a * b + 1) == "s0*s1 + 1"
    assert [s.name for s in env.symbols] == ["s0", "s1", "u0"]
    assert env.symbols[0].hint == 3 and env.symbols[2].hint is None


def test_undecided_question_guards_on_the_hint_with_the_users_line() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 5)
    assert bool(a > 3)  # this line is the one recorded
    (guard,) = env.guards
    assert guard.code == "x.size()[0] >= 4"
    assert guard.where is not None and guard.where.filename == __file__
    assert "assert bool(a > 3)" in guard.where.code
    assert env.range_of("s0") == ValueRange(4, math.inf)


def test_decided_question_records_nothing() -> None:
    env = ShapeEnv()
    a = env.create_symbol(5, min=2)
    assert bool(a >= 1) and not bool(a == 0) and bool(a * a >= a)
    assert env.guards == ()


def test_equality_unifies_and_remembers_where() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 4, 4)
    assert a == b
    assert str(b + 1) == "s0 + 1"
    (replacement,) = env.replacements.values()
    assert replacement.symbol == "s1" and str(replacement.value) == "s0"
    assert not replacement.is_specialization
    assert replacement.where is not None and replacement.where.filename == __file__


def test_equality_with_a_constant_specializes() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 4)
    assert int(a) == 4
    assert str(env.guards[0]) == "x.size()[0] == 4"
    assert set(env.specializations) == {"s0"}
    assert str(a + 1) == "5"


def test_guards_parse_back_over_sources() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 6, 3)
    assert a % b == 0 and a > b
    sources = {info.source: E.symbol(info.name) for info in env.symbols}
    for guard in env.guards:
        assert parse_expr(guard.code, sources) is guard.expr


def test_hint_outside_declared_range_is_a_constraint_violation() -> None:
    with pytest.raises(ConstraintViolationError, match="outside"):
        ShapeEnv().create_symbol(1, min=2, max=8, source="x.size()[0]")


def test_unbacked_guard_raises_with_expression_line_and_fix() -> None:
    env = ShapeEnv()
    u = env.create_unbacked_symint(source="y.item()")
    with pytest.raises(DataDependentError) as info:
        bool(u > 2)
    error = info.value
    assert error.expr == "y.item() >= 3"
    assert error.where is not None and __file__ in error.where
    assert "torch._check(y.item() >= 3)  # if it always holds" in error.fixes
    assert "y.item()" in str(error)


def test_torch_check_becomes_a_runtime_assert_and_decides_later_questions() -> None:
    env = ShapeEnv()
    u = env.create_unbacked_symint()
    torch._check(u >= 2)
    assert env.runtime_asserts[0].code == "u0 >= 2"
    assert env.range_of("u0") == ValueRange(2, math.inf)
    assert bool(u != 0) and bool(u > 1)
    assert env.guards == ()


def test_torch_check_with_relation_between_symbols() -> None:
    env = ShapeEnv()
    a = env.create_symbol(4, min=2)
    u = env.create_unbacked_symint()
    torch._check(u >= a)
    assert bool(u >= 1)  # from the fact u0 >= s0 and the range s0 >= 2
    assert env.guards == ()


def test_check_is_size_makes_a_size_like_symbol() -> None:
    env = ShapeEnv()
    u = env.create_unbacked_symint()
    torch._check_is_size(u)
    assert env.is_size_like("u0")
    assert env.range_of("u0").lower == 0
    assert guard_size_oblivious(u != 1)  # size-oblivious: as if u0 >= 2
    assert guard_size_oblivious(u >= 0)
    with pytest.raises(DataDependentError):
        bool(u != 1)  # ...but only for that question


def test_guard_or_false_and_true_on_unbacked_records_nothing() -> None:
    env = ShapeEnv()
    u = env.create_unbacked_symint()
    assert guard_or_false(u == 3) is False
    assert guard_or_true(u == 3) is True
    assert env.guards == () and env.runtime_asserts == ()


def test_guard_or_false_on_backed_guards() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 3)
    assert guard_or_false(a == 3) is True
    assert len(env.guards) == 1


def test_statically_known_true_never_guards() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 3)
    assert statically_known_true(a >= 0)
    assert not statically_known_true(a >= 3)
    assert env.guards == ()


def test_expect_true_on_backed_guards_like_bool() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 3)
    torch._check(a >= 2)
    assert [g.code for g in env.guards] == ["x.size()[0] >= 2"]


def test_not_equal_at_the_end_of_a_range_tightens_it() -> None:
    env = ShapeEnv()
    u = env.create_unbacked_symint(size_like=True)
    torch._check(u != 0)
    assert env.range_of("u0") == ValueRange(1, math.inf)


def test_sym_float_and_truediv() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 6)
    half = a / 2
    assert isinstance(half, torch.SymFloat)
    assert str(half) == "float(s0) / 2.0"
    assert math.floor(half) == 3  # guards on the hint
    assert torch.sym_int(torch.sym_float(a)) is a or str(torch.sym_int(torch.sym_float(a))) == "s0"


def test_symbolic_max_min_ite_sum() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 3, 5)
    assert str(torch.sym_max(a, b)) == "max(s0, s1)"
    assert str(torch.sym_min(a, a + 2)) == "s0"
    assert str(torch.sym_sum([a, b, 2, a])) == "2*s0 + s1 + 2"
    # torch.sym_ite type-checks for torch's own SymNode class; the node method works.
    chosen = (a == b).node.sym_ite(a.node, b.node)
    assert str(chosen) == "s0 if s0 == s1 else s1"
    assert env.guards == ()


def test_node_expr_is_sympy_for_torch() -> None:
    import sympy

    env = ShapeEnv()
    (a,) = sizes(env, 3)
    assert isinstance(a.node.expr, sympy.Symbol)
    assert env._maybe_evaluate_static((a >= 0).node.expr) is True


def test_unbacked_float_symbols() -> None:
    env = ShapeEnv()
    (a,) = sizes(env, 6)
    f = env.create_unbacked_symfloat(source="m.item()")
    assert str(f) == "uf0" and str(a * f) == "float(s0)*uf0"
    torch._check(f > 0.5)
    assert [str(r) for r in env.runtime_asserts] == ["0.5 < m.item()"]
    assert bool(f > 0.5)
    expr = (a * f >= 3.0).node.symbolic_expr
    assert parse_expr(str(expr)) is expr
    with pytest.raises(DataDependentError, match=r"m\.item"):
        bool(f > 2.0)


def test_building_an_input_under_suppress_guards_records_nothing() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 0, 3)
    with env.suppress_guards():
        x = torch.empty_strided((a, b), (b, 1), device="meta")
    assert env.guards == () and env.replacements == {}
    assert str(x.shape[0]) == "s0"


def test_guard_or_on_a_backed_size_guards_even_when_size_oblivious() -> None:
    """guard_or_false(size == 1) on a backed size is answered from the example *and
    guarded*: squeeze keeps or drops the dim depending on it, so the answer must
    not silently carry over to other sizes (the fuzz found exactly that bug)."""
    from torch._dispatch.python import enable_python_dispatcher

    env = ShapeEnv(backed_size_oblivious=True)
    a = env.create_symbol(5, min=1, source="x.size()[0]")
    one = env.create_symbol(1, min=1, source="y.size()[0]")
    with env.suppress_guards():
        x = torch.empty_strided((a, 3), (3, 1), device="meta")
        y = torch.empty_strided((one, 3), (3, 1), device="meta")
    assert guard_or_false(a == 1) is False
    assert [g.code for g in env.guards] == ["x.size()[0] != 1"]  # guarded, so size 1 is refused
    with enable_python_dispatcher():
        z = (y + torch.empty(4, 3, device="meta")).squeeze()
        w = y.squeeze(0)
    assert tuple(z.shape) == (4, 3) and tuple(w.shape) == (3,)  # the example's own answer
    assert "y.size()[0] == 1" in [g.code for g in env.guards]
    assert str(x.shape[0]) == "s0"


def test_size_oblivious_questions_see_through_max_and_mod_at_sizes_of_two_or_more() -> None:
    """Broadcasting asks ``s == max(1, s)``; with sizes >= 2 ``max(1, s)`` is ``s``, so
    the size-oblivious answer is True (it is also the answer at 0 and 1 for ``max``,
    which the 0/1 check confirms), not a guard. Same for ``s0 % (s0*s1) != 0``."""
    env = ShapeEnv(backed_size_oblivious=True)
    s0 = env.create_symbol(5, min=0, source="x.size()[0]")
    s1 = env.create_symbol(4, min=0, source="x.size()[1]")
    x, y = s0.node.symbolic_expr, s1.node.symbolic_expr
    same = E.eq(x, E.maximum(E.ONE, x))
    assert env.decide_static(same) is None  # s0 may be 0
    assert env.decide_static(same, size_oblivious=True) is True
    remainder = E.logical_not(E.eq(E.mod(x, E.mul(x, y)), E.ZERO))
    assert env.decide_static(remainder, size_oblivious=True) is True
    assert env.guards == ()


def test_an_op_equal_to_a_constant_is_pinned_and_follows_replacements() -> None:
    env = ShapeEnv()
    a, b = sizes(env, 7, 7)
    assert (a + 2) // 3 == 3
    assert str((a + 2) // 3 + 1) == "4"
    assert a == b
    assert str((b + 2) // 3) == "3"  # s1 -> s0 re-keys the pinned op
