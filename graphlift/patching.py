"""The one way graphlift changes global state: `Patcher`, a context manager that
replaces attributes or dict entries and restores every one of them on exit —
in reverse order, also when tracing fails. Both tracers use it (``fx`` for its
autowrap and leaf patches, ``trace`` for the exporting flags and library hooks)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

_MISSING = object()


class Patcher(AbstractContextManager["Patcher"]):
    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self._patched: set[tuple[int, str]] = set()

    def is_patched(self, owner: object, name: str) -> bool:
        return (id(owner), name) in self._patched

    def patch_item(self, mapping: dict[str, Any], name: str, value: Any) -> None:
        """``mapping[name] = value`` until exit (a module's globals, usually)."""
        if self.is_patched(mapping, name):
            return
        self._patched.add((id(mapping), name))
        original = mapping.get(name, _MISSING)
        mapping[name] = value
        if original is _MISSING:
            self._undo.append(lambda: mapping.pop(name, None))
        else:
            self._undo.append(lambda: mapping.__setitem__(name, original))

    def patch_attribute(self, owner: object, name: str, value: Any) -> None:
        """``setattr(owner, name, value)`` until exit (a class or a module)."""
        if self.is_patched(owner, name):
            return
        self._patched.add((id(owner), name))
        own = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        if own is _MISSING and hasattr(getattr(type(owner), name, None), "__set__"):
            own = getattr(owner, name)  # a slot such as a function's __code__
        setattr(owner, name, value)
        if own is _MISSING:
            self._undo.append(lambda: delattr(owner, name))
        else:
            self._undo.append(lambda: setattr(owner, name, own))

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            self._undo.pop()()
        self._patched.clear()
