"""Guards over several dims, decided at each sample size of one dim.

A ``Dim.AUTO`` dim's announcement must name every size its guards refuse, and a
guard over several dims (``a*b*(c // 4) <= 1 or a == 1 or b == 1``) refuses a
size of one only at some sizes of the others. So at each sample size ``v`` of
the dim, the guards that read it and other dims are *decided*
(:func:`graphlift.symbolic.decide.decide`), not sampled, on cells of the others'
ranges: each other dim at 0, at 1 and from 2 on (as far as its range reaches).
A cell where some guard is false is refused; one where all hold, accepted. When
every cell is decided and the refused cells are "each other dim in an interval"
(``a, b >= 2``, ``n == 0``; or all of them: refused outright), ``v`` is refused
under that condition, exactly. Otherwise the guards not proven there form a
*relation* (``n >= b`` for ``z[:b]``): ``module()`` checks it at run time (as
torch.export does) and the announcement quotes it, so it names exactly the
check that refuses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from graphlift.symbolic import ValueRange
from graphlift.symbolic.algebra import Expr
from graphlift.symbolic.decide import decide
from graphlift.symbolic.expr import integer
from graphlift.symbolic.guards import Guard
from graphlift.symbolic.substitute import substitute

# each (other symbol, the interval of its sizes at which the size is refused); () outright
Condition = tuple[tuple[str, ValueRange], ...]
MAX_SPLIT_SYMBOLS = 3  # guards over more other dims decide on their whole ranges (cells grow 3**n)
PIECES = (ValueRange(0, 0), ValueRange(1, 1), ValueRange(2, math.inf))


@dataclass(frozen=True)
class JointGuard:
    guard: Guard
    expr: Expr  # with the program's ties applied
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class JointVerdict:
    refused: Mapping[int, Condition]  # size -> the others' sizes at which it is refused
    culprits: tuple[Guard, ...]  # the guards that refuse them
    relations: tuple[Guard, ...]  # guards decided nowhere near exactly: quoted


def decide_jointly(
    guards: Sequence[JointGuard],
    symbol: str,
    sizes: Sequence[int],
    ranges: Mapping[str, ValueRange],
) -> JointVerdict:
    """What ``guards`` (each reading ``symbol`` and other symbols) refuse at each of
    ``sizes`` of ``symbol``, with the other symbols within ``ranges``."""
    guards = [g for g in guards if decide(g.expr, ranges) is not True]
    others = sorted({n for g in guards for n in g.symbols} - {symbol})
    pieces = _pieces(others, ranges)
    refused: dict[int, Condition] = {}
    culprits: dict[int, Guard] = {}
    relations: dict[int, Guard] = {}
    for size in sizes:
        at = [(g.guard, substitute(g.expr, {symbol: integer(size)})) for g in guards]
        if all(decide(expr, ranges) is True for _, expr in at):
            continue
        refusing, unproven, cells = {}, {}, []
        for cell in itertools.product(*(range(len(p)) for p in pieces)):
            within = {**ranges, **{o: pieces[i][k] for i, (o, k) in enumerate(zip(others, cell))}}
            verdicts = [(guard, decide(expr, within)) for guard, expr in at]
            false = {id(g): g for g, verdict in verdicts if verdict is False}
            refusing.update(false)
            if false:
                cells.append(cell)
            else:
                unproven.update({id(g): g for g, verdict in verdicts if verdict is None})
        condition = () if not cells else _box(cells, others, pieces)
        if unproven or condition is None:
            relations.update(unproven)
            relations.update(refusing)
        elif cells:
            refused[size] = condition
            culprits.update(refusing)
    return JointVerdict(refused, _in_order(culprits, guards), _in_order(relations, guards))


def _pieces(others: list[str], ranges: Mapping[str, ValueRange]) -> list[list[ValueRange]]:
    """Each other symbol's range cut at 0, 1 and 2 (too many others: left whole)."""
    if len(others) > MAX_SPLIT_SYMBOLS:
        return [[ranges[o]] for o in others]
    cut = [[ranges[o].intersect(piece) for piece in PIECES] for o in others]
    return [[piece for piece in pieces if not piece.is_empty] for pieces in cut]


def _box(
    cells: list[tuple[int, ...]], others: list[str], pieces: list[list[ValueRange]]
) -> Condition | None:
    """The condition "each other symbol in an interval" that the refused ``cells``
    are exactly, or None if they are not of that form."""
    chosen = [sorted({cell[i] for cell in cells}) for i in range(len(others))]
    if len(cells) != math.prod(len(c) for c in chosen):
        return None  # not a product of one set per symbol
    condition = []
    for name, indices, own in zip(others, chosen, pieces):
        if indices != list(range(indices[0], indices[-1] + 1)):
            return None  # not an interval
        if len(indices) < len(own):
            condition.append((name, ValueRange(own[indices[0]].lower, own[indices[-1]].upper)))
    return tuple(condition)


def _in_order(found: Mapping[int, Guard], guards: Sequence[JointGuard]) -> tuple[Guard, ...]:
    return tuple(g.guard for g in guards if id(g.guard) in found)
