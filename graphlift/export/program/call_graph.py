"""The module call graph's values: ``ModuleCallEntry`` and ``ModuleCallSignature``.

torch.export's names and fields (``fqn``, ``signature.inputs``/``outputs``,
``in_spec``/``out_spec``); export/module_calls.py builds them while tracing.
Passes that rebuild the graph rename the values they name with
:func:`renamed_call_graph`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from graphlift.export.program.signature import Argument, ConstantArgument
from graphlift.pytree import TreeSpec


@dataclass(frozen=True)
class ModuleCallSignature:
    """torch.export's view of one call: its flat inputs and outputs as graph
    values (by node name) and the pytree structure that groups them."""

    inputs: tuple[Argument, ...]
    outputs: tuple[Argument, ...]
    in_spec: TreeSpec
    out_spec: TreeSpec
    forward_arg_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleCallEntry:
    """One module of the model, or one call of it (``a``, then ``a@1``).

    The root entry comes first, then every module of the model in
    ``named_modules(remove_duplicate=False)`` order (as torch.export lists
    them), then one ``fqn@n`` entry per further call. A called module records
    the pytree structure of its inputs and outputs and the graph values that
    cross its boundary (``inputs``/``outputs``, by node name); a module never
    called has ``in_spec`` None. Inside a call of a shared block body
    (``reuse_blocks``), the body's inner modules have their entries too; the
    values they name that the body computes are named as in
    ``inline_subgraphs()`` (names reserved in the graph, so never another
    node's). ``alias_of`` names the first name of a module
    registered under several names (a shared submodule); ``preserved`` marks
    the modules named in ``preserve_module_call_signature``.
    """

    fqn: str
    in_spec: TreeSpec | None
    out_spec: TreeSpec | None
    forward_arg_names: tuple[str, ...] = ()
    inputs: tuple[Argument, ...] = ()
    outputs: tuple[Argument, ...] = ()
    preserved: bool = False
    alias_of: str | None = None

    @property
    def signature(self) -> ModuleCallSignature | None:
        """torch.export's ``ModuleCallEntry.signature`` (None for a module never called)."""
        if self.in_spec is None or self.out_spec is None:
            return None
        return ModuleCallSignature(
            self.inputs, self.outputs, self.in_spec, self.out_spec, self.forward_arg_names
        )


def renamed_call_graph(
    entries: tuple[ModuleCallEntry, ...], rename: dict[str, str]
) -> tuple[ModuleCallEntry, ...]:
    """The call graph with node names mapped through ``rename`` (for passes that
    rebuild the graph); names not in ``rename`` are no longer computed ("")."""

    def renamed(spec: Argument) -> Argument:
        if isinstance(spec, ConstantArgument):
            return spec
        return type(spec)(rename.get(spec.name, ""))

    return tuple(
        replace(
            entry,
            inputs=tuple(renamed(s) for s in entry.inputs),
            outputs=tuple(renamed(s) for s in entry.outputs),
        )
        for entry in entries
    )
