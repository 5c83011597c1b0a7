"""`ExportPackage`: several exported programs of one model that share its state.

A package maps method names (``"prefill"``, ``"decode"``) to ExportedPrograms
whose parameters and buffers are the *same tensor objects*: the modules
``package[name].module()`` builds share them too, so a KV cache one method
fills is the cache the next one reads, and ``graphlift.save`` stores each
storage once. Built by ``graphlift.export_methods``; ``graphlift.load`` of a
package archive gives one back, with the sharing intact.

A method may have *overloads* (torch's ``_define_overload``): entries named
``"decode.short"``, ``"decode.long"``, each a program for the inputs its spec
predicate accepted. ``package.module("decode")`` runs, for each call, the first
of the method's programs whose input checks accept the call; those checks are
exact, so choosing by them is sound also after loading, where the Python
predicates are gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphlift.errors import ExportError, InputMismatchError, InputStructureError
from graphlift.export.program.exported_program import ExportedProgram


class ExportPackage(Mapping[str, ExportedProgram]):
    """Named programs over one shared state (read-only mapping)."""

    def __init__(self, methods: Mapping[str, ExportedProgram]) -> None:
        if not methods:
            raise ExportError("a package needs at least one method")
        for name, program in methods.items():
            if not is_entry_name(name):
                raise ExportError(
                    f"method name {name!r} must be a Python identifier, or method.overload"
                )
            if not isinstance(program, ExportedProgram):
                raise ExportError(f"method {name!r} is a {type(program).__name__}, not a program")
        self._methods = dict(methods)

    def __getitem__(self, name: str) -> ExportedProgram:
        try:
            return self._methods[name]
        except KeyError:
            raise KeyError(f"the package has no method {name!r}; it has {list(self)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def overloads(self, method: str) -> dict[str, ExportedProgram]:
        """The programs of ``method``: its own entry (key ``""``) and its overloads."""
        found = {
            key.partition(".")[2]: program
            for key, program in self._methods.items()
            if key == method or key.startswith(method + ".")
        }
        if not found:
            raise KeyError(f"the package has no method {method!r}; it has {list(self)}")
        return found

    def module(self, method: str) -> MethodRunner:
        """A callable running ``method``: the first of its programs that accepts the call."""
        return MethodRunner(method, self.overloads(method))

    def __repr__(self) -> str:
        return f"<ExportPackage with methods {list(self)}>"

    def __str__(self) -> str:
        return "\n".join(f"=== method {name} ===\n{program}" for name, program in self.items())


class MethodRunner:
    """Runs one method of a package, choosing among its overloads by their input checks."""

    def __init__(self, method: str, programs: Mapping[str, ExportedProgram]) -> None:
        self.method = method
        self.modules = {name: program.module() for name, program in programs.items()}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        refusals = []
        for name, module in self.modules.items():
            try:
                return module(*args, **kwargs)
            except (InputMismatchError, InputStructureError) as error:  # checked before computing
                refusals.append(
                    f"  - {self.method}.{name or '(default)'}: {str(error).splitlines()[0]}"
                )
        raise InputMismatchError(
            f"no program of method {self.method!r} accepts this call:\n" + "\n".join(refusals)
        )


def is_entry_name(name: Any) -> bool:
    """``method`` or ``method.overload``, each part a Python identifier."""
    parts = name.split(".") if isinstance(name, str) else []
    return 1 <= len(parts) <= 2 and all(part.isidentifier() for part in parts)
