"""Building and refining ``dynamic_shapes`` specs (torch.export's helpers).

- ``ShapesCollection``: give shapes to input *tensors* (by identity) instead of
  writing a spec that mirrors nested inputs; ``dynamic_shapes()`` builds it.
- ``AdditionalInputs``: give more example inputs; a dim that differs between
  them becomes ``Dim.DYNAMIC``, one that never differs stays static.
- ``refine_dynamic_shapes``: apply a ConstraintViolationError's ``fixes`` to
  the spec that caused it.

Specs come out keyed by argument name, as ``match_dynamic_shapes`` reads them
(``*args`` entries are ``args_0``, ``args_1``...), with containers mirrored.

>>> import torch
>>> class Add(torch.nn.Module):
...     def forward(self, x, y):
...         return x + y
>>> x, y = torch.ones(2, 3), torch.ones(2, 3)
>>> sc = ShapesCollection()
>>> sc[x] = {0: Dim("b")}
>>> sc.dynamic_shapes(Add(), (x, y))
{'x': {0: Dim('b', min=0)}, 'y': None}
"""

from __future__ import annotations

import inspect
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from graphlift.errors import (
    AdditionalInputMismatchError,
    ConstraintViolationError,
    InputMismatchError,
    ShapeSpecError,
)
from graphlift.export.capture import placeholder_names
from graphlift.export.spec.dynamic_shapes import (
    VALUE,
    BoundedHint,
    DerivedDim,
    Dim,
    DimEntry,
    DimHint,
    hint_kind,
)
from graphlift.export.spec.symbols import phantom_source
from graphlift.pytree import (
    describe_mismatch,
    is_leaf_value,
    keystr,
    tree_flatten,
    tree_flatten_with_path,
)

_DICTS = (dict, OrderedDict, defaultdict)


class ShapesCollection:
    """Shapes for input tensors, found by identity (torch.export.ShapesCollection).

    ``sc[x] = {0: batch}`` or ``sc[x] = (batch, None)``; ``sc[x][1] = seq``
    adds to a tensor's shape in place. Tensors never registered are static.
    """

    def __init__(self) -> None:
        self._shapes: dict[int, Any] = {}
        self._tensors: dict[int, torch.Tensor] = {}  # keeps ids valid while registered

    def __setitem__(self, tensor: torch.Tensor, shape: Any) -> None:
        _check_tensor(tensor)
        existing = self._shapes.get(id(tensor))
        if existing is not None and existing != shape:
            raise ShapeSpecError(
                f"this tensor already has shape {existing!r}; cannot also give it {shape!r}"
            )
        self._shapes[id(tensor)] = shape
        self._tensors[id(tensor)] = tensor

    def __getitem__(self, tensor: torch.Tensor) -> Any:
        _check_tensor(tensor)
        if id(tensor) not in self._shapes:
            self[tensor] = {}
        return self._shapes[id(tensor)]

    def __len__(self) -> int:
        return len(self._shapes)

    def dynamic_shapes(
        self, model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The spec for ``model(*args, **kwargs)``: each registered tensor's shape
        where it occurs in the inputs, None for every other input."""
        inputs = _inputs_by_name(model, args, kwargs or {})
        found: set[int] = set()

        def shape_of(leaf: Any) -> Any:
            if isinstance(leaf, torch.Tensor) and id(leaf) in self._shapes:
                found.add(id(leaf))
                return self._shapes[id(leaf)]
            return None

        leaves = [shape_of(leaf) for leaf in tree_flatten(inputs)[0]]
        spec: dict[str, Any] = _mirror(inputs, iter(leaves))
        missing = [tuple(self._tensors[i].shape) for i in self._shapes if i not in found]
        if missing:
            raise ShapeSpecError(
                f"{len(missing)} tensor(s) given shapes are not among the inputs (sizes "
                f"{missing}); was a copy passed instead, or is the tensor inside a class not "
                "registered as a pytree?"
            )
        return spec


class AdditionalInputs:
    """More example inputs; the spec makes dynamic every dim that differs among
    them and the export's own example (torch.export.AdditionalInputs)."""

    def __init__(self) -> None:
        self._examples: list[tuple[tuple[Any, ...], dict[str, Any] | None]] = []

    def add(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> None:
        """One more set of inputs the exported program must accept."""
        if type(args) is not tuple:
            raise ShapeSpecError(f"additional args must be a tuple, got {type(args).__name__}")
        if kwargs is not None and type(kwargs) is not dict:
            raise ShapeSpecError(
                f"additional kwargs must be None or a dict, got {type(kwargs).__name__}"
            )
        self._examples.append((args, kwargs))

    def dynamic_shapes(
        self, model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Per tensor a tuple with ``Dim.DYNAMIC`` where sizes differ, None where
        they agree; None for non-tensor inputs (which must agree)."""
        examples = [(args, kwargs), *self._examples]
        trees = [_inputs_by_name(model, a, kw or {}) for a, kw in examples]
        trees = [  # keyword order does not matter, as in a call
            {key: tree[key] for key in trees[0]} if tree.keys() == trees[0].keys() else tree
            for tree in trees
        ]
        flat = [tree_flatten(tree) for tree in trees]
        first_spec = flat[0][1]
        for index, (_, spec) in enumerate(flat[1:], start=1):
            if spec != first_spec:
                difference = describe_mismatch(first_spec, spec, root="inputs")
                raise ShapeSpecError(
                    f"additional inputs #{index} are not structured like the example inputs: "
                    f"{difference}"
                )
        leaves = [
            _merge(path, values)
            for path, values in zip(_leaf_paths(trees[0]), zip(*(f[0] for f in flat)))
        ]
        mirrored: dict[str, Any] = _mirror(trees[0], iter(leaves))
        return mirrored

    def verify(self, program: Any) -> None:
        """Run ``program.module()``'s input checks on every added input set (they
        raise InputMismatchError for one the program does not accept). Only the
        checks: running the program would apply its mutations to the model's
        buffers and to the example tensors."""
        module = program.module()
        for index, (args, kwargs) in enumerate(self._examples, start=1):
            try:
                module._check_inputs(*module._flat_inputs(args, kwargs or {}))
            except InputMismatchError as error:  # torch raises RuntimeError here
                raise AdditionalInputMismatchError(
                    f"additional inputs #{index} are refused by the exported program, so it is "
                    f"not valid for them (the program depends on their sizes): {error}"
                ) from None


def refine_dynamic_shapes(
    spec: Any,
    error: ConstraintViolationError,
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
) -> Any:
    """``spec`` with ``error.fixes`` applied, for exporting ``model(*args, **kwargs)`` again.

    A fix for a named Dim applies wherever that Dim (or a dim derived from it)
    is used: a narrower ``Dim`` replaces it, None makes it static (dropped from
    a ``{dim: Dim}`` dict, None in a tuple), "the same Dim as <source>" reuses
    the Dim declared there (a new named Dim shared by both if that dim was a
    hint). A fix for a hint (``Dim.DYNAMIC``) applies to that dim only.
    The inputs are needed to find each fix's source (``x.size()[0]``) in the spec.
    """
    kwargs = kwargs or {}
    names = placeholder_names(model, args, kwargs)
    declared: dict[str, tuple[str, int, DimEntry]] = {}

    def record(name: str, tensor: torch.Tensor | int, shape: Any) -> Any:
        if not isinstance(tensor, torch.Tensor):  # a dynamic int: its source is its name
            declared[name] = (name, VALUE, shape)
            return shape
        for dim, entry in _entries(tensor, shape):
            declared[f"{name}.size()[{dim}]"] = (name, dim, entry)
            if isinstance(entry, DerivedDim) and (entry.scale, entry.offset) != (1, 0):
                # a root on no input is read back from here (a phantom root), and a
                # fix for its range comes keyed by that source
                phantom = phantom_source(f"{name}.size()[{dim}]", entry.scale, entry.offset)
                declared.setdefault(phantom, (name, dim, entry.root))
        return shape

    _rewrite_spec(model, args, kwargs, spec, names, record)
    plan = _RefinePlan.from_fixes(error.fixes, declared)

    def apply(name: str, tensor: torch.Tensor | int, shape: Any) -> Any:
        if not isinstance(tensor, torch.Tensor):
            return plan.refine(name, shape)
        refined = {d: plan.refine(f"{name}.size()[{d}]", e) for d, e in _entries(tensor, shape)}
        if isinstance(shape, Mapping):
            kept = {d: refined.get(d % tensor.dim(), entry) for d, entry in shape.items()}
            return {d: entry for d, entry in kept.items() if entry is not None}
        if isinstance(shape, tuple | list):
            return type(shape)(refined.get(d, entry) for d, entry in enumerate(shape))
        return shape

    return _rewrite_spec(model, args, kwargs, spec, names, apply)


# --- inputs by name and mirrored specs --------------------------------------------------


def _inputs_by_name(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Each input under the name a dict spec gives it, in the order export flattens them."""
    names: list[str] = []
    variadic = None
    for parameter in inspect.signature(model.forward).parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            variadic = parameter.name
        elif parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.append(parameter.name)
    if variadic is not None:
        names += [f"{variadic}_{i}" for i in range(len(args) - len(names))]
    if len(args) > len(names):
        raise ShapeSpecError(
            f"{type(model).__name__}.forward takes {len(names)} positional inputs, got {len(args)}"
        )
    return {**dict(zip(names, args)), **kwargs}


def _mirror(value: Any, leaf_specs: Iterator[Any]) -> Any:
    """A spec shaped like ``value``, taking each leaf's entry from ``leaf_specs``."""
    if is_leaf_value(value):
        return next(leaf_specs)
    if type(value) in _DICTS:
        return {key: _mirror(item, leaf_specs) for key, item in value.items()}
    if isinstance(value, tuple | list):
        items = [_mirror(item, leaf_specs) for item in value]
        return items if isinstance(value, list) else tuple(items)
    specs = [next(leaf_specs) for _ in tree_flatten(value)[0]]
    if any(spec is not None for spec in specs):
        raise ShapeSpecError(
            f"a {type(value).__name__} input holds tensors with dynamic shapes; dynamic_shapes "
            "can only reach into dicts, lists and tuples"
        )
    return None


def _leaf_paths(tree: dict[str, Any]) -> list[str]:
    return [keystr(path) for path, _ in tree_flatten_with_path(tree)[0]]


def _merge(path: str, values: tuple[Any, ...]) -> Any:
    """One input's spec entry from its value in every example."""
    first = values[0]
    if any(type(v) is not type(first) for v in values):
        types = [type(v).__name__ for v in values]
        raise ShapeSpecError(f"input {path} has different types across the examples: {types}")
    if isinstance(first, torch.Tensor):
        shapes = [tuple(v.shape) for v in values]
        if any(len(s) != len(shapes[0]) for s in shapes):
            raise ShapeSpecError(f"input {path} has different ranks across the examples: {shapes}")
        return tuple(
            None if len({s[d] for s in shapes}) == 1 else DimHint.DYNAMIC
            for d in range(len(shapes[0]))
        )
    if all(v == first for v in values):
        return None
    if type(first) is int:
        return DimHint.DYNAMIC  # a dynamic int input, as torch.export makes it
    raise ShapeSpecError(
        f"input {path} differs across the examples {list(values)} but cannot be dynamic"
    )


def _check_tensor(value: Any) -> None:
    if not isinstance(value, torch.Tensor):
        raise ShapeSpecError(
            f"ShapesCollection gives shapes to tensors, got a {type(value).__name__}"
        )


# --- refining -----------------------------------------------------------------------


def _entries(tensor: torch.Tensor, shape: Any) -> list[tuple[int, DimEntry]]:
    """(dim, entry) for each dynamic entry of one tensor's spec."""
    if isinstance(shape, Mapping):
        items = list(shape.items())
    elif isinstance(shape, tuple | list):
        items = list(enumerate(shape))
    else:
        return []
    return [
        (dim % tensor.dim(), entry)
        for dim, entry in items
        if isinstance(entry, Dim | DerivedDim | DimHint | BoundedHint)
        and entry is not DimHint.STATIC
    ]


TensorEdit = Callable[[str, torch.Tensor | int, Any], Any]  # a tensor, or a dynamic int


def _rewrite_spec(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    spec: Any,
    names: list[str],
    edit: TensorEdit,
) -> Any:
    """``spec`` with each tensor's shape replaced by ``edit(placeholder, tensor, shape)``."""
    inputs = _inputs_by_name(model, args, kwargs)
    leaf_names = iter(names)
    if isinstance(spec, Mapping):
        out = {
            key: _rewrite(value, spec.get(key), leaf_names, edit) for key, value in inputs.items()
        }
        return {key: out[key] for key in spec}
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        parts = [_rewrite(v, s, leaf_names, edit) for v, s in zip(inputs.values(), spec)]
        return tuple(parts) if isinstance(spec, tuple) else list(parts)
    raise ShapeSpecError(f"cannot refine a dynamic_shapes spec of type {type(spec).__name__}")


def _rewrite(value: Any, spec: Any, names: Iterator[str], edit: TensorEdit) -> Any:
    """``edit`` sees each tensor, and each int given a Dim (a dynamic int input)."""
    if isinstance(value, torch.Tensor) or (
        type(value) is int
        and isinstance(spec, Dim | DimHint | BoundedHint)
        and spec is not DimHint.STATIC
    ):
        return edit(next(names), value, spec)
    if is_leaf_value(value) or spec is None:
        for _ in tree_flatten(value)[0]:
            next(names)
        return spec
    if isinstance(value, Mapping) and isinstance(spec, Mapping):
        out = {key: _rewrite(item, spec.get(key), names, edit) for key, item in value.items()}
        return {key: out[key] for key in spec}
    if isinstance(value, tuple | list) and isinstance(spec, tuple | list):
        return type(spec)(_rewrite(item, s, names, edit) for item, s in zip(value, spec))
    raise ShapeSpecError(
        f"dynamic_shapes has a {type(spec).__name__} where the input is a {type(value).__name__}"
    )


class _RefinePlan:
    """What each declared entry becomes: by Dim name (every use of that Dim and
    dims derived from it) or, for hints, by source."""

    def __init__(self) -> None:
        self.by_name: dict[str, Dim | DerivedDim | None] = {}
        self.by_source: dict[str, Dim | DerivedDim | None] = {}

    @classmethod
    def from_fixes(
        cls, fixes: Mapping[str, Any], declared: dict[str, tuple[str, int, DimEntry]]
    ) -> _RefinePlan:
        plan = cls()
        tied = {f"the same Dim as {source}": source for source in declared}
        taken = {e.name for _, _, e in declared.values() if isinstance(e, Dim)}
        for source, fix in fixes.items():
            if source not in declared:
                raise ShapeSpecError(
                    f"the error has a fix for {source}, which is not a dynamic dim of this spec "
                    "and these inputs; refine the spec and inputs that export was given"
                )
            name, dim, entry = declared[source]
            if isinstance(fix, str):
                other = tied.get(fix)
                if other is None:
                    raise ShapeSpecError(f"cannot apply the fix {fix!r} for {source}")
                fix = declared[other][2]
                if hint_kind(fix) is not None:
                    fix = _fresh_dim(
                        f"{declared[other][0]}_dim{declared[other][1]}", 0, None, taken
                    )
                    plan.by_source[other] = fix
            elif isinstance(fix, Dim) and not isinstance(entry, Dim):
                fix = _fresh_dim(f"{name}_dim{dim}", fix.min, fix.max, taken)
            if isinstance(entry, Dim):
                plan.by_name[entry.name] = fix
            else:
                plan.by_source[source] = fix
        return plan

    def refine(self, source: str, entry: DimEntry) -> DimEntry | None:
        if source in self.by_source:
            return self._follow(self.by_source[source])
        if isinstance(entry, DerivedDim):
            root = self._follow(entry.root)
            if root is None:
                return None
            return root * entry.scale + entry.offset  # root may itself be derived now
        if isinstance(entry, Dim):
            return self._follow(entry)
        return entry

    def _follow(self, entry: Dim | DerivedDim | None) -> Dim | DerivedDim | None:
        """Apply name fixes until one stays (a narrowed Dim keeps its name; a
        Dim that only supports even sizes becomes ``2*Dim(...)``)."""
        for _ in range(len(self.by_name) + 1):
            if isinstance(entry, DerivedDim):
                root = self._follow(entry.root)
                return None if root is None else root * entry.scale + entry.offset
            if entry is None or entry.name not in self.by_name:
                return entry
            replacement = self.by_name[entry.name]
            if replacement == entry:
                return entry
            entry = replacement
        return entry


def _fresh_dim(base: str, low: int, high: int | None, taken: set[str]) -> Dim:
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    taken.add(name)
    return Dim(name, min=low, max=high)
