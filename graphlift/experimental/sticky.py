"""Sticky export: export a model inside the code that already calls it.

``model.forward = sticky_export(model.forward)`` (torch's ``_sticky_export``
contract): the first call exports ``model`` with that call's arguments (the
optional ``dynamic_shapes_callback(*args, **kwargs)`` turns them into a
dynamic-shapes spec, e.g. ``Dim.AUTO`` everywhere) and runs the exported
module; later calls run the exported program. Nobody has to build example
inputs by hand, and nested or keyword-only inputs come as the caller passes them.

A call the installed program refuses (its input checks fail before it
computes anything) is handled by the ``policy``:

- ``"once"`` (torch's default): raise `StickyExportError` (an
  InputMismatchError) saying which check failed and how to widen the spec;
- ``"error"``: the same, and the first call must match an overload too
  (nothing is exported as a fallback);
- ``"reexport"``: export again for the new inputs and keep both programs;
  each call runs the first program that accepts it.

Overloads (as torch's ``_define_overload``): ``wrapper.define_overload(name,
spec)`` adds a named program chosen by a predicate: ``spec(*args, **kwargs)``
returns the dynamic-shapes spec for calls it accepts and raises
AssertionError for calls it does not.

The model itself is never changed by exporting: ``forward`` is restored
around each export, and its parameters and buffers are the ones the exported
programs use (a buffer the model updates is updated as eager would).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from graphlift.errors import (
    ExportError,
    InputMismatchError,
    InputStructureError,
    StickyExportError,
)
from graphlift.export import ExportedProgram, export

POLICIES = ("once", "error", "reexport")
_REFUSALS = (InputMismatchError, InputStructureError)


@dataclass
class ExportedMethod:
    """The programs one sticky export made: named overloads, then fallbacks."""

    overloads: dict[str, ExportedProgram] = field(default_factory=dict)
    fallbacks: list[ExportedProgram] = field(default_factory=list)


class StickyExport:
    """The wrapper ``sticky_export`` returns; callable like the forward it wraps."""

    def __init__(
        self,
        forward: Callable[..., Any],
        dynamic_shapes_callback: Callable[..., Any] | None,
        policy: str,
    ) -> None:
        model = getattr(forward, "__self__", None)
        if not isinstance(model, torch.nn.Module):
            raise ExportError(
                "sticky_export takes a module's bound forward (model.forward), got "
                f"{forward!r}; use: model.forward = sticky_export(model.forward)"
            )
        if policy not in POLICIES:
            raise ExportError(f"policy must be one of {POLICIES}, got {policy!r}")
        functools.update_wrapper(self, forward)
        self.model = model
        self.original = forward
        self.dynamic_shapes_callback = dynamic_shapes_callback
        self.policy = policy
        self.method = ExportedMethod()
        self._specs: dict[str, Callable[..., Any]] = {}
        self._modules: dict[int, torch.nn.Module] = {}  # id(program) -> its module()

    @property
    def _exported_artifact(self) -> torch.nn.Module | None:
        """torch's name: the module of the most recent program."""
        programs = [*self.method.overloads.values(), *self.method.fallbacks]
        return self._modules[id(programs[-1])] if programs else None

    def define_overload(self, name: str, spec: Callable[..., Any]) -> StickyExport:
        """Add overload ``name``: calls ``spec`` accepts (returns a dynamic-shapes
        spec, raises AssertionError otherwise) run a program exported for them."""
        if not name.isidentifier() or name in self._specs:
            raise ExportError(f"overload name {name!r} must be a new Python identifier")
        if not callable(spec):
            raise ExportError(f"the spec of overload {name!r} must be callable")
        self._specs[name] = spec
        return self

    _define_overload = define_overload  # torch's name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for name, spec in self._specs.items():
            try:
                dynamic_shapes = spec(*args, **kwargs)
            except AssertionError:
                continue
            if name not in self.method.overloads:
                self.method.overloads[name] = self._export(args, kwargs, dynamic_shapes)
            return self._run(self.method.overloads[name], args, kwargs)
        return self._fallback(args, kwargs)

    def _fallback(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        refusals = []
        for program in self.method.fallbacks:
            try:
                return self._run(program, args, kwargs)
            except _REFUSALS as error:
                refusals.append(str(error))
        if self.policy == "error" or (self.policy == "once" and self.method.fallbacks):
            raise StickyExportError(self._refusal_message(refusals))
        dynamic_shapes = None
        if self.dynamic_shapes_callback is not None:
            dynamic_shapes = self.dynamic_shapes_callback(*args, **kwargs)
        program = self._export(args, kwargs, dynamic_shapes)
        self.method.fallbacks.append(program)
        return self._run(program, args, kwargs)

    def _export(self, args: tuple[Any, ...], kwargs: dict[str, Any], dynamic_shapes: Any) -> Any:
        # the wrapped forward (a bound method), not this wrapper
        program = export(self.original, tuple(args), dict(kwargs), dynamic_shapes=dynamic_shapes)
        self._modules[id(program)] = program.module()
        return program

    def _run(self, program: ExportedProgram, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._modules[id(program)](*args, **kwargs)

    def _refusal_message(self, refusals: list[str]) -> str:
        name = getattr(self.original, "__qualname__", "forward")
        if self.policy == "error" and not refusals:
            return (
                f"no overload of the sticky export of {name} accepts this call and the policy "
                "is 'error'; define an overload for it (define_overload) or use policy='once'"
            )
        reasons = "\n".join(f"  - {reason.splitlines()[0]}" for reason in refusals)
        return (
            f"the program exported from {name} refuses this call:\n{reasons}\n"
            f"policy={self.policy!r} does not export again: widen the spec the "
            "dynamic_shapes_callback returns (e.g. Dim.AUTO), define an overload, or use "
            "policy='reexport'"
        )


def sticky_export(
    forward_func: Callable[..., Any],
    dynamic_shapes_callback: Callable[..., Any] | None = None,
    *,
    policy: str = "once",
) -> StickyExport:
    """Export ``forward_func``'s module on its first call; see the module docstring.

    Usage: ``model.forward = sticky_export(model.forward, dynamic_shapes_callback=cb)``.
    """
    return StickyExport(forward_func, dynamic_shapes_callback, policy)
