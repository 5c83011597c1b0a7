"""In-place ATen calls recorded as functional ones.

An op whose schema writes to an argument (``add_``, ``index_copy_``,
``copy_``, ``index_put_``, ``_native_batch_norm_legit``, a custom op with
``mutates_args``) is recorded as its functional form, and each written tensor
is then *assigned* its new value (``Recorder.assign``), which rebinds it — and,
for a view, its base — to the functional result. Which graph values end up
holding new contents of inputs, parameters and buffers is read off at the end
of the trace (``export/capture.py``).

The functional form of an op:

- ATen: ``<name>_functional`` (returns the op's results, then the new value of
  each written argument: ``_native_batch_norm_legit_functional``,
  ``normal_functional``) or the out-of-place op of the same overload
  (``add_.Tensor`` -> ``add.Tensor``, whose one result is the new value of
  ``self``); a few renamed forms are listed in ``RENAMED_FUNCTIONAL_FORMS``;
- any other namespace: ``auto_functionalized(op, ...)``
  (``trace/functional_ops.py``).

``HIDDEN_MUTATIONS`` holds the composite ops that mutate without saying so in
their schema (training-mode batch and instance norm update running
statistics). Kept whole they would silently drop that update, so they are
rewritten into ops whose schema declares it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import torch
from torch.utils._mode_utils import no_dispatch

from graphlift.errors import MutationError, TraceError
from graphlift.source import user_where
from graphlift.trace.aliasing import returns_alias
from graphlift.trace.functional_ops import auto_functionalized
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.trace.recorder import Recorder

aten = torch.ops.aten


def written_arguments(
    op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    """The values ``op`` writes to, in schema order (None for an omitted optional)."""
    written = []
    for index, argument in enumerate(op._schema.arguments):
        if argument.alias_info is None or not argument.alias_info.is_write:
            continue
        written.append(args[index] if index < len(args) else kwargs.get(argument.name))
    return written


def out_arguments(op: torch._ops.OpOverload) -> tuple[str, ...]:
    """The names of the out= tensors ``op`` writes (ATen's out= overloads write
    keyword-only arguments); empty for in-place and functional ops."""
    return tuple(a.name for a in op._schema.arguments if a.kwarg_only and _writes(a))


def out_functional_form(op: torch._ops.OpOverload) -> torch._ops.OpOverload:
    """``sin.out`` -> ``sin.default``: the overload of the same op taking the same
    arguments without the out= ones and writing nothing (as torch's
    functionalization records an out= call)."""
    outs = out_arguments(op)
    wanted = [(a.name, str(a.type)) for a in op._schema.arguments if a.name not in outs]
    packet = getattr(torch.ops.aten, op._schema.name.split("::")[1])
    for name in packet.overloads():
        candidate = getattr(packet, name)
        arguments = [(a.name, str(a.type)) for a in candidate._schema.arguments]
        if not candidate._schema.is_mutable and arguments == wanted:
            return candidate  # type: ignore[no-any-return]
    raise TraceError(
        f"{op} writes its result into an out= tensor and has no functional overload to "
        "record; assign the result instead (`y = torch.add(a, b)` rather than `out=y`)",
        where=user_where(),
    )


# In-place ops whose functional form has another overload name.
RENAMED_FUNCTIONAL_FORMS = {
    aten.bernoulli_.float: aten.bernoulli.p,
}


def functional_op(op: torch._ops.OpOverload) -> torch._ops.OpOverload | None:
    """The ATen functional form of ``op`` (see the module docstring), or None for
    ops outside ATen, which are wrapped in ``auto_functionalized``."""
    namespace, name = op._schema.name.split("::")
    if namespace != "aten":
        return None
    if out_arguments(op):
        return out_functional_form(op)
    if op in RENAMED_FUNCTIONAL_FORMS:
        return RENAMED_FUNCTIONAL_FORMS[op]
    if name.startswith("__i") and name.endswith("__"):  # __iand__ -> __and__
        stem = "__" + name[3:]
    else:
        stem = name.rstrip("_")
    for candidate in (f"{stem}_functional", stem):
        packet = getattr(torch.ops.aten, candidate, None)
        overload: torch._ops.OpOverload | None = (
            getattr(packet, op._overloadname, None) if packet is not None else None
        )
        if overload is not None and not overload._schema.is_mutable:
            if returns_alias(overload):
                raise MutationError(
                    f"{op} changes the sizes or strides of a tensor in place; an exported "
                    f"program cannot express that. Use the out-of-place {overload} instead",
                    where=user_where(),
                )
            return overload
    raise TraceError(
        f"{op} changes a tensor in place and has no functional form to record",
        where=user_where(),
    )


def record_mutation(recorder: Recorder, op: torch._ops.OpOverload, args: tuple[Any, ...],
                    kwargs: dict[str, Any], shadow_result: Any) -> Any:  # fmt: skip
    """Record ``op`` functionally, assign the written tensors their new values and
    return what ``op`` returns in eager mode (the written tensor itself for
    ``add_``-style ops)."""
    if op is aten.detach_.default:
        return args[0]  # no autograd in the graph: detaching changes nothing
    written = [
        None if w is None else recorder.traced(w) for w in written_arguments(op, args, kwargs)
    ]
    if op is aten.copy_.default:
        destination = cast(TraceTensor, written[0])  # copy_ writes its (required) self
        # into a graph input, ``aten.copy`` is recorded: the mutation output is named
        # after it, as in torch.export's signature (``user_inputs_to_mutate: {copy: y}``)
        if _same_metadata(destination, args[1]) and not recorder.is_input(destination):
            recorder.assign(destination, recorder.traced(args[1]))  # a plain rebind
            return destination
    functional = functional_op(op)
    if functional is None:
        fresh = _shadow_tuple(shadow_result) + tuple(
            None if w is None else torch.empty_like(w.shadow) for w in written
        )
        results = recorder.record_call(auto_functionalized, (op, *args), kwargs, fresh)
    else:
        if op in RENAMED_FUNCTIONAL_FORMS:  # argument defaults need not match
            args = _positional_with_defaults(op, args, kwargs)
        outs = out_arguments(op)
        _check_out_shapes(op, written, outs)
        inputs = {k: v for k, v in kwargs.items() if k not in outs}
        results = recorder.call_functional(functional, args, inputs)
    results = tuple(results) if isinstance(results, tuple | list) else (results,)
    plain_count = sum(1 for r in op._schema.returns if not _writes(r))
    if len(results) != plain_count + len(written):
        raise TraceError(f"{op}: its functional form {functional} returns {len(results)} values, "
                         f"expected {plain_count + len(written)}; this is a bug in graphlift")  # fmt: skip
    for target, value in zip(written, results[plain_count:]):
        if target is not None:
            recorder.assign(target, _cast_like(recorder, value, target))
    return _eager_returns(op, args, kwargs, results[:plain_count])


def change_view_in_place(recorder: Recorder, op: torch._ops.OpOverload,
                         args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """``squeeze_``, ``transpose_``, ``t_``, ``as_strided_`` (``torch.Tag.inplace_view``)
    change a tensor's sizes and strides, not its values. On a tensor the traced code
    made and of which no view exists, the tensor now stands for the view op's result
    (its node is rebound; its own sizes change below dispatch, as torch's
    FunctionalTensorMode does); on a view it is one more step of its view chain. An
    input's or state's sizes would change for the caller, and the view chains of a
    viewed base would go wrong: both are refused. (A handler of trace/mode.py's
    SPECIAL_OPS: the op's own meta kernel must not change the shadow first.)"""
    if op is aten.as_strided_.default and _same_elements(args):
        return args[0]  # only strides of size-1 dims change (adaptive_avg_pool2d's restride)
    target = args[0]
    root = target.base if isinstance(target, TraceTensor) and target.base is not None else target
    if not isinstance(target, TraceTensor) or recorder.is_input(root) or target.has_views:
        raise MutationError(
            f"{op} changes the sizes or strides of {_which_tensor(recorder, target, root)} "
            f"in place; an exported program cannot express that. Use the out-of-place "
            f"{_view_form(op)} and assign its result instead",
            where=user_where(),
        )
    result = recorder.call_functional(_view_form(op), args, kwargs)
    target.has_views = False  # the result stands for the target itself, not a view of it
    _keep_recorded_metadata(recorder, target)
    with no_dispatch():  # the wrapper's own sizes and strides, as eager changes them
        op(target, *args[1:], **kwargs)
    target.shadow, target.node = result.shadow, result.node
    if target.base is not None:
        target.view_steps, target.seen_version = result.view_steps, result.seen_version
    return target


def _keep_recorded_metadata(recorder: Recorder, target: TraceTensor) -> None:
    """Nodes recorded so far hold ``target`` itself as ``meta["val"]`` (alone or in a
    tuple); its sizes are about to change, so they get a copy with the current ones."""
    frozen = TraceTensor(target.shadow, target.node, target.device, target.requires_grad)
    for node in recorder.graph.nodes:
        value = node.meta.get("val")
        if value is target:
            node.meta["val"] = frozen
        elif isinstance(value, tuple) and any(item is target for item in value):
            node.meta["val"] = tuple(frozen if item is target else item for item in value)


def _which_tensor(recorder: Recorder, target: Any, root: Any) -> str:
    if isinstance(root, TraceTensor) and recorder.is_input(root):
        return f"the input {root.node.name!r}" + ("" if root is target else " (through a view)")
    return "a tensor that has views"


#: In-place ops that change only a tensor's sizes and strides -> the view op they apply
#: (``resize_``/``set_`` change its storage: trace/mode.py refuses them).
VIEWS_IN_PLACE: dict[Any, Any] = {
    aten.squeeze_.default: aten.squeeze.default,
    aten.squeeze_.dim: aten.squeeze.dim,
    aten.squeeze_.dims: aten.squeeze.dims,
    aten.unsqueeze_.default: aten.unsqueeze.default,
    aten.transpose_.default: aten.transpose.int,
    aten.swapdims_.default: aten.swapdims.default,
    aten.swapaxes_.default: aten.swapaxes.default,
    aten.t_.default: aten.t.default,
    aten.as_strided_.default: aten.as_strided.default,
}


def _view_form(op: torch._ops.OpOverload) -> torch._ops.OpOverload:
    return cast(torch._ops.OpOverload, VIEWS_IN_PLACE[op])


def _check_out_shapes(op: torch._ops.OpOverload, written: list[Any], outs: tuple[str, ...]) -> None:
    """An out= tensor of another shape than the result is resized in eager, which
    an exported program cannot express: refused (the result's shape is read off
    the op's meta kernel, which resizes its out= arguments the same way)."""
    for target in written if outs else ():
        if target is not None and target.shadow.shape != target.shape:
            raise MutationError(
                f"{op} resizes its out= tensor; an exported program cannot express that. "
                "Assign the result instead",
                where=user_where(),
            )


def _same_elements(args: tuple[Any, ...]) -> bool:
    """``as_strided_(t, size, stride, offset)`` that addresses exactly the same
    elements as ``t`` already does: same sizes and offset, same strides on every
    dim longer than 1. It changes no value, so it is recorded as nothing."""
    tensor, size, stride, *rest = args
    offset = rest[0] if rest and rest[0] is not None else tensor.storage_offset()
    if list(size) != list(tensor.shape) or offset != tensor.storage_offset():
        return False
    return all(n == 1 or a == b for n, a, b in zip(size, stride, tensor.stride()))


def _eager_returns(op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any],
                   plain: tuple[Any, ...]) -> Any:  # fmt: skip
    """What the in-place op returns: written arguments for ``Tensor(a!)`` results."""
    by_alias: dict[Any, Any] = {}
    for index, argument in enumerate(op._schema.arguments):
        aliases = _written_aliases(argument)
        if aliases is not None:
            value = args[index] if index < len(args) else kwargs.get(argument.name)
            by_alias[aliases] = value
    remaining = iter(plain)
    values = [
        by_alias.get(_written_aliases(r)) if _writes(r) else next(remaining)
        for r in op._schema.returns
    ]
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _positional_with_defaults(
    op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    positional = [a for a in op._schema.arguments if not a.kwarg_only]
    return tuple(
        args[i] if i < len(args) else kwargs.get(a.name, a.default_value)
        for i, a in enumerate(positional)
    )


def _same_metadata(target: TraceTensor, source: Any) -> bool:
    """``target.copy_(source)`` takes ``source``'s values unchanged (no broadcast,
    no dtype or device conversion); sizes compared as printed expressions."""
    return (
        isinstance(source, torch.Tensor)
        and source.dtype == target.dtype
        and source.device == target.device
        and [str(s) for s in source.shape] == [str(s) for s in target.shape]
    )


def _cast_like(recorder: Recorder, value: TraceTensor, target: TraceTensor) -> TraceTensor:
    """In eager, an in-place result is cast to the dtype of the tensor it lands
    in (``half.add_(float)`` stays half); the out-of-place op promotes."""
    if value.dtype == target.dtype:
        return value
    converted: TraceTensor = recorder.call(aten._to_copy.default, (value,), {"dtype": target.dtype})
    return converted


def _writes(item: Any) -> bool:
    return item.alias_info is not None and item.alias_info.is_write


def _written_aliases(item: torch._C.Argument) -> tuple[str, ...] | None:
    """The alias set of a written (``Tensor(a!)``) argument or return, sorted; else None."""
    alias = item.alias_info
    return tuple(sorted(alias.before_set)) if alias is not None and alias.is_write else None


def _shadow_tuple(result: Any) -> tuple[Any, ...]:
    if result is None:
        return ()
    return tuple(result) if isinstance(result, tuple | list) else (result,)


# --- composite ops that hide a mutation ------------------------------------------------------

Rewrite = Callable[["Recorder", Any, tuple[Any, ...], dict[str, Any]], Any]


def _argument(op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> Any:
    names = [a.name for a in op._schema.arguments]
    index = names.index(name)
    return args[index] if index < len(args) else kwargs.get(name)


def _updates_stats(op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], flag: str) -> bool:
    return bool(_argument(op, args, kwargs, flag)) and (
        _argument(op, args, kwargs, "running_mean") is not None
    )


def _batch_norm(recorder: Recorder, op: Any, args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """``batch_norm(training=True)`` with running stats updates them in place, which
    its schema does not declare: record ``_native_batch_norm_legit``, which does."""
    if not _updates_stats(op, args, kwargs, "training"):
        return NotImplemented
    return _legit_batch_norm(recorder, op, args, kwargs)[0]


def _native_batch_norm(recorder: Recorder, op: Any, args: tuple[Any, ...],
                       kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """``native_batch_norm`` has the same hidden update as ``batch_norm``."""
    if not _updates_stats(op, args, kwargs, "training"):
        return NotImplemented
    return _legit_batch_norm(recorder, op, args, kwargs)


def _legit_batch_norm(recorder: Recorder, op: Any, args: tuple[Any, ...],
                      kwargs: dict[str, Any]) -> Any:  # fmt: skip
    names = ("input", "weight", "bias", "running_mean", "running_var")
    values = [_argument(op, args, kwargs, name) for name in names]
    momentum = _argument(op, args, kwargs, "momentum")
    eps = _argument(op, args, kwargs, "eps")
    return recorder.call(aten._native_batch_norm_legit.default, (*values, True, momentum, eps), {})


def _instance_norm(recorder: Recorder, op: Any, args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """``instance_norm(use_input_stats=True)`` with running stats: ATen's own
    decomposition (batch norm over ``(1, N*C, ...)`` with repeated stats, whose
    batch mean is copied back into the running stats), recorded op by op so the
    update of the stats is visible."""
    if not _updates_stats(op, args, kwargs, "use_input_stats"):
        return NotImplemented
    x, weight, bias, mean, var = (_argument(op, args, kwargs, n) for n in
                                  ("input", "weight", "bias", "running_mean", "running_var"))  # fmt: skip
    call = recorder.call
    batch, channels = x.shape[0], x.shape[1]

    def repeated(t: Any) -> Any:
        return None if t is None else call(aten.repeat.default, (t, [batch]), {})

    stats = [repeated(mean), repeated(var)]
    folded = call(aten.reshape.default, (x, [1, batch * channels, *x.shape[2:]]), {})
    legit = (folded, repeated(weight), repeated(bias), *stats, True,
             _argument(op, args, kwargs, "momentum"), _argument(op, args, kwargs, "eps"))  # fmt: skip
    out = call(aten._native_batch_norm_legit.default, legit, {})[0]
    for running, updated in zip((mean, var), stats):
        per_instance = call(aten.view.default, (updated, [batch, channels]), {})
        call(aten.copy_.default, (running, call(aten.mean.dim, (per_instance, [0], False), {})), {})
    return call(aten.view.default, (out, list(x.shape)), {})


def _refuse_internal_batch_norm(recorder: Recorder, op: Any, args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Any:  # fmt: skip
    """Backend batch-norm entry points also update running stats without saying
    so; models reach them only through ``batch_norm``, so they are refused."""
    if not _updates_stats(op, args, kwargs, "training"):
        return NotImplemented
    raise MutationError(
        "a backend batch-norm op (cudnn/miopen/_batch_norm_impl_index) updates running "
        "statistics in training mode without declaring it; call torch.nn.functional.batch_norm",
        where=user_where(),
    )


HIDDEN_MUTATIONS: dict[Any, Rewrite] = {
    aten.batch_norm.default: _batch_norm,
    aten.native_batch_norm.default: _native_batch_norm,
    aten.instance_norm.default: _instance_norm,
    aten._batch_norm_impl_index.default: _refuse_internal_batch_norm,
    aten.cudnn_batch_norm.default: _refuse_internal_batch_norm,
    aten.miopen_batch_norm.default: _refuse_internal_batch_norm,
}
