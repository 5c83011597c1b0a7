"""What a ShapeEnv records: symbols, guards, runtime asserts, replacements.

All are frozen values. A :class:`Guard` is an assumption the traced program
makes about its *inputs* (checked before the exported program runs); a
:class:`RuntimeAssert` is a fact about a data-dependent value (``u0 >= 0``),
checked in the graph when the value exists. Both carry their expression, the
user's source line that caused them and the expression as Python text over the
input sources (``x.size()[0] >= 2``), which :func:`~.parser.parse_expr` reads
back.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphlift.source import SourceLocation
from graphlift.symbolic.expr import Expr, as_int
from graphlift.symbolic.ranges import ValueRange


@dataclass(frozen=True)
class SymbolInfo:
    """A symbol as created: ``hint`` is the example value (None when unbacked)."""

    name: str
    hint: int | None
    source: str
    declared: ValueRange

    @property
    def is_backed(self) -> bool:
        return self.hint is not None


@dataclass(frozen=True)
class Guard:
    """A boolean fact about input sizes the traced program relies on."""

    expr: Expr
    code: str  # Python text over input sources, e.g. "x.size()[0] >= 2"
    where: SourceLocation | None

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True)
class RuntimeAssert:
    """A fact about data-dependent values, from ``torch._check`` or ``expect_true``."""

    expr: Expr
    code: str
    where: SourceLocation | None

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True)
class Assumption:
    """A question answered as if some backed sizes were at least 2, without a guard.

    Made only inside :meth:`ShapeEnv.assuming_not_0_or_1`, for a question that
    the declared ranges leave open only because they include 0 or 1 (a meta
    kernel asking "is this dim 1?" while broadcasting). ``fact`` holds at the
    example values; whoever opened the context must check that the answer does
    not matter when a symbol in ``symbols`` is 0 or 1, or guard on ``fact``.
    """

    fact: Expr
    symbols: frozenset[str]
    #: The question was open for sizes >= 2 as well: ``fact`` must be guarded
    #: there in any case, only the 0/1 sizes that check out can be exempted.
    needs_guard: bool = False


@dataclass(frozen=True)
class Replacement:
    """``symbol`` is everywhere replaced by ``value``.

    ``s1 -> s0`` unifies two dimensions; ``s0 -> 4`` specializes one (then
    ``is_specialization`` is True). ``where`` is the user line that caused it.
    """

    symbol: str
    value: Expr
    where: SourceLocation | None

    @property
    def is_specialization(self) -> bool:
        return as_int(self.value) is not None
