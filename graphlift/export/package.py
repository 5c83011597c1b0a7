"""`ExportPackage`: several exported programs of one model that share its state.

A package maps method names (``"prefill"``, ``"decode"``) to ExportedPrograms
whose parameters and buffers are the *same tensor objects*: the modules
``package[name].module()`` builds share them too, so a KV cache one method
fills is the cache the next one reads, and ``graphlift.save`` stores each
storage once. Built by ``graphlift.export_methods``; ``graphlift.load`` of a
package archive gives one back, with the sharing intact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from graphlift.errors import ExportError
from graphlift.export.program.exported_program import ExportedProgram


class ExportPackage(Mapping[str, ExportedProgram]):
    """Named programs over one shared state (read-only mapping)."""

    def __init__(self, methods: Mapping[str, ExportedProgram]) -> None:
        if not methods:
            raise ExportError("a package needs at least one method")
        for name, program in methods.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ExportError(f"method name {name!r} must be a Python identifier")
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

    def __repr__(self) -> str:
        return f"<ExportPackage with methods {list(self)}>"

    def __str__(self) -> str:
        return "\n".join(f"=== method {name} ===\n{program}" for name, program in self.items())
