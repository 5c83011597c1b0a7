"""Exporting what is not a module: an operator, a plain callable, a module's method.

``export(torch.ops.aten.add.Tensor, (x, y))`` and ``export(fn, (x,))`` wrap
the callable in a stateless module (capture.py: ``function_module``) whose
``forward`` has the callable's own signature, so placeholders are named after
the callable's parameters (``self``/``other`` for ``aten.add.Tensor``, ``x``
for ``def fn(x)``) and keyword arguments bind as they would in a call.

A bound method of a module (``export(model.encode, (x,))``) exports the module
itself, with its parameters and buffers, called through that method:
``forward_replaced`` points the module's ``forward`` at the method while it
is traced (the one place that does), and restores it afterwards.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch

from graphlift.errors import ExportError
from graphlift.export.capture import function_module

_ABSENT = object()


def as_module(target: Any) -> tuple[torch.nn.Module, AbstractContextManager[None]]:
    """The module to trace for ``target``, and the context to trace it in:
    ``target`` itself, the module a bound method belongs to (traced with
    ``forward_replaced``), or a stateless module around any other callable."""
    if isinstance(target, torch.nn.Module):
        return target, nullcontext()
    owner = getattr(target, "__self__", None)
    if isinstance(target, types.MethodType) and isinstance(owner, torch.nn.Module):
        return owner, forward_replaced(owner, target)
    return _wrapped(target), nullcontext()


def _wrapped(target: Any) -> torch.nn.Module:
    if isinstance(target, torch._ops.OpOverloadPacket):
        raise ExportError(
            f"{target} is an operator packet with several overloads; export one overload, "
            f"e.g. {target}.default or {target}.Tensor"
        )
    if isinstance(target, torch._ops.OpOverload):
        return function_module(target, operator_signature(target))
    if callable(target):
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):  # builtins without a signature
            signature = inspect.Signature(
                [inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL)]
            )
        return function_module(target, signature)
    raise ExportError(
        f"export takes a torch.nn.Module, an operator overload or a callable, got "
        f"{type(target).__name__}"
    )


def operator_signature(op: torch._ops.OpOverload) -> inspect.Signature:
    """A Python signature from the operator's schema: positional arguments first,
    keyword-only ones after ``*``, defaults where the schema has them."""
    parameters = []
    for argument in op._schema.arguments:
        kind = (
            inspect.Parameter.KEYWORD_ONLY
            if argument.kwarg_only
            else inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        default = (
            argument.default_value if argument.has_default_value() else inspect.Parameter.empty
        )
        parameters.append(inspect.Parameter(argument.name, kind, default=default))
    return inspect.Signature(parameters)


@contextmanager
def forward_replaced(model: torch.nn.Module, forward: Callable[..., Any]) -> Iterator[None]:
    """``model.forward`` is ``forward`` inside (an instance attribute), as before after."""
    state = model.__dict__
    installed = state.get("forward", _ABSENT)
    state["forward"] = forward
    try:
        yield
    finally:
        if installed is _ABSENT:
            del state["forward"]
        else:
            state["forward"] = installed
