"""Sizes 0 and 1 without specializing: check each 0/1 assumption on the op that made it.

Meta kernels ask questions that only sizes 0 and 1 leave open: broadcasting
``[b, 8] + [8]`` asks "is b 1?", a contiguity check asks "is this dim 1?".
Guarding on the example (b = 4) would narrow ``Dim("batch")`` to ``[2, ...]``
although the recorded op, ``aten.add(x, bias)``, is just as right for a batch
of 1: at run time the real kernel broadcasts, and the question only shaped the
*metadata* we computed. torch.export answers such questions as if sizes were
at least 2 and never checks (its "0/1 specialization"); a program can then be
wrong at size 1.

graphlift answers them the same way while computing one op's metadata
(:meth:`ShapeEnv.assuming_not_0_or_1`), then re-runs that op's meta kernel on
*concrete* sizes with each assumed symbol set to 0 and to 1 (the others at
their example values) and compares the result's metadata with the symbolic
result evaluated at the same sizes. If they agree, the assumption did not
matter for this op: the node is right at 0 and 1 and nothing is guarded. If
they differ (``squeeze`` keeps or drops the dim), the assumption becomes a
guard, exactly as if it had been asked without the context. A question asked
*outside* an op's metadata computation (a Python branch in the user's model)
is never assumed: it guards as usual.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import torch

from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import Scalar
from graphlift.symbolic.guards import Assumption
from graphlift.symbolic.substitute import EvaluationError

META = torch.device("meta")

aten = torch.ops.aten

# Ops documented to return "a view or a copy": which one depends on the sizes
# (reshaping an expanded mask is a view when the batch is 1, a copy otherwise),
# so their result's strides are not part of their meaning and are not compared.
VIEW_OR_COPY = frozenset({
    aten.reshape.default, aten.flatten.using_ints, aten.reshape_as.default,
    aten.contiguous.default,
})  # fmt: skip


class _Mismatch(Exception):
    """The symbolic result and the concrete one differ."""


def check_assumptions(
    env: ShapeEnv,
    kernel: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    assumptions: list[Assumption],
    *,
    per_size: bool = False,
) -> None:
    """Guard each assumption whose answer changes ``kernel``'s result at size 0
    or 1 (compared on metadata); ``per_size`` as in :func:`guard_unless_agreed`."""
    guard_unless_agreed(
        env,
        assumptions,
        lambda at: _agrees(env, kernel, args, kwargs, result, at),
        per_size=per_size,
    )


def guard_unless_agreed(
    env: ShapeEnv,
    assumptions: list[Assumption],
    agrees: Callable[[dict[str, Scalar]], bool],
    *,
    per_size: bool = False,
) -> None:
    """The 0/1 bookkeeping both checks share (this module's per-op metadata check,
    ``decompose/zero_one.py``'s numeric one): ``agrees({s: v})`` says whether
    the result is right with symbol ``s`` at size ``v``. An assumption whose
    symbols all agree at 0 and 1 needs nothing; any other (and one that needs a
    guard for larger sizes anyway) is guarded with the sizes that check out
    exempted: of the symbols that check out at both sizes, or with ``per_size``
    each (symbol, size) that checks out on its own (``b == 1`` where ``b == 0``
    does not). Export's per-op check is not per size: there a size that checks out
    alone is decided by the second trace (``export/small_sizes.py``), which keeps
    ``x + y`` unifying its two dims as torch.export does; a decomposition must not
    add a guard, so it keeps every size it checked, alone and jointly (sizes 0/1
    of two or three symbols at once, where the fact fails only together). Joint
    exemptions at export would leave ``x + y`` under ``Dim.AUTO`` with two dims
    and a disjunction instead of one dim, unlike torch.export."""
    symbols = sorted({name for a in assumptions for name in a.symbols})
    in_range = [(n, v) for n in symbols for v in (0, 1) if env.range_of(n).contains(v)]
    fine = frozenset(pair for pair in in_range if agrees({pair[0]: pair[1]}))
    whole = frozenset(n for n in symbols if all(p in fine for p in in_range if p[0] == n))
    joint_checked: dict[frozenset[tuple[str, int]], bool] = {}
    for assumption in assumptions:
        if assumption.needs_guard or not assumption.symbols <= whole:
            # The sizes that checked out stay exempt also when another symbol of
            # the same fact disagreed: ``b*t*k != 0`` with ``k`` the culprit
            # must not refuse ``b == 0``, where the op was checked to be right.
            exempt = frozenset(
                (n, v) for n, v in fine
                if n in assumption.symbols and (per_size or n in whole)
            )  # fmt: skip
            points = _joint_points(env, assumption, in_range) if per_size else []
            for point in points:
                if point not in joint_checked:
                    joint_checked[point] = agrees(dict(point))
            joint = frozenset(point for point in points if joint_checked[point])
            env.guard_assumption(assumption, exempt=exempt, joint=joint)


def _joint_points(
    env: ShapeEnv, assumption: Assumption, in_range: list[tuple[str, int]]
) -> list[frozenset[tuple[str, int]]]:
    """Sizes 0 and 1 of two or more of the assumption's symbols at once where its
    fact fails (``h*w != 1`` fails only at ``h == w == 1``): each symbol checked
    alone, the others at their examples, never sees them."""
    names = sorted(assumption.symbols)
    if not 2 <= len(names) <= 3:
        return []
    sizes = [[None, *(v for m, v in in_range if m == n)] for n in names]
    points = []
    for values in itertools.product(*sizes):
        point = frozenset((n, v) for n, v in zip(names, values) if v is not None)
        if (
            len(point) >= 2
            and env.holds_at(assumption.fact, dict(point), simplified=False) is not True
        ):
            points.append(point)
    return points


def _agrees(
    env: ShapeEnv,
    kernel: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
    at: dict[str, Scalar],
) -> bool:
    try:
        concrete_args = _concrete(env, args, at)
        concrete_kwargs = _concrete(env, kwargs, at)
        expected = _concrete(env, result, at)
    except (EvaluationError, ZeroDivisionError, RuntimeError, ValueError):
        return False  # e.g. a negative size at this value: the symbolic result is not valid there
    try:
        actual = kernel(*concrete_args, **concrete_kwargs)
    except Exception:
        return False  # the op refuses these sizes (eager too): the guard refuses them first
    try:
        _compare(expected, actual, strides=kernel not in VIEW_OR_COPY)
    except _Mismatch:
        return False
    return True


def _concrete(env: ShapeEnv, value: Any, at: dict[str, Scalar]) -> Any:
    """``value`` with every symbolic size evaluated at the example values and ``at``."""
    if isinstance(value, torch.Tensor):
        sizes = [number_at(env, s, at) for s in value.shape]
        strides = [number_at(env, s, at) for s in value.stride()]
        if any(s < 0 for s in sizes):
            raise ValueError("negative size")
        offset = number_at(env, value.storage_offset(), at)
        extent = offset + sum((s - 1) * abs(st) for s, st in zip(sizes, strides)) + 1
        base = torch.empty(0 if 0 in sizes else extent, dtype=value.dtype, device=META)
        return base.as_strided(sizes, strides, offset if extent > 0 else 0)
    if isinstance(value, torch.SymInt | torch.SymBool | torch.SymFloat):
        return number_at(env, value, at)
    if isinstance(value, tuple | list):
        return type(value)(_concrete(env, v, at) for v in value)
    if isinstance(value, dict):
        return {k: _concrete(env, v, at) for k, v in value.items()}
    return value


def number_at(env: ShapeEnv, value: Any, at: Mapping[str, Scalar]) -> Any:
    """``value`` (a symbolic int, float or bool, or a plain number) at the example
    values with ``at`` overriding some symbols."""
    if isinstance(value, torch.SymInt | torch.SymBool | torch.SymFloat):
        return env.value_at(value.node.symbolic_expr, at)
    return value


def _compare(expected: Any, actual: Any, *, strides: bool) -> None:
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            raise _Mismatch
        if expected.shape != actual.shape or expected.dtype != actual.dtype:
            raise _Mismatch
        if strides and actual.numel() > 0:
            for size, a, b in zip(actual.shape, expected.stride(), actual.stride()):
                if size > 1 and a != b:
                    raise _Mismatch
        return
    if isinstance(expected, tuple | list):
        if not isinstance(actual, tuple | list) or len(expected) != len(actual):
            raise _Mismatch
        for e, a in zip(expected, actual):
            _compare(e, a, strides=strides)
        return
    if expected != actual:
        raise _Mismatch
