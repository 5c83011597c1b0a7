"""A custom op without a fake kernel, traced by running it on the example data.

The tracer needs a ``torch.library`` op's result metadata; an op registered
without ``register_fake`` (and without a Meta kernel) has none. Under
``draft_export`` (which traces with the example inputs' data at hand,
``trace/examples.py``), the op runs on the example values of its arguments and
its outputs' sizes, strides and dtypes become the traced result's, as in
torch's draft_export. Two things make that sound here, where torch assumes:

- the op's input sizes are specialized to the example's (a guard per size), so
  the program only runs the op on the input sizes it was profiled with;
- each output is checked when the program runs
  (``aten._assert_tensor_metadata``: sizes, strides and dtype), because an op's
  output sizes may depend on its inputs' *values*.

Each profiled call leaves ``node.meta["profiled_op"]`` on its first check node, which
``draft_export`` reports as a MISSING_FAKE_KERNEL issue saying what was assumed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch._library import custom_ops, simple_registry
from torch.utils._python_dispatch import _disable_current_modes

from graphlift.errors import RuntimeAssertError, TraceError
from graphlift.ir.effects import register_side_effect
from graphlift.pytree import tree_leaves, tree_map
from graphlift.source import user_where
from graphlift.trace.recorder import META, Recorder
from graphlift.trace.tensor import TraceTensor

CHECK_OUTPUT = register_side_effect(torch.ops.aten._assert_tensor_metadata.default)
PROFILED = "profiled_op"  # the meta key draft_export reads


def needs_profile(recorder: Recorder, op: torch._ops.OpOverload) -> bool:
    """True for a functional custom op with neither a fake nor a Meta kernel,
    traced where example data is at hand (draft_export)."""
    if recorder.examples is None or op._schema.is_mutable:
        return False
    definition = custom_ops.OPDEFS.get(op._schema.name)
    if definition is not None:  # torch.library.custom_op: its fake impl raises until registered
        return definition._abstract_fn is None
    entry = simple_registry.singleton.find(op._schema.name)
    if entry.fake_impl.kernel is not None:
        return False
    qualified: str = op.name()  # type: ignore[no-untyped-call]  # "ns::op" or "ns::op.overload"
    return not torch._C._dispatch_has_kernel_for_dispatch_key(qualified, "Meta")


def profiled_call(
    recorder: Recorder, op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Record ``op`` with the metadata of its real run on the example data, its
    input sizes specialized and its outputs checked when the program runs."""
    real_args, real_kwargs = tree_map(lambda v: _example_value(recorder, op, v), (args, kwargs))
    with _disable_current_modes(), torch.no_grad():
        real = op(*real_args, **real_kwargs)
    outputs = tree_leaves(real)
    if not outputs or not all(isinstance(t, torch.Tensor) for t in outputs):
        raise TraceError(
            f"{op} has no fake kernel and returns {type(real).__name__}; draft_export can "
            "stand in only for tensor results: register one with @torch.library.register_fake",
            where=user_where(),
        )
    inputs = [v for v in tree_leaves((args, kwargs)) if isinstance(v, torch.Tensor)]

    def rule(*shadow_args: Any, **shadow_kwargs: Any) -> Any:
        for shadow in tree_leaves((shadow_args, shadow_kwargs)):
            if isinstance(shadow, torch.Tensor):
                _specialize(shadow)
        return tree_map(_meta_like, real)

    result = recorder.call(op, args, kwargs, rule=rule)
    assumed = (
        f"{op} has no fake kernel: ran it on the example inputs "
        f"({', '.join(_describe(t) for t in inputs)}), specialized to those sizes, and "
        f"took its outputs to be {', '.join(_describe(t) for t in outputs)}, which the "
        "program checks when it runs (RuntimeError on a mismatch); register a fake kernel "
        "to keep the sizes dynamic"
    )
    for index, (traced, example) in enumerate(zip(tree_leaves(result), outputs, strict=True)):
        node = recorder.record(
            CHECK_OUTPUT,
            (recorder.traced(traced).node,),
            {"size": list(example.shape), "stride": list(example.stride()),
             "dtype": example.dtype},
        )  # fmt: skip
        node.meta["val"] = None
        if index == 0:  # one report line per call
            node.meta[PROFILED] = assumed
    return result


def checked_tensor_metadata(
    tensor: torch.Tensor,
    size: list[int] | None = None,
    stride: list[int] | None = None,
    dtype: torch.dtype | None = None,
    *,
    device: torch.device | None = None,
    layout: torch.layout | None = None,
) -> None:
    """What ``ep.module()`` runs for ``aten._assert_tensor_metadata``: the same
    check, failing with a typed error (a RuntimeError, as the ATen op raises)."""
    wanted: dict[str, Any] = {
        "size": None if size is None else list(size),
        "stride": None if stride is None else list(stride),
        "dtype": dtype, "device": device, "layout": layout,
    }  # fmt: skip
    actual = {"size": list(tensor.shape), "stride": list(tensor.stride()),
              "dtype": tensor.dtype, "device": tensor.device, "layout": tensor.layout}  # fmt: skip
    for key, expected in wanted.items():
        if expected is not None and expected != actual[key]:
            raise RuntimeAssertError(
                f"a tensor's {key} is {actual[key]}, where the exported program assumed "
                f"{expected} (an op without a fake kernel was profiled on the example inputs "
                "by draft_export); export with a fake kernel registered for it"
            )


def _example_value(recorder: Recorder, op: Any, value: Any) -> Any:
    if not isinstance(value, TraceTensor):
        return value
    assert recorder.examples is not None  # needs_profile
    example = recorder.examples.value_of(value.node)
    if example is None:
        raise TraceError(
            f"{op} has no fake kernel, and draft_export cannot run it on the example data "
            "here (inside a control-flow body, or on an input without data); register "
            "one with @torch.library.register_fake",
            where=user_where(),
        )
    return example


def _specialize(shadow: torch.Tensor) -> None:
    """Guard every symbolic size of ``shadow`` to its example value."""
    for size in shadow.shape:
        if isinstance(size, torch.SymInt):
            int(size)


def _meta_like(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=META)
    return value


def _describe(value: torch.Tensor) -> str:
    return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
