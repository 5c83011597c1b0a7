"""torch.export's own spec objects, recognised by their shape (never imported).

Libraries build ``dynamic_shapes`` for their users with torch's classes
(transformers' export helpers, optimum, ExecuTorch recipes), so ``export``
takes them as they are: ``torch.export.Dim`` (named, bounded, derived),
``Dim.AUTO``/``STATIC``/``DYNAMIC`` (also called with ``min=``/``max=``),
``ShapesCollection`` and ``AdditionalInputs``. Each is turned into graphlift's
equivalent before matching; graphlift's own objects pass through unchanged.

Recognition is structural (attribute names torch has kept since 2.3), so
graphlift never imports ``torch.export``:

- a hint has ``type`` (an enum member named AUTO/STATIC/DYNAMIC), ``min``, ``max``;
- a derived dim has ``root`` and ``fn`` (a linear function of the root);
- a named dim has ``__name__``, ``min`` and ``max`` (``int_oo`` when unbounded).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from graphlift.errors import DynamicShapesError
from graphlift.export.spec.dynamic_shapes import BoundedHint, DerivedDim, Dim, DimHint
from graphlift.export.spec.shape_specs import AdditionalInputs


def resolve_spec(
    dynamic_shapes: Any, mod: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """(the spec in graphlift's objects, the builder it came from or None): a
    ShapesCollection or AdditionalInputs (graphlift's or torch's) builds the spec
    for these inputs; torch's Dim objects become graphlift's."""
    builder = None
    if hasattr(dynamic_shapes, "dynamic_shapes"):
        builder = from_torch_builder(dynamic_shapes)
        dynamic_shapes = builder.dynamic_shapes(mod, args, kwargs)
    return from_torch_spec(dynamic_shapes), builder


def from_torch_spec(spec: Any) -> Any:
    """``spec`` with every torch.export object replaced by graphlift's equivalent."""
    if isinstance(spec, Mapping):
        return {key: from_torch_spec(value) for key, value in spec.items()}
    if isinstance(spec, list | tuple) and not hasattr(spec, "_fields"):
        return type(spec)(from_torch_spec(item) for item in spec)
    return from_torch_entry(spec)


def from_torch_entry(entry: Any) -> Any:
    """One dim entry: graphlift's own objects and everything else pass through."""
    if isinstance(entry, Dim | DerivedDim | DimHint | BoundedHint) or entry is None:
        return entry
    if _is_torch_hint(entry):
        return _hint(entry)
    if hasattr(entry, "root") and callable(getattr(entry, "fn", None)):
        return _derived(entry)
    if _is_torch_dim(entry):
        return Dim(entry.__name__, min=_bound(entry.min, 0), max=_upper(entry.max))
    return entry


def from_torch_builder(builder: Any) -> Any:
    """torch's AdditionalInputs becomes graphlift's (torch's ``verify`` reads torch's
    own module internals); a ShapesCollection works as it is."""
    if type(builder).__name__ == "AdditionalInputs" and not isinstance(builder, AdditionalInputs):
        converted = AdditionalInputs()
        for args, kwargs in getattr(builder, "_examples", ()):
            converted.add(args, kwargs)
        return converted
    return builder


def _is_torch_hint(entry: Any) -> bool:
    kind = getattr(entry, "type", None)
    return getattr(kind, "name", None) in DimHint.__members__ and hasattr(entry, "min")


def _is_torch_dim(entry: Any) -> bool:
    return (
        isinstance(getattr(entry, "__name__", None), str)
        and hasattr(entry, "min")
        and hasattr(entry, "max")
        and not isinstance(entry, type)
    )


def _hint(entry: Any) -> DimHint | BoundedHint:
    hint = DimHint[entry.type.name]
    if entry.min is None and entry.max is None:
        return hint
    return BoundedHint(hint, None if entry.min is None else int(entry.min), _upper(entry.max))


def _derived(entry: Any) -> DerivedDim:
    root = from_torch_entry(entry.root)
    if not isinstance(root, Dim):
        raise DynamicShapesError(f"derived dim {entry.__name__!r} has no named root Dim")
    offset = entry.fn(0)
    scale = entry.fn(1) - offset
    if any(type(v) is not int for v in (offset, scale)) or entry.fn(2) != 2 * scale + offset:
        raise DynamicShapesError(
            f"derived dim {entry.__name__!r} is not of the form a*{root.name} + b with integer "
            "a and b; graphlift supports derived dims built with *, + and -"
        )
    return DerivedDim(root, scale, offset)


def _bound(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _upper(value: Any) -> int | None:
    """torch spells 'unbounded' as sympy's ``int_oo`` (or a huge int); graphlift as None."""
    if value is None or (type(value) is not int and type(value).__name__ == "IntInfinity"):
        return None
    return int(value)
