"""Exporting methods of a model other than (or besides) ``forward``.

``export_methods(model, {"prefill": (args, kwargs), "decode": (args, kwargs)})``
exports one program per entry into an `ExportPackage`; the programs share the
model's parameters and buffers (the same tensors). An entry named after a
method of the model (``model.encode``) exports that method (nn.Module's own methods never count); any other name
exports ``forward`` with those inputs (prefill and decode of an LLM are both
``forward``); ``export`` takes the bound method and exports the model through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from graphlift.errors import ExportError
from graphlift.export import export
from graphlift.export.package import ExportPackage


def export_methods(
    model: torch.nn.Module,
    methods: Mapping[str, Any],
    *,
    dynamic_shapes: Mapping[str, Any] | None = None,
    overloads: Mapping[str, Mapping[str, Callable[..., Any]]] | None = None,
) -> ExportPackage:
    """One program per ``{name: (args, kwargs)}`` entry, sharing ``model``'s state.

    ``dynamic_shapes`` maps method names to the spec for that method's inputs
    (as ``export``'s ``dynamic_shapes``); methods it does not name are static.

    ``overloads`` (torch's ``_define_overload``) maps a method to named spec
    predicates; that method's entry is then a list of examples, and each is
    exported as ``"<method>.<overload>"`` under the first predicate that
    accepts it: ``spec(*args, **kwargs)`` returns the dynamic-shapes spec, or
    raises AssertionError for inputs it does not cover.
    """
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"export_methods takes a torch.nn.Module, got {type(model).__name__}")
    specs, predicates = dict(dynamic_shapes or {}), dict(overloads or {})
    for option, named in (("dynamic_shapes", specs), ("overloads", predicates)):
        unknown = sorted(set(named) - set(methods))
        if unknown:
            raise ExportError(f"{option} names methods {unknown} that are not exported")
    programs = {}
    for name, example in methods.items():
        method = _method(model, name)
        if name not in predicates:
            args, kwargs = _example(name, example)
            programs[name] = export(method, args, kwargs, dynamic_shapes=specs.get(name))
            continue
        for key, (args, kwargs), spec in _overloaded(name, example, predicates[name]):
            if key in programs:
                raise ExportError(f"two examples of {name!r} fall under overload {key!r}")
            programs[key] = export(method, args, kwargs, dynamic_shapes=spec)
    return ExportPackage(programs)


def _overloaded(
    name: str, examples: Any, predicates: Mapping[str, Callable[..., Any]]
) -> Iterator[tuple[str, tuple[tuple[Any, ...], dict[str, Any]], Any]]:
    """(entry name, example, dynamic shapes) for each example of an overloaded method."""
    if not isinstance(examples, list):
        raise ExportError(f"method {name!r} has overloads: give a list of (args, kwargs) examples")
    for example in examples:
        args, kwargs = _example(name, example)
        for overload, predicate in predicates.items():
            try:
                spec = predicate(*args, **kwargs)
            except AssertionError:
                continue
            yield f"{name}.{overload}", (args, kwargs), spec
            break
        else:
            raise ExportError(
                f"no overload of {name!r} ({', '.join(predicates)}) accepts an example; each "
                "spec predicate raised AssertionError"
            )


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
            method: Callable[..., Any] = getattr(model, name)
            return method
    return model.forward
