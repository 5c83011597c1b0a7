"""The Recorder run_decompositions replays a graph with.

Two differences from export's Recorder:

- source lines and module stacks come from the node being replayed
  (``source``), not from the Python stack, which during a replay holds no user
  code;
- an op kept as it is, called on arguments whose metadata equals what the
  original node saw, is recorded *as before* (``record_as_before``): its result
  metadata is the original node's ``meta["val"]``, so no meta kernel runs.
  Meta kernels on symbolic sizes are the main cost of a replay, and most ops of
  an export-IR graph are already core ATen. When an argument's metadata differs
  (a decomposition upstream produced other strides), the kernel runs as usual
  and checks the call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import _disable_current_modes

from graphlift.errors import InternalError
from graphlift.ir.node import Node
from graphlift.symbolic import ShapeEnv
from graphlift.trace.recorder import META, Recorder
from graphlift.trace.tensor import TraceTensor

#: What a decomposed node inherits from the node it replaces: the user's line,
#: the module stack, the user's ``torch.fx.traceback.annotate`` dict, and a
#: custom autograd.Function's tag (so the joint export still finds, or refuses,
#: the Function instead of differentiating its decomposed ops).
CARRIED_META = ("stack_trace", "nn_module_stack", "custom", "autograd_function")


class ReplayRecorder(Recorder):
    # A decomposition must add no guard: each size an op checked out at stays.
    exempts_per_size = True
    source: Node | None = None
    shape_env: ShapeEnv | None = None

    def record(self, target: Callable[..., Any], args: Any, kwargs: Any) -> Node:
        node = self.graph.call_function(target, tuple(args), dict(kwargs))
        if self.source is not None:
            for key in CARRIED_META:
                if key in self.source.meta:
                    node.meta[key] = self.source.meta[key]
        return node

    def call_functional(
        self, op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """The functional form of an in-place call goes through the decomposing mode
        again: ``clamp_min_`` in a composite kernel becomes ``clamp_min``, which the
        table decomposes further, as torch's functionalization does before its table."""
        with self.trace_mode:
            return op(*args, **kwargs)

    def _convert(self, value: Any) -> tuple[Any, Any]:
        """As the Recorder's, except that a real tensor a decomposition creates
        inside a control-flow body is lifted into the body too (as a program
        input first, then through ``local``), not used as an outer node."""
        if isinstance(value, torch.Tensor) and not isinstance(value, TraceTensor):
            value = self.constant(value)
        return super()._convert(value)

    def record_as_before(
        self, op: torch._ops.OpOverload, args: Any, kwargs: Any, source: Node
    ) -> tuple[bool, Any]:
        """``(True, result)`` when ``op`` could be recorded from ``source``'s
        metadata, ``(False, None)`` when the meta kernel has to run."""
        if not _same_metadata((args, kwargs), (source.args, source.kwargs)):
            return False, None
        original = source.meta.get("val")
        base = _view_base(op, args)
        with _disable_current_modes():  # shadows are plain meta tensors, not recorded
            shadows = _shadows(original, base, self.shape_env)
        if shadows is None:
            return False, None
        node_args, _ = self._convert(args)
        node_kwargs, _ = self._convert(kwargs)
        node = self.record(op, node_args, node_kwargs)
        assert original is not None  # _shadows found metadata to replay
        device = original[0].device if isinstance(original, tuple) else original.device
        return True, self._wrap_result(node, shadows, device, False)

    def record_opaque(
        self, target: Callable[..., Any], args: Any, kwargs: Any, source: Node,
        element_name: str | None = None,
    ) -> Any:  # fmt: skip
        """Record a call the replay does not look into (a control-flow operator
        over its bodies) with the result metadata ``source`` had; its tuple's
        elements are ``getitem`` nodes named ``element_name`` when given."""
        original = source.meta.get("val")
        with _disable_current_modes():
            shadows = _shadows(original, None, self.shape_env)
        if shadows is None:
            raise InternalError(f"cannot replay {source.format_node()}: unknown result metadata")
        node_args, _ = self._convert(args)
        node_kwargs, _ = self._convert(kwargs)
        node = self.record(target, node_args, node_kwargs)
        tensors = original if isinstance(original, tuple) else (original,)
        return self._wrap_result(node, shadows, tensors[0].device, False, element_name)


def _same_metadata(new: Any, old: Any) -> bool:
    """Whether every tensor in ``new`` has the metadata of the node value at the
    same place in ``old`` (the original node's arguments)."""
    if isinstance(new, TraceTensor):
        value = old.meta.get("val") if isinstance(old, Node) else None
        return isinstance(value, torch.Tensor) and _metadata(new) == _metadata(value)
    if isinstance(new, tuple | list):
        return (
            isinstance(old, tuple | list)
            and len(new) == len(old)
            and all(_same_metadata(a, b) for a, b in zip(new, old))
        )
    if isinstance(new, dict):
        return all(_same_metadata(v, old[k]) for k, v in new.items())
    if isinstance(new, torch.SymInt):  # a data-dependent value gets a new symbol in a replay
        value = old.meta.get("val") if isinstance(old, Node) else old
        return bool(_expr(new) == _expr(value))
    return not isinstance(new, torch.Tensor)


def _metadata(tensor: torch.Tensor) -> tuple[Any, ...]:
    return (_exprs(tensor.shape), _exprs(tensor.stride()), _expr(tensor.storage_offset()),
            tensor.dtype)  # fmt: skip


def _expr(size: Any) -> Any:
    return size.node.symbolic_expr if isinstance(size, torch.SymInt) else size


def _exprs(sizes: Any) -> tuple[Any, ...]:
    return tuple(_expr(size) for size in sizes)


def _view_base(op: torch._ops.OpOverload, args: Any) -> torch.Tensor | None:
    """The shadow a view op's result aliases (so aliasing stays visible), else None."""
    returns = op._schema.returns
    if returns and returns[0].alias_info is not None and args and isinstance(args[0], TraceTensor):
        return args[0].shadow
    return None


def _shadows(original: Any, base: torch.Tensor | None, shape_env: ShapeEnv | None) -> Any:
    """Meta tensors with the metadata of ``original`` (a tensor or a tuple of them)."""
    if isinstance(original, torch.Tensor):
        sizes = [in_env(s, shape_env) for s in original.shape]
        strides = [in_env(s, shape_env) for s in original.stride()]
        offset = in_env(original.storage_offset(), shape_env)
        if base is not None:
            return base.as_strided(sizes, strides, offset)
        return torch.empty_strided(sizes, strides, dtype=original.dtype, device=META)
    if isinstance(original, tuple) and all(isinstance(t, torch.Tensor) for t in original):
        return tuple(_shadows(t, None, shape_env) for t in original)
    return None


def shadow_like(value: torch.Tensor, shape_env: ShapeEnv | None) -> torch.Tensor:
    """A meta tensor with ``value``'s sizes, strides and offset (in ``shape_env``)
    and dtype; made outside any dispatch mode, so nothing is recorded."""
    with _disable_current_modes():
        shadow: torch.Tensor = _shadows(value, None, shape_env)
        return shadow


def in_env(size: Any, shape_env: ShapeEnv | None) -> Any:
    """``size`` as a SymInt of ``shape_env`` (the fork run_decompositions works in)."""
    if not isinstance(size, torch.SymInt) or shape_env is None:
        return size
    return shape_env.adopt(size)
