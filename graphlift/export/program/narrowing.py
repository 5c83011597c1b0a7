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
(``GuardTable.refusal(joint=True)``), decided over the others, not sampled
(``export/program/relations.py``): a size refused exactly while the others are
from some size on is announced so (``a*b*(c // 4) <= 1 or a == 1 or b == 1``:
"sizes 4, 5, ... not supported while a, b >= 2"); any other guard over several
dims is a *relation* (``n >= b`` for ``z[:b]``), checked at run time as in
torch.export and announced as itself, in the user's names ("must satisfy
x.size()[0] >= y.size()[0]"): exactly the check ``module()`` runs.

Sampling one dim's own sizes finds refusals, it does not prove their absence: a
guard that only fails at, say, size 1000 of an unbounded range is still checked
at run time, just not announced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from graphlift.export.program.relations import Condition, JointGuard, decide_jointly
from graphlift.symbolic import ShapeEnv, ValueRange
from graphlift.symbolic.algebra import Expr
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
    """Sample sizes of one dim's range that some guard refuses, and the relations
    between this dim and others that ``module()`` checks."""

    refused: tuple[int, ...]  # ascending
    accepted: tuple[int, ...]  # ascending
    guards: tuple[Guard, ...]  # the guards that refused them, in recording order
    # the refused sizes, by the others' sizes they are refused at (() for any of them)
    when: tuple[tuple[Condition, tuple[int, ...]], ...] = ()
    relations: tuple[Guard, ...] = ()  # guards over several dims, announced as themselves


@dataclass(frozen=True)
class _CompiledGuard:
    guard: Guard
    expr: Expr  # with the ties applied
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
            compiled = _CompiledGuard(guard, expr, symbols, _compile(to_python(expr), symbols))
            for name in symbols:
                self.by_symbol.setdefault(name, []).append(compiled)

    def refusal(self, symbol: str, within: ValueRange, *, joint: bool = False) -> Refusal | None:
        """The sample sizes of ``within`` that a guard on ``symbol`` refuses, or None.

        Guards on this symbol alone count; with ``joint``, also guards over other
        symbols too (``export/program/relations.py``): a size they refuse exactly
        when the others are from some size on (``c // 4 * a * b <= 1 or a == 1 or
        b == 1`` refuses ``c >= 4`` while ``a, b >= 2``) is refused under that
        condition; any other guard not proven to hold is a relation (``n >= b``
        for ``z[:b]``), checked at run time (as in torch.export) and announced as
        itself, not as a narrowing."""
        own = [c for c in self.by_symbol.get(symbol, []) if c.symbols == (symbol,)]
        sizes = sample_sizes(within, self.shape_env.hint_of(symbol_expr(symbol)))
        joined = [
            JointGuard(c.guard, c.expr, c.symbols)
            for c in self.by_symbol.get(symbol, [])
            if joint and c.symbols != (symbol,)
        ]
        verdict = decide_jointly(joined, symbol, sizes, self.shape_env.ranges)
        when: dict[Condition, list[int]] = {}
        accepted = []
        culprits = {id(g): g for g in verdict.culprits}
        for size in sizes:
            failing = [c.guard for c in own if not _holds(c, {symbol: size})]
            culprits.update({id(g): g for g in failing})
            condition = () if failing else verdict.refused.get(size)
            if condition is None:
                accepted.append(size)
            else:
                when.setdefault(condition, []).append(size)
        if not when and not verdict.relations:
            return None
        order = {id(g): i for i, g in enumerate(self.shape_env.guards)}
        ordered = tuple(sorted(culprits.values(), key=lambda g: order[id(g)]))
        refused = tuple(sorted(s for group in when.values() for s in group))
        groups = tuple((condition, tuple(group)) for condition, group in when.items())
        return Refusal(refused, tuple(accepted), ordered, groups, verdict.relations)


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
