"""The modules ``unflatten`` builds, and how their calls are checked.

- :class:`UnflattenedModule`, the root: ``module()``'s input checks, plus a
  :class:`FlatArgsAdapter` for inputs whose structure differs from the
  exported one;
- :class:`PreservedCall`, a module whose call signature was preserved: called
  with the original arguments (``self.foo(x, y={"key": t})``), it flattens
  them against the recorded structure and returns the recorded output
  structure, so it and any module with the same signature are
  interchangeable;
- :class:`CallDispatcher`, a module called several times whose calls traced
  different graphs: the n-th call of a run runs the n-th graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch

from graphlift.errors import CallSignatureError, InternalError
from graphlift.export.runtime.unlift import ExportedModule, WrappedGraphModule
from graphlift.ir.graph_module import GraphModule
from graphlift.pytree import (
    TreeSpec,
    module_classes_of,
    module_nodes,
    tree_flatten,
    tree_unflatten,
)

if TYPE_CHECKING:
    from graphlift.export.program.call_graph import ModuleCallEntry


class FlatArgsAdapter:
    """Adapts the flat inputs of a call whose structure differs from the
    exported one (torch.export.FlatArgsAdapter). Subclass and implement
    :meth:`adapt`; pass an instance as ``unflatten(ep, flat_args_adapter=...)``."""

    def adapt(
        self,
        target_spec: TreeSpec,
        input_spec: TreeSpec,
        input_args: list[Any],
        metadata: dict[str, Any] | None = None,
        obj: Any = None,
    ) -> list[Any]:
        """The flat inputs the program expects (``target_spec``), from the flat
        inputs given (``input_args``, structured as ``input_spec``)."""
        raise NotImplementedError("FlatArgsAdapter.adapt must be implemented by a subclass")


def flatten_call(
    spec: TreeSpec, args: tuple[Any, ...], kwargs: dict[str, Any], adapter: Any, where: str
) -> list[Any]:
    """The flat inputs of a call, structured as ``spec`` (keywords in any order),
    or adapted by ``adapter``; else CallSignatureError."""
    kwargs_spec = spec.children[1]
    if list(kwargs) != list(kwargs_spec.context) and set(kwargs) == set(kwargs_spec.context):
        kwargs = {key: kwargs[key] for key in kwargs_spec.context}
    with module_nodes(module_classes_of(spec)):
        leaves, actual = tree_flatten((tuple(args), dict(kwargs)))
    if actual == spec:
        return leaves
    if adapter is None:
        raise CallSignatureError(
            f"{where} was called with inputs structured as {actual}; the exported program "
            f"expects {spec}. There is no flat args adapter specified. Are you sure you are "
            "calling this with the right arguments? (unflatten(ep, flat_args_adapter=...) "
            "adapts them)"
        )
    adapted = list(adapter.adapt(target_spec=spec, input_spec=actual, input_args=leaves))
    if len(adapted) != spec.num_leaves:
        raise CallSignatureError(
            f"the flat args adapter gave {len(adapted)} inputs for {where}; the exported "
            f"program expects {spec.num_leaves}"
        )
    return adapted


def flat_outputs(result: Any, spec: TreeSpec, where: str) -> list[Any]:
    """The flat outputs of a preserved call, which must be structured as ``spec``."""
    leaves, actual = tree_flatten(result)
    if actual != spec:
        raise CallSignatureError(
            f"the module at {where!r} returned outputs structured as {actual}; the exported "
            f"program expects {spec} (a swapped module must return what the original did)"
        )
    return leaves


class PreservedCall(WrappedGraphModule):
    """A submodule whose call signature was preserved (module docstring)."""

    _in_spec: TreeSpec
    _out_spec: TreeSpec
    _fqn: str
    _adapter: Any

    def expect(self, entry: ModuleCallEntry, adapter: Any) -> None:
        if entry.in_spec is None or entry.out_spec is None:
            raise InternalError(f"preserved call {entry.fqn!r} has no signature")
        self._in_spec, self._out_spec = entry.in_spec, entry.out_spec
        self._fqn, self._adapter = entry.fqn.split("@")[0], adapter

    def _outer_forward(self, *args: Any, **kwargs: Any) -> Any:
        flat = flatten_call(self._in_spec, args, kwargs, self._adapter, repr(self._fqn))
        return tree_unflatten(self._run_graph(*flat), self._out_spec)


class CallDispatcher(torch.nn.Module):
    """A module whose calls traced different graphs: call n runs graph n. The
    count restarts at every call of the root module."""

    def __init__(self, calls: list[GraphModule], state: torch.nn.Module) -> None:
        super().__init__()
        self._calls = tuple(calls)  # not submodules: the state is this module's own
        self._next = 0
        for name, value in [*state.named_parameters(), *state.named_buffers()]:
            _share(self, name, value, state)
        for call in calls:  # submodules of the calls (nested modules), shared by all calls
            for name, child in call.named_children():
                if name not in self._modules:
                    self.add_module(name, child)

    def restart(self) -> None:
        self._next = 0

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        call = self._calls[self._next % len(self._calls)]
        self._next += 1
        return call(*args, **kwargs)


def _share(module: torch.nn.Module, name: str, value: torch.Tensor, state: torch.nn.Module) -> None:
    *parents, leaf = name.split(".")
    owner = module
    for atom in parents:
        if atom not in owner._modules:
            owner.add_module(atom, torch.nn.Module())
        owner = cast(torch.nn.Module, owner._modules[atom])  # added above when missing
    if isinstance(value, torch.nn.Parameter):
        owner.register_parameter(leaf, value)
    else:
        holder = state.get_submodule(".".join(parents)) if parents else state
        owner.register_buffer(
            leaf, value, persistent=leaf not in holder._non_persistent_buffers_set
        )


class UnflattenedModule(ExportedModule):
    """The root of ``unflatten``'s tree (see the module docstring)."""

    _adapter: Any = None
    _dispatchers: tuple[CallDispatcher, ...] = ()
    _in_spec: TreeSpec

    def _flat_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
        for dispatcher in self._dispatchers:
            dispatcher.restart()
        return flatten_call(self._in_spec, args, kwargs, self._adapter, "the unflattened module")
