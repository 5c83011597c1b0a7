"""``ShapeEnv``: the symbols of one export and the one place a guard is recorded.

Typical use by a tracer::

    env = ShapeEnv()
    n = env.create_symbol(8, min=2, max=1024, source="x.size()[0]")  # torch.SymInt
    x = torch.empty_strided((n, 4), (4, 1), device="meta")
    with enable_python_dispatcher():
        y = torch.ops.aten.view.default(x, [2, n * 2])  # meta kernels ask questions
    env.guards, env.runtime_asserts, env.replacements, env.range_of("s0")

Every shape question goes through :meth:`ShapeEnv.evaluate` (and its
variants): the expression is simplified with the current replacements and
ranges, then :func:`~graphlift.symbolic.decide.decide` is asked. Only if it
cannot tell does the env *guard*: it evaluates the question on the example
values (hints), records the answer as a :class:`Guard` with the user's source
line, and learns from it (ranges, replacements). A question on unbacked symbols
that cannot be decided raises :class:`~graphlift.errors.DataDependentError`.

``torch._check(cond)`` reaches :meth:`expect_true`, which records a
:class:`RuntimeAssert` for data-dependent facts instead of guarding.

The class is assembled from parts, each in its own module: creating symbols
(``symbol_factory.py``), sizes 0 and 1 (``zero_one.py``: assumptions, exempted
guards, layout answers, sizes a second trace proved) and the entry points torch's
own Python code calls on ``node.shape_env`` (``torch_entry.py``:
``evaluate_sym_node``, ``_maybe_evaluate_static``, ...). This module keeps the
state, snapshots, deciding, guarding and learning.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from graphlift.errors import ConstraintViolationError, DataDependentError, InternalError
from graphlift.source import SourceLocation, at_assert, user_frame, user_location
from graphlift.symbolic import algebra as E
from graphlift.symbolic import facts as F
from graphlift.symbolic.decide import Decider
from graphlift.symbolic.env_state import ShapeEnvState
from graphlift.symbolic.expr import Expr, Op, Poly, Scalar
from graphlift.symbolic.guards import Assumption, Guard, Replacement, RuntimeAssert, SymbolInfo
from graphlift.symbolic.printer import to_python
from graphlift.symbolic.ranges import ValueRange
from graphlift.symbolic.substitute import EvaluationError, Substitution, evaluate, substitute
from graphlift.symbolic.symbol_factory import SymbolFactory
from graphlift.symbolic.torch_entry import TorchEntryPoints
from graphlift.symbolic.zero_one import SmallSizes


class ShapeEnv(SymbolFactory, SmallSizes, TorchEntryPoints):
    """Symbols, their ranges and replacements, and the guards of one trace."""

    def __init__(self, *, backed_size_oblivious: bool = False) -> None:
        #: Size-oblivious questions treat backed symbols as >= 2 as well (export sets this:
        #: "is this dim 1?" must not narrow a Dim(min=1); torch's backed_size_oblivious).
        self.backed_size_oblivious = backed_size_oblivious
        self._symbols: dict[str, SymbolInfo] = {}
        self._ranges: dict[str, ValueRange] = {}
        self._size_like: set[str] = set()
        self._hints: dict[str, Scalar] = {}
        self._replacements: dict[str, Replacement] = {}
        self._pinned: dict[Op, int] = {}  # int ops known to equal a constant
        self._facts: dict[Expr, None] = {}  # a set in the order facts were learnt
        self._facts_by_mono: dict[E.Mono, list[Expr]] = {}
        self._guards: list[Guard] = []
        self._asserts: list[RuntimeAssert] = []
        self._counts = {"s": 0, "u": 0, "uf": 0}
        self._suppressed = 0
        self._assumptions: list[Assumption] | None = None
        self._origins: dict[str, str] = {}
        self._auto: set[str] = set()  # symbols of Dim.AUTO dims (env_state.py)
        self._sealed = 0  # > 0 while a transformation reads a program it must not change
        #: With ``data_dependent="specialize"``: an unbacked symbol's example value (None:
        #: unknown); undecidable questions are answered from it as runtime asserts.
        self.example_values: Any = None
        #: The runtime asserts made by deciding from example data (draft_export reports them).
        self.data_specializations: list[RuntimeAssert] = []
        self._generation = 0
        self._reset_caches()

    # --- snapshot, restore, fork ------------------------------------------------------------

    def snapshot(self) -> ShapeEnvState:
        """Everything this env knows, frozen (see ``env_state.py``)."""
        return ShapeEnvState(
            backed_size_oblivious=self.backed_size_oblivious,
            symbols=tuple(self._symbols.values()),
            ranges=tuple(self._ranges.items()),
            size_like=frozenset(self._size_like),
            hints=tuple(self._hints.items()),
            replacements=tuple(self._replacements.values()),
            pinned=tuple(self._pinned.items()),
            facts=tuple(self._facts),
            guards=tuple(self._guards),
            runtime_asserts=tuple(self._asserts),
            counts=tuple(self._counts.items()),
            origins=tuple(self._origins.items()),
            data_specializations=tuple(self.data_specializations),
            example_values=self.example_values,
            auto=frozenset(self._auto),
        )

    @classmethod
    def from_state(cls, state: ShapeEnvState) -> ShapeEnv:
        """A new env that knows exactly what ``state`` says."""
        env = cls(backed_size_oblivious=state.backed_size_oblivious)
        env._symbols = {info.name: info for info in state.symbols}
        env._ranges = dict(state.ranges)
        env._size_like = set(state.size_like)
        env._hints = dict(state.hints)
        env._replacements = {r.symbol: r for r in state.replacements}
        env._pinned = dict(state.pinned)
        for fact in state.facts:
            if fact in env._facts:
                continue
            env._facts[fact] = None
            for mono in _comparison_monomials(fact):
                env._facts_by_mono.setdefault(mono, []).append(fact)
        env._guards = list(state.guards)
        env._asserts = list(state.runtime_asserts)
        env._counts = dict(state.counts)
        env._origins = dict(state.origins)
        env.data_specializations = list(state.data_specializations)
        env.example_values = state.example_values
        env._auto = set(state.auto)
        env._reset_caches()
        return env

    def fork(self) -> ShapeEnv:
        """An env with the same knowledge whose later changes never reach this one."""
        return ShapeEnv.from_state(self.snapshot())

    @contextmanager
    def sealed(self) -> Iterator[None]:
        """While a transformation replays a program over a fork of its env, this
        (the source's) env must learn nothing: a guard or range recorded here
        would change the source program. Recording raises InternalError instead."""
        self._sealed += 1
        try:
            yield
        finally:
            self._sealed -= 1

    # --- reading the state --------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[SymbolInfo, ...]:
        return tuple(self._symbols.values())

    @property
    def guards(self) -> tuple[Guard, ...]:
        return tuple(self._guards)

    @property
    def runtime_asserts(self) -> tuple[RuntimeAssert, ...]:
        return tuple(self._asserts)

    @property
    def replacements(self) -> Mapping[str, Replacement]:
        return dict(self._replacements)

    @property
    def specializations(self) -> Mapping[str, Replacement]:
        return {k: r for k, r in self._replacements.items() if r.is_specialization}

    @property
    def ranges(self) -> Mapping[str, ValueRange]:
        """The current range of every symbol (replaced symbols included)."""
        return dict(self._ranges)

    def source_symbols(self) -> Mapping[str, Expr]:
        """``{source: symbol}``, for parsing guard code back with :func:`.parser.parse_expr`."""
        return {info.source: E.symbol(info.name) for info in self._symbols.values() if info.source}

    def has_symbol(self, name: str) -> bool:
        return name in self._symbols

    def symbol_info(self, name: str) -> SymbolInfo:
        return self._symbols[name]

    def range_of(self, name: str) -> ValueRange:
        """The current range of a symbol (its declared range, tightened by what was learned)."""
        return self._ranges[name]

    def is_unbacked(self, name: str) -> bool:
        return self._symbols[name].hint is None

    def is_size_like(self, name: str) -> bool:
        """Unbacked and marked as a size, or known to be nonnegative."""
        unbacked = self._symbols[name].hint is None
        return unbacked and (name in self._size_like or self._ranges[name].lower >= 0)

    def knowledge_stamp(self) -> tuple[int, int]:
        """Equal stamps mean nothing was learned in between (no symbol, guard, runtime
        assert, range or replacement) and guards are suppressed alike: a pure
        computation asking questions then gets the same answers and the same
        expressions (the per-op metadata cache keys on it)."""
        return (self._generation, self._suppressed)

    def format(self, expr: Expr) -> str:
        """``expr`` as Python text over the symbols' input sources."""
        names = {n: info.source for n, info in self._symbols.items() if info.source}
        return to_python(expr, names)

    # --- simplifying and deciding (no side effects on what is recorded) ---------------------------

    def _reset_caches(self) -> None:
        # Every change of what the env knows passes here (new symbols, facts,
        # ranges, replacements): the generation names the state of knowledge.
        self._generation += 1
        mapping = {name: r.value for name, r in self._replacements.items()}
        self._substitution = Substitution(mapping, self._simplify_op)
        self._decided: dict[tuple[Expr, bool], bool | None] = {}
        self._decider = Decider(self._ranges)
        self._oblivious: Decider | None = None
        self._derived: dict[tuple[Any, ...], Expr] = {}

    def derive(self, key: tuple[Any, ...], build: Callable[[], Expr]) -> Expr:
        """``simplify(build())``, memoized under ``key`` until the env learns something.

        ``key`` names the build exactly: the builder function and its argument
        expressions (interned, so equal expressions are the same object). Meta
        kernels build the same few sizes and comparisons over and over (every
        tensor's numel and contiguity, every broadcast)."""
        found = self._derived.get(key)
        if found is None:
            found = self._derived[key] = self.simplify(build())
        return found

    def simplify(self, expr: Expr) -> Expr:
        """``expr`` with replacements applied and ops simplified with the known ranges."""
        return self._substitution(expr)

    def _simplify_op(self, op: Op, decider: Decider | None = None) -> Expr:
        """Range-aware rewrites of one op (its arguments are already simplified),
        with the ranges of ``decider`` (default: the known ranges)."""
        if op.kind != "int":
            return op
        pinned = self._pinned.get(op)
        if pinned is not None:
            return E.integer(pinned)
        decider = decider or self._decider
        interval = decider.bound(op)
        if interval.is_singleton and not math.isinf(interval.lower):
            return E.integer(int(interval.lower))
        a = op.args[0]
        if op.name in ("max", "min") and len(op.args) == 2:
            b = op.args[1]
            assert isinstance(a, Poly) and isinstance(b, Poly)
            a_wins = decider.decide(E.ge(a, b))
            if a_wins is not None:
                return a if a_wins == (op.name == "max") else b
            # max(1, s0) with s0 >= 1: "1 >= s0" is undecided but "s0 >= 1" holds.
            if decider.decide(E.ge(b, a)) is True:
                return b if op.name == "max" else a
        if op.name == "mod" and isinstance(a, Poly):
            # x % m == x when 0 <= x < m
            inner = decider.bound(a)
            b = op.args[1]
            assert isinstance(b, Poly)
            if inner.lower >= 0 and decider.decide(E.lt(a, b)) is True:
                return a
        if op.name in ("ite",):
            verdict = decider.decide(op.args[0])
            if verdict is not None:
                return op.args[1] if verdict else op.args[2]
        return E.factor_poly(op)

    def hint_of(self, expr: Expr) -> Scalar | None:
        """The value of ``expr`` on the example inputs, or None when it needs unbacked values."""
        try:
            return evaluate(expr, self._hints)
        except EvaluationError:
            pass
        try:
            return evaluate(self.simplify(expr), self._hints)
        except (EvaluationError, ZeroDivisionError):
            return None

    def _relevant_facts(self, expr: Expr) -> list[Expr]:
        """The recorded ``q >= 0`` / ``q == 0`` facts sharing a term with the question.

        Only those can cancel a term of a comparison in ``expr``, which is how
        :mod:`.decide` uses facts; the index keeps this independent of how many
        guards a long trace has recorded.
        """
        found: dict[Expr, None] = {}
        for mono in sorted(_comparison_monomials(expr), key=E.mono_sort_key):
            found.update(dict.fromkeys(self._facts_by_mono.get(mono, ())))
        return list(found)

    def _oblivious_decider(self) -> Decider:
        """Decides as if each size-like unbacked symbol (and, with
        ``backed_size_oblivious``, each backed one whose example is at least 2)
        were at least 2.

        Size-like: marked so (``torch._check_is_size``, ``size_like=True``) or
        known to be nonnegative (torch's ``_check_is_size`` only marks symbols
        when the node is torch's own SymNode class, so ours go by the range).
        """
        if self._oblivious is None:
            ranges = dict(self._ranges)
            for name in self._symbols:
                # A backed size counts only if its example is >= 2 itself:
                # otherwise the oblivious answer would be wrong for the example.
                hint = self._hints.get(name)
                backed = self.backed_size_oblivious and isinstance(hint, int) and hint >= 2
                if backed or self.is_size_like(name):
                    old = ranges[name]
                    ranges[name] = ValueRange(max(old.lower, 2), max(old.upper, 2))
            self._oblivious = Decider(ranges)
        return self._oblivious

    def decide_static(self, expr: Expr, *, size_oblivious: bool = False) -> bool | None:
        """Decide a boolean question without guarding; None when it depends on the inputs."""
        simplified = self.simplify(expr)
        if isinstance(simplified, E.Const):
            return bool(simplified.value)
        key = (simplified, size_oblivious)
        if key in self._decided:
            return self._decided[key]
        decider = self._oblivious_decider() if size_oblivious else self._decider
        facts = self._relevant_facts(simplified)
        verdict: bool | None
        if simplified in self._facts:
            verdict = True
        elif E.logical_not(simplified) in self._facts:
            verdict = False
        else:
            verdict = decider.decide(simplified, facts)
        if verdict is None and size_oblivious:
            # max(1, s0) is s0 once s0 >= 2: simplify again with the oblivious ranges.
            oblivious = Substitution({}, lambda op: self._simplify_op(op, decider))(simplified)
            if oblivious is not simplified:
                verdict = decider.decide(oblivious, self._relevant_facts(oblivious))
        self._decided[key] = verdict
        return verdict

    def statically_known_true(self, expr: Expr) -> bool:
        return self.decide_static(expr) is True

    # --- guarding -------------------------------------------------------------------------------

    def evaluate(
        self,
        expr: Expr,
        *,
        hint: Scalar | None = None,
        size_oblivious: bool = False,
        fallback: bool | None = None,
    ) -> Scalar:
        """The value of ``expr`` for this trace, guarding on the example value if needed.

        ``fallback`` (``guard_or_false`` / ``guard_or_true``) is returned instead
        of raising when the question is data-dependent. ``size_oblivious``
        decides as if every size-like unbacked symbol were at least 2.
        """
        simplified = self.simplify(expr)
        value = E.as_scalar(simplified)
        if value is not None:
            return value
        if simplified.kind == "bool":
            verdict = self.decide_static(simplified)
            if verdict is not None:
                return verdict
            assumed = self._assume(simplified, hint, size_oblivious)
            if assumed is not None:
                return assumed
        if hint is None:
            hint = self.hint_of(expr)
        if hint is None:
            if fallback is not None:
                return fallback
            if simplified.kind == "bool" and at_assert(user_frame(sys._getframe(1))):
                self._record(simplified, runtime=True)  # `assert u0 > 0`: checked at run time
                return True
            example = self._example_hint(simplified)
            if example is None:
                raise self._data_dependent(simplified)
            self._record(self._fact_for(simplified, example), runtime=True)
            self.data_specializations.append(self._asserts[-1])
            return example
        if self._suppressed:
            return hint
        fact = self._fact_for(simplified, hint)
        symbols = self._small_symbols(simplified)
        if self._assumptions is not None and simplified.kind == "bool" and symbols:
            self._assumptions.append(Assumption(fact, symbols, needs_guard=True))
        else:
            self._record(fact, runtime=False)
        return hint

    @contextmanager
    def suppress_guards(self) -> Iterator[None]:
        """Answer undecided backed questions from the hints *without* recording guards.

        For building the input tensors themselves: ``torch.empty_strided``
        asks ``guard_or_false(size == 0)`` while computing the storage size,
        which says nothing about the program (torch's FakeTensorMode suppresses
        guards there too). Everything else should run unsuppressed.
        """
        self._suppressed += 1
        try:
            yield
        finally:
            self._suppressed -= 1

    def guard_or(
        self, expr: Expr, default: bool, hint: Scalar | None = None, *, layout: bool = False
    ) -> bool:
        """``guard_or_false`` / ``guard_or_true``: ``default`` when data-dependent.

        A backed question is guarded like any other, also with
        ``backed_size_oblivious``: torch's kernels use these for unbacked
        sizes, where guarding is impossible, but their two answers are not
        always equivalent for backed ones (``squeeze`` keeps or drops a dim
        depending on ``size == 1``), so answering from the example without a
        guard can make the program wrong for other sizes.

        ``layout``: asked by torch's C++ layout code (contiguity skips size-1
        dims). Outside an op's metadata computation (where assumptions are
        checked), a question only sizes 0 and 1 leave open is answered as if
        backed sizes were at least 2, as torch does: the answer decides
        whether a tensor counts as contiguous, which changes how it is copied,
        never its values.
        """
        if layout:
            verdict = self.layout_verdict(expr)
            if verdict is not None:
                return verdict
        return bool(self.evaluate(expr, hint=hint, fallback=default))

    def expect_true(self, expr: Expr, hint: Scalar | None = None) -> bool:
        """``torch._check(expr)``: True if it holds; data-dependent facts become runtime asserts."""
        simplified = self.simplify(expr)
        verdict = self.decide_static(simplified)
        if verdict is not None:
            return verdict
        if hint is None:
            hint = self.hint_of(expr)
        if hint is not None:
            return bool(self.evaluate(simplified, hint=hint))
        self._record(simplified, runtime=True)
        return True

    def _example_hint(self, expr: Expr) -> Scalar | None:
        """``expr`` on the example inputs' data, when ``example_values`` knows it."""
        if self.example_values is None:
            return None
        values = dict(self._hints)
        for name in E.free_symbols(expr):
            if name not in values:
                value = self.example_values(name)
                if value is None:
                    return None
                values[name] = value
        try:
            return evaluate(expr, values)
        except (EvaluationError, ZeroDivisionError):
            return None

    @staticmethod
    def _fact_for(expr: Expr, value: Scalar) -> Expr:
        if expr.kind == "bool":
            return expr if value else E.logical_not(expr)
        if expr.kind == "int":
            assert isinstance(expr, Poly) and isinstance(value, int)
            return E.eq(expr, E.integer(value))
        return E.float_compare("feq", expr, E.constant(float(value)))

    def _data_dependent(self, expr: Expr) -> DataDependentError:
        text = self.format(expr)
        unbacked = sorted(n for n in E.free_symbols(expr) if self._symbols[n].hint is None)
        origins = ", ".join(
            f"{n} = {self._symbols[n].source or self._origins.get(n) or 'a data-dependent value'}"
            for n in unbacked
        )
        where = user_location()
        if expr.kind == "bool":
            fixes: tuple[str, ...] = (
                f"torch._check({text})  # if it always holds",
                f"torch._check({self.format(E.logical_not(expr))})  # if it never holds",
                "torch.cond(pred, true_fn, false_fn, operands)  # to keep both branches",
            )
        else:
            fixes = (f"torch._check({text} == <value>)  # if the value is known",)
        fixes += (
            "graphlift.export(..., data_dependent='specialize')  # decide it from the example "
            "inputs; other data is refused at run time",
        )
        return DataDependentError(
            f"could not decide `{text}`: it depends on data-dependent values ({origins}) "
            "that are only known at run time",
            expr=text,
            where=str(where) if where is not None else None,
            fixes=fixes,
        )

    # --- the one place a guard is recorded ---------------------------------------------------------

    def _record(self, fact: Expr, *, runtime: bool) -> None:
        """Record ``fact`` as a guard (or runtime assert) with the user's line, then learn from it."""
        if self._sealed:
            raise InternalError(
                f"a transformation asked the source program's shapes to assume {self.format(fact)}; "
                "it must only use its own copy"
            )
        if not runtime and fact in self._facts:
            return  # already guarded (a question asked again by the next op)
        where = user_location()
        code = self.format(fact)
        if runtime:
            self._asserts.append(RuntimeAssert(fact, code, where))
        else:
            self._guards.append(Guard(fact, code, where))
        self._learn(fact, where)

    def _learn(self, fact: Expr, where: SourceLocation | None) -> None:
        # A fact may predate replacements learned since it was asked (an op's 0/1
        # assumptions are recorded after its kernel ran): solve its current form,
        # or ``s1 == max(1, s3)`` after ``s3 := s1`` would make ``s3 := max(1, s3)``.
        current = self.simplify(fact)
        for part in (*F.conjuncts(fact), *F.conjuncts(current)):
            if part in self._facts:
                continue
            self._facts[part] = None
            for mono in _comparison_monomials(part):
                self._facts_by_mono.setdefault(mono, []).append(part)
        for consequence in F.consequences(current, self._rank):
            if isinstance(consequence, F.Tighten):
                self._tighten(consequence.symbol, consequence.allowed, where)
            elif isinstance(consequence, F.Exclude):
                old = self._ranges[consequence.symbol]
                if consequence.value == old.lower:
                    self._tighten(consequence.symbol, ValueRange(old.lower + 1, old.upper), where)
                elif consequence.value == old.upper:
                    self._tighten(consequence.symbol, ValueRange(old.lower, old.upper - 1), where)
            elif isinstance(consequence, F.Pin):
                self._pinned[consequence.op] = consequence.value
            else:
                self._replace(consequence.symbol, consequence.value, where)
        self._reset_caches()

    def _rank(self, name: str) -> tuple[int, int]:
        info = self._symbols[name]
        return (int(info.hint is None), int(name.lstrip("suf")))

    def _tighten(self, name: str, allowed: ValueRange, where: SourceLocation | None) -> None:
        new = self._ranges[name].intersect(allowed)
        if new.is_empty:
            raise ConstraintViolationError(
                f"{self.format(E.symbol(name))} cannot satisfy both {self._ranges[name]} "
                f"and {allowed}",
                where=str(where) if where is not None else None,
            )
        self._ranges[name] = new
        self._reset_caches()
        if new.is_singleton and name not in self._replacements:
            self._replace(name, E.integer(int(new.lower)), where)

    def _replace(self, name: str, value: Poly, where: SourceLocation | None) -> None:
        if name in self._replacements or name in E.free_symbols(value):
            return  # eliminated already, or not a solution (``s == max(1, s)``)
        value_range = self._decider.bound(value)
        other = E.as_symbol(value)
        if other is not None:  # unification: the survivor inherits both ranges
            self._tighten(other, self._ranges[name], where)
        elif not value_range.intersect(self._ranges[name]).is_empty and value.const is not None:
            self._ranges[name] = value_range
        self._replacements[name] = Replacement(name, value, where)
        for key, old in list(self._replacements.items()):
            if key != name:
                new_value = substitute(old.value, {name: value})
                self._replacements[key] = Replacement(key, new_value, old.where)
        for op, pinned in list(self._pinned.items()):  # re-key pins over the new form
            moved = E.lone_factor(substitute(E.factor_poly(op), {name: value}))
            if moved is not op:
                del self._pinned[op]
                if isinstance(moved, Op):
                    self._pinned[moved] = pinned
        self._reset_caches()


def _comparison_monomials(expr: Expr) -> set[E.Mono]:
    """Non-constant monomials of the ``p >= 0`` / ``p == 0`` atoms inside ``expr``."""
    found: set[E.Mono] = set()
    if isinstance(expr, Op):
        if expr.name in ("ge", "eq"):
            poly = expr.args[0]
            assert isinstance(poly, Poly)
            found.update(mono for mono, _ in poly.terms if mono)
        elif expr.name in ("not", "and", "or"):
            for arg in expr.args:
                found |= _comparison_monomials(arg)
    return found
