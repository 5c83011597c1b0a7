"""A module's state during tracing: parameters and buffers swapped for traced
inputs, and the stack of modules being called.

Both are undone in ``finally`` blocks, so the user's module is exactly as
before when tracing ends, also when it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch

from graphlift.trace.recorder import Recorder


@contextmanager
def swapped_state(
    module: torch.nn.Module, replacement: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace every parameter and buffer of ``module`` (and its submodules) by
    ``replacement(tensor)`` while the block runs. Shared tensors are replaced
    consistently (``replacement`` is called once per distinct tensor)."""
    saved: list[tuple[dict[str, Any], str, torch.Tensor]] = []
    cache: dict[int, torch.Tensor] = {}
    try:
        for submodule in module.modules():
            # Any: a Parameter slot holds the plain traced tensor while tracing
            tables: tuple[dict[str, Any], ...] = (submodule._parameters, submodule._buffers)
            for table in tables:
                for name, value in table.items():
                    if value is None:
                        continue
                    if id(value) not in cache:
                        cache[id(value)] = replacement(value)
                    saved.append((table, name, value))
                    table[name] = cache[id(value)]
        yield
    finally:
        for table, name, value in reversed(saved):
            table[name] = value


@contextmanager
def preserved_attributes(module: torch.nn.Module) -> Iterator[None]:
    """Restore every attribute of ``module`` and its submodules afterwards.

    Model code may assign attributes while it runs (transformers' Swin sets
    ``self.window_size`` from the input size); during a trace those values are
    traced ones, which must not outlive the export. Each module's attribute
    dict is restored to what it held before (a shallow snapshot: containers
    mutated in place are not copied, parameters and buffers are restored by
    ``swapped_state``)."""
    saved = [(submodule, dict(vars(submodule))) for submodule in module.modules()]
    try:
        yield
    finally:
        for submodule, attributes in saved:  # no == on values: they may be traced tensors
            state = vars(submodule)
            state.clear()
            state.update(attributes)


class CallObserver(Protocol):
    """Told about every submodule call while tracing (export's module call graph)."""

    def entered(
        self, key: str, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None: ...

    def left(self, key: str, output: Any) -> None: ...

    def repeated(self, first_key: str, key: str, values: dict[str, Any]) -> None:
        """The call ``key`` was not traced: it repeats the call ``first_key`` (a
        shared block body, trace/blocks.py), so the calls made inside that one
        were made inside this one too. ``values`` maps the name of each graph
        value of the first call to this call's: a node of the graph, or a str,
        the name the value takes when the bodies are inlined ("" if dropped)."""


@contextmanager
def preserved_global_state() -> Iterator[None]:
    """Restore torch's global modes that the model may switch while it runs
    (``torch._C._set_grad_enabled(False)`` inside ``forward``, a default dtype
    set for one layer). Eager code leaves such a switch in place for the next
    call; an export must leave the caller's process as it found it, as
    torch.export does."""
    grad_enabled = torch.is_grad_enabled()
    default_dtype = torch.get_default_dtype()
    try:
        yield
    finally:
        torch._C._set_grad_enabled(grad_enabled)
        torch.set_default_dtype(default_dtype)


@contextmanager
def module_stack(
    recorder: Recorder, root: torch.nn.Module, observer: CallObserver | None = None
) -> Iterator[None]:
    """Keep ``recorder.module_stack`` (call key -> (qualified name, class)) current
    with global forward hooks; each change makes a new dict, so nodes can share
    the dict that was current when they were recorded. ``observer`` sees each
    submodule call's arguments (keywords included, through a per-module hook
    that is removed afterwards) and its result."""
    paths: dict[int, str] = {}
    for name, submodule in root.named_modules(remove_duplicate=False):
        paths.setdefault(id(submodule), name)
    saved: list[dict[str, tuple[str, str]]] = []
    keys: list[str | None] = []
    calls: dict[str, int] = {}

    def enter(submodule: torch.nn.Module, args: Any) -> None:
        saved.append(recorder.module_stack)
        path = paths.get(id(submodule))
        keys.append(None)
        if path:
            kind = f"{type(submodule).__module__}.{type(submodule).__qualname__}"
            # One key per call, as torch.export does: the second call of `a` is `a@1`.
            count = calls[path] = calls.get(path, -1) + 1
            key = keys[-1] = f"{path}@{count}" if count else path
            recorder.module_stack = {**recorder.module_stack, key: (path, kind)}

    def observe(submodule: torch.nn.Module, args: Any, kwargs: Any) -> None:
        key = keys[-1] if keys else None
        if observer is not None and key is not None:
            observer.entered(key, paths[id(submodule)], args, kwargs)

    def leave(submodule: torch.nn.Module, args: Any, output: Any) -> None:
        if saved:
            recorder.module_stack = saved.pop()
            key = keys.pop()
            if observer is not None and key is not None:
                observer.left(key, output)

    recorder.trace_hooks = frozenset({enter, observe, leave})  # block reuse tells them apart
    pre = torch.nn.modules.module.register_module_forward_pre_hook(enter)
    post = torch.nn.modules.module.register_module_forward_hook(leave, always_call=True)
    observers = [
        submodule.register_forward_pre_hook(observe, with_kwargs=True)
        for submodule in root.modules()
        if observer is not None and submodule is not root
    ]
    try:
        yield
    finally:
        pre.remove()
        post.remove()
        for handle in observers:
            handle.remove()
        recorder.module_stack = {}
        recorder.trace_hooks = frozenset()
