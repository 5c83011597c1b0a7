"""``ShapeEnvState``: a frozen snapshot of everything a ``ShapeEnv`` knows.

``ShapeEnv.snapshot()`` takes one, ``ShapeEnv.from_state(state)`` builds an
env from one, and ``ShapeEnv.fork()`` is the two together: an env with the same
symbols, ranges, replacements, facts and guards whose later changes never reach
the original (``run_decompositions`` decomposes over a fork, so the program it
was called on keeps its guards). The archive (``serialize/shape_env_state.py``)
writes and reads this value rather than the env's private fields.

Expressions are immutable and interned, so a snapshot shares them; only the
containers are copied, into tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphlift.symbolic.expr import Expr, Op, Scalar
from graphlift.symbolic.guards import Guard, Replacement, RuntimeAssert, SymbolInfo
from graphlift.symbolic.ranges import ValueRange


@dataclass(frozen=True)
class ShapeEnvState:
    """What a ShapeEnv knows, in the order it learnt it (orders are kept: the
    decision procedure consults facts in that order)."""

    backed_size_oblivious: bool
    symbols: tuple[SymbolInfo, ...]
    ranges: tuple[tuple[str, ValueRange], ...]
    size_like: frozenset[str]
    hints: tuple[tuple[str, Scalar], ...]
    replacements: tuple[Replacement, ...]
    pinned: tuple[tuple[Op, int], ...]  # int operations known to equal a constant
    facts: tuple[Expr, ...]
    guards: tuple[Guard, ...]
    runtime_asserts: tuple[RuntimeAssert, ...]
    counts: tuple[tuple[str, int], ...]  # symbols created so far, by prefix
    origins: tuple[tuple[str, str], ...] = ()
    data_specializations: tuple[RuntimeAssert, ...] = ()
    #: With ``data_dependent="specialize"``: example values of unbacked symbols.
    example_values: Any = None
    #: Symbols of dims the user declared ``Dim.AUTO``: a transformation may
    #: narrow them, announcing it (``run_decompositions``).
    auto: frozenset[str] = frozenset()
