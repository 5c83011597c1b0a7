"""The module call graph: which submodules the model called, and with what.

While the model runs, :class:`CallRecorder` (a ``trace.state.CallObserver``)
notes for every submodule call its flat inputs when it starts and its flat
outputs when it returns, as the graph values holding them at that moment, with
the pytree structure around them. :func:`module_call_graph` turns those notes
into the program's ``module_call_graph``: the root, every module of the model
in ``named_modules(remove_duplicate=False)`` order (torch.export's list), and
one ``fqn@n`` entry per further call.

A call of a module named in ``preserve_module_call_signature`` must have
inputs and outputs the graph can carry (tensors, symbolic and Python scalars,
strings, None); anything else is refused at export, naming the module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import ExportError
from graphlift.export.program.call_graph import ModuleCallEntry
from graphlift.export.program.signature import (
    Argument,
    ConstantArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.pytree import TreeSpec, tree_flatten
from graphlift.trace.recorder import Recorder
from graphlift.trace.tensor import TraceTensor

_PYTHON_CONSTANTS = (int, float, bool, str, type(None))
_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)


@dataclass
class _Call:
    key: str
    path: str
    in_spec: TreeSpec | None = None
    inputs: tuple[Any, ...] | None = None  # Node or Python constant per flat input
    out_spec: TreeSpec | None = None
    outputs: tuple[Any, ...] | None = None


class CallRecorder:
    """Notes each submodule call's boundary values while the model is traced."""

    def __init__(self, recorder: Recorder, preserved: tuple[str, ...]) -> None:
        self.recorder = recorder
        self.preserved = frozenset(preserved)
        self.calls: dict[str, _Call] = {}
        self.spans: dict[str, tuple[int, int]] = {}  # key -> the calls made inside it
        self._keys: list[str] = []  # every call's key, in the order calls began

    def entered(self, key: str, path: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        leaves, spec = tree_flatten((tuple(args), dict(kwargs)))
        call = self.calls[key] = _Call(key, path, spec)
        call.inputs = self._values(leaves, path, "input")
        self._keys.append(key)
        self.spans[key] = (len(self._keys), len(self._keys))

    def left(self, key: str, output: Any) -> None:
        call = self.calls.get(key)
        if call is None:
            return
        leaves, call.out_spec = tree_flatten(output)
        call.outputs = self._values(leaves, call.path, "output")
        self.spans[key] = (self.spans[key][0], len(self._keys))

    def repeated(self, first_key: str, key: str, values: dict[str, Any]) -> None:
        """Each call made inside ``first_key`` again under ``key`` (see
        ``trace.state.CallObserver``), its values mapped through ``values``."""
        start, end = self.spans.get(first_key, (0, 0))
        for inner in self._keys[start:end]:
            first = self.calls[inner]
            moved = key + inner[len(first_key) :]
            self.calls[moved] = _Call(
                moved, key + first.path[len(first_key) :],
                first.in_spec, _mapped(first.inputs, values),
                first.out_spec, _mapped(first.outputs, values),
            )  # fmt: skip
            self._keys.append(moved)

    def boundary_nodes(self) -> list[Node]:
        """The nodes crossing a preserved module's boundary: kept alive by dead-code
        elimination so that a swapped module can still receive and return them."""
        return [
            value
            for call in self.calls.values()
            if call.path in self.preserved
            for value in (*(call.inputs or ()), *(call.outputs or ()))
            if isinstance(value, Node)
        ]

    def _values(self, leaves: list[Any], path: str, what: str) -> tuple[Any, ...] | None:
        values = []
        for leaf in leaves:
            value = self._value(leaf)
            if value is _UNKNOWN:
                if path in self.preserved:
                    raise ExportError(
                        f"preserve_module_call_signature: an {what} of {path!r} is a "
                        f"{type(leaf).__name__}, which an exported graph cannot carry across "
                        "the module boundary; preserve a module whose inputs and outputs are "
                        "tensors, scalars and containers of them"
                    )
                return None
            values.append(value)
        return tuple(values)

    def _value(self, leaf: Any) -> Any:
        if isinstance(leaf, TraceTensor):
            return self.recorder.current_node(leaf)
        if isinstance(leaf, _SYMBOLIC) and self.recorder.symbolic is not None:
            return self.recorder.symbolic.node_for(leaf)
        if isinstance(leaf, _PYTHON_CONSTANTS):
            return leaf
        return _UNKNOWN


_UNKNOWN = object()


@dataclass(frozen=True)
class _InBody:
    """A value computed inside a shared block body: named as in the inlined program."""

    name: str
    symbolic: bool


def _mapped(values: tuple[Any, ...] | None, mapping: dict[str, Any]) -> tuple[Any, ...] | None:
    if values is None:
        return None
    found: list[Any] = []
    for value in values:
        if isinstance(value, Node) and value.name in mapping:
            new = mapping[value.name]
            symbolic = isinstance(value.meta.get("val"), _SYMBOLIC)
            value = new if isinstance(new, Node) else _InBody(new, symbolic)
        found.append(value)
    return tuple(found)


def module_call_graph(
    root: torch.nn.Module,
    root_entry: ModuleCallEntry,
    calls: dict[str, _Call],
    graph: Graph,
    preserved: tuple[str, ...],
) -> tuple[ModuleCallEntry, ...]:
    """The program's call graph (see the module docstring); node references are
    resolved to names of nodes still in ``graph``."""
    live = set(graph.nodes)
    first_name: dict[int, str] = {}
    entries = [root_entry]
    for fqn, module in root.named_modules(remove_duplicate=False):
        if not fqn:
            continue
        alias_of = first_name.setdefault(id(module), fqn)
        if alias_of != fqn:
            entries.append(ModuleCallEntry(fqn, None, None, alias_of=alias_of))
            continue
        call = calls.get(fqn)
        entries.append(_entry(fqn, call, live, fqn in preserved))
    for key, call in calls.items():
        if "@" in key:
            entries.append(_entry(key, call, live, call.path in preserved))
    return tuple(entries)


def _entry(fqn: str, call: _Call | None, live: set[Node], preserved: bool) -> ModuleCallEntry:
    if call is None or call.out_spec is None:
        return ModuleCallEntry(fqn, None, None, preserved=preserved)
    return ModuleCallEntry(
        fqn,
        call.in_spec,
        call.out_spec,
        inputs=_arguments(call.inputs, live, fqn, "input"),
        outputs=_arguments(call.outputs, live, fqn, "output"),
        preserved=preserved,
    )


def _arguments(
    values: tuple[Any, ...] | None, live: set[Node], fqn: str, what: str
) -> tuple[Argument, ...]:
    if values is None:
        return ()
    specs: list[Argument] = []
    for index, value in enumerate(values):
        name = f"{fqn}_{what}_{index}"
        if isinstance(value, Node):
            name = value.name if value in live else ""  # "" : no longer computed by the graph
            symbolic = isinstance(value.meta.get("val"), _SYMBOLIC)
            specs.append(SymIntArgument(name) if symbolic else TensorArgument(name))
        elif isinstance(value, _InBody):  # computed inside a body: its name once inlined
            specs.append(
                SymIntArgument(value.name) if value.symbolic else TensorArgument(value.name)
            )
        else:
            specs.append(ConstantArgument(name, value))
    return tuple(specs)
