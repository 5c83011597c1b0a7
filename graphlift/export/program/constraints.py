"""Checking the traced program against the user's dynamic-shape spec.

After tracing, each declared dynamic dimension is compared with what the
program needed. A named ``Dim`` or ``Dim.DYNAMIC`` that the program
specialized to one value, narrowed to a smaller range, or tied to another dim
is a *violation*: export raises ConstraintViolationError listing each one
with the user's line that caused it and a suggested fix (``err.fixes``:
``{source: suggestion}``). ``Dim.AUTO`` dims are allowed to become static or
narrower, ``Dim.DYNAMIC`` ones narrower or tied to another dim (not static);
those changes are returned as the program's ``specializations``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import ConstraintViolationError, Violation
from graphlift.export.program.narrowing import SMALL_RANGE, GuardTable, Refusal
from graphlift.export.program.relations import Condition
from graphlift.export.spec.dynamic_shapes import DerivedDim, Dim, DimHint, hint_kind
from graphlift.export.spec.symbols import DynamicDim
from graphlift.symbolic import ShapeEnv, ValueRange
from graphlift.symbolic.decide import bound
from graphlift.symbolic.expr import as_int, as_symbol, free_symbols
from graphlift.symbolic.expr import symbol as symbol_expr

NO_FIX = object()  # a narrowing no Dim or derived dim declares (odd sizes only, ...)


@dataclass(frozen=True)
class Specialization:
    """A ``Dim.AUTO`` dimension that became static or got a narrower range."""

    source: str
    change: str  # "static: 1" or "range [2, 64]"
    where: str | None

    def __str__(self) -> str:
        return f"{self.source}: {self.change}" + (f" (at {self.where})" if self.where else "")


def check_dynamic_dims(
    shape_env: ShapeEnv,
    dims: tuple[DynamicDim, ...],
    model_fails: frozenset[tuple[str, int]] = frozenset(),
) -> tuple[Specialization, ...]:
    """``model_fails``: (symbol, size) pairs at which the model itself raises
    (``export/small_sizes.py``); refusing them narrows no named Dim."""
    violations: list[Violation] = []
    fixes: dict[str, Any] = {}
    report: list[Specialization] = []
    stand_ins = _hint_stand_ins(shape_env, dims)
    guards = GuardTable(shape_env)
    for dim in dims:
        if isinstance(dim.entry, DerivedDim):
            continue  # checked through its root
        # A named Dim is not narrowed by sizes the model itself fails at; AUTO and
        # DYNAMIC dims announce them (module() refuses them before computing).
        fails = model_fails if hint_kind(dim.entry) is None else frozenset()
        problem = _problem(shape_env, guards, dim, stand_ins.get(dim.source), fails)
        if problem is None:
            continue
        change, where, fix = problem
        # AUTO may become anything; DYNAMIC may narrow or tie (as in torch) but not become static.
        kind = hint_kind(dim.entry)
        tolerated = kind is DimHint.AUTO or (
            kind is DimHint.DYNAMIC and not change.startswith("static")
        )
        if tolerated:
            report.append(Specialization(dim.source, change, where))
        else:
            violations.append(Violation(dim.source, repr(dim.entry), change, where))
            if fix is not NO_FIX:
                fixes[dim.source] = fix
    if violations:
        raise ConstraintViolationError(
            "the program does not work for every size dynamic_shapes allows:\n"
            + "\n".join(str(v) for v in violations)
            + "\nFix the spec (err.fixes has a suggestion per dim; refine_dynamic_shapes applies them) "
            "or change the model so it does not depend on these sizes.",
            fixes=fixes,
            violations=tuple(violations),
        )
    return tuple(report)


def _hint_stand_ins(shape_env: ShapeEnv, dims: tuple[DynamicDim, ...]) -> dict[str, str]:
    """Named dims that became equal to a ``Dim.AUTO``/``Dim.DYNAMIC`` dim's symbol:
    {named dim's source: that symbol}, when it is the only named dim tied to it.
    The older (hint) symbol survives the unification, but the named dim is still
    free; it is the hint dim that got tied (as torch.export sees it)."""
    hint_symbols = {
        as_symbol(d.size.node.symbolic_expr) for d in dims if hint_kind(d.entry) is not None
    }
    tied: dict[str, list[str]] = {}
    for dim in dims:
        if isinstance(dim.entry, Dim) and not isinstance(dim.size, int):
            symbol = as_symbol(shape_env.simplify(dim.size.node.symbolic_expr))
            if (
                symbol is not None
                and symbol in hint_symbols
                and (symbol != as_symbol(dim.size.node.symbolic_expr))
            ):
                tied.setdefault(symbol, []).append(dim.source)
    return {sources[0]: symbol for symbol, sources in tied.items() if len(sources) == 1}


def _problem(
    shape_env: ShapeEnv,
    guards: GuardTable,
    dim: DynamicDim,
    stand_in: str | None = None,
    model_fails: frozenset[tuple[str, int]] = frozenset(),
) -> tuple[str, str | None, Any] | None:
    """(what changed, the user's line, the suggested entry) or None if the dim stayed as
    declared (``stand_in``: the hint dim's symbol that now carries this dim, if any)."""
    expr = shape_env.simplify(dim.size.node.symbolic_expr)
    value = as_int(expr)
    own = stand_in or as_symbol(dim.size.node.symbolic_expr)
    if value is not None:
        change = f"static: {value}"
        if value in (0, 1) and own is not None and shape_env.hint_of(symbol_expr(own)) == value:
            change += " (the example input has this size; export with an example of size >= 2)"
        return change, _replacement_line(shape_env, own), None
    symbol = as_symbol(expr)
    if symbol is not None and symbol != own:
        other = shape_env.format(expr)
        return f"must equal {other}", _replacement_line(shape_env, own), f"the same Dim as {other}"
    if own is None:
        return None
    declared = _declared(dim)
    while (own, declared.lower) in model_fails and declared.lower < declared.upper:
        declared = ValueRange(declared.lower + 1, declared.upper)
    actual = shape_env.range_of(own)
    # A named Dim keeps the run-time check of a guard over several dims (as in
    # torch.export); AUTO and DYNAMIC announce every size such a guard refuses.
    refusal = guards.refusal(own, actual, joint=hint_kind(dim.entry) is not None)
    if (
        refusal is not None
        and not refusal.relations
        and all((own, size) in model_fails for size in refusal.refused)
    ):
        refusal = None
    narrowed = actual.lower > declared.lower or actual.upper < declared.upper
    if not narrowed and refusal is None:
        return None
    changes = [f"range {actual} (declared {declared})"] if narrowed else []
    where: str | None
    if refusal is not None:
        changes += _refusal_texts(shape_env, refusal)
        where = _refusal_lines(refusal)
    else:
        where = _guard_lines(shape_env, own)
    name = dim.entry.name if isinstance(dim.entry, Dim) else "d"
    example = shape_env.hint_of(symbol_expr(own))
    return ", ".join(changes), where, _suggestion(name, actual, refusal, example)


def _refusal_texts(shape_env: ShapeEnv, refusal: Refusal) -> list[str]:
    """What ``refusal`` refuses, in words: sizes refused outright or while the other
    dims a guard reads are from some size on, then the relations with other dims,
    as the very checks ``module()`` runs."""
    texts = [
        f"{_sizes_text(sizes)} not supported{_while(shape_env, condition)}"
        for condition, sizes in refusal.when
    ]
    codes = [guard.code for guard in refusal.relations]
    if codes:
        both = codes[0] if len(codes) == 1 else " and ".join(f"({code})" for code in codes)
        texts.append(f"must satisfy {both} (a relation between dims, checked at run time)")
    return texts


def _while(shape_env: ShapeEnv, condition: Condition) -> str:
    """`` while a, b >= 2`` (`` while n == 0``, `` while a >= 1, b <= 1``) for ``condition``."""
    if not condition:
        return ""
    names = [shape_env.format(symbol_expr(n)) for n, _ in condition]
    texts = [_interval_text(sizes) for _, sizes in condition]
    if len(set(texts)) == 1:
        return f" while {', '.join(names)} {texts[0]}"
    return " while " + ", ".join(f"{n} {text}" for n, text in zip(names, texts))


def _interval_text(sizes: ValueRange) -> str:
    if sizes.is_singleton:
        return f"== {int(sizes.lower)}"
    if sizes.upper == float("inf"):
        return f">= {int(sizes.lower)}"
    return f"<= {int(sizes.upper)}" if sizes.lower == 0 else f"in {sizes}"


def _sizes_text(sizes: tuple[int, ...]) -> str:
    if len(sizes) <= 2:
        return ("size " if len(sizes) == 1 else "sizes ") + " and ".join(map(str, sizes))
    shown = ", ".join(map(str, sizes[:6]))
    return f"sizes {shown}{', ...' if len(sizes) > 6 else ''}"


def _suggestion(name: str, actual: ValueRange, refusal: Refusal | None, example: Any) -> Any:
    """The Dim (or derived dim) declaring what the program supports, None (static)
    when the program supports one size of a range whose every size was tried, or
    NO_FIX when no ``step*Dim + first`` does (refine_dynamic_shapes then leaves it).
    A suggestion always admits the ``example`` size (the next export runs on it)."""
    upper = None if actual.upper == float("inf") else int(actual.upper)
    if refusal is None or not refusal.refused:  # a relation is checked at run time
        return Dim(name, min=int(actual.lower), max=upper)
    accepted, refused = refusal.accepted, refusal.refused
    if not accepted:
        return NO_FIX
    if len(accepted) == 1 and actual.upper - actual.lower < SMALL_RANGE:
        return None  # every size of the range was tried and one works: the example's; static
    if max(refused) < accepted[0]:  # only the low end
        return Dim(name, min=accepted[0], max=upper)
    if min(refused) > accepted[-1]:  # only the high end
        return Dim(name, min=int(actual.lower), max=accepted[-1])
    first = accepted[0]
    step = math.gcd(*(size - first for size in accepted))  # every supported size is step*k + first
    if step >= 2 and all((size - first) % step for size in refused if size > first):
        offset = first % step
        top = None if upper is None else (upper - offset) // step
        return step * Dim(f"{name}_{step}", min=first // step, max=top) + offset
    above = max(refused) + 1  # e.g. "all but size 1" (min 0): from 2 on, as no range skips 1
    if (upper is None or above <= upper) and isinstance(example, int) and example >= above:
        return Dim(name, min=above, max=upper)
    return NO_FIX


def _declared(dim: DynamicDim) -> ValueRange:
    if isinstance(dim.entry, Dim):
        return ValueRange(dim.entry.min, dim.entry.upper)
    return ValueRange(0, float("inf"))


def _replacement_line(shape_env: ShapeEnv, symbol: str | None) -> str | None:
    replacement = shape_env.replacements.get(symbol) if symbol else None
    return str(replacement.where) if replacement is not None and replacement.where else None


def _refusal_lines(refusal: Refusal) -> str | None:
    """The refusing guards by user line (``g1; g2 at line``); a relation's code is
    already in the announcement's text, so only its line is added."""
    by_line: dict[str | None, list[str]] = {}
    for guard in refusal.guards:
        by_line.setdefault(str(guard.where) if guard.where else None, []).append(guard.code)
    for guard in refusal.relations:
        by_line.setdefault(str(guard.where) if guard.where else None, [])
    texts = [
        f"{'; '.join(codes)} at {line}" if codes and line else "; ".join(codes) or str(line)
        for line, codes in by_line.items()
        if codes or line
    ]
    return "; ".join(texts) or None


def _guard_lines(shape_env: ShapeEnv, symbol: str) -> str | None:
    lines = [
        f"{guard.code} at {guard.where}" if guard.where else guard.code
        for guard in shape_env.guards
        if symbol in free_symbols(guard.expr)
    ]
    return "; ".join(lines) or None


def range_constraints(shape_env: ShapeEnv, graph: Any = None) -> dict[str, ValueRange]:
    """The range of every symbol that is still free in the program, then (as
    torch.export reports them) of every input size that is an expression of
    them: a derived dim ``2*s0 + 1``, or a size tied to another by the program."""
    ranges = {
        info.name: shape_env.range_of(info.name)
        for info in shape_env.symbols
        if info.name not in shape_env.replacements
    }
    for expr in _derived_input_sizes(shape_env, graph):
        ranges.setdefault(str(expr), bound(expr, shape_env.ranges))
    return ranges


def _derived_input_sizes(shape_env: ShapeEnv, graph: Any) -> list[Any]:
    """Input sizes that are neither constants nor a single symbol, in input order."""
    found: list[Any] = []
    for node in graph.nodes if graph is not None else ():
        value = node.meta.get("val") if node.op == "placeholder" else None
        for size in value.shape if isinstance(value, torch.Tensor) else ():
            if not isinstance(size, torch.SymInt):
                continue
            expr = shape_env.simplify(size.node.symbolic_expr)
            if as_symbol(expr) is None and as_int(expr) is None and expr not in found:
                found.append(expr)
    return found
