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

from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import ConstraintViolationError, Violation
from graphlift.export.spec.dynamic_shapes import DerivedDim, Dim, DimHint, hint_kind
from graphlift.export.spec.symbols import DynamicDim
from graphlift.symbolic import ShapeEnv, ValueRange
from graphlift.symbolic.decide import bound
from graphlift.symbolic.expr import as_int, as_symbol, free_symbols
from graphlift.symbolic.expr import symbol as symbol_expr


@dataclass(frozen=True)
class Specialization:
    """A ``Dim.AUTO`` dimension that became static or got a narrower range."""

    source: str
    change: str  # "static: 1" or "range [2, 64]"
    where: str | None

    def __str__(self) -> str:
        return f"{self.source}: {self.change}" + (f" (at {self.where})" if self.where else "")


def check_dynamic_dims(
    shape_env: ShapeEnv, dims: tuple[DynamicDim, ...]
) -> tuple[Specialization, ...]:
    violations: list[Violation] = []
    fixes: dict[str, Any] = {}
    report: list[Specialization] = []
    stand_ins = _hint_stand_ins(shape_env, dims)
    for dim in dims:
        if isinstance(dim.entry, DerivedDim):
            continue  # checked through its root
        problem = _problem(shape_env, dim, stand_ins.get(dim.source))
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
            if symbol in hint_symbols and symbol != as_symbol(dim.size.node.symbolic_expr):
                tied.setdefault(symbol, []).append(dim.source)  # type: ignore[arg-type]
    return {sources[0]: symbol for symbol, sources in tied.items() if len(sources) == 1}


def _problem(
    shape_env: ShapeEnv, dim: DynamicDim, stand_in: str | None = None
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
    actual = shape_env.range_of(own)
    if actual.lower > declared.lower or actual.upper < declared.upper:
        where = _guard_lines(shape_env, own)
        name = dim.entry.name if isinstance(dim.entry, Dim) else "d"
        suggestion = Dim(
            name,
            min=int(actual.lower),
            max=None if actual.upper == float("inf") else int(actual.upper),
        )
        return f"range {actual} (declared {declared})", where, suggestion
    excluded = _excluded_small_sizes(shape_env, own, actual)
    if excluded:
        name = dim.entry.name if isinstance(dim.entry, Dim) else "d"
        upper = None if actual.upper == float("inf") else int(actual.upper)
        suggestion = Dim(name, min=max(excluded) + 1, max=upper)
        sizes = " and ".join(str(v) for v in excluded)
        return f"size {sizes} not supported", _guard_lines(shape_env, own), suggestion
    return None


def _excluded_small_sizes(shape_env: ShapeEnv, symbol: str, actual: ValueRange) -> list[int]:
    """Sizes 0 and 1 inside the range that a guard on this symbol alone rules
    out (``x.size()[0] != 1`` leaves the range [0, inf] but drops 1)."""
    own = [g for g in shape_env.guards if free_symbols(g.expr) == {symbol}]
    excluded = []
    for value in (0, 1):
        if not actual.contains(value):
            continue
        if any(not shape_env.value_at(g.expr, {symbol: value}) for g in own):
            excluded.append(value)
    return excluded


def _declared(dim: DynamicDim) -> ValueRange:
    if isinstance(dim.entry, Dim):
        return ValueRange(dim.entry.min, dim.entry.upper)
    return ValueRange(0, float("inf"))


def _replacement_line(shape_env: ShapeEnv, symbol: str | None) -> str | None:
    replacement = shape_env.replacements.get(symbol) if symbol else None
    return str(replacement.where) if replacement is not None and replacement.where else None


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
