"""Python-level graph targets that functionalization adds to exported graphs.

``auto_functionalized(op, *args, **kwargs)`` stands for a call of a custom op
(``torch.library``) whose schema declares that it mutates some arguments
(``mutates_args``). Such an op has no out-of-place twin, so the graph calls it
on *copies* of the arguments it writes and returns the op's own results
followed by the written copies, one per mutated argument in schema order —
the same contract as torch's ``auto_functionalized`` higher-order op. The
recorder then treats the copies as the new values of the mutated tensors.

``GRAPH_CALLABLES`` lists every such target, for the verifier and the
serializer to accept by identity.
"""

from __future__ import annotations

from typing import Any

import torch


def written_argument_names(op: torch._ops.OpOverload) -> tuple[str, ...]:
    """Names of the arguments ``op``'s schema marks as written (``Tensor(a!)``)."""
    return tuple(
        argument.name
        for argument in op._schema.arguments
        if argument.alias_info is not None and argument.alias_info.is_write
    )


def auto_functionalized(op: torch._ops.OpOverload, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
    """Run a mutating custom op functionally: it writes to clones, which are returned
    after the op's own results."""
    names = [argument.name for argument in op._schema.arguments]
    values = list(args)
    clones: list[Any] = []
    for name in written_argument_names(op):
        position = names.index(name)
        original = values[position] if position < len(values) else kwargs.get(name)
        clone = original.clone() if isinstance(original, torch.Tensor) else original
        if position < len(values):
            values[position] = clone
        else:
            kwargs[name] = clone
        clones.append(clone)
    result = op(*values, **kwargs)
    if result is None:
        plain: tuple[Any, ...] = ()
    elif isinstance(result, tuple | list):
        plain = tuple(result)
    else:
        plain = (result,)
    return (*plain, *clones)


GRAPH_CALLABLES = (auto_functionalized,)
