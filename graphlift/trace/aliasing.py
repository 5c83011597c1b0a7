"""Views of traced tensors, and writing an update of a view back into its base.

Functionalization happens *while tracing* (see docs/mutations.md for why): the
recorder knows, for every traced tensor, the tensor that owns its storage (its
*base*) and the chain of view ops that derives it from the base. With that,
an in-place update of a view becomes functional in three moves:

1. the update is recorded as its out-of-place op, giving the view's new value;
2. ``scatter_into_base`` writes the new value back into the base through the
   inverse of each view step (``slice`` -> ``slice_scatter``, ``select`` ->
   ``select_scatter``, ``transpose`` -> ``transpose``, ``view`` -> ``reshape``
   to the parent's shape, ...), innermost step first, and rebinds the base to
   the resulting node;
3. every other view of that base is now stale: ``refresh`` regenerates it by
   replaying its view chain on the base's new value when it is next used.

Each inverse is one entry of ``INVERSES``, a small function whose docstring is
its algebra. A view op without an inverse entry is refused with a clear error
when something writes through it (never silently dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import TraceError
from graphlift.source import user_where
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.trace.recorder import Recorder

aten = torch.ops.aten


@dataclass(frozen=True)
class ViewStep:
    """One view op applied to the previous value of the chain: ``op(parent,
    *args, **kwargs)``, then ``[index]`` for ops that return a list of views."""

    op: torch._ops.OpOverload
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    index: int | None

    def bound(self) -> dict[str, Any]:
        """The step's arguments (after ``self``) by schema name, defaults filled in."""
        values: dict[str, Any] = {}
        arguments = self.op._schema.arguments[1:]
        for position, argument in enumerate(arguments):
            if position < len(self.args):
                values[argument.name] = self.args[position]
            elif argument.name in self.kwargs:
                values[argument.name] = self.kwargs[argument.name]
            elif argument.has_default_value():
                values[argument.name] = argument.default_value
        return values


def returns_alias(op: torch._ops.OpOverload) -> bool:
    """The op's schema says a result may alias its first argument (a view op,
    or an op like ``contiguous``/``to`` that may return its input)."""
    schema = op._schema
    if schema.is_mutable or not schema.arguments or schema.arguments[0].alias_info is None:
        return False
    return any(r.alias_info is not None for r in schema.returns)


# ``torch.tensor(...)`` in the model makes a tensor outside dispatch and passes
# it through ``lift_fresh``; nothing else holds it, so the result is a new tensor
# (torch's functionalization records ``lift_fresh_copy`` for the same reason).
FRESH_ALIASES = {aten.lift_fresh.default}


def track_views(op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any],
                result: Any) -> None:  # fmt: skip
    """Mark the results of a view op that share storage with its input as views
    of the input's base."""
    source = args[0] if args else None
    if not isinstance(source, TraceTensor) or not returns_alias(op) or op in FRESH_ALIASES:
        return
    items = list(result) if isinstance(result, tuple | list) else [result]
    multiple = isinstance(result, tuple | list)
    root = source.base if source.base is not None else source
    storage = _storage(source.shadow)
    for index, item in enumerate(items):
        if not isinstance(item, TraceTensor) or item is source or _storage(item.shadow) != storage:
            continue
        step = ViewStep(op, tuple(args[1:]), dict(kwargs), index if multiple else None)
        item.base = root
        root.has_views = True
        item.view_steps = (*source.view_steps, step)
        item.seen_version = root.version


def refresh(recorder: Recorder, value: TraceTensor) -> None:
    """Regenerate a stale view from its base's current value."""
    base = value.base
    if base is None or value.seen_version == base.version:
        return
    replayed = _replay(recorder, base, value.view_steps)[-1]
    value.node = replayed.node
    value.seen_version = base.version


def scatter_into_base(recorder: Recorder, view: TraceTensor, new_value: TraceTensor) -> None:
    """``view`` (a view of its base) now holds ``new_value``: compute the base's
    new value functionally and rebind the base to it."""
    base = view.base
    if base is None:
        raise TraceError(
            "scatter_into_base got a tensor that is not a view; this is a bug in graphlift"
        )
    parents = _replay(recorder, base, view.view_steps[:-1]) if len(view.view_steps) > 1 else []
    parents = [base, *parents]
    updated = new_value
    for parent, step in zip(reversed(parents), reversed(view.view_steps)):
        updated = _inverse(recorder, step, parent, updated)
    base.node = updated.node
    base.version += 1


def _replay(
    recorder: Recorder, base: TraceTensor, steps: tuple[ViewStep, ...]
) -> list[TraceTensor]:
    """The values of the chain after each step, recomputed from the base's current node."""
    values: list[TraceTensor] = []
    current = base
    for step in steps:
        result = recorder.call(step.op, (current, *step.args), step.kwargs)
        current = result[step.index] if step.index is not None else result
        values.append(current)
    return values


def _inverse(
    recorder: Recorder, step: ViewStep, parent: TraceTensor, child: TraceTensor
) -> TraceTensor:
    """The parent's new value when the child view of it now holds ``child``."""
    if _same_layout(parent.shadow, child.shadow):
        return child  # the view is the whole parent (alias, contiguous, to, a no-op reshape)
    inverse = INVERSES.get(step.op)
    if inverse is None:
        raise TraceError(
            f"the model updates in place a view made by {step.op}; writing through that kind of "
            "view cannot be exported yet. Update the original tensor, or clone the view first "
            "(`v = v.clone()`) if the original should not change",
            where=user_where(),
        )
    written: TraceTensor = inverse(recorder.call, step, parent, child)
    return written


Call = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


def _slice(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``slice(p, dim, start, end, step)`` <- ``slice_scatter(p, c, dim, start, end, step)``."""
    a = step.bound()
    return call(
        aten.slice_scatter.default, (parent, child, a["dim"], a["start"], a["end"], a["step"]), {}
    )


def _narrow(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``narrow(p, dim, start, length)`` <- ``slice_scatter(p, c, dim, start, start + length)``."""
    a = step.bound()
    start = a["start"]
    return call(
        aten.slice_scatter.default, (parent, child, a["dim"], start, start + a["length"]), {}
    )


def _select(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``select(p, dim, i)`` <- ``select_scatter(p, c, dim, i)``."""
    a = step.bound()
    return call(aten.select_scatter.default, (parent, child, a["dim"], a["index"]), {})


def _diagonal(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``diagonal(p, offset, d1, d2)`` <- ``diagonal_scatter(p, c, offset, d1, d2)``."""
    a = step.bound()
    return call(
        aten.diagonal_scatter.default, (parent, child, a["offset"], a["dim1"], a["dim2"]), {}
    )


def _as_strided(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``as_strided(p, size, stride, offset)`` <- ``as_strided_scatter(p, c, size, stride, offset)``."""
    a = step.bound()
    args = (parent, child, a["size"], a["stride"], a.get("storage_offset"))
    return call(aten.as_strided_scatter.default, args, {})


def _reshape(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """A view that only regroups dims (view, reshape, flatten, unsqueeze, ...)
    keeps the row-major order of elements: its inverse is ``reshape`` to the
    parent's sizes."""
    return call(aten.reshape.default, (child, list(parent.shape)), {})


def _transpose(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """A transpose is its own inverse."""
    a = step.bound()
    return call(aten.transpose.int, (child, a["dim0"], a["dim1"]), {})


def _swapaxes(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``swapaxes`` is its own inverse."""
    a = step.bound()
    return call(aten.transpose.int, (child, a["axis0"], a["axis1"]), {})


def _numpy_t(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``x.T`` (all dims reversed) and ``x.mT`` (last two swapped) are their own inverses."""
    return call(step.op, (child,), {})


def _movedim(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``movedim(p, source, destination)`` <- ``movedim(c, destination, source)``."""
    a = step.bound()
    return call(step.op, (child, a["destination"], a["source"]), {})


def _t(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``t`` is its own inverse."""
    return call(aten.t.default, (child,), {})


def _permute(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``permute(p, dims)`` <- ``permute(c, argsort(dims))``."""
    rank = parent.dim()
    dims = [d % rank for d in step.bound()["dims"]]
    inverse = sorted(range(rank), key=lambda position: dims[position])
    return call(aten.permute.default, (child, inverse), {})


def _unbind(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``unbind(p, dim)[i]`` <- ``select_scatter(p, c, dim, i)``."""
    return call(aten.select_scatter.default, (parent, child, step.bound()["dim"], step.index), {})


def _split(call: Call, step: ViewStep, parent: TraceTensor, child: TraceTensor) -> Any:
    """``split(p, size, dim)[i]`` and ``chunk(p, n, dim)[i]`` are slices starting at
    ``i * size`` (for chunk, ``size = ceil(p.size(dim) / n)``);
    ``split_with_sizes(p, sizes, dim)[i]`` starts at ``sum(sizes[:i])``."""
    a = step.bound()
    dim = a["dim"] % parent.dim()
    index = step.index or 0
    if "split_sizes" in a:
        start = sum(a["split_sizes"][:index])
    elif "chunks" in a:
        start = index * ((parent.shape[dim] + a["chunks"] - 1) // a["chunks"])
    else:
        start = index * a["split_size"]
    end = start + child.shape[dim]
    return call(aten.slice_scatter.default, (parent, child, dim, start, end, 1), {})


INVERSES: dict[Any, Callable[[Call, ViewStep, TraceTensor, TraceTensor], Any]] = {
    aten.slice.Tensor: _slice,
    aten.narrow.default: _narrow,
    aten.select.int: _select,
    aten.diagonal.default: _diagonal,
    aten.as_strided.default: _as_strided,
    aten.view.default: _reshape,
    aten._unsafe_view.default: _reshape,
    aten.reshape.default: _reshape,
    aten.view_as.default: _reshape,
    aten.reshape_as.default: _reshape,
    aten.flatten.using_ints: _reshape,
    aten.unflatten.int: _reshape,
    aten.unsqueeze.default: _reshape,
    aten.squeeze.default: _reshape,
    aten.squeeze.dim: _reshape,
    aten.squeeze.dims: _reshape,
    aten.transpose.int: _transpose,
    aten.swapaxes.default: _swapaxes,
    aten.swapdims.default: _transpose,
    aten.numpy_T.default: _numpy_t,
    aten.mT.default: _numpy_t,
    aten.movedim.int: _movedim,
    aten.movedim.intlist: _movedim,
    aten.t.default: _t,
    aten.permute.default: _permute,
    aten.unbind.int: _unbind,
    aten.split.Tensor: _split,
    aten.split_with_sizes.default: _split,
    aten.chunk.default: _split,
}


def _same_layout(parent: torch.Tensor, child: torch.Tensor) -> bool:
    """Same dtype, sizes, strides and offset, compared as printed expressions
    (comparing symbolic sizes with ``==`` would record guards)."""

    def layout(t: torch.Tensor) -> tuple[Any, ...]:
        return (t.dtype, str(t.storage_offset()), [str(s) for s in t.shape],
                [str(s) for s in t.stride()])  # fmt: skip

    return layout(parent) == layout(child)


def _storage(shadow: torch.Tensor) -> int:
    return int(shadow.untyped_storage()._cdata)
