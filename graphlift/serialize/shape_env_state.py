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

It reads and writes the env through its frozen ``ShapeEnvState``
(``env.snapshot()``, ``ShapeEnv.from_state``), never its private fields;
``tests/serialize`` checks that every field of that state is saved or
deliberately left out (a new field fails that test until it is handled here).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from graphlift.errors import ExpressionParseError
from graphlift.export.spec.symbols import parse_phantom_source
from graphlift.serialize.reader import Data
from graphlift.source import SourceLocation
from graphlift.symbolic import ShapeEnv, ValueRange, parse_expr, to_python
from graphlift.symbolic import algebra as E
from graphlift.symbolic.env_state import ShapeEnvState
from graphlift.symbolic.expr import Expr, Op
from graphlift.symbolic.guards import Guard, Replacement, RuntimeAssert, SymbolInfo

#: A symbol's source is printed into the input checks ``module()`` compiles, so
#: it must be a plain access path such as ``x.size()[0]``, or a phantom root's
#: ``(x.size()[2] // 32)`` in exactly the forms ``parse_phantom_source`` accepts.
SAFE_SOURCE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*(\.size\(\)\[\d{1,4}\]|\.item\(\)|\[\d{1,6}\])*)?$"
)

#: The ShapeEnvState fields written to the archive; ``hints`` is read back from
#: the symbols, and the rest are export-time only: where unbacked symbols came
#: from (for DataDependentError messages while tracing), and the example-data
#: decisions of data_dependent="specialize" (draft_export's report). ``auto``
#: (which dims were Dim.AUTO) is saved since schema version 2, so a loaded
#: program's run_decompositions narrows (and announces) where its source's
#: would; a version-1 archive has none, and its dims count as named (the
#: conservative side: a narrowing is refused instead).
SAVED_FIELDS = frozenset({
    "backed_size_oblivious", "symbols", "ranges", "size_like", "replacements", "pinned",
    "facts", "guards", "runtime_asserts", "counts", "auto",
})  # fmt: skip
UNSAVED_FIELDS = frozenset({"hints", "origins", "data_specializations", "example_values"})
#: The first schema version whose shape env says which symbols are ``Dim.AUTO`` dims.
AUTO_SINCE_VERSION = 2


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
    state = env.snapshot()
    return {
        "backed_size_oblivious": state.backed_size_oblivious,
        "symbols": [
            {
                "name": s.name,
                "hint": s.hint,
                "source": s.source,
                "declared": range_to_data(s.declared),
            }
            for s in state.symbols
        ],
        "ranges": {name: range_to_data(r) for name, r in state.ranges},
        "size_like": sorted(state.size_like),
        "replacements": [
            {"symbol": r.symbol, "value": expr_text(r.value), "where": location_to_data(r.where)}
            for r in state.replacements
        ],
        "pinned": sorted([expr_text(op), value] for op, value in state.pinned),
        "facts": sorted(expr_text(fact) for fact in state.facts),
        "guards": [_fact_record(g) for g in state.guards],
        "runtime_asserts": [_fact_record(a) for a in state.runtime_asserts],
        "counts": dict(state.counts),
        "auto": sorted(state.auto),
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


def shape_env_from_data(data: Data, read_expr: ExprReader, version: int) -> ShapeEnv:
    """The env an archive of schema ``version`` describes."""
    saved_auto = ("auto",) if version >= AUTO_SINCE_VERSION else ()
    data.fields(("backed_size_oblivious", "symbols", "ranges", "size_like", "replacements",
                 "pinned", "facts", "guards", "runtime_asserts", "counts", *saved_auto))  # fmt: skip
    symbols = _symbols_from_data(data["symbols"])
    known = {info.name for info in symbols}
    ranges = tuple(
        (_known(known, name, item), range_from_data(item))
        for name, item in data["ranges"].entries()
    )
    missing = known - {name for name, _ in ranges}
    if missing:
        raise data["ranges"].fail(f"no range for symbols {sorted(missing)}")
    replacements = []
    for item in data["replacements"].items():
        item.fields(("symbol", "value", "where"))
        symbol = _known(known, item["symbol"].str(), item)
        value = read_expr(item["value"], "int")
        replacements.append(Replacement(symbol, value, location_from_data(item["where"])))
    pinned = []
    for item in data["pinned"].items():
        op_data, pinned_value = item.items(2)
        op = E.lone_factor(read_expr(op_data, "int"))
        if not isinstance(op, Op):
            raise op_data.fail("a pinned value must be an operation")
        pinned.append((op, pinned_value.int()))
    counts = data["counts"].fields(("s", "u", "uf"))
    state = ShapeEnvState(
        backed_size_oblivious=data["backed_size_oblivious"].bool(),
        symbols=symbols,
        ranges=ranges,
        size_like=frozenset(_known(known, i.str(), i) for i in data["size_like"].items()),
        hints=tuple((info.name, info.hint) for info in symbols if info.hint is not None),
        replacements=tuple(replacements),
        pinned=tuple(pinned),
        facts=tuple(read_expr(item, "bool") for item in data["facts"].items()),
        guards=(),
        runtime_asserts=(),
        counts=tuple((key, counts[key].int()) for key in ("s", "u", "uf")),
        auto=frozenset(
            _known(known, i.str(), i) for i in (data["auto"].items() if saved_auto else ())
        ),
    )
    _check_known_symbols(state, known, data)
    # Guard code is printed again from each expression by an env that knows the symbols.
    env = ShapeEnv.from_state(state)
    guards = tuple(Guard(*_fact_from_data(env, item, read_expr)) for item in data["guards"].items())
    for guard, item in zip(guards, data["guards"].items()):
        unbacked = [n for n in E.free_symbols(guard.expr) if env.symbol_info(n).hint is None]
        if unbacked:
            raise item.fail(f"a guard over data-dependent symbols {unbacked[:3]}")
    asserts = tuple(
        RuntimeAssert(*_fact_from_data(env, item, read_expr))
        for item in data["runtime_asserts"].items()
    )
    return ShapeEnv.from_state(replace(state, guards=guards, runtime_asserts=asserts))


def _symbols_from_data(data: Data) -> tuple[SymbolInfo, ...]:
    symbols = []
    for item in data.items():
        item.fields(("name", "hint", "source", "declared"))
        name = _symbol_name(item["name"])
        source = item["source"].str()
        if not SAFE_SOURCE.match(source) and parse_phantom_source(source) is None:
            raise item["source"].fail(
                f"a symbol source must be an access path, not {source[:60]!r}"
            )
        symbols.append(SymbolInfo(name, item["hint"].optional_int(), source,
                                  range_from_data(item["declared"])))  # fmt: skip
    return tuple(symbols)


def _check_known_symbols(state: ShapeEnvState, known: set[str], data: Data) -> None:
    used: set[str] = set()
    for replacement in state.replacements:
        used |= E.free_symbols(replacement.value)
    for expr in (*(op for op, _ in state.pinned), *state.facts):
        used |= E.free_symbols(expr)
    unknown = sorted(used - known)
    if unknown:
        raise data.fail(f"replacements, pins or facts use unknown symbols {unknown[:3]}")


def _symbol_name(item: Data) -> str:
    name = item.str()
    if not (name[:1] in ("s", "u") and name.lstrip("suf").isdigit() and len(name) < 12):
        raise item.fail(f"bad symbol name {name[:20]!r}")
    return name


def _known(known: set[str], name: str, item: Data) -> str:
    if name not in known:
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
    unknown = sorted(n for n in E.free_symbols(expr) if not env.has_symbol(n))
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
