"""Which sizes inside a declared range the recorded guards refuse.

A range narrowed at an end (``b >= 4``) shows in the symbol's range; a guard
such as ``3*b % (b // 2) == 0`` (a reshape to ``b // 2`` rows) refuses the odd
sizes in the middle, which no range shows, and ``module()`` would then refuse
sizes the user declared. So every guard that mentions a dim's symbol is run on
sample sizes across the dim's range — every size of a small range; otherwise the
low end, around the example and around powers of two — with the other symbols
at their example values. A size a guard fails, or where it is undefined (a
division by zero, which ``module()``'s checks also refuse), is *refused*;
export reports it (``ConstraintViolationError`` for a named ``Dim``, an entry in
``ep.specializations`` for ``Dim.AUTO``) with the guards' lines.

Sampling finds refusals, it does not prove their absence: a guard that only
fails at, say, size 1000 of an unbounded range is still checked at run time,
just not announced.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Refusal:
    """Sample sizes of one dim's range that some guard refuses."""

    refused: tuple[int, ...]  # ascending
    accepted: tuple[int, ...]  # ascending
    guards: tuple[Guard, ...]  # the guards that refused them, in recording order


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

    def refusal(self, symbol: str, within: ValueRange) -> Refusal | None:
        """The sample sizes of ``within`` that a guard on ``symbol`` refuses, or None."""
        # Guards on this symbol alone: a relation between dims (``n >= b`` for
        # ``z[:b]``) stays a run-time check, as in torch.export, not a violation.
        guards = [c for c in self.by_symbol.get(symbol, []) if c.symbols == (symbol,)]
        if not guards:
            return None
        hints = {symbol: self.shape_env.hint_of(symbol_expr(symbol))}
        refused: list[int] = []
        accepted: list[int] = []
        culprits: dict[int, Guard] = {}
        for size in sample_sizes(within, hints.get(symbol)):
            values = {**hints, symbol: size}
            failing = [c for c in guards if not _holds(c, values)]
            (refused if failing else accepted).append(size)
            for c in failing:
                culprits.setdefault(id(c.guard), c.guard)
        if not refused:
            return None
        order = {id(g): i for i, g in enumerate(self.shape_env.guards)}
        ordered = tuple(sorted(culprits.values(), key=lambda g: order[id(g)]))
        return Refusal(tuple(refused), tuple(accepted), ordered)


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
