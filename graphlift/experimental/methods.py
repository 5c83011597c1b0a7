"""Exporting methods of a model other than (or besides) ``forward``.

``export_methods(model, {"prefill": (args, kwargs), "decode": (args, kwargs)})``
exports one program per entry into an `ExportPackage`; the programs share the
model's parameters and buffers (the same tensors). An entry named after a
method of the model (``model.encode``) exports that method (nn.Module's own methods never count); any other name
exports ``forward`` with those inputs (prefill and decode of an LLM are both
``forward``). ``export_method`` is the one place that points a model's
``forward`` at another callable for the duration of an export.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

from graphlift.errors import ExportError
from graphlift.export import ExportedProgram, export
from graphlift.export.package import ExportPackage

_ABSENT = object()


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


def export_method(
    model: torch.nn.Module,
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dynamic_shapes: Any = None,
) -> ExportedProgram:
    """Export ``model`` called through ``method`` (a bound method of ``model``)."""
    with forward_replaced(model, method):
        return export(model, tuple(args), dict(kwargs), dynamic_shapes=dynamic_shapes)


def export_methods(
    model: torch.nn.Module,
    methods: Mapping[str, tuple[tuple[Any, ...], dict[str, Any]]],
    *,
    dynamic_shapes: Mapping[str, Any] | None = None,
) -> ExportPackage:
    """One program per ``{name: (args, kwargs)}`` entry, sharing ``model``'s state.

    ``dynamic_shapes`` maps method names to the spec for that method's inputs
    (as ``export``'s ``dynamic_shapes``); methods it does not name are static.
    """
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"export_methods takes a torch.nn.Module, got {type(model).__name__}")
    specs = dict(dynamic_shapes or {})
    unknown = sorted(set(specs) - set(methods))
    if unknown:
        raise ExportError(f"dynamic_shapes names methods {unknown} that are not exported")
    programs = {}
    for name, example in methods.items():
        args, kwargs = _example(name, example)
        programs[name] = export_method(model, _method(model, name), args, kwargs, specs.get(name))
    return ExportPackage(programs)


def _example(name: str, example: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if (
        not isinstance(example, tuple)
        or len(example) != 2
        or not isinstance(example[0], tuple)
        or not isinstance(example[1], dict)
    ):
        raise ExportError(
            f"method {name!r}: give its example inputs as (args, kwargs), a tuple and a dict, "
            f"e.g. ((x,), {{}}); got {type(example).__name__}"
        )
    return example


def _method(model: torch.nn.Module, name: str) -> Callable[..., Any]:
    """``model.<name>`` when the model's class defines such a method (nn.Module's
    own, such as ``eval`` or ``half``, never count), else ``model.forward``."""
    if not hasattr(torch.nn.Module, name) and name not in model._modules:
        candidate = getattr(type(model), name, None)
        if callable(candidate) and not isinstance(candidate, type):
            return getattr(model, name)
    return model.forward
