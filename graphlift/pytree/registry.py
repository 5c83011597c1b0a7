"""Registering user types as pytree nodes, and converting specs to and from
torch's ``TreeSpec``."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from typing import Any

import torch.utils._pytree as torch_pytree

from graphlift.errors import PytreeError
from graphlift.pytree.modules import ModuleState
from graphlift.pytree.tree import LEAF, TreeSpec, _type_name

# --- registration -------------------------------------------------------------------


def register_dataclass(
    cls: type[Any],
    *,
    field_names: Sequence[str] | None = None,
    drop_field_names: Sequence[str] | None = None,
    serialized_type_name: str | None = None,
) -> None:
    """Register a dataclass so its fields are children (``torch.export.register_dataclass``).

    Registers in torch's registry, with torch's semantics: children are the
    ``init`` fields (or ``field_names``), minus ``drop_field_names``, whose value
    is not None; None-valued fields are recorded in the context, dropped ones
    take their defaults on unflatten. Unlike torch, ``drop_field_names`` also
    works without ``field_names``. Give ``serialized_type_name`` to be able to
    save specs that contain ``cls``.
    """
    if field_names is None and drop_field_names and dataclasses.is_dataclass(cls):
        # torch ignores drop_field_names without field_names; we honour it.
        fields = dataclasses.fields(cls)
        field_names = [f.name for f in fields if f.init and f.name not in drop_field_names]
    try:
        torch_pytree.register_dataclass(
            cls,
            field_names=None if field_names is None else list(field_names),
            drop_field_names=None if drop_field_names is None else list(drop_field_names),
            serialized_type_name=serialized_type_name,
        )
    except ValueError as error:
        raise PytreeError(f"cannot register {_type_name(cls)} as a dataclass: {error}") from error


def register_namedtuple(cls: type[Any], *, serialized_type_name: str) -> None:
    """Give a namedtuple class a name so specs containing it can be saved and loaded.

    Every namedtuple is a node without registration; only saving needs a name.
    """
    if not torch_pytree.is_namedtuple_class(cls):
        raise PytreeError(f"{_type_name(cls)} is not a namedtuple class")
    torch_pytree._register_namedtuple(cls, serialized_type_name=serialized_type_name)


# --- conversion to and from torch's TreeSpec ----------------------------------------


def to_torch_spec(spec: TreeSpec) -> torch_pytree.TreeSpec:
    """The equal ``torch.utils._pytree.TreeSpec`` (dict-like contexts become lists)."""
    if spec.is_leaf():
        return torch_pytree.treespec_leaf()
    if isinstance(spec.context, ModuleState):
        raise PytreeError(
            f"a {_type_name(spec.type)} passed as an input has no torch TreeSpec that checks "
            "its non-tensor state (torch's compares only its class); pass the module's "
            "tensors as inputs instead"
        )
    context = spec.context
    if spec.type in (dict, OrderedDict):
        context = list(context)
    elif spec.type is defaultdict:
        context = [context[0], list(context[1])]
    return torch_pytree.TreeSpec(spec.type, context, [to_torch_spec(c) for c in spec.children])


def from_torch_spec(spec: torch_pytree.TreeSpec) -> TreeSpec:
    """Our spec equal to a ``torch.utils._pytree.TreeSpec``."""
    if spec.is_leaf():
        return LEAF
    context = spec.context
    if spec.type in (dict, OrderedDict):
        context = tuple(context)
    elif spec.type is defaultdict:
        context = (context[0], tuple(context[1]))
    return TreeSpec(spec.type, context, tuple(from_torch_spec(c) for c in spec.children()))
