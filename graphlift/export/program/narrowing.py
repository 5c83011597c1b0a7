"""Which sizes inside a declared range the recorded guards refuse.

A range narrowed at an end (``b >= 4``) shows in the symbol's range; a guard
such as ``3*b % (b // 2) == 0`` (a reshape to ``b // 2`` rows) refuses the odd
sizes in the middle, which no range shows, and ``module()`` would then refuse
sizes the user declared. So every guard on a dim's symbol alone is run on sample
sizes across the dim's range — every size of a small range; otherwise the low
end, around the example and around powers of two. A size a guard fails, or where
it is undefined (a division by zero, which ``module()``'s checks also refuse), is
*refused*;
export reports it (``ConstraintViolationError`` for a named ``Dim``, an entry in
``ep.specializations`` for ``Dim.AUTO``) with the guards' lines.

For ``Dim.AUTO`` and ``Dim.DYNAMIC`` dims a guard over several dims counts too
(``GuardTable.refusal(joint=True)``): the sizes it refuses for every sampled size of
the others from 2 are refused, the sizes it refuses at some sizes of the others (a
relation) are announced with those sizes.

Sampling finds refusals, it does not prove their absence: a guard that only
fails at, say, size 1000 of an unbounded range is still checked at run time,
just not announced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from graphlift.symbolic import ShapeEnv, ValueRange
from graphlift.symbolic.expr import free_symbols
from graphlift.symbolic.expr import symbol as symbol_expr
from graphlift.symbolic.guards import Guard
from graphlift.symbolic.printer import to_python
from graphlift.symbolic.substitute import substitute

SMALL_RANGE = 256  # ranges up to this many sizes are checked size by size
LOW_END = 40  # otherwise: this many sizes from the lower bound, ...
POWERS_OF_TWO = 20  # ... and 2**k - 1, 2**k, 2**k + 1 up to this k
JOINT_LARGE = 2**40  # and this many times (beyond every sample size: a relation holds there)


@dataclass(frozen=True)
class Refusal:
    """Sample sizes of one dim's range that some guard refuses."""

    refused: tuple[int, ...]  # ascending
    accepted: tuple[int, ...]  # ascending
    guards: tuple[Guard, ...]  # the guards that refused them, in recording order
    given: tuple[str, ...] = ()  # other symbols a refusing guard reads (refused for all >= 2)
    related: tuple[Related, ...] = ()  # sizes refused only at some sizes of the others


@dataclass(frozen=True)
class Related:
    """Sizes refused with the other symbols at ``at`` (their examples, or one of them
    at 0 or 1): a relation between dims, checked at run time."""

    at: tuple[tuple[str, int], ...]  # (symbol, size), of the symbols the guards read
    sizes: tuple[int, ...]  # ascending


@dataclass(frozen=True)
class _CompiledGuard:
    guard: Guard
    symbols: tuple[str, ...]
    holds: Callable[..., bool]


class GuardTable:
    """The ShapeEnv's guards compiled to Python functions of their symbols."""

    def __init__(self, shape_env: ShapeEnv) -> None:
        self.shape_env = shape_env
        self.by_symbol: dict[str, list[_CompiledGuard]] = {}
        # Only the ties are applied (a replaced symbol reads its survivor), not
        # simplify(): that uses what the guards themselves taught the env, and
        # would rewrite ``s0 // 4 == 0`` to True.
        ties = {name: r.value for name, r in shape_env.replacements.items()}
        for guard in shape_env.guards:
            expr = substitute(guard.expr, ties)
            symbols = tuple(sorted(free_symbols(expr)))
            if not symbols:
                continue
            compiled = _CompiledGuard(guard, symbols, _compile(to_python(expr), symbols))
            for name in symbols:
                self.by_symbol.setdefault(name, []).append(compiled)

    def refusal(self, symbol: str, within: ValueRange, *, joint: bool = False) -> Refusal | None:
        """The sample sizes of ``within`` that a guard on ``symbol`` refuses, or None.

        Guards on this symbol alone count; with ``joint``, also a guard over other
        symbols too that refuses a size whatever the others are (sampled at their
        examples, their lowest size from 2 and a large size): ``c // 4 * a * b <= 1
        or a == 1 or b == 1`` refuses ``c >= 4`` for every ``a, b >= 2``. A relation
        (``n >= b`` for ``z[:b]``) holds for a large enough ``n``: the sizes it refuses
        with the others at their examples are ``related``, checked at run time (as in
        torch.export) and announced as such, not a narrowing."""
        own = [c for c in self.by_symbol.get(symbol, []) if c.symbols == (symbol,)]
        joined = [
            c for c in self.by_symbol.get(symbol, [])
            if joint and c.symbols != (symbol,) and self._others(c, symbol) is not None
        ]  # fmt: skip
        if not own and not joined:
            return None
        points = self._points(joined, symbol)
        refused, accepted = [], []
        related: dict[int, list[int]] = {}  # index in points -> sizes
        culprits: dict[int, Guard] = {}
        readers: dict[int, set[str]] = {}  # index in points -> symbols its culprits read
        for size in sample_sizes(within, self.shape_env.hint_of(symbol_expr(symbol))):
            failing = [c for c in own + joined if self._refuses(c, symbol, size)]
            if failing:
                refused.append(size)
            else:
                index, failing = self._first_refusing_point(joined, points, symbol, size)
                if failing:
                    related.setdefault(index, []).append(size)
                    readers.setdefault(index, set()).update(n for c in failing for n in c.symbols)
                else:
                    accepted.append(size)
            for c in failing:
                culprits.setdefault(id(c.guard), c.guard)
        if not refused and not related:
            return None
        order = {id(g): i for i, g in enumerate(self.shape_env.guards)}
        ordered = tuple(sorted(culprits.values(), key=lambda g: order[id(g)]))
        cited = [c for c in joined if c.guard in ordered]
        given = sorted({n for c in cited for n in c.symbols} - {symbol}) if refused else []
        relations = tuple(
            Related(tuple((n, v) for n, v in sorted(points[i].items()) if n in readers[i]),
                    tuple(sizes))
            for i, sizes in sorted(related.items())
        )  # fmt: skip
        return Refusal(tuple(refused), tuple(accepted), ordered, tuple(given), relations)

    def _points(self, joined: list[_CompiledGuard], symbol: str) -> list[dict[str, int]]:
        """Sizes of the other symbols to try a relation at: their examples, then each
        at 0 and at 1 (the others at their examples)."""
        examples = {n: cast(int, self.shape_env.hint_of(symbol_expr(n)))
                    for c in joined for n in c.symbols if n != symbol}  # fmt: skip
        points = [examples]
        for name in sorted(examples):
            for small in (0, 1):
                if self.shape_env.range_of(name).contains(small) and examples[name] != small:
                    points.append({**examples, name: small})
        return points

    @staticmethod
    def _first_refusing_point(
        joined: list[_CompiledGuard], points: list[dict[str, int]], symbol: str, size: int
    ) -> tuple[int, list[_CompiledGuard]]:
        for index, point in enumerate(points):
            failing = [c for c in joined if not _holds(c, {**point, symbol: size})]
            if failing:
                return index, failing
        return -1, []

    def _refuses(self, compiled: _CompiledGuard, symbol: str, size: int) -> bool:
        """Whether ``compiled`` fails at ``symbol == size`` for every sample of the
        others: their examples, their lowest size from 2, ``size`` and ``2 * size``
        (an equality or a multiple: ``q_batch == v_batch or v_batch == 1``) and a
        size beyond every sample (an order: ``n >= b``)."""
        names, samples = [], []
        for name, base in (self._others(compiled, symbol) or {}).items():
            known = self.shape_env.range_of(name)
            extra = {s for s in (size, 2 * size) if s >= 2 and known.contains(s)}
            names.append(name)
            samples.append(sorted(set(base) | extra))
        for values in itertools.product(*samples):
            if _holds(compiled, {symbol: size, **dict(zip(names, values))}):
                return False
        return True

    def _others(self, compiled: _CompiledGuard, symbol: str) -> dict[str, list[int]] | None:
        """Sample sizes of the guard's other symbols, beyond 0 and 1 (None: one has no
        example, or its range is only 0 and 1)."""
        samples: dict[str, list[int]] = {}
        for name in compiled.symbols:
            if name == symbol:
                continue
            hint = self.shape_env.hint_of(symbol_expr(name))
            known = self.shape_env.range_of(name)
            if not isinstance(hint, int) or known.upper < 2:
                return None
            low = max(int(known.lower), 2)
            high = min(known.upper, max(hint, low) * JOINT_LARGE)
            chosen = {hint, low, int(high)}
            samples[name] = sorted(s for s in chosen if known.contains(s) and s >= 2)
        return samples


def sample_sizes(within: ValueRange, hint: object) -> list[int]:
    """Every size of a small range; else its low end, the example's neighbours,
    sizes around powers of two and the upper bound."""
    lower = int(within.lower)
    upper = within.upper
    if upper != math.inf and upper - lower < SMALL_RANGE:
        return list(range(lower, int(upper) + 1))
    sizes = set(range(lower, lower + LOW_END))
    if isinstance(hint, int):
        sizes |= {hint - 1, hint, hint + 1}
    for k in range(2, POWERS_OF_TWO + 1):
        sizes |= {2**k - 1, 2**k, 2**k + 1}
    if upper != math.inf:
        sizes |= {int(upper) - 1, int(upper)}
    return sorted(s for s in sizes if within.contains(s))


def _compile(code: str, symbols: tuple[str, ...]) -> Callable[..., bool]:
    namespace: dict[str, object] = {"math": math}
    exec(
        compile(f"def holds({', '.join(symbols)}):\n    return {code}\n", "<guard>", "exec"),
        namespace,
    )
    return cast(Callable[..., bool], namespace["holds"])  # the function just compiled


def _holds(compiled: _CompiledGuard, values: Mapping[str, object]) -> bool:
    try:
        return bool(compiled.holds(*(values[name] for name in compiled.symbols)))
    except (ZeroDivisionError, ValueError, OverflowError):
        return False  # undefined here: module()'s checks refuse it too
