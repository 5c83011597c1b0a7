"""Structured inputs of a traced function: one placeholder per leaf.

``symbolic_trace(f, concrete_args={"x": {"a": PH, "b": [PH, 3]}})`` makes, as
torch.fx does, one placeholder per flattened leaf (``x_1``, ``x_2``, ``x_3``)
while the generated ``forward`` still takes ``x``. Each such placeholder
carries ``meta["flattened_from"] = FlattenedInput(...)``; the generated code
(and `Interpreter.run`) flattens ``x`` against the recorded structure first.

Unlike torch.fx's ``tree_flatten_spec``, flattening checks the structure: a
dict with other keys or a list of another length raises InputStructureError
instead of reading the wrong leaf.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch.utils._pytree as torch_pytree

from graphlift.errors import InputIndexError, InputKeyError, InputStructureError

if TYPE_CHECKING:
    from graphlift.ir.node import Node

META_KEY = "flattened_from"


@dataclass(frozen=True)
class FlattenedInput:
    """This placeholder is leaf ``index`` of the function parameter ``parameter``,
    whose structure is ``spec`` (a torch.utils._pytree TreeSpec)."""

    parameter: str
    index: int
    spec: Any


def flatten_input(value: Any, spec: Any, name: str = "input") -> list[Any]:
    """The leaves of ``value`` in the order of ``spec``.

    Built-in containers are read by key or index (so this also records
    ``getitem`` nodes when ``value`` is a traced value), other registered
    pytree types through their flatten function.
    """
    if spec.is_leaf():
        return [value]
    children = spec.children()
    kind = spec.type
    if kind is dict:
        _check_keys(value, list(spec.context), name)
        items: Iterable[Any] = (value[key] for key in spec.context)
        paths = [f"{name}[{key!r}]" for key in spec.context]
    elif kind in (list, tuple, namedtuple):  # pytree tags namedtuple nodes with the factory
        _check_length(value, len(children), name)
        items = (value[i] for i in range(len(children)))
        paths = [f"{name}[{i}]" for i in range(len(children))]
    else:
        flat, context = torch_pytree.SUPPORTED_NODES[kind].flatten_fn(value)
        if context != spec.context or len(flat) != len(children):
            raise InputStructureError(
                f"{name} does not have the structure the graph was traced with ({spec})"
            )
        items, paths = flat, [f"{name}.<{i}>" for i in range(len(children))]
    leaves: list[Any] = []
    for item, child, path in zip(items, children, paths, strict=True):
        leaves += flatten_input(item, child, path)
    return leaves


def _check_keys(value: Any, keys: list[Any], name: str) -> None:
    if not isinstance(value, dict) or set(value) == set(keys):
        return
    missing = [key for key in keys if key not in value]
    error = InputKeyError if missing else InputStructureError  # torch.fx: KeyError if missing
    raise error(
        f"{name} has keys {sorted(map(repr, value))}, but the graph was traced with "
        f"keys {sorted(map(repr, keys))}"
    )


def _check_length(value: Any, length: int, name: str) -> None:
    if isinstance(value, list | tuple) and len(value) != length:
        error = InputIndexError if len(value) < length else InputStructureError
        raise error(f"{name} has {len(value)} items, but the graph was traced with {length}")


def structured_parameters(placeholders: Sequence[Node]) -> list[tuple[str, list[Node]]]:
    """Group placeholders into the function's parameters, in order: a plain
    placeholder is its own group, consecutive leaves of one parameter share one."""
    groups: list[tuple[str, list[Node]]] = []
    for node in placeholders:
        leaf = node.meta.get(META_KEY)
        if leaf is not None and groups and groups[-1][1][-1].meta.get(META_KEY) is not None:
            previous = groups[-1][1][-1].meta[META_KEY]
            if previous.parameter == leaf.parameter:
                groups[-1][1].append(node)
                continue
        groups.append((leaf.parameter if leaf is not None else "", [node]))
    return groups


def process_inputs(placeholders: Sequence[Node], args: Sequence[Any]) -> list[Any]:
    """Turn the function's arguments into one value per placeholder."""
    flat: list[Any] = []
    remaining = list(args)
    if not any(META_KEY in node.meta for node in placeholders):
        return list(args)
    for parameter, nodes in structured_parameters(placeholders):
        if not remaining or str(nodes[0].target).startswith("*"):
            break
        value = remaining.pop(0)
        if parameter:
            flat += flatten_input(value, nodes[0].meta[META_KEY].spec, parameter)
        else:
            flat.append(value)
    return flat + remaining
