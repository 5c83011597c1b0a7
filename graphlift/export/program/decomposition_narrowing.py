"""What ``run_decompositions`` narrowed, announced.

A decomposition may branch on a size the export graph kept whole (``pixel_shuffle``
of a batch whose example is 1, ``scaled_dot_product_attention`` broadcasting an
encoder batch of 1): the decomposed program then needs a guard its source did
not have. Over dims the user declared ``Dim.AUTO`` (the program chooses their
range, as at export) the guard is kept in the new program, and this module says
so, per dim, as the new program's ``specializations`` and in one
:class:`~graphlift.errors.NarrowingWarning`. A named Dim's declared range is a
promise: there the replay raises instead (``decompose/replay.py``).
"""

from __future__ import annotations

import warnings

from graphlift.decompose.replay import Narrowing
from graphlift.errors import NarrowingWarning
from graphlift.export.program.constraints import Specialization
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import as_int, free_symbols

SHOWN_SIZES = 9  # refused sizes below this are named


def announce_narrowings(
    source: ShapeEnv | None, env: ShapeEnv | None, narrowings: tuple[Narrowing, ...]
) -> tuple[Specialization, ...]:
    """One specialization per ``Dim.AUTO`` dim the kept guards narrowed (``env`` is
    the new program's, ``source`` its source's), and a warning naming them."""
    if source is None or env is None or not narrowings:
        return ()
    names = sorted({name for n in narrowings for name in free_symbols(n.guard.expr)})
    report = []
    for name in names:
        mine = [n for n in narrowings if name in free_symbols(n.guard.expr)]
        ops = ", ".join(sorted({str(n.node.target) for n in mine}))
        change = f"{_change(source, env, name, mine)} (to decompose {ops})"
        report.append(Specialization(env.symbol_info(name).source, change, _where(mine)))
    warnings.warn(
        NarrowingWarning(
            "run_decompositions narrowed Dim.AUTO dims in the new program (its source is "
            "unchanged):\n"
            + "\n".join(f"    {s.source}: {s.change}" for s in report)
            + "\nKeep an op whole (del table[op] in the decomposition table) to keep its dims."
        ),
        stacklevel=5,  # the caller of ExportedProgram.run_decompositions
    )
    return tuple(report)


def _change(source: ShapeEnv, env: ShapeEnv, name: str, mine: list[Narrowing]) -> str:
    """What became of symbol ``name``: static, tied, a narrower range, refused sizes,
    or a relation to other dims."""
    replacement = env.replacements.get(name)
    if replacement is not None:
        value = as_int(replacement.value)
        return (
            f"static: {value}"
            if value is not None
            else f"must equal {env.format(replacement.value)}"
        )
    parts = []
    before, after = source.range_of(name), env.range_of(name)
    if before != after:
        parts.append(f"range [{after.lower}, {after.upper}] (was [{before.lower}, {before.upper}])")
    alone = [n.guard.expr for n in mine if free_symbols(n.guard.expr) == {name}]
    refused = [
        v for v in range(SHOWN_SIZES)
        if after.contains(v)
        and any(env.holds_at(g, {name: v}, simplified=False) is not True for g in alone)
    ]  # fmt: skip
    if refused:
        parts.append(f"sizes {refused} not supported")
    relations = [n.guard.code for n in mine if free_symbols(n.guard.expr) != {name}]
    if relations and not parts:
        parts.append("must satisfy " + " and ".join(dict.fromkeys(relations)))
    return ", ".join(parts) or "narrowed"


def _where(mine: list[Narrowing]) -> str | None:
    where = mine[0].node.meta.get("stack_trace")
    return str(where) if where is not None else None
