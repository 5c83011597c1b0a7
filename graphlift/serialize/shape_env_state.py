"""A ShapeEnv as archive data, and rebuilt from it.

What a loaded program needs is everything the env *knows*: its symbols
(hint, source, declared range), current ranges, size-like marks,
replacements, pinned ops, learned facts, guards and runtime asserts, and the
name counters (so symbols created later, when the program is re-exported or
decomposed, do not collide). Derived indexes and caches are rebuilt.

Every expression is stored as Python text over the symbol names
(:func:`graphlift.symbolic.to_python`) and read back with the whitelist
parser (:func:`graphlift.symbolic.parse_expr`), never evaluated. Expressions
are interned, so parsing gives the very objects the saving process had.

This module reads and sets the env's private fields: it is the one place
outside ``symbolic`` that does, and ``tests/serialize`` checks that it
handles every field a ShapeEnv has (a new field fails that test until it is
saved here too).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from graphlift.errors import ExpressionParseError
from graphlift.export.symbols import parse_phantom_source
from graphlift.serialize.reader import Data
from graphlift.source import SourceLocation
from graphlift.symbolic import ShapeEnv, ValueRange, parse_expr, to_python
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Expr, Op
from graphlift.symbolic.guards import Guard, Replacement, RuntimeAssert, SymbolInfo
from graphlift.symbolic.shape_env import _comparison_monomials

#: A symbol's source is printed into the input checks ``module()`` compiles, so
#: it must be a plain access path such as ``x.size()[0]``, or a phantom root's
#: ``(x.size()[2] // 32)`` in exactly the forms ``parse_phantom_source`` accepts.
SAFE_SOURCE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(\.size\(\)\[\d{1,4}\]|\.item\(\)|\[\d{1,6}\])*)?$"
)

#: The ShapeEnv fields saved (or rebuilt from saved ones); see the module docstring.
HANDLED_FIELDS = frozenset({
    "backed_size_oblivious", "_symbols", "_ranges", "_size_like", "_hints", "_replacements",
    "_pinned", "_facts", "_facts_by_mono", "_guards", "_asserts", "_counts", "_suppressed",
    "_substitution", "_decided", "_decider", "_oblivious", "_generation", "_derived",
    # Export-time only, not saved: the 0/1 assumption log of the op being traced,
    # the example-data hook of data_dependent="specialize" and the decisions it
    # made (draft_export's report), and where unbacked symbols came from (for
    # DataDependentError messages while tracing).
    "_assumptions", "example_values", "data_specializations", "_origins",
})  # fmt: skip


def expr_text(expr: Expr) -> str:
    return to_python(expr)


class ExprReader:
    """Parses expression text from an archive, once per distinct text."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._cache: dict[str, Expr] = {}

    def __call__(self, data: Data, kind: str | None = None) -> Expr:
        text = data.str()
        expr = self._cache.get(text)
        if expr is None:
            if len(text) > self.max_chars:
                raise data.fail(f"expression of {len(text)} characters (at most {self.max_chars})")
            try:
                expr = parse_expr(text)
            except (ExpressionParseError, RecursionError, ValueError, ZeroDivisionError,
                    OverflowError, TypeError, MemoryError) as error:  # fmt: skip
                raise data.fail(f"bad expression {text[:80]!r}: {str(error)[:200]}") from None
            self._cache[text] = expr
        if kind is not None and expr.kind != kind:
            raise data.fail(f"expected a {kind} expression, found {text[:80]!r} ({expr.kind})")
        return expr


# --- saving ----------------------------------------------------------------------------


def shape_env_to_data(env: ShapeEnv) -> dict[str, Any]:
    return {
        "backed_size_oblivious": env.backed_size_oblivious,
        "symbols": [
            {
                "name": s.name,
                "hint": s.hint,
                "source": s.source,
                "declared": range_to_data(s.declared),
            }
            for s in env._symbols.values()
        ],
        "ranges": {name: range_to_data(r) for name, r in env._ranges.items()},
        "size_like": sorted(env._size_like),
        "replacements": [
            {"symbol": r.symbol, "value": expr_text(r.value), "where": location_to_data(r.where)}
            for r in env._replacements.values()
        ],
        "pinned": sorted([expr_text(op), value] for op, value in env._pinned.items()),
        "facts": sorted(expr_text(fact) for fact in env._facts),
        "guards": [_fact_record(g) for g in env._guards],
        "runtime_asserts": [_fact_record(a) for a in env._asserts],
        "counts": dict(env._counts),
    }


def _fact_record(fact: Guard | RuntimeAssert) -> dict[str, Any]:
    return {"expr": expr_text(fact.expr), "code": fact.code, "where": location_to_data(fact.where)}


def range_to_data(r: ValueRange) -> list[Any]:
    return [_bound_to_data(r.lower), _bound_to_data(r.upper)]


def _bound_to_data(value: int | float) -> Any:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True, eq=False)
class ArchivedLocation(SourceLocation):
    """A source location read from an archive: its code line is the archived
    text. (A plain SourceLocation reads the line from the file it names, and a
    file named by an archive must never be opened: it could be a device that
    never ends.)"""

    text: str = ""

    @property
    def code(self) -> str:
        return self.text


def location_to_data(where: SourceLocation | None) -> Any:
    if where is None:
        return None
    return {"file": where.filename, "line": where.lineno, "function": where.function,
            "code": where.code}  # fmt: skip


# --- loading ---------------------------------------------------------------------------


def shape_env_from_data(data: Data, read_expr: ExprReader) -> ShapeEnv:
    data.fields(("backed_size_oblivious", "symbols", "ranges", "size_like", "replacements",
                 "pinned", "facts", "guards", "runtime_asserts", "counts"))  # fmt: skip
    env = ShapeEnv(backed_size_oblivious=data["backed_size_oblivious"].bool())
    for item in data["symbols"].items():
        item.fields(("name", "hint", "source", "declared"))
        name = _symbol_name(item["name"])
        source = item["source"].str()
        if not SAFE_SOURCE.match(source) and parse_phantom_source(source) is None:
            raise item["source"].fail(
                f"a symbol source must be an access path, not {source[:60]!r}"
            )
        info = SymbolInfo(name, item["hint"].optional_int(), source,
                          range_from_data(item["declared"]))  # fmt: skip
        env._symbols[name] = info
        if info.hint is not None:
            env._hints[name] = info.hint
    for name, item in data["ranges"].entries():
        env._ranges[_known(env, name, item)] = range_from_data(item)
    for item in data["size_like"].items():
        env._size_like.add(_known(env, item.str(), item))
    for item in data["replacements"].items():
        item.fields(("symbol", "value", "where"))
        symbol = _known(env, item["symbol"].str(), item)
        value = read_expr(item["value"], "int")
        env._replacements[symbol] = Replacement(symbol, value, location_from_data(item["where"]))
    for item in data["pinned"].items():
        op_data, pinned = item.items(2)
        op = E.lone_factor(read_expr(op_data, "int"))
        if not isinstance(op, Op):
            raise op_data.fail("a pinned value must be an operation")
        env._pinned[op] = pinned.int()
    for item in data["facts"].items():
        fact = read_expr(item, "bool")
        env._facts.add(fact)
        for mono in _comparison_monomials(fact):
            env._facts_by_mono.setdefault(mono, []).append(fact)
    env._guards = [Guard(*_fact_from_data(env, item, read_expr)) for item in data["guards"].items()]
    for guard, item in zip(env._guards, data["guards"].items()):
        unbacked = [n for n in E.free_symbols(guard.expr) if env._symbols[n].hint is None]
        if unbacked:
            raise item.fail(f"a guard over data-dependent symbols {unbacked[:3]}")
    env._asserts = [
        RuntimeAssert(*_fact_from_data(env, item, read_expr))
        for item in data["runtime_asserts"].items()
    ]
    counts = data["counts"].fields(("s", "u", "uf"))
    env._counts = {key: counts[key].int() for key in ("s", "u", "uf")}
    _check_known_symbols(env, data)
    missing = set(env._symbols) - set(env._ranges)
    if missing:
        raise data["ranges"].fail(f"no range for symbols {sorted(missing)}")
    env._reset_caches()
    return env


def _check_known_symbols(env: ShapeEnv, data: Data) -> None:
    used: set[str] = set()
    for replacement in env._replacements.values():
        used |= E.free_symbols(replacement.value)
    for expr in (*env._pinned, *env._facts):
        used |= E.free_symbols(expr)
    unknown = sorted(used - set(env._symbols))
    if unknown:
        raise data.fail(f"replacements, pins or facts use unknown symbols {unknown[:3]}")


def _symbol_name(item: Data) -> str:
    name = item.str()
    if not (name[:1] in ("s", "u") and name.lstrip("suf").isdigit() and len(name) < 12):
        raise item.fail(f"bad symbol name {name[:20]!r}")
    return name


def _known(env: ShapeEnv, name: str, item: Data) -> str:
    if name not in env._symbols:
        raise item.fail(f"unknown symbol {name[:20]!r}")
    return name


def _fact_from_data(
    env: ShapeEnv, item: Data, read_expr: ExprReader
) -> tuple[Expr, str, SourceLocation | None]:
    """A guard's parts. Its code is compiled into ``module()``'s input checks, so
    it is not taken from the archive: it is printed again from the expression
    (over the checked sources), and must equal what the archive says."""
    item.fields(("expr", "code", "where"))
    expr = read_expr(item["expr"], "bool")
    unknown = sorted(E.free_symbols(expr) - set(env._symbols))
    if unknown:
        raise item["expr"].fail(f"unknown symbols {unknown[:3]}")
    code = env.format(expr)
    if item["code"].str() != code:
        raise item["code"].fail(f"does not match its expression (expected {code[:80]!r})")
    return expr, code, location_from_data(item["where"])


def range_from_data(item: Data) -> ValueRange:
    lower, upper = (_bound_from_data(part) for part in item.items(2))
    return ValueRange(lower, upper)


def _bound_from_data(item: Data) -> int | float:
    value = item.value
    if value == "inf":
        return math.inf
    if value == "-inf":
        return -math.inf
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise item.fail(f"expected a number or 'inf'/'-inf', found {value!r:.40}")
    return value


def location_from_data(item: Data) -> SourceLocation | None:
    if item.value is None:
        return None
    item.fields(("file", "line", "function", "code"))
    return ArchivedLocation(
        item["file"].str(), item["line"].int(), item["function"].str(), item["code"].str()
    )
