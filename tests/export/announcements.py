"""Which of an exported program's input checks refuse some inputs, and whether export said so.

The fuzzers' oracle for "every run-time refusal inside the declared range was
announced at export". It does not read the refusal's message: it evaluates the
program's own facts on the inputs, independently of ``module()``'s generated
checks — each traced input size (static, tied to another size, or a symbol with
a range) and each recorded guard, whose code is Python over the inputs
(``x.size()[0] >= y.size()[0]``) — and then asks that a failing one is named in
the announcement of one of the dims it reads:

- a size that must be static, equal another size or lie in a narrower range: a
  specialization whose ``source`` is that dim (or, for a tie, the other one);
- a guard: a specialization of a dim the guard reads that cites the guard
  (its code is in the announcement's text: the refusal's clause and lines).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.symbolic.expr import as_symbol, free_symbols
from graphlift.symbolic.guards import Guard
from graphlift.symbolic.substitute import substitute

SOURCE = re.compile(r"\b[xyz]\.size\(\)\[\d+\]")


@dataclass(frozen=True)
class Refusing:
    """The program's facts that ``inputs`` break."""

    sizes: tuple[tuple[str, frozenset[str]], ...]  # (source, the sources it must agree with)
    guards: tuple[Guard, ...]


def refusing_checks(ep: Any, names: tuple[str, ...], inputs: tuple[torch.Tensor, ...]) -> Refusing:
    env = ep._shape_env
    scope: dict[str, Any] = {"math": math, **dict(zip(names, inputs))}
    sizes = []
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    for name, tensor in zip(names, inputs):
        traced = placeholders[name].meta["val"]
        if traced.dim() != tensor.dim():
            sizes.append((f"{name}.dim()", frozenset()))
            continue
        for axis, (size, actual) in enumerate(zip(traced.shape, tensor.shape)):
            source = f"{name}.size()[{axis}]"
            if not isinstance(size, torch.SymInt):
                if size != actual:
                    sizes.append((source, frozenset()))
                continue
            expr = env.simplify(size.node.symbolic_expr)
            text = env.format(expr)
            symbol = as_symbol(expr)
            if text != source and _value(text, scope) != actual:
                sizes.append((source, frozenset(SOURCE.findall(text))))
            elif (
                symbol is not None and text == source and not env.range_of(symbol).contains(actual)
            ):
                sizes.append((source, frozenset()))
    guards = tuple(g for g in env.guards if not _value(g.code, scope))
    return Refusing(tuple(sizes), guards)


def unannounced(ep: Any, refusing: Refusing) -> str | None:
    """None when some refusing check is announced in ``ep.specializations``, else
    what refused (for the assertion message)."""
    announced = {s.source: str(s) for s in ep.specializations}
    for source, tied in refusing.sizes:
        if source in announced or tied & announced.keys():
            return None
    for guard in refusing.guards:
        if any(guard.code in announced.get(s, "") for s in SOURCE.findall(guard.code)):
            return None
    what = [s for s, _ in refusing.sizes] + [g.code for g in refusing.guards]
    return f"refused by {what or 'no check the program recorded'}; announced: {announced}"


def reads_several_dims(ep: Any, guard: Guard) -> bool:
    """Whether ``guard`` relates several dims (after the program's ties)."""
    env = ep._shape_env
    ties = {name: r.value for name, r in env.replacements.items()}
    return len(free_symbols(substitute(guard.expr, ties))) >= 2


def _value(code: str, scope: dict[str, Any]) -> object:
    try:
        return eval(code, dict(scope))  # the program's own check code, over the inputs
    except ZeroDivisionError:
        return False  # undefined there: module() refuses it too
