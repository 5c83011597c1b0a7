"""Symbols for the dynamic dimensions of an export's inputs.

Each dynamic input dimension gets a symbol in the export's ShapeEnv, whose
source is the Python expression that reads it from the inputs
(``x.size()[0]``), so every guard prints as code ``module()`` can run. Dims
that share a name share one symbol; a derived dim (``2 * d + 1``) is an
expression over its root's symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import DynamicShapesError
from graphlift.export.dynamic_shapes import DerivedDim, Dim, DimEntry, DimHint
from graphlift.symbolic import ShapeEnv


@dataclass(frozen=True)
class DynamicDim:
    """One dynamic input dimension as declared, and the size it was traced with."""

    source: str  # x.size()[0]
    entry: DimEntry
    size: Any  # a SymInt (or an int once specialized)


class SymbolMaker:
    def __init__(self, shape_env: ShapeEnv) -> None:
        self.shape_env = shape_env
        self.by_name: dict[str, torch.SymInt] = {}
        self.dims: list[DynamicDim] = []

    def sizes(
        self, inputs: list[tuple[str, torch.Tensor, dict[int, DimEntry]]]
    ) -> list[list[Any] | None]:
        """For each (placeholder name, tensor, entries): the tensor's sizes with a
        symbol (or symbolic expression) on each dynamic dim, or None if static.
        Plain Dims on every input are made before derived ones, so a derived dim
        may come before its root in the inputs."""
        sizes: list[list[Any] | None] = [list(t.shape) if e else None for _, t, e in inputs]
        for derived in (False, True):
            for (name, tensor, entries), dims in zip(inputs, sizes):
                for dim, entry in entries.items():
                    if isinstance(entry, DerivedDim) is derived and dims is not None:
                        source = f"{name}.size()[{dim}]"
                        dims[dim] = self._size(source, int(tensor.shape[dim]), entry)
                        self.dims.append(DynamicDim(source, entry, dims[dim]))
        return sizes

    def value(self, name: str, example: int, entry: Dim | DimHint) -> torch.SymInt:
        """A symbol for the dynamic int input ``name`` (its source is the input itself)."""
        if isinstance(entry, Dim):
            symbol = self._named(name, example, entry)
        else:
            symbol = self.shape_env.create_symbol(example, min=min(example, 0), source=name)
        self.dims.append(DynamicDim(name, entry, symbol))
        return symbol

    def _size(self, source: str, hint: int, entry: DimEntry) -> Any:
        if isinstance(entry, DimHint):
            return self.shape_env.create_symbol(hint, min=0, max=None, source=source)
        if isinstance(entry, Dim):
            return self._named(source, hint, entry)
        root = self.by_name.get(entry.root.name)
        if root is None:
            raise DynamicShapesError(
                f"{source} is declared {entry!r}, but no input dimension is declared as "
                f"{entry.root.name!r} itself; derived dims need their root on some input"
            )
        if entry.value(int(root.node.hint)) != hint:
            raise DynamicShapesError(
                f"{source} is declared {entry!r} = {entry.value(int(root.node.hint))} for the example "
                f"inputs, but its size is {hint}"
            )
        return entry.scale * root + entry.offset

    def _named(self, source: str, hint: int, dim: Dim) -> torch.SymInt:
        existing = self.by_name.get(dim.name)
        if existing is not None:
            if int(existing.node.hint) != hint:
                raise DynamicShapesError(
                    f"{source} is {hint} in the example inputs but Dim {dim.name!r} is "
                    f"{int(existing.node.hint)} elsewhere; dims sharing a name must be equal"
                )
            return existing
        if not dim.min <= hint <= dim.upper:
            raise DynamicShapesError(
                f"the example size of {source} is {hint}, outside the range of {dim!r}; "
                "use an example input inside the declared range"
            )
        symbol = self.shape_env.create_symbol(hint, min=dim.min, max=dim.max, source=source)
        self.by_name[dim.name] = symbol
        return symbol
