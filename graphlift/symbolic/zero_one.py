"""Sizes 0 and 1 in a :class:`~graphlift.symbolic.shape_env.ShapeEnv`: questions answered as if
backed sizes were at least 2 (logged as assumptions for the tracer to check), guards
with the sizes that checked out exempted, layout answers outside ops, and sizes a
second trace proved (``admit``). docs/zero_one.md has the whole story.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, cast

from graphlift.source import SourceLocation
from graphlift.symbolic import algebra as E
from graphlift.symbolic.decide import decide
from graphlift.symbolic.expr import Expr, Scalar
from graphlift.symbolic.guards import Assumption, Guard
from graphlift.symbolic.printer import to_python
from graphlift.symbolic.ranges import ValueRange
from graphlift.symbolic.substitute import EvaluationError, evaluate, substitute

#: ``holds_where_admitted`` evaluates a fact at every size up to this and decides
#: it above (half of it for three symbols: at most 6**3 cells).
SMALL_BOX = 8


@functools.lru_cache(maxsize=4096)
def _compiled(expr: Expr, names: tuple[str, ...]) -> Callable[..., object]:
    """``expr`` as a Python function of ``names`` (evaluated at many sizes)."""
    namespace: dict[str, object] = {"math": math}
    code = f"def holds({', '.join(names)}):\n    return {to_python(expr)}\n"
    exec(compile(code, "<fact>", "exec"), namespace)  # our own printout of our own expr
    return cast("Callable[..., object]", namespace["holds"])


def _holds(function: Callable[..., object], values: Sequence[int]) -> bool | None:
    """A compiled fact at ``values``; None where it is undefined."""
    try:
        return bool(function(*values))
    except (ZeroDivisionError, ValueError, OverflowError):
        return None


@functools.lru_cache(maxsize=4096)
def _proved(
    fact: Expr, names: tuple[str, ...], ranges: tuple[ValueRange, ...], guards: tuple[Expr, ...]
) -> bool:
    """:meth:`SmallSizes.holds_where_admitted` as a pure function of the fact, its
    symbols' ranges and the guards over them (asked again by every layer)."""
    box = SMALL_BOX if len(names) <= 2 else SMALL_BOX // 2
    points = [list(range(int(r.lower), int(min(r.upper, box)) + 1)) for r in ranges]
    tails = [ValueRange(max(r.lower, box + 1), r.upper) if r.upper > box else None for r in ranges]
    # Cells with a symbol above the box first: deciding them is cheaper, and a
    # guard that is needed fails there at once.
    axes = [[*p, t] if t is not None else p for p, t in zip(points, tails)]
    for cell in itertools.product(*axes):
        big = {n: v for n, v in zip(names, cell) if isinstance(v, ValueRange)}
        if not big:
            continue
        fixed = {n: E.integer(v) for n, v in zip(names, cell) if isinstance(v, int)}
        if decide(substitute(fact, fixed), {**dict(zip(names, ranges)), **big}) is not True:
            return False
    refusing = [_compiled(g, names) for g in guards]
    holds = _compiled(fact, names)
    for values in itertools.product(*points):
        if _holds(holds, values) is not True and all(_holds(g, values) for g in refusing):
            return False  # an admitted input where the fact fails
    return True


class SmallSizes:
    """Sizes 0 and 1 (a part of ShapeEnv, which owns the fields these methods read)."""

    # Fields of ShapeEnv these methods assign (declared for the type checker).
    _assumptions: list[Assumption] | None
    _facts: dict[Expr, None]
    _facts_by_mono: dict[Any, list[Expr]]
    _pinned: dict[Any, int]
    _guards: list[Guard]
    _ranges: dict[str, ValueRange]

    def _assume(
        self: Any, question: Expr, hint: Scalar | None, size_oblivious: bool
    ) -> bool | None:
        """The answer to an undecided ``question`` if backed sizes were at least
        2, when that is how it may be answered without a guard: size-oblivious
        questions (torch's contract: the answer is right for 0 and 1 too), and
        any question inside :meth:`assuming_not_0_or_1` (logged, for the caller
        to check)."""
        if not size_oblivious and self._assumptions is None:
            return None
        verdict = self.decide_static(question, size_oblivious=True)
        if verdict is None:
            return None
        symbols = self._small_symbols(question)
        if self._assumptions is not None and symbols:
            fact = question if verdict else E.logical_not(question)
            self._assumptions.append(Assumption(fact, symbols))
        elif not size_oblivious:
            return None  # depends on unbacked symbols too: no checkable assumption
        return bool(verdict)

    def _small_symbols(self: Any, question: Expr) -> frozenset[str]:
        """The symbols of ``question`` whose range still includes 0 or 1, when
        every symbol in it is backed (so the question can be re-checked on
        concrete sizes); empty otherwise."""
        free = E.free_symbols(question)
        if not free <= self._hints.keys():
            return frozenset()
        # A symbol whose example is itself 0 or 1 is not assumed away: the
        # example run is the only evidence there is.
        return frozenset(
            name for name in free if self._ranges[name].lower < 2 and self._hints[name] >= 2
        )

    @contextmanager
    def assuming_not_0_or_1(self: Any) -> Iterator[list[Assumption]]:
        """Answer questions that only sizes 0 or 1 leave open as if backed sizes
        were at least 2, without guards; yields the list of assumptions made.

        The tracer opens this around the metadata computation of one op, then
        checks each assumption by re-running the op on concrete sizes 0 and 1
        (:mod:`graphlift.trace.zero_one`), and guards only where the answer
        matters. That is what lets ``Dim("batch")`` keep sizes 0 and 1 when a
        kernel asks "is this dim 1?" while broadcasting.
        """
        saved = self._assumptions
        log: list[Assumption] = []
        self._assumptions = log
        try:
            yield log
        finally:
            self._assumptions = saved

    def guard_assumption(
        self: Any,
        assumption: Assumption,
        exempt: frozenset[tuple[str, int]] = frozenset(),
        joint: frozenset[frozenset[tuple[str, int]]] = frozenset(),
    ) -> None:
        """Guard ``assumption.fact``, except where a symbol is at a size of
        ``exempt``'s (symbol, size) pairs, or the symbols are at once at the sizes
        of a ``joint`` point (sizes 0 or 1 at which the op that asked was checked
        to give the same result)."""
        fact = assumption.fact
        # A size needs the exemption only if the fact fails there (else "or n <= 1" is noise).
        # Where the fact is undefined (``s0 % (s0*s1)`` at ``s0 == 0``) it does not hold.
        exemptions = []
        for name in sorted({n for n, _ in exempt}):
            small = [v for v in (0, 1) if self._ranges[name].contains(v)]
            sizes = [v for v in small if (name, v) in exempt]
            if all(self.holds_at(fact, {name: v}) for v in sizes):
                continue
            symbol = E.symbol(name)
            if sizes == small:  # every small size checked out
                exemptions.append(E.le(symbol, E.ONE))
            else:
                exemptions.extend(E.eq(symbol, E.integer(v)) for v in sizes)
        for point in sorted(joint, key=sorted):
            exemptions.append(
                E.logical_and(*(E.eq(E.symbol(n), E.integer(v)) for n, v in sorted(point)))
            )
        if exemptions:
            fact = E.logical_or(fact, *exemptions)
            if self.decide_static(fact) is True or self.holds_where_admitted(fact):
                return  # the exemptions cover every size the fact refused
        self._record(fact, runtime=False)

    def holds_where_admitted(self: Any, fact: Expr) -> bool:
        """Whether ``fact`` holds for every input the ranges and guards admit: a
        proof, not a sample. Each symbol's range is cut into its sizes up to
        ``SMALL_BOX`` and the rest; where every symbol is at a size the fact is
        evaluated, and where it fails a guard over those symbols alone must
        refuse the sizes (``((h + 1)//2)*((w + 1)//2) != 1 or (h == 1 and w ==
        1)`` once ``h != 2`` and ``w != 2`` are guarded); elsewhere it is decided
        over the ranges, sizes substituted (``s0*s4 != 1`` for ``s0 > 8``, ``s4 == 0``)."""
        names = tuple(sorted(E.free_symbols(fact)))
        if not names or len(names) > 3 or not set(names) <= self._hints.keys():
            return False
        ties = {n: r.value for n, r in self._replacements.items()}
        guards = (substitute(g.expr, ties) if ties else g.expr for g in self._guards)
        relevant = tuple(g for g in guards if E.free_symbols(g) <= set(names))
        return _proved(fact, names, tuple(self._ranges[n] for n in names), relevant)

    def value_at(
        self: Any, expr: Expr, overrides: Mapping[str, Scalar], *, simplified: bool = True
    ) -> Scalar:
        """The value of ``expr`` at the example values, with ``overrides`` for some symbols.

        ``simplified=False`` reads ``expr`` as written: simplifying uses what the
        guards taught the env, so a guard's own fact would read as true everywhere.
        Raises :class:`EvaluationError` where ``expr`` is undefined (a division
        by zero); :meth:`holds_at` is the total form for facts.
        """
        return evaluate(self.simplify(expr) if simplified else expr, {**self._hints, **overrides})

    def holds_at(
        self: Any, fact: Expr, overrides: Mapping[str, Scalar], *, simplified: bool = True
    ) -> bool | None:
        """Whether the boolean ``fact`` holds at the example values with
        ``overrides``; None where it is undefined there (``s0 % s1`` at ``s1 == 0``)."""
        try:
            return bool(self.value_at(fact, overrides, simplified=simplified))
        except (EvaluationError, ZeroDivisionError):
            return None

    def layout_verdict(self: Any, expr: Expr) -> bool | None:
        """A layout question (contiguity) outside an op's metadata computation:
        answered as if backed sizes were at least 2 when only sizes 0 and 1
        leave it open (see :meth:`guard_or`); None otherwise."""
        if self._assumptions is not None:
            return None  # inside an op: assumed and checked like any other question
        simplified = self.simplify(expr)
        if not E.free_symbols(simplified) <= self._hints.keys():
            return None
        if self.decide_static(simplified) is not None:
            return None
        return cast("bool | None", self.decide_static(simplified, size_oblivious=True))

    def refused_at(self: Any, name: str, value: int) -> tuple[Guard, ...]:
        """The guards that do not hold for every input whose symbol ``name`` is ``value``."""
        at = {name: E.integer(value)}
        return tuple(
            guard for guard in self._guards
            if self.decide_static(substitute(self.simplify(guard.expr), at)) is not True
        )  # fmt: skip

    def admit(self: Any, name: str, value: int, needs: Sequence[Guard]) -> None:
        """Let the program run with symbol ``name`` at ``value``, which its guards
        refused: another trace at that size computed the same values there (the
        caller proved it), under its own guards ``needs`` (over this env's symbols).
        Each refusing guard ``g`` becomes ``g or name == value``, each of ``needs``
        ``name != value or h``; what was learnt from the guards is learnt anew."""
        at = E.eq(E.symbol(name), E.integer(value))
        refused = set(self.refused_at(name, value))
        guards = [
            self._guard(E.logical_or(g.expr, at), g.where) if g in refused else g
            for g in self._guards
        ]
        guards += [self._guard(E.logical_or(E.logical_not(at), h.expr), h.where) for h in needs]
        self._relearn(guards)

    def _guard(self: Any, fact: Expr, where: SourceLocation | None) -> Guard:
        return Guard(fact, self.format(fact), where)

    def _relearn(self: Any, guards: Sequence[Guard]) -> None:
        """Forget what was learnt from guards (backed ranges back to declared, facts,
        pins) and learn it again from ``guards``. Replacements stay: they only
        make the program's checks stricter."""
        for name, info in self._symbols.items():
            if info.is_backed:
                self._ranges[name] = info.declared
        self._facts, self._facts_by_mono, self._pinned = {}, {}, {}
        self._guards = []
        self._reset_caches()
        for guard in guards:
            if guard.expr in self._facts or self.decide_static(guard.expr) is True:
                continue  # implied by the declared ranges and the guards before it
            self._guards.append(guard)
            self._learn(guard.expr, guard.where)
