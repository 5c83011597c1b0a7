"""How ``ep.module()`` applies a program's mutation outputs.

The exported graph is functional: it *returns* the new value of every
mutated buffer, parameter and user input. The runnable module must leave
those new values where eager leaves them, so the unlifted graph ends with one
write-back per mutation, ``aten.copy_(holder, new_value)``, where the holder is
the buffer's ``get_attr`` or the caller's input placeholder (parameters:
``update_parameter``, under ``no_grad`` as the model did it). That is also what
torch.export's unlift does, and it needs no Python bookkeeping per call.

Two refinements, each for a reason:

- **Aliasing.** A new value may *be* another holder, or a view of one
  (``self.b.copy_(self.a); self.a.add_(1)`` makes ``b``'s new value ``a``'s
  old one). Write-backs run in sequence, so such values are cloned before the
  first write-back, otherwise ``b`` would receive ``a``'s *new* value.
- **Re-inplacing.** A mutation computed as ``index_copy(keys, ...)`` and then
  copied back into ``keys`` costs a full copy of the cache per call. When the
  holder is read by nothing after that op and by no view, the op is switched to
  its in-place form (``index_copy_``) writing straight into the holder, and the
  write-back disappears. This keeps a static KV cache update at eager's cost.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from graphlift.errors import ExportError
from graphlift.export.program.signature import RETURNED_KINDS, OutputKind, OutputSpec
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node

aten = torch.ops.aten


def update_parameter(parameter: torch.Tensor, value: torch.Tensor) -> None:
    """A parameter update, which the model made under ``torch.no_grad()``."""
    with torch.no_grad():
        parameter.copy_(value)


_UPDATES: dict[OutputKind, Any] = {
    OutputKind.BUFFER_MUTATION: aten.copy_.default,
    OutputKind.USER_INPUT_MUTATION: aten.copy_.default,
    OutputKind.PARAMETER_MUTATION: update_parameter,
}


def apply_mutations(
    graph: Graph, output_specs: tuple[OutputSpec, ...], holders: dict[tuple[bool, str], Node]
) -> None:
    """Make the unlifted graph write every mutation back and return only user outputs
    (and a joint program's loss and gradients).

    ``holders`` maps (is a user input, target) to the node holding that tensor."""
    output = next(reversed(graph.nodes))
    values = list(output.args[0])
    order = {node: index for index, node in enumerate(graph.nodes)}
    user_values = {id(v) for v, s in zip(values, output_specs) if s.kind in RETURNED_KINDS}
    updates: list[tuple[Any, Node, Any]] = []
    for value, spec in zip(values, output_specs):
        if spec.kind in RETURNED_KINDS:
            continue
        update = _UPDATES.get(spec.kind)
        if update is None:
            raise ExportError(f"module() cannot run a program with {spec.kind.name} outputs")
        holder = holders[spec.kind is OutputKind.USER_INPUT_MUTATION, str(spec.target)]
        if update is aten.copy_.default and id(value) not in user_values:
            if _reinplace(value, holder, order):
                continue
        updates.append((update, holder, value))
    output.args = (tuple(v for v, s in zip(values, output_specs) if s.kind in RETURNED_KINDS),)
    with graph.inserting_before(output):
        safe = [
            graph.call_function(aten.clone.default, (value,)) if _may_alias_input(value) else value
            for _, _, value in updates
        ]
        for (update, holder, _), value in zip(updates, safe):
            graph.call_function(update, (holder, value))


def apply_mutations_where_made(
    graph: Graph, output_specs: tuple[OutputSpec, ...], holders: dict[tuple[bool, str], Node]
) -> None:
    """Like :func:`apply_mutations`, but each write-back happens where the model
    made the mutation, as eager does (``unflatten`` needs it inside the
    submodule that mutates): right after the new value is computed, or after
    the last read of the old value if one comes later. Later readers of a
    computed new value read the holder itself."""
    output = next(reversed(graph.nodes))
    values = list(output.args[0])
    order: dict[Node, float] = {node: float(position) for position, node in enumerate(graph.nodes)}
    for index, spec in enumerate(output_specs):
        if spec.kind is OutputKind.USER_OUTPUT:
            continue
        update = _UPDATES.get(spec.kind)
        if update is None:
            raise ExportError(f"module() cannot run a program with {spec.kind.name} outputs")
        value = values[index]
        holder = holders[spec.kind is OutputKind.USER_INPUT_MUTATION, str(spec.target)]
        anchor = max([value, *_old_value_readers(holder)], key=order.__getitem__)
        following = order[anchor.next]
        with graph.inserting_after(anchor):
            write = graph.call_function(update, (holder, value))
        order[write] = (order[anchor] + following) / 2  # between its neighbours
        write.meta = {k: v for k, v in value.meta.items() if k != "val"}
        if value.op == "call_function":
            after = order[anchor]
            value.replace_all_uses_with(
                holder,
                lambda user, write=write, after=after: (
                    user.op != "output" and user is not write and order[user] > after
                ),
            )
            values = [holder if v is value else v for v in values]  # returned: the holder
    output.args = (
        tuple(v for v, s in zip(values, output_specs) if s.kind is OutputKind.USER_OUTPUT),
    )


def _old_value_readers(holder: Node) -> list[Node]:
    """Nodes reading ``holder``'s old content, directly or through views of it."""
    readers: list[Node] = []
    pending = [holder]
    while pending:
        node = pending.pop()
        for user in node.users:
            if user.op == "output":
                continue
            readers.append(user)
            if _returns_alias(user.target) or user.target is operator.getitem:
                pending.append(user)
    return readers


def _reinplace(value: Any, holder: Node, order: dict[Node, int]) -> bool:
    """Switch ``value = op(holder, ...)`` to ``op_(holder, ...)`` when nothing reads
    ``holder`` afterwards or through a view; True when done."""
    if not isinstance(value, Node) or value.op != "call_function":
        return False
    in_place = _in_place_variant(value.target)
    if in_place is None or not value.args or value.args[0] is not holder:
        return False
    if any(arg is holder for arg in (*value.args[1:], *value.kwargs.values())):
        return False
    if _layout(value.meta.get("val")) != _layout(holder.meta.get("val")):
        return False
    for user in holder.users:
        if user is not value and (order[user] > order[value] or _returns_alias(user.target)):
            return False
    value.target = in_place
    return True


def _in_place_variant(op: Any) -> Any:
    """``aten.index_copy.default`` -> ``aten.index_copy_.default``, or None."""
    if not isinstance(op, torch._ops.OpOverload) or op.namespace != "aten":
        return None
    packet = getattr(aten, op._schema.name.split("::")[1] + "_", None)
    overload = getattr(packet, op._overloadname, None) if packet is not None else None
    if overload is None:
        return None
    first = overload._schema.arguments[0]
    if first.alias_info is None or not first.alias_info.is_write:
        return None
    return overload


def _may_alias_input(value: Any) -> bool:
    """``value`` is a placeholder or get_attr, or a view chain of one."""
    while isinstance(value, Node):
        if value.op in ("placeholder", "get_attr"):
            return True
        target = value.target
        if value.op != "call_function" or not value.args:
            return False
        if not (_returns_alias(target) or target is operator.getitem):
            return False
        value = value.args[0]
    return False


def _returns_alias(target: Any) -> bool:
    if not isinstance(target, torch._ops.OpOverload):
        return False
    return any(r.alias_info is not None for r in target._schema.returns)


def _layout(value: Any) -> tuple[Any, ...] | None:
    if not isinstance(value, torch.Tensor):
        return None
    return (value.dtype, [str(s) for s in value.shape])
