"""Dynamic shapes: the ``Dim`` API and matching a ``dynamic_shapes`` spec to inputs.

A spec mirrors the inputs: a dict keyed by ``forward``'s parameter names (or
a tuple by position), nested like the inputs are, and for each tensor either
None (all dims static), a dict ``{dim: Dim}`` or a tuple with one entry per
dim. An entry is a named ``Dim`` (dims sharing a name are equal), a derived
dim (``2 * d``, ``d + 1``), or a hint: ``Dim.AUTO`` (as dynamic as the program
allows), ``Dim.DYNAMIC`` (must stay dynamic) or ``Dim.STATIC``.

``match_dynamic_shapes`` returns one ``{dim: entry}`` per flat input, in the
order export flattens ``(args, kwargs)``; a malformed spec raises
DynamicShapesError saying which input and dim is wrong and why.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

import torch

from graphlift.errors import DimIndexError, DynamicShapesError, DynamicShapesTypeError
from graphlift.pytree import is_leaf_value, tree_flatten


class DimHint(Enum):
    AUTO = "auto"
    STATIC = "static"
    DYNAMIC = "dynamic"

    def __repr__(self) -> str:
        return f"Dim.{self.name}"

    def __call__(self, *, min: int | None = None, max: int | None = None) -> BoundedHint:
        """``Dim.DYNAMIC(min=2, max=64)``: the hint, with the range its symbol starts in."""
        return BoundedHint(self, min, max)


@dataclass(frozen=True)
class BoundedHint:
    """``Dim.AUTO(max=64)``, ``Dim.DYNAMIC(min=2)``: a hint whose dim may only take
    sizes in ``[min, max]`` (None: unbounded on that side), as torch.export allows."""

    hint: DimHint
    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        if self.hint is DimHint.STATIC:
            raise DynamicShapesError("Dim.STATIC takes no range; use Dim.AUTO or Dim.DYNAMIC")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise DynamicShapesError(f"{self!r} has min > max")

    def __repr__(self) -> str:
        bounds = [f"{key}={value}" for key, value in (("min", self.min), ("max", self.max))]
        return f"Dim.{self.hint.name}({', '.join(b for b in bounds if not b.endswith('None'))})"


def hint_kind(entry: Any) -> DimHint | None:
    """AUTO, STATIC or DYNAMIC for a hint (bounded or not), None for anything else."""
    if isinstance(entry, DimHint):
        return entry
    if isinstance(entry, BoundedHint):
        return entry.hint
    return None


@dataclass(frozen=True)
class Dim:
    """A named dynamic dimension with an inclusive range (torch.export.Dim).

    ``max=None`` means unbounded. Dims with the same name must be equal, so two
    inputs sharing ``Dim("seq")`` must have the same size at run time.
    """

    name: str
    min: int = 0
    max: int | None = None

    AUTO: ClassVar[DimHint] = DimHint.AUTO
    STATIC: ClassVar[DimHint] = DimHint.STATIC
    DYNAMIC: ClassVar[DimHint] = DimHint.DYNAMIC

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise DynamicShapesError(f"Dim name {self.name!r} must be a Python identifier")
        if self.min < 0:
            raise DynamicShapesError(
                f"Dim {self.name!r} has min={self.min}; sizes cannot be negative"
            )
        if self.max is not None and self.min > self.max:
            raise DynamicShapesError(f"Dim {self.name!r} has min={self.min} > max={self.max}")

    @property
    def upper(self) -> float:
        return math.inf if self.max is None else self.max

    def __mul__(self, factor: int) -> DerivedDim:
        return DerivedDim(self, _int_operand(factor, "*"), 0)

    __rmul__ = __mul__

    def __add__(self, offset: int) -> DerivedDim:
        return DerivedDim(self, 1, _int_operand(offset, "+"))

    __radd__ = __add__

    def __sub__(self, offset: int) -> DerivedDim:
        return DerivedDim(self, 1, -_int_operand(offset, "-"))

    def __repr__(self) -> str:
        bounds = f"min={self.min}" + (f", max={self.max}" if self.max is not None else "")
        return f"Dim({self.name!r}, {bounds})"


@dataclass(frozen=True)
class DerivedDim:
    """``scale * root + offset``: a dimension that is a function of another."""

    root: Dim
    scale: int
    offset: int

    def __mul__(self, factor: int) -> DerivedDim:
        factor = _int_operand(factor, "*")
        return DerivedDim(self.root, self.scale * factor, self.offset * factor)

    __rmul__ = __mul__

    def __add__(self, offset: int) -> DerivedDim:
        return DerivedDim(self.root, self.scale, self.offset + _int_operand(offset, "+"))

    def __sub__(self, offset: int) -> DerivedDim:
        return DerivedDim(self.root, self.scale, self.offset - _int_operand(offset, "-"))

    def value(self, root: int) -> int:
        return self.scale * root + self.offset

    def __repr__(self) -> str:
        text = f"{self.scale}*{self.root.name}" if self.scale != 1 else self.root.name
        return text + (
            f" + {self.offset}" if self.offset > 0 else f" - {-self.offset}" if self.offset else ""
        )


DimEntry = Dim | DerivedDim | DimHint | BoundedHint

#: The key of a dynamic *int* input's entry: the value itself, not a dim of it.
VALUE = -1


def dims(*names: str, min: int = 0, max: int | None = None) -> tuple[Dim, ...]:
    """Several Dims with the same range: ``batch, seq = dims("batch", "seq", max=512)``."""
    return tuple(Dim(name, min=min, max=max) for name in names)


def _int_operand(value: Any, operator: str) -> int:
    if type(value) is not int:
        raise DynamicShapesError(f"Dim {operator} {value!r}: derived dims take integer constants")
    return value


# --- matching a spec to the inputs ----------------------------------------------------


def match_dynamic_shapes(
    forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any], spec: Any
) -> list[dict[int, DimEntry]]:
    """One ``{dim: entry}`` per flat input (empty for static tensors and non-tensors)."""
    leaves = tree_flatten((args, kwargs))[0]
    if spec is None:
        return [{} for _ in leaves]
    per_argument = _spec_per_argument(
        forward, args, kwargs, _unpack_varargs(forward, args, kwargs, spec)
    )
    matched: list[dict[int, DimEntry]] = []
    for path, value, argument_spec in per_argument:
        matched += _match(path, value, argument_spec)
    if len(matched) != len(leaves):
        raise DynamicShapesError(
            "dynamic_shapes does not line up with the inputs; this is a bug in graphlift"
        )
    _check_consistent_names(matched)
    return matched


def _spec_per_argument(
    forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any], spec: Any
) -> list[tuple[str, Any, Any]]:
    """(name, value, spec) for each positional argument, then each keyword argument."""
    names = _positional_names(forward, len(args))
    given = {**dict(zip(names, args)), **kwargs}
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(given))
        if unknown:
            raise DynamicShapesError(
                f"dynamic_shapes names {unknown}, which are not inputs of this call; "
                f"the inputs are {list(given)}"
            )
        lookup = dict(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        if len(spec) != len(given):
            raise DynamicShapesError(
                f"dynamic_shapes has {len(spec)} entries but the call has {len(given)} inputs "
                f"({list(given)}); give one entry (or None) per input"
            )
        lookup = dict(zip(given, spec))
    else:
        raise DynamicShapesTypeError(
            f"dynamic_shapes must be a dict keyed by argument name or a tuple by position, "
            f"got {type(spec).__name__}"
        )
    return [(name, value, lookup.get(name)) for name, value in given.items()]


def _unpack_varargs(forward: Any, args: tuple[Any, ...], kwargs: dict[str, Any], spec: Any) -> Any:
    """torch.export's spelling for ``forward(self, *args)``: one entry for all of
    ``*args`` (``{"args": (s0, s1)}``, or a tuple at its position), made into
    graphlift's one entry per argument (``args_0``, ``args_1``)."""
    parameters = list(inspect.signature(forward).parameters.values())
    var = next((p for p in parameters if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    if var is None:
        return spec
    fixed = sum(p.kind in _POSITIONAL for p in parameters if p is not var)
    extra = len(args) - fixed
    if isinstance(spec, Mapping) and var.name in spec:
        packed = spec[var.name]
        if isinstance(packed, tuple | list) and len(packed) == extra:
            named = {f"{var.name}_{i}": entry for i, entry in enumerate(packed)}
            return {**{k: v for k, v in spec.items() if k != var.name}, **named}
    packed_length = fixed + 1 + len(kwargs)  # differs from one entry per input unless extra == 1
    if isinstance(spec, tuple | list) and len(spec) == packed_length:
        packed = spec[fixed]
        if isinstance(packed, tuple | list) and len(packed) == extra:
            if extra != 1 or _packs_one_tensor(packed, args[fixed]):
                return type(spec)([*spec[:fixed], *packed, *spec[fixed + 1 :]])
    return spec


def _packs_one_tensor(packed: tuple[Any, ...] | list[Any], value: Any) -> bool:
    """Whether ``(entry,)`` at ``*args``' position packs the spec of one tensor argument.

    A tensor's own spec in a tuple holds per-dim entries (Dims, hints, None); torch's
    packed form holds the tensor's whole spec, a dict or a sequence. (A packed ``(None,)``
    and a 1-d tensor's ``(None,)`` both mean static, so either reading is the same.)
    """
    return isinstance(value, torch.Tensor) and isinstance(packed[0], Mapping | tuple | list)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _positional_names(forward: Any, count: int) -> list[str]:
    names: list[str] = []
    for parameter in inspect.signature(forward).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            names += [f"{parameter.name}_{i}" for i in range(count - len(names))]
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.append(parameter.name)
    return names[:count]


def _match(path: str, value: Any, spec: Any) -> list[dict[int, DimEntry]]:
    if isinstance(value, torch.Tensor):
        return [_tensor_dims(path, value, spec)]
    if is_leaf_value(value):
        if spec is None or spec is DimHint.STATIC:
            return [{}]
        if type(value) is int and isinstance(spec, Dim | DimHint | BoundedHint):
            return [{VALUE: spec}]  # a dynamic int input
        raise DynamicShapesError(
            f"dynamic_shapes gives {spec!r} for {path}, which is a {type(value).__name__}, "
            "not a tensor; use None for non-tensor inputs (an int input may take a Dim, "
            "Dim.AUTO or Dim.DYNAMIC to stay symbolic)"
        )
    children = tree_flatten(value)[0] if spec is None else None
    if children is not None:
        return [{} for _ in children]
    return _match_container(path, value, spec)


def _match_container(path: str, value: Any, spec: Any) -> list[dict[int, DimEntry]]:
    if isinstance(value, Mapping) and isinstance(spec, Mapping):
        if set(spec) - set(value):
            raise DynamicShapesError(
                f"dynamic_shapes for {path} has keys {sorted(set(spec) - set(value))} the input lacks"
            )
        return [
            d
            for key, item in value.items()
            for d in _match(f"{path}[{key!r}]", item, spec.get(key))
        ]
    if isinstance(value, tuple | list) and isinstance(spec, tuple | list):
        if len(spec) != len(value):
            raise DynamicShapesError(
                f"dynamic_shapes for {path} has {len(spec)} entries but the input has {len(value)}"
            )
        return [
            d
            for i, (item, s) in enumerate(zip(value, spec))
            for d in _match(f"{path}[{i}]", item, s)
        ]
    raise DynamicShapesError(
        f"dynamic_shapes for {path} is a {type(spec).__name__}, but the input is a "
        f"{type(value).__name__}; the spec must mirror the input's structure"
    )


def _tensor_dims(path: str, tensor: torch.Tensor, spec: Any) -> dict[int, DimEntry]:
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        entries = dict(spec)
    elif isinstance(spec, tuple | list):
        if len(spec) != tensor.dim():
            raise DynamicShapesError(
                f"dynamic_shapes for {path} has {len(spec)} entries but the tensor has "
                f"{tensor.dim()} dims {list(tensor.shape)}"
            )
        entries = dict(enumerate(spec))
    else:
        raise DynamicShapesError(
            f"dynamic_shapes for tensor {path} must be None, a dict {{dim: Dim}} or a tuple "
            f"with one entry per dim; got {spec!r}"
        )
    result: dict[int, DimEntry] = {}
    for dim, entry in entries.items():
        if type(dim) is not int or not -tensor.dim() <= dim < tensor.dim():
            raise DimIndexError(
                f"dynamic_shapes for {path} names dim {dim!r}, but the tensor has {tensor.dim()} "
                f"dims {list(tensor.shape)}"
            )
        if entry is None or entry is DimHint.STATIC:
            continue
        if type(entry) is int:  # torch.export: an int is a static dim of exactly that size
            _check_static_size(path, dim, tensor, entry)
            continue
        if not isinstance(entry, Dim | DerivedDim | DimHint | BoundedHint):
            raise DynamicShapesError(
                f"dynamic_shapes for {path} dim {dim}: expected a Dim, got {entry!r}"
            )
        result[dim % tensor.dim()] = entry
    return result


def _check_static_size(path: str, dim: int, tensor: torch.Tensor, size: int) -> None:
    if tensor.shape[dim] != size:
        raise DynamicShapesError(
            f"dynamic_shapes for {path} says dim {dim} is static with size {size}, but the "
            f"example input has size {tensor.shape[dim]}"
        )


def _check_consistent_names(matched: list[dict[int, DimEntry]]) -> None:
    seen: dict[str, Dim] = {}
    for entries in matched:
        for entry in entries.values():
            root = entry.root if isinstance(entry, DerivedDim) else entry
            if not isinstance(root, Dim):
                continue
            other = seen.setdefault(root.name, root)
            if other != root:
                raise DynamicShapesError(
                    f"two different Dims are named {root.name!r}: {other!r} and {root!r}; "
                    "dims that share a name must be the same Dim"
                )
