"""`TraceMode` and `tracing()`: the context in which a model runs during export.

Inside ``tracing(recorder)``:

- autograd's dispatch keys (and ADInplaceOrView) are excluded, so composite ops (``aten.linear``,
  ``aten.reshape``, ``aten.gru``, ``aten.scaled_dot_product_attention``) reach
  the mode *whole*, exactly as the user's code called them — the level of
  torch.export's default IR — instead of as their decompositions;
- ``TraceMode`` receives every ATen call, on traced tensors, on constants and
  from factory functions (``torch.zeros``) alike, and hands it to the Recorder
  or to a special-case handler;
- the python dispatcher is on when sizes are symbolic, so that ATen's Python
  meta kernels can reason about them.

``TraceMode.__torch_dispatch__`` stays short: special ops are entries of
``SPECIAL_OPS``, each a small function whose docstring says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.utils._python_dispatch import TorchDispatchMode

from graphlift.errors import (
    DataDependentError,
    ExportError,
    GraphliftError,
    MutationError,
    TraceError,
)
from graphlift.patching import Patcher
from graphlift.source import user_where
from graphlift.trace.autograd_functions import tagged_autograd_functions
from graphlift.trace.control_flow import CONTROL_FLOW_OPS
from graphlift.trace.data_dependent import (
    DATA_DEPENDENT_OPS,
    causal_mask_detection_off,
    custom_op,
)
from graphlift.trace.device_hint import user_device_hints
from graphlift.trace.mutations import VIEWS_IN_PLACE, change_view_in_place
from graphlift.trace.python_builtins import symbolic_min_max, symbolic_tensor_data
from graphlift.trace.recorder import Recorder
from graphlift.trace.sized_shadow import has_composite_kernel as is_composite

aten = torch.ops.aten

Handler = Callable[[Recorder, Any, tuple[Any, ...], dict[str, Any]], Any]


def _unsupported_storage_change(
    recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``resize_`` and ``set_`` replace a tensor's storage: there is no
    functional form to record. A RuntimeError, as torch.export raises there."""
    raise MutationError(
        f"{op} changes the storage of a tensor, which an exported program cannot express; "
        "create a new tensor of the size you need instead",
        where=user_where(),
    )


def _alias(recorder: Recorder, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``detach`` has no effect in a graph without autograd, so it returns its
    input itself. Most detaches come from torch's C++ factory wrappers
    (``make_variable`` shallow-copies a tensor it does not own alone, which
    dispatches ``detach`` for Python subclasses), not from the user's code.
    Returning the same tensor keeps aliasing exact: after ``y = x.detach()``,
    an in-place update of ``y`` is an update of ``x``, as in eager."""
    (value,) = args
    return value


SPECIAL_OPS: dict[Any, Handler] = {
    aten.detach.default: _alias,
    **DATA_DEPENDENT_OPS,
    **CONTROL_FLOW_OPS,
    **dict.fromkeys(VIEWS_IN_PLACE, change_view_in_place),
    aten.resize_.default: _unsupported_storage_change,
    aten.set_.source_Tensor: _unsupported_storage_change,
    aten.set_.source_Storage: _unsupported_storage_change,
    aten.set_.source_Storage_storage_offset: _unsupported_storage_change,
    aten.set_.default: _unsupported_storage_change,
}


BUILTIN_NAMESPACES = {"aten", "prims", "higher_order"}


class TraceMode(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch's is unannotated
    #: torch's control-flow operators (torch.cond, map, while_loop, scan) reach
    #: __torch_dispatch__ as HigherOrderOperator objects; CONTROL_FLOW_OPS handles them.
    supports_higher_order_operators = True

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch's is unannotated
        self.recorder = recorder
        recorder.trace_mode = self  # control-flow bodies are traced under it again

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        handler = SPECIAL_OPS.get(func)
        if handler is None and getattr(func, "namespace", "aten") not in BUILTIN_NAMESPACES:
            handler = custom_op
        if handler is not None:
            return handler(self.recorder, func, args, kwargs or {})
        if isinstance(func, torch._ops.HigherOrderOperator):
            raise TraceError(
                f"the higher-order operator {func.__name__} is not supported by graphlift "
                "(supported: cond, map, while_loop, scan)",
                where=user_where(),
            )
        return self._record(func, args, kwargs or {})

    def _record(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """Record ``func``; a composite op whose metadata needs an inner op without a
        meta kernel (``combinations`` calls ``masked_select``, whose size depends on
        values), or asks a data-dependent question (``tensor_split`` at indices read
        with ``.item()`` slices at them: ``if start < 0``), is recorded as its
        decomposition instead, traced under this mode, where that inner op makes its
        data-dependent size as torch's FakeTensorMode does (``trace/data_dependent.py``)."""
        try:
            return self.recorder.call(func, args, kwargs)
        except DataDependentError:
            if not is_composite(func):
                raise
            with self:  # its own refusal, if any, names the question and the user's line
                return func.decompose(*args, **kwargs)
        except ExportError as error:
            if not isinstance(error.__cause__, RuntimeError | AssertionError):
                raise
            if not is_composite(func):
                raise
            failure = error
        try:
            with self:
                return func.decompose(*args, **kwargs)
        except GraphliftError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as error:
            raise failure from error  # the op's own refusal names the op and the user's line


@contextmanager
def exporting_flags() -> Iterator[None]:
    """Tell model code that it is being exported, as torch.export does:
    ``torch.compiler.is_exporting()`` and ``is_compiling()`` are True inside.
    Libraries (transformers' masking code, for one) take their trace-friendly
    paths on these flags instead of branching on tensor values."""
    # torch.cond, map, while_loop and scan call their operator directly when
    # "dynamo is compiling"; otherwise they wrap it in torch.compile, which
    # skips the frame under our mode *and marks its code skipped for good*,
    # breaking later eager calls of torch.cond in the same process. The
    # function keeps its identity (only its code is swapped): dynamo keys its
    # own rules on that object.
    with Patcher() as patcher, user_device_hints():
        patcher.patch_attribute(torch.compiler, "_is_compiling_flag", True)
        patcher.patch_attribute(torch.compiler, "_is_exporting_flag", True)
        patcher.patch_attribute(torch.compiler.is_dynamo_compiling, "__code__", _true.__code__)
        yield


def _true() -> bool:
    return True


@contextmanager
def tracing(recorder: Recorder, *, symbolic: bool = False) -> Iterator[None]:
    with ExitStack() as stack:
        stack.enter_context(exporting_flags())
        stack.enter_context(causal_mask_detection_off())
        stack.enter_context(tagged_autograd_functions(recorder))
        stack.enter_context(symbolic_min_max())
        stack.enter_context(symbolic_tensor_data())
        if symbolic:
            stack.enter_context(enable_python_dispatcher())
        else:  # the first data-dependent value makes a static trace symbolic
            recorder.on_symbolic = lambda: stack.enter_context(enable_python_dispatcher())
        stack.enter_context(torch._C._AutoDispatchBelowADInplaceOrView())
        stack.enter_context(TraceMode(recorder))
        try:
            yield
        finally:
            recorder.on_symbolic = None
