"""Symbols for the dynamic dimensions of an export's inputs.

Each dynamic input dimension gets a symbol in the export's ShapeEnv, whose
source is the Python expression that reads it from the inputs
(``x.size()[0]``), so every guard prints as code ``module()`` can run. Dims
that share a name share one symbol; a derived dim (``2 * d + 1``) is an
expression over its root's symbol.

A derived dim's root need not be on any input (torch.export allows
``{2: 32 * h}`` with ``h`` used nowhere else): the root then gets a *phantom*
symbol whose hint is recovered from the first input dim that uses it and whose
source reads it back from there, ``(x.size()[2] // 32)`` or
``((x.size()[2] - 1) // 2)``. The source is parenthesized because guards print
sources as atoms (``2*(x.size()[2] // 32)`` must not become ``2*x.size()[2] // 32``).
``module()``'s checks then test that the size is exactly ``scale*root + offset``
with the root in range (checks.py); :func:`parse_phantom_source` is the one
whitelist of these forms (serialize accepts no other computed source).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import DynamicShapesError
from graphlift.export.spec.dynamic_shapes import (
    BoundedHint,
    DerivedDim,
    Dim,
    DimEntry,
    DimHint,
    hint_kind,
)
from graphlift.symbolic import ShapeEnv

_SIZE = r"[A-Za-z_][A-Za-z0-9_]*\.size\(\)\[\d{1,4}\]"
_PHANTOM = re.compile(rf"\(\(?({_SIZE})(?: ([-+]) (\d{{1,9}}))?\)?(?: // (\d{{1,9}}))?\)$")


def phantom_source(size_source: str, scale: int, offset: int) -> str:
    """How a phantom root is read back from ``size_source`` = ``scale * root + offset``."""
    text = size_source
    if offset:
        text = f"({text} {'-' if offset > 0 else '+'} {abs(offset)})"
    if scale != 1:
        text = f"({text} // {scale})"
    return text


def parse_phantom_source(text: str) -> tuple[str, int, int] | None:
    """``(size_source, scale, offset)`` if ``text`` is exactly what :func:`phantom_source`
    writes (for some scale >= 1 and offset, not both trivial), else None."""
    match = _PHANTOM.match(text)
    if match is None:
        return None
    size_source, sign, amount, divisor = match.groups()
    offset = 0 if amount is None else int(amount) * (1 if sign == "-" else -1)
    scale = 1 if divisor is None else int(divisor)
    if scale < 1 or (scale, offset) == (1, 0):
        return None
    if phantom_source(size_source, scale, offset) != text:
        return None
    return size_source, scale, offset


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
        #: Phantom roots: symbol name -> (placeholder, dim, scale, offset) it is read from.
        self.phantoms: dict[str, tuple[str, int, int, int]] = {}

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
                        dims[dim] = self._size(name, dim, int(tensor.shape[dim]), entry)
                        self.dims.append(DynamicDim(source, entry, dims[dim]))
        return sizes

    def value(self, name: str, example: int, entry: Dim | DimHint | BoundedHint) -> torch.SymInt:
        """A symbol for the dynamic int input ``name`` (its source is the input itself)."""
        if isinstance(entry, Dim):
            symbol = self._named(name, example, entry)
        else:
            symbol = self._hinted(name, example, entry, lowest=min(example, 0))
        self.dims.append(DynamicDim(name, entry, symbol))
        return symbol

    def _size(self, name: str, dim: int, hint: int, entry: DimEntry) -> Any:
        source = f"{name}.size()[{dim}]"
        if isinstance(entry, DimHint | BoundedHint):
            return self._hinted(source, hint, entry, lowest=0)
        if isinstance(entry, Dim):
            return self._named(source, hint, entry)
        root = self.by_name.get(entry.root.name)
        if root is None:
            root = self._phantom_root(name, dim, hint, entry)
        if entry.value(int(root.node.hint)) != hint:
            raise DynamicShapesError(
                f"{source} is declared {entry!r} = {entry.value(int(root.node.hint))} for the example "
                f"inputs, but its size is {hint}"
            )
        return entry.scale * root + entry.offset

    def _hinted(
        self, source: str, example: int, entry: DimHint | BoundedHint, lowest: int
    ) -> torch.SymInt:
        """A hint's symbol: unbounded, or in the range ``Dim.AUTO(min=, max=)`` gives."""
        low, high = lowest, None
        if isinstance(entry, BoundedHint):
            low = entry.min if entry.min is not None else lowest
            high = entry.max
        if example < low or (high is not None and example > high):
            raise DynamicShapesError(
                f"the example size of {source} is {example}, outside the range of {entry!r}; "
                "use an example input inside the declared range"
            )
        symbol = self.shape_env.create_symbol(example, min=low, max=high, source=source)
        if hint_kind(entry) is DimHint.AUTO:
            self.shape_env.mark_auto(str(symbol.node.symbolic_expr))
        return symbol

    def _phantom_root(self, name: str, axis: int, hint: int, entry: DerivedDim) -> torch.SymInt:
        """The symbol of a root no input declares, read back from ``name``'s size at ``axis``."""
        source = f"{name}.size()[{axis}]"
        dim, scale, offset = entry.root, entry.scale, entry.offset
        if scale == 1 and offset == 0:
            return self._named(source, hint, dim)
        if scale < 1:
            raise DynamicShapesError(
                f"{source} is declared {entry!r}, whose root {dim.name!r} is on no input; "
                "such a root is recovered from the size, which needs a positive scale"
            )
        root, remainder = divmod(hint - offset, scale)
        if remainder:
            raise DynamicShapesError(
                f"{source} is declared {entry!r}, but its example size {hint} is not "
                f"{entry!r} for an integer {dim.name}; use an example "
                "input of that form"
            )
        if not dim.min <= root <= dim.upper:
            raise DynamicShapesError(
                f"{source} is declared {entry!r}, so its example size {hint} gives "
                f"{dim.name} = {root}, outside the range of {dim!r}; use an example input "
                "inside the declared range"
            )
        phantom = phantom_source(source, scale, offset)
        symbol = self.shape_env.create_symbol(root, min=dim.min, max=dim.max, source=phantom)
        self.by_name[dim.name] = symbol
        self.dims.append(DynamicDim(phantom, dim, symbol))
        self.phantoms[str(symbol.node.symbolic_expr)] = (name, axis, scale, offset)
        return symbol

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
