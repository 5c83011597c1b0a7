"""What strict capture may not do to Python objects that existed before the call.

Capture runs the user's bytecode itself, so it sees every write before it
happens. A write to an object the captured call created (a local list, a
dict it built) is the program's own business and happens as usual. A write to
an object that existed before the call — a module-level list, a global, an
attribute of another object, a closure cell — is a *side effect*: running it
during export would change the user's state once, at export time, and the
exported program would never do it again.

Such writes go to a ``SideEffectLog``: before the first write to a place, its
old value is saved. When the capture ends, every place that does not hold its
old value again is restored, and export raises ``SideEffectError`` naming the
line of the first such write. A place that was set and then restored (a
library's ``with`` block setting a flag and resetting it, as transformers'
output capturing does) has no net effect and passes. So after a strict
capture, success or failure, every object that existed before it is as it
was.

The tables below name the methods that mutate the builtin containers; any
other call on a pre-existing object runs as it is (a method we cannot see into
is native code: torch's, or a builtin that does not mutate).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Methods that change the builtin container they are called on.
MUTATING_METHODS: dict[type, frozenset[str]] = {
    list: frozenset(
        {
            "append",
            "extend",
            "insert",
            "pop",
            "remove",
            "clear",
            "sort",
            "reverse",
            "__setitem__",
            "__delitem__",
            "__iadd__",
            "__imul__",
        }
    ),
    dict: frozenset(
        {"update", "pop", "popitem", "setdefault", "clear", "__setitem__", "__delitem__", "__ior__"}
    ),
    set: frozenset(
        {
            "add",
            "discard",
            "remove",
            "pop",
            "clear",
            "update",
            "difference_update",
            "intersection_update",
            "symmetric_difference_update",
            "__ior__",
            "__iand__",
        }
    ),
    bytearray: frozenset({"append", "extend", "insert", "pop", "remove", "clear", "reverse"}),
}


class Provenance:
    """Which objects the captured call created, in order. Objects are kept alive
    while the capture runs, so an id is never reused for another object.

    A traced region (the body of a data-dependent loop, a path of an ``if``
    on a tensor) raises ``floor``: objects created before the region began are
    then not fresh *for the region* (``is_fresh_in_region``)."""

    def __init__(self) -> None:
        self._fresh: dict[int, tuple[int, Any]] = {}
        self._count = 0
        self.floor = 0

    def created(self, value: Any) -> Any:
        if id(value) not in self._fresh:
            self._fresh[id(value)] = (self._count, value)
            self._count += 1
        return value

    def is_fresh(self, value: Any) -> bool:
        """Created by the captured call."""
        return id(value) in self._fresh

    def is_fresh_in_region(self, value: Any) -> bool:
        """Created inside the innermost traced region (or the call, outside regions)."""
        entry = self._fresh.get(id(value))
        return entry is not None and entry[0] >= self.floor

    @contextmanager
    def region(self) -> Iterator[None]:
        saved, self.floor = self.floor, self._count
        try:
            yield
        finally:
            self.floor = saved


def mutated_container(method: Any) -> tuple[Any, str] | None:
    """``(container, method name)`` when ``method`` is a bound mutating method of a
    builtin container, else None."""
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", None)
    if owner is None or name is None:
        return None
    for kind, names in MUTATING_METHODS.items():
        if isinstance(owner, kind) and name in names:
            return owner, name
    return None


_MISSING = object()


class SideEffectLog:
    """Old values of the places the capture wrote to, first write first."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, str, Any], _Entry] = {}  # in first-write order

    def attribute(self, owner: Any, name: str, where: str) -> None:
        key = (id(owner), "attribute", name)
        if key not in self._entries:
            old = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
            if old is _MISSING and hasattr(owner, name):
                old = getattr(owner, name)
            self._entries[key] = _Entry(owner, "attribute", name, old, where)

    def item(self, owner: dict[Any, Any], name: Any, where: str) -> None:
        key = (id(owner), "item", name)
        if key not in self._entries:
            self._entries[key] = _Entry(owner, "item", name, owner.get(name, _MISSING), where)

    def contents(self, owner: Any, where: str) -> None:
        key = (id(owner), "contents", None)
        if key not in self._entries:
            old: Any = dict(owner) if isinstance(owner, dict) else list(owner)
            if isinstance(owner, set):
                old = set(owner)
            self._entries[key] = _Entry(owner, "contents", None, old, where)

    def cell(self, owner: Any, name: str, where: str) -> None:
        key = (id(owner), "cell", name)
        if key not in self._entries:
            try:
                old = owner.cell_contents
            except ValueError:
                old = _MISSING
            self._entries[key] = _Entry(owner, "cell", name, old, where)

    def wrote(self, owner: Any, name: Any) -> bool:
        return any(key[0] == id(owner) and key[2] == name for key in self._entries)

    def undo(self) -> list[_Entry]:
        """Restore every place that changed; the changed ones, in first-write order."""
        changed = [entry for entry in self._entries.values() if not entry.unchanged()]
        for entry in reversed(changed):
            entry.restore()
        self._entries.clear()
        return changed


class _Entry:
    def __init__(self, owner: Any, kind: str, name: Any, old: Any, where: str) -> None:
        self.owner, self.kind, self.name, self.old, self.where = owner, kind, name, old, where

    def _now(self) -> Any:
        if self.kind == "attribute":
            return getattr(self.owner, self.name, _MISSING)
        if self.kind == "item":
            return self.owner.get(self.name, _MISSING)
        if self.kind == "cell":
            try:
                return self.owner.cell_contents
            except ValueError:
                return _MISSING
        if isinstance(self.owner, set):
            return set(self.owner)
        return dict(self.owner) if isinstance(self.owner, dict) else list(self.owner)

    def unchanged(self) -> bool:
        now = self._now()
        if self.kind != "contents":
            return now is self.old
        if isinstance(now, set):
            return {id(x) for x in now} == {id(x) for x in self.old}
        if isinstance(now, dict):
            return now.keys() == self.old.keys() and all(now[k] is self.old[k] for k in now)
        return len(now) == len(self.old) and all(a is b for a, b in zip(now, self.old))

    def restore(self) -> None:
        owner, name, old = self.owner, self.name, self.old
        if self.kind == "attribute":
            if old is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
        elif self.kind == "item":
            if old is _MISSING:
                owner.pop(name, None)
            else:
                owner[name] = old
        elif self.kind == "cell":
            if old is not _MISSING:
                owner.cell_contents = old
        elif isinstance(owner, dict):
            owner.clear()
            owner.update(old)
        elif isinstance(owner, set):
            owner.clear()
            owner.update(old)
        else:
            owner[:] = old

    def describe(self) -> str:
        what = {"attribute": f"the attribute {self.name!r} of a {type(self.owner).__name__}",
                "item": f"the global {self.name!r}" if _is_globals(self.owner)
                else f"the key {self.name!r} of a dict",
                "cell": f"the closure variable {self.name!r}",
                "contents": f"a {type(self.owner).__name__}"}[self.kind]  # fmt: skip
        return f"{what} that existed before the call was changed"


def _is_globals(owner: Any) -> bool:
    return isinstance(owner, dict) and "__name__" in owner and "__builtins__" in owner
