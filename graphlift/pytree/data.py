"""Specs as plain data: what archives store, and reading it back without
running anything a file names."""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict, namedtuple
from typing import Any

import torch.utils._pytree as torch_pytree

from graphlift.errors import PytreeError
from graphlift.pytree.modules import ModuleState
from graphlift.pytree.tree import _DICT_LIKE, LEAF, TreeSpec, _describe, _keys, _short, _type_name

# --- specs as plain data ------------------------------------------------------------
# The format is torch's treespec protocol 1, so ``json.dumps([1, spec_to_data(s)])``
# equals ``torch.utils._pytree.treespec_dumps(to_torch_spec(s))``. Loading differs
# from torch's on purpose: it never imports (torch's defaultdict and enum
# decoding call importlib), and unknown type names are refused.

_LEAF_DATA: dict[str, Any] = {"type": None, "context": None, "children_spec": []}

# default_factory values a saved defaultdict may name; nothing else is resolved.
_SAFE_DEFAULT_FACTORIES: dict[tuple[str, str], Any] = {
    ("builtins", factory.__qualname__): factory
    for factory in (list, dict, set, tuple, int, float, str, bool, bytes, frozenset)
}
_JSON_SCALARS = (str, int, float, bool, type(None))


def spec_to_data(spec: TreeSpec) -> dict[str, Any]:
    """JSON-able data for ``spec``: ``{"type", "context", "children_spec"}`` per node.

    Node types are named by their registered ``serialized_type_name``; a type
    registered without one, or a context JSON cannot hold, raises PytreeError.
    """
    if spec.is_leaf():
        return dict(_LEAF_DATA, children_spec=[])
    if isinstance(spec.context, ModuleState):
        raise PytreeError(
            f"a {_type_name(spec.type)} passed as an input cannot be saved: the program checks "
            "its non-tensor state against the example module's, which an archive cannot "
            "hold (pass the module's tensors as inputs instead)"
        )
    return {
        "type": _serialized_name(spec.type),
        "context": _dump_context(spec),
        "children_spec": [spec_to_data(child) for child in spec.children],
    }


def _serialized_name(kind: Any) -> str:
    entry = torch_pytree.SUPPORTED_SERIALIZED_TYPES.get(kind)
    if entry is None or entry.serialized_type_name == torch_pytree.NO_SERIALIZED_TYPE_NAME_FOUND:
        raise PytreeError(
            f"cannot save a spec containing {_type_name(kind)}: it has no serialized type name; "
            f"register it with serialized_type_name='<module>.{_type_name(kind)}'"
        )
    return str(entry.serialized_type_name)


def _dump_context(spec: TreeSpec) -> Any:
    kind, context = spec.type, spec.context
    if kind in _DICT_LIKE:
        keys = list(_keys(spec))
        if not all(isinstance(key, _JSON_SCALARS) for key in keys):
            raise PytreeError(
                f"cannot save {_describe(spec)}: keys must be str, int, float, bool or None"
            )
        if kind is not defaultdict:
            return json.dumps(keys)
        factory = context[0]
        return {
            "default_factory_module": getattr(factory, "__module__", None),
            "default_factory_name": getattr(factory, "__qualname__", None),
            "dict_context": keys,
        }
    if kind is namedtuple:
        return _serialized_name(context)
    entry = torch_pytree.SUPPORTED_SERIALIZED_TYPES[kind]
    if entry.to_dumpable_context is not None:
        return entry.to_dumpable_context(context)
    try:
        return json.dumps(context)
    except TypeError as error:
        raise PytreeError(
            f"cannot save the context of {_type_name(kind)} as JSON ({error}); "
            "register the type with to_dumpable_context/from_dumpable_context"
        ) from error


def spec_from_data(data: Any) -> TreeSpec:
    """The spec saved by :func:`spec_to_data`.

    Type names are looked up among registered types only; nothing is imported
    or evaluated, and an unknown name raises :class:`PytreeError`.
    """
    if not isinstance(data, dict) or set(data) != set(_LEAF_DATA):
        raise PytreeError(f"malformed saved spec node: {_short(data)}")
    if data["type"] is None:
        if data["context"] is not None or data["children_spec"]:
            raise PytreeError(f"malformed saved leaf spec: {_short(data)}")
        return LEAF
    kind = _type_from_name(data["type"])
    children = data["children_spec"]
    if not isinstance(children, list):
        raise PytreeError(f"malformed saved spec node: children_spec is not a list: {_short(data)}")
    spec = TreeSpec(
        kind, _load_context(kind, data["context"]), tuple(map(spec_from_data, children))
    )
    _check_context_fits(spec)
    return spec


def _type_from_name(name: Any) -> Any:
    kind = torch_pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE.get(name) if isinstance(name, str) else None
    if kind is None or kind not in torch_pytree.SUPPORTED_NODES:
        raise PytreeError(
            f"unknown pytree node type {name!r} in a saved spec; register it "
            f"(register_pytree_node(..., serialized_type_name={name!r})) before loading. "
            "graphlift never imports modules named in a file."
        )
    return kind


def _load_context(kind: Any, raw: Any) -> Any:
    if kind in (tuple, list):
        return _json_loads(raw)
    if kind in (dict, OrderedDict):
        return tuple(_loaded_keys(_json_loads(raw)))
    if kind is defaultdict:
        return _load_defaultdict_context(raw)
    if kind is namedtuple:
        cls = torch_pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE.get(raw) if isinstance(raw, str) else None
        if cls is None or not torch_pytree.is_namedtuple_class(cls):
            raise PytreeError(
                f"unknown namedtuple {raw!r} in a saved spec; call "
                f"register_namedtuple(cls, serialized_type_name={raw!r}) before loading"
            )
        return cls
    entry = torch_pytree.SUPPORTED_SERIALIZED_TYPES[kind]
    if entry.from_dumpable_context is not None:
        return entry.from_dumpable_context(raw)  # the registering library's own decoder
    return _json_loads(raw)


def _load_defaultdict_context(raw: Any) -> Any:
    if not isinstance(raw, dict) or "dict_context" not in raw:
        raise PytreeError(f"malformed saved defaultdict context: {_short(raw)}")
    where = (raw.get("default_factory_module"), raw.get("default_factory_name"))
    factory = _SAFE_DEFAULT_FACTORIES.get(where)  # type: ignore[arg-type]
    if factory is None:
        raise PytreeError(
            f"refusing to load a defaultdict whose default_factory is {where[0]}.{where[1]}: "
            "only builtin factories (list, dict, set, int, ...) are resolved, nothing is imported"
        )
    return (factory, tuple(_loaded_keys(raw["dict_context"])))


def _loaded_keys(keys: Any) -> list[Any]:
    if not isinstance(keys, list) or not all(isinstance(key, _JSON_SCALARS) for key in keys):
        raise PytreeError(f"malformed saved dict keys: {_short(keys)}")
    return keys


def _json_loads(raw: Any) -> Any:
    if not isinstance(raw, str):
        raise PytreeError(f"malformed saved spec context (expected a JSON string): {_short(raw)}")
    try:
        return json.loads(raw, object_hook=_refuse_enum)
    except json.JSONDecodeError as error:
        raise PytreeError(f"malformed saved spec context {_short(raw)}: {error}") from error


def _refuse_enum(obj: dict[str, Any]) -> dict[str, Any]:
    if "__enum__" in obj:
        raise PytreeError(
            f"refusing to load an enum from a saved spec (would need an import): {obj}"
        )
    return obj


def _check_context_fits(spec: TreeSpec) -> None:
    kind, count = spec.type, len(spec.children)
    if kind in _DICT_LIKE:
        expected = len(_keys(spec))
    elif kind is namedtuple:
        expected = len(spec.context._fields)
    else:
        return
    if expected != count:
        raise PytreeError(f"malformed saved spec: {_describe(spec)} has {count} children")
