"""Python values strict capture read, and the checks that keep them current.

Non-strict export runs the model, so a global it reads (``SCALE = 2.0``) is
baked into the graph with no check: change the global and the exported
program silently computes with the old value. Strict capture sees every read
of a global, a closure cell or a module attribute, and records a
``PythonGuard`` for each value it baked in. ``ep.module()`` checks them before
it computes; a changed value raises ``StaleGlobalError`` naming the line that
read it, never a stale answer.

Values are compared by equality when they are plain data (numbers, strings,
None, tuples of those) and by identity otherwise (a function, a class, a
config object). Tensors, modules, Python modules and torch's own functions are
not guarded: tensors become inputs or constants as in non-strict export,
modules are the model itself, and Python modules and torch functions are the
program's vocabulary.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

import torch

from graphlift.errors import StaleGlobalError

_PLAIN = (int, float, bool, str, bytes, type(None), complex, torch.dtype, torch.device)


def is_plain(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(is_plain(item) for item in value)
    return isinstance(value, _PLAIN) and not isinstance(value, torch.SymInt)


def needs_guard(value: Any) -> bool:
    """False for what a program may read freely (see the module docstring)."""
    if isinstance(value, torch.Tensor | torch.nn.Module | types.ModuleType):
        return False
    module = getattr(value, "__module__", None) or ""
    if callable(value) and (module.startswith("torch") or module == "builtins"):
        return False
    return True


@dataclass(frozen=True, eq=False)
class PythonGuard:
    """``owner[name]`` (a globals dict) or ``owner.cell_contents`` still holds ``value``."""

    kind: str  # "global" or "closure"
    owner: Any = field(repr=False)  # the globals dict, or the cell
    name: str
    value: Any
    where: str

    @property
    def by_equality(self) -> bool:
        return is_plain(self.value)

    def current(self) -> Any:
        if self.kind == "global":
            return self.owner.get(self.name, _MISSING)
        try:
            return self.owner.cell_contents
        except ValueError:  # an emptied cell
            return _MISSING

    def holds(self) -> bool:
        now = self.current()
        if self.by_equality:
            return type(now) is type(self.value) and bool(now == self.value)
        return now is self.value

    def check(self) -> None:
        if not self.holds():
            raise StaleGlobalError(
                f"the exported program was captured with {self.kind} {self.name!r} = "
                f"{_short(self.value)}, and it is now {_short(self.current())}; export again "
                "to compute with the new value",
                where=self.where,
            )

    def __str__(self) -> str:
        relation = "==" if self.by_equality else "is"
        return f"{self.kind} {self.name} {relation} {_short(self.value)}  # {self.where}"


_MISSING = object()


def _short(value: Any) -> str:
    if value is _MISSING:
        return "<unset>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
