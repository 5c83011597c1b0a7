"""Data-dependent operations: values and sizes known only when the program runs.

``.item()`` (and ``.tolist()``, ``int(t)``, ``bool(t)``) returns an *unbacked*
symbol bound to the ``aten._local_scalar_dense`` node that computes it;
``nonzero``, ``masked_select``, ``unique``, boolean-mask indexing,
``repeat_interleave`` with tensor repeats and ``bincount`` return tensors whose
size is a fresh unbacked symbol, bound to ``sym_size`` of the result node (see
``SymbolicValues.bind_sizes``). Later shape questions about these symbols go to
the ShapeEnv: decided from their ranges when possible, answered
size-obliviously where torch's kernels ask so, otherwise a
``DataDependentError`` naming the user's line.

Each handler is an entry of ``DATA_DEPENDENT_OPS`` (merged into TraceMode's
table). Size rules compute the shadow result with fresh symbols; the op is
recorded whole by ``Recorder.call``, as torch.export records it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch._library import fake_impl, simple_registry

from graphlift.errors import RuntimeAssertError, TraceError
from graphlift.ir.effects import register_side_effect
from graphlift.patching import Patcher
from graphlift.source import user_location, user_where
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic import algebra as E
from graphlift.symbolic.decide import bound
from graphlift.symbolic.expr import as_symbol, free_symbols
from graphlift.trace.profiled_ops import needs_profile, profiled_call
from graphlift.trace.recorder import Recorder
from graphlift.trace.tensor import TraceTensor
from graphlift.trace.zero_one import check_assumptions

aten = torch.ops.aten

Handler = Callable[[Recorder, Any, tuple[Any, ...], dict[str, Any]], Any]

register_side_effect(aten._assert_scalar.default)
register_side_effect(aten.sym_constrain_range_for_size.default)


@register_side_effect
def runtime_assert(condition: Any, message: str) -> None:
    """What ``ep.module()`` runs for ``aten._assert_scalar``: the same check,
    failing with a typed error (a RuntimeError, as torch's assert raises)."""
    if not condition:
        raise RuntimeAssertError(
            f"{message}. The exported program assumed it; this input's data violates it"
        )


# --- scalar values -----------------------------------------------------------------------


def local_scalar_dense(
    recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``.item()``: an unbacked int, float or bool computed by a
    ``_local_scalar_dense`` node (an integer of a narrow dtype gets its range)."""
    (tensor,) = args
    if not isinstance(tensor, TraceTensor):
        return op(tensor)  # a real constant: its value is known
    constant = recorder.constant_value(tensor)
    if constant is not None:  # a lifted constant (never mutated): fold, as torch.export does
        return op(constant)
    if tensor.shadow.numel() != 1:
        raise TraceError(
            f"a Tensor with {tensor.shadow.numel()} elements cannot be converted to Scalar",
            where=user_where(),
        )
    symbolic = recorder.ensure_symbolic()
    env = symbolic.shape_env
    symbolic.emit_runtime_asserts()
    dtype = tensor.dtype
    if dtype.is_floating_point:
        value: Any = env.create_unbacked_symfloat()
    elif dtype is torch.bool:
        value = env.create_unbacked_symbool()
    elif dtype.is_complex:
        raise TraceError("the value of a complex tensor cannot be read while exporting",
                         where=user_where())  # fmt: skip
    else:
        info = torch.iinfo(dtype)
        bounded = dtype.itemsize < 8
        value = env.create_unbacked_symint(
            min=info.min if bounded else None, max=info.max if bounded else None
        )
    node = recorder.record(aten._local_scalar_dense.default, (tensor.node,), {})
    node.meta["val"] = value
    expr = value.node.symbolic_expr
    if dtype.is_floating_point:  # a float symbol is an argument-less op named by its payload
        name = expr.payload
        symbolic.bind_value(name, node, value)
    elif dtype is torch.bool:  # stored as u == 1
        (name,) = free_symbols(expr)
        symbolic.bind_bool(name, node, value)
    else:
        (name,) = free_symbols(expr)
        symbolic.bind_value(name, node, value)
    env.note_origin(name, f".item() at {_where()}")
    return value


def is_nonzero(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``bool(t)`` / ``if t:``: the data-dependent bool ``t != 0``."""
    (tensor,) = args
    if not isinstance(tensor, TraceTensor):
        return op(tensor)
    if tensor.dtype is not torch.bool:
        tensor = recorder.call(aten.ne.Scalar, (tensor, 0), {})
    return local_scalar_dense(recorder, aten._local_scalar_dense.default, (tensor,), {})


# --- data-dependent sizes ----------------------------------------------------------------


def _size(env: ShapeEnv, what: str, *, min: int = 0, max: Any = None) -> torch.SymInt:
    """A fresh size-like unbacked symbol in [min, max] (max None: unbounded; symbolic:
    its upper bound over the input ranges, so ``nonzero`` of a ``[100, 7, 5]``-bounded
    input reports ``[0, 3500]`` as torch.export does)."""
    upper = max if isinstance(max, int) else _upper_bound(env, max)
    size = env.create_unbacked_symint(size_like=True, min=min, max=upper)
    name = as_symbol(size.node.symbolic_expr)
    if name is not None:
        env.note_origin(name, f"the size of {what} at {_where()}")
    return size


def _upper_bound(env: ShapeEnv, size: Any) -> int | None:
    if not isinstance(size, torch.SymInt):
        return None
    upper = bound(env.simplify(size.node.symbolic_expr), env.ranges).upper
    return None if math.isinf(upper) else int(upper)


def _nonzero(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor) -> torch.Tensor:
        count = _size(env, "nonzero()", max=x.numel())
        return x.new_empty((count, x.dim()), dtype=torch.long)

    return rule


def _size_expr(size: Any) -> Any:
    return size.node.symbolic_expr if isinstance(size, torch.SymInt) else size


def _masked_select(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Equal shapes need no broadcasting, whose size-1 questions would guard here
        # (a data-dependent rule gets no 0/1 check): ``masked_select(x, x > 0)``.
        same = [_size_expr(a) for a in x.shape] == [_size_expr(b) for b in mask.shape]
        # torch.broadcast_shapes is unannotated
        shape = x.shape if same else torch.broadcast_shapes(x.shape, mask.shape)  # type: ignore[no-untyped-call]
        return x.new_empty((_size(env, "masked_select()", max=math.prod(shape)),))

    return rule


def _repeat_interleave(env: ShapeEnv) -> Callable[..., Any]:
    def rule(repeats: torch.Tensor, *, output_size: Any = None) -> torch.Tensor:
        size = output_size if output_size is not None else _size(env, "repeat_interleave()")
        return repeats.new_empty((size,))

    return rule


def _bincount(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor, weights: Any = None, minlength: int = 0) -> torch.Tensor:
        dtype = (
            torch.long
            if weights is None
            else (weights.dtype if weights.is_floating_point() else torch.double)
        )
        size = _size(env, "bincount()", min=minlength if isinstance(minlength, int) else 0)
        return x.new_empty((size,), dtype=dtype)

    return rule


def _unique_results(
    env: ShapeEnv, x: torch.Tensor, dim: int | None, inverse: bool, counts: bool
) -> tuple[torch.Tensor, ...]:
    """(values, inverse, counts) of the unique ops; unrequested results are empty."""
    if dim is None:
        count = _size(env, "unique()", max=x.numel())
        values = x.new_empty((count,))
        inverse_shape: tuple[Any, ...] = tuple(x.shape)
    else:
        dim = dim % x.dim()
        count = _size(env, "unique()", max=x.shape[dim])
        values = x.new_empty((*x.shape[:dim], count, *x.shape[dim + 1 :]))
        inverse_shape = (x.shape[dim],)
    return (
        values,
        x.new_empty(inverse_shape if inverse else (0,), dtype=torch.long),
        x.new_empty((count,) if counts else (0,), dtype=torch.long),
    )


def _unique2(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor, sorted: bool = True, return_inverse: bool = False,
             return_counts: bool = False) -> tuple[torch.Tensor, ...]:  # fmt: skip
        return _unique_results(env, x, None, return_inverse, return_counts)

    return rule


def _unique_consecutive(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor, return_inverse: bool = False, return_counts: bool = False,
             dim: int | None = None) -> tuple[torch.Tensor, ...]:  # fmt: skip
        return _unique_results(env, x, dim, return_inverse, return_counts)

    return rule


def _unique_dim(env: ShapeEnv) -> Callable[..., Any]:
    def rule(x: torch.Tensor, dim: int, sorted: bool = True, return_inverse: bool = False,
             return_counts: bool = False) -> tuple[torch.Tensor, ...]:  # fmt: skip
        return _unique_results(env, x, dim, return_inverse, return_counts)

    return rule


def _with_rule(make_rule: Callable[[ShapeEnv], Callable[..., Any]]) -> Handler:
    def handler(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        env = recorder.ensure_symbolic().shape_env
        return recorder.call(op, args, kwargs, rule=make_rule(env))

    handler.__doc__ = f"{make_rule.__name__.strip('_')}: a result of data-dependent size."
    return handler


def nonzero_numpy(
    recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``torch.where(c)`` / ``nonzero(as_tuple=True)``: nonzero's columns."""
    (tensor,) = args
    indices = _with_rule(_nonzero)(recorder, aten.nonzero.default, (tensor,), {})
    return list(recorder.call(aten.unbind.int, (indices, 1), {}))


def index_tensor(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x[mask]``: a boolean index selects a data-dependent number of elements.
    Without one, this is the ordinary ``aten.index``."""
    indices = args[1]
    if not any(_is_mask(index) for index in indices):
        return recorder.call(op, args, kwargs)
    env = recorder.ensure_symbolic().shape_env

    def rule(x: torch.Tensor, shadows: list[Any]) -> torch.Tensor:
        expanded: list[Any] = []
        for index in shadows:
            if _is_mask(index):
                count = _size(env, "a boolean-mask index", max=index.numel())
                expanded += [index.new_empty((count,), dtype=torch.long)] * index.dim()
            else:
                expanded.append(index)
        indexed: torch.Tensor = aten.index.Tensor(x, expanded)
        return indexed

    return recorder.call(op, args, kwargs, rule=rule)


def slice_tensor(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``x[:k]``, ``x[k:]``, ``x[a:b]`` with ``k = n.item()``: where a data-dependent
    bound lands in ``[0, size]`` is only known at run time (a negative one counts
    from the end, a large one clamps), so the ordinary kernel's ``if start < 0``
    cannot be decided. As torch's fake ``slice`` does, each bound is placed
    without a guard where the ranges decide it (:func:`_slice_index`); a length
    that stays open is a fresh size-like symbol in ``[0, size]`` bound to the
    result, and a start that stays open gives a fresh storage offset. Nothing is
    assumed, so no ``torch._check`` is needed and any data runs like eager
    (``tensor_split`` with a tensor of indices slices this way). A slice whose
    bounds are decided (plain ints, input sizes, an ``.item()`` the user bounded
    with ``torch._check``) is the ordinary op."""
    x, dim, start, end, step = _slice_arguments(*args, **kwargs)
    symbolic = isinstance(start, torch.SymInt) or isinstance(end, torch.SymInt)
    if not isinstance(x, TraceTensor) or not symbolic or not isinstance(step, int):
        return recorder.call(op, args, kwargs)  # a static trace stays static
    env = recorder.ensure_symbolic().shape_env
    if not any(_is_data_dependent(env, bound) for bound in (start, end)):
        return recorder.call(op, args, kwargs)  # input sizes: guarded as usual
    dim = dim % x.dim()
    if _within(env, start, x.shape[dim]) and _within(env, end, x.shape[dim]):
        return recorder.call(op, args, kwargs)

    def rule(shadow: torch.Tensor, *_: Any, **__: Any) -> torch.Tensor:
        size = shadow.shape[dim]
        first = 0 if start is None else _slice_index(env, size, start)
        last = size if end is None else _slice_index(env, size, end)
        sizes: list[Any] = list(shadow.shape)
        strides = list(shadow.stride())
        if first is None or last is None:
            sizes[dim] = _size(env, "a slice with a data-dependent bound", max=size)
        elif _known(env, last >= first):
            sizes[dim] = (last - first + step - 1) // step
        elif _known(env, first >= last):
            sizes[dim] = 0
        else:
            sizes[dim] = (torch.sym_max(last - first, 0) + step - 1) // step  # type: ignore[no-untyped-call]
        if first is None:
            offset: Any = _offset(env)
        else:
            offset = shadow.storage_offset() + first * strides[dim]
        strides[dim] *= step
        return shadow.as_strided(sizes, strides, offset)

    return recorder.call(op, args, kwargs, rule=rule)


def _slice_arguments(
    x: Any, dim: int = 0, start: Any = None, end: Any = None, step: int = 1
) -> tuple[Any, int, Any, Any, int]:
    return x, dim, start, end, step


def _is_data_dependent(env: ShapeEnv, bound: Any) -> bool:
    if not isinstance(bound, torch.SymInt):
        return False
    return any(env.is_unbacked(s) for s in free_symbols(bound.node.symbolic_expr))


def _known(env: ShapeEnv, fact: Any) -> bool:
    """Whether ``fact`` (a bool or SymBool) holds for every input, decided without a guard
    (torch's ``guard_or_false``; exact, not size-oblivious: sizes 0 and 1 count)."""
    if isinstance(fact, torch.SymBool):
        return env.decide_static(fact.node.symbolic_expr) is True
    return bool(fact)


def _slice_index(env: ShapeEnv, size: Any, index: Any) -> Any:
    """Where slice bound ``index`` lands in ``[0, size]``, as far as the ranges
    decide it without data (torch's ``_compute_slice_index``): an expression, or
    None when even its sign is data-dependent."""
    if _known(env, index >= 0) and _known(env, index <= size):
        return index
    if _known(env, index < 0) and _known(env, index >= -size):
        return index + size
    if _known(env, index < -size):
        return 0
    if _known(env, index > size):
        return size
    if _known(env, index >= 0):
        return torch.sym_min(index, size)  # type: ignore[no-untyped-call]
    if _known(env, index < 0):
        return torch.sym_max(index + size, 0)  # type: ignore[no-untyped-call]
    return None


def _offset(env: ShapeEnv) -> torch.SymInt:
    """A fresh storage offset (``>= 0``) for a view starting at a data-dependent place."""
    offset = env.create_unbacked_symint(min=0)
    name = as_symbol(offset.node.symbolic_expr)
    if name is not None:
        env.note_origin(
            name, f"the storage offset of a slice with a data-dependent start at {_where()}"
        )
    return offset


def _within(env: ShapeEnv, bound: Any, size: Any) -> bool:
    """Whether slice bound ``bound`` (None, an int or a SymInt) is known to lie
    in ``[0, size]`` without looking at data."""
    if bound is None:
        return True
    expr = bound.node.symbolic_expr if isinstance(bound, torch.SymInt) else E.integer(bound)
    top = size.node.symbolic_expr if isinstance(size, torch.SymInt) else E.integer(size)
    return (
        env.decide_static(E.ge(expr, E.ZERO), size_oblivious=True) is True
        and env.decide_static(E.le(expr, top), size_oblivious=True) is True
    )


class _FakeContext:
    """What ``torch.library.get_ctx()`` returns inside a custom op's fake
    implementation during export: new data-dependent sizes are unbacked symbols."""

    def __init__(self, env: ShapeEnv, op: Any) -> None:
        self.env, self.op = env, op
        self.sizes_made = 0

    def new_dynamic_size(self, *, min: int = 0, max: int | None = None) -> torch.SymInt:
        self.sizes_made += 1
        return _size(self.env, f"{self.op}", min=min, max=max)

    create_unbacked_symint = new_dynamic_size  # the older name


def custom_op(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A ``torch.library`` op: its fake implementation computes the result
    metadata, with a context whose ``new_dynamic_size()`` makes unbacked sizes
    (its meta kernel would refuse ``get_ctx()``). Without a fake
    implementation, the op's own meta kernel is used as for ATen ops (with
    neither, draft_export runs it on the example data: trace/profiled_ops.py)."""
    if needs_profile(recorder, op):  # draft_export: from a real run (profiled_ops.py)
        return profiled_call(recorder, op, args, kwargs)
    entry = simple_registry.singleton.find(op._schema.name)
    kernel = entry.fake_impl.kernel
    if kernel is None:
        return recorder.call(op, args, kwargs)

    def rule(*shadow_args: Any, **shadow_kwargs: Any) -> Any:
        env = recorder.ensure_symbolic().shape_env
        context = _FakeContext(env, op)

        def fake(*fake_args: Any, **fake_kwargs: Any) -> Any:
            with fake_impl.set_ctx_getter(lambda: context):
                return kernel(*fake_args, **fake_kwargs)

        with env.assuming_not_0_or_1() as assumptions:
            result = fake(*shadow_args, **shadow_kwargs)
        if assumptions and context.sizes_made:  # a re-run would make new sizes: guard instead
            for assumption in assumptions:
                env.guard_assumption(assumption)
        elif assumptions:  # as for ATen ops: checked on this kernel at sizes 0 and 1
            check_assumptions(env, fake, shadow_args, shadow_kwargs, result, assumptions)
        return result

    return recorder.call(op, args, kwargs, rule=rule)


def _is_mask(index: Any) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


@contextmanager
def causal_mask_detection_off() -> Iterator[None]:
    """``nn.Transformer`` reads its mask's *data* (``bool((mask == causal).all())``)
    only to set ``is_causal``, a performance hint: with False the mask is
    applied as given, which computes the same result. During export the
    detection answers False (or the user's ``is_causal=True``), so a tensor
    mask does not make the program data-dependent."""
    with Patcher() as patcher:
        patcher.patch_attribute(
            torch.nn.modules.transformer, "_detect_is_causal_mask", _declared_causal
        )
        yield


def _declared_causal(mask: Any, is_causal: bool | None = None, size: int | None = None) -> bool:
    return is_causal is True


def _where() -> str:
    location = user_location()
    return f"{location.filename}:{location.lineno}" if location else "the traced model"


DATA_DEPENDENT_OPS: dict[Any, Handler] = {
    aten._local_scalar_dense.default: local_scalar_dense,
    aten.item.default: local_scalar_dense,
    aten.is_nonzero.default: is_nonzero,
    aten.nonzero.default: _with_rule(_nonzero),
    aten.argwhere.default: _with_rule(_nonzero),
    aten.nonzero_numpy.default: nonzero_numpy,
    aten.where.default: nonzero_numpy,
    aten.masked_select.default: _with_rule(_masked_select),
    aten.repeat_interleave.Tensor: _with_rule(_repeat_interleave),
    aten.bincount.default: _with_rule(_bincount),
    aten._unique2.default: _with_rule(_unique2),
    aten.unique_consecutive.default: _with_rule(_unique_consecutive),
    aten.unique_dim.default: _with_rule(_unique_dim),
    aten.index.Tensor: index_tensor,
    aten.slice.Tensor: slice_tensor,
}
