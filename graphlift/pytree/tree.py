"""The spec, node types, flatten/unflatten, key paths and comparing specs
(the package docstring, ``graphlift/pytree/__init__.py``, says why and how)."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict, namedtuple
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

import torch.utils._pytree as torch_pytree
from torch.utils._pytree import GetAttrKey, MappingKey, SequenceKey

from graphlift.errors import PytreeError
from graphlift.pytree.modules import (
    ModuleState,
    current_module_classes,
    flatten_module,
    module_nodes,
    unflatten_module,
)

KeyPath = tuple[Any, ...]
"""A path to a leaf: torch's key entries (``SequenceKey``, ``MappingKey``, ``GetAttrKey``)."""

IsLeaf = Callable[[Any], bool] | None

_DICT_LIKE = (dict, OrderedDict, defaultdict)


# --- the spec -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False, slots=True)
class TreeSpec:
    """The structure of a pytree: a node type, its context and one spec per child.

    ``type`` is ``None`` for a leaf; ``collections.namedtuple`` (the function,
    as in torch) for any namedtuple, whose class is then the ``context``. The
    context of a dict-like node is the tuple of its keys (a defaultdict's is
    ``(default_factory, keys)``); a registered type's is whatever its flatten
    function returned. Specs compare like torch's (type, context, children).
    """

    type: Any
    context: Any = None
    children: tuple[TreeSpec, ...] = ()
    num_leaves: int = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.children, tuple):
            object.__setattr__(self, "children", tuple(self.children))
        count = 1 if self.type is None else sum(child.num_leaves for child in self.children)
        object.__setattr__(self, "num_leaves", count)

    def is_leaf(self) -> bool:
        return self.type is None

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, TreeSpec):
            return NotImplemented
        return (
            self.type is other.type
            and self.num_leaves == other.num_leaves
            and self.context == other.context
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((self.type, _hashable(self.context), self.children))

    def __str__(self) -> str:
        return _format_spec(self)

    def __repr__(self) -> str:
        return f"TreeSpec({self})"


LEAF = TreeSpec(None)
"""The spec of a single leaf; prints as ``*``."""

# Flattening builds specs on the ``ep.module()`` hot path; writing the slots
# directly costs a third of the dataclass __init__ (num_leaves is known there).
_new_object = object.__new__
_set_type = vars(TreeSpec)["type"].__set__
_set_context = vars(TreeSpec)["context"].__set__
_set_children = vars(TreeSpec)["children"].__set__
_set_num_leaves = vars(TreeSpec)["num_leaves"].__set__


def _make_spec(
    kind: Any, context: Any, children: tuple[TreeSpec, ...], num_leaves: int
) -> TreeSpec:
    """``TreeSpec(kind, context, children)`` for a caller that already counted the leaves."""
    spec: TreeSpec = _new_object(TreeSpec)
    _set_type(spec, kind)
    _set_context(spec, context)
    _set_children(spec, children)
    _set_num_leaves(spec, num_leaves)
    return spec


def _hashable(value: Any) -> Any:
    """A hashable stand-in for a context, equal whenever the contexts are equal."""
    try:
        hash(value)
        return value
    except TypeError:
        pass
    if isinstance(value, dict):
        return frozenset((_hashable(key), _hashable(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_hashable(item) for item in value)
    if isinstance(value, set):
        return frozenset(value)
    return type(value)  # coarse but consistent with ==


def _type_name(kind: Any) -> str:
    return str(getattr(kind, "__qualname__", kind))


def _format_spec(spec: TreeSpec) -> str:
    """Readable, deterministic text: ``((*, *), {'mask': *, 'ids': *})``."""
    kind, context = spec.type, spec.context
    if kind is None:
        return "*"
    children = [_format_spec(child) for child in spec.children]
    if kind is tuple:
        return "(" + ", ".join(children) + ("," if len(children) == 1 else "") + ")"
    if kind is list:
        return "[" + ", ".join(children) + "]"
    if kind in _DICT_LIKE:
        keys = context[1] if kind is defaultdict else context
        body = "{" + ", ".join(f"{key!r}: {child}" for key, child in zip(keys, children)) + "}"
        if kind is dict:
            return body
        if kind is defaultdict:
            return f"defaultdict({_type_name(context[0])}, {body})"
        return f"OrderedDict({body})"
    if kind is namedtuple:
        fields = ", ".join(f"{name}={child}" for name, child in zip(context._fields, children))
        return f"{_type_name(context)}({fields})"
    if isinstance(context, ModuleState):
        pairs = ", ".join(f"{name!r}: {child}" for name, child in zip(context.names, children))
        return f"{_type_name(kind)}({{{pairs}}})"
    if _is_key_list(context, len(children)):
        return (
            f"{_type_name(kind)}(" + ", ".join(f"{k}={c}" for k, c in zip(context, children)) + ")"
        )
    return f"{_type_name(kind)}(" + ", ".join(children) + ")"


def _is_key_list(context: Any, count: int) -> bool:
    """Is ``context`` a list of identifier keys (of length ``count`` unless it is -1)?"""
    return (
        isinstance(context, list | tuple)
        and count in (-1, len(context))
        and all(isinstance(key, str) and key.isidentifier() for key in context)
    )


# --- node types ---------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _is_namedtuple_class(cls: Any) -> bool:
    return torch_pytree.is_namedtuple_class(cls)


_NODES = torch_pytree.SUPPORTED_NODES  # torch mutates this dict, never rebinds it


def _node_type(cls: type) -> Any:
    """The registry key for values of ``cls``, or None if they are leaves."""
    if _is_namedtuple_class(cls):
        return namedtuple
    return cls if cls in _NODES or cls in current_module_classes() else None


def is_leaf_value(value: Any) -> bool:
    """True when ``value`` flattens to itself: not a container or registered node."""
    cls = type(value)
    return cls is not tuple and cls is not list and cls is not dict and _node_type(cls) is None


def _flatten_namedtuple(value: Any) -> tuple[list[Any], Any]:
    return list(value), type(value)


def _flatten_ordered_dict(value: Any) -> tuple[list[Any], Any]:
    return list(value.values()), tuple(value)


def _flatten_defaultdict(value: Any) -> tuple[list[Any], Any]:
    return list(value.values()), (value.default_factory, tuple(value))


# Built-in node types with our own (hashable) context; others use torch's NodeDef.
_BUILTIN_FLATTEN: dict[Any, Callable[[Any], tuple[list[Any], Any]]] = {
    namedtuple: _flatten_namedtuple,
    OrderedDict: _flatten_ordered_dict,
    defaultdict: _flatten_defaultdict,
}

_BUILTIN_UNFLATTEN: dict[Any, Callable[[list[Any], Any], Any]] = {
    tuple: lambda children, _: tuple(children),
    list: lambda children, _: children,
    dict: lambda children, keys: dict(zip(keys, children)),
    namedtuple: lambda children, cls: cls(*children),
    OrderedDict: lambda children, keys: OrderedDict(zip(keys, children)),
    defaultdict: lambda children, ctx: defaultdict(ctx[0], zip(ctx[1], children)),
}


def _flatten_node(kind: Any, value: Any) -> tuple[list[Any], Any]:
    builtin = _BUILTIN_FLATTEN.get(kind)
    if builtin is not None:
        return builtin(value)
    if kind not in torch_pytree.SUPPORTED_NODES:  # a module input (modules.py)
        return flatten_module(value)
    children, context = torch_pytree.SUPPORTED_NODES[kind].flatten_fn(value)
    return list(children), context


# --- flatten / unflatten ------------------------------------------------------------


def tree_flatten(tree: Any, is_leaf: IsLeaf = None) -> tuple[list[Any], TreeSpec]:
    """The leaves of ``tree`` in order, and its spec (``torch.utils._pytree.tree_flatten``).

    ``is_leaf(value)`` returning True makes ``value`` a leaf even if it is a node.
    """
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves, is_leaf, current_module_classes())


def _flatten(tree: Any, leaves: list[Any], is_leaf: IsLeaf, modules: frozenset[type]) -> TreeSpec:
    if is_leaf is not None and is_leaf(tree):
        leaves.append(tree)
        return LEAF
    cls: Any = type(tree)
    kind: Any
    if cls is tuple or cls is list:
        kind, context, children = cls, None, tree
    elif cls is dict:
        kind, context, children = dict, tuple(tree), tree.values()
    else:
        kind = namedtuple if _is_namedtuple_class(cls) else cls if cls in _NODES else None
        if kind is None:
            if not modules or cls not in modules:
                leaves.append(tree)
                return LEAF
            kind = cls
        children, context = _flatten_node(kind, tree)
    start = len(leaves)
    specs = tuple([_flatten(child, leaves, is_leaf, modules) for child in children])
    return _make_spec(kind, context, specs, len(leaves) - start)


def tree_unflatten(leaves: Iterable[Any], spec: TreeSpec) -> Any:
    """Rebuild the tree described by ``spec`` from its leaves (inverse of :func:`tree_flatten`)."""
    values = leaves if isinstance(leaves, list) else list(leaves)
    if len(values) != spec.num_leaves:
        raise PytreeError(
            f"cannot unflatten {len(values)} leaves into {spec}: it has {spec.num_leaves} leaves"
        )
    return _unflatten(spec, iter(values))


def _unflatten(spec: TreeSpec, leaves: Iterator[Any]) -> Any:
    kind = spec.type
    if kind is None:
        return next(leaves)
    children = [_unflatten(child, leaves) for child in spec.children]
    builtin = _BUILTIN_UNFLATTEN.get(kind)
    if builtin is not None:
        return builtin(children, spec.context)
    if isinstance(spec.context, ModuleState):
        return unflatten_module(children, spec.context)
    node = torch_pytree.SUPPORTED_NODES.get(kind)
    if node is None:
        raise PytreeError(
            f"cannot unflatten {_type_name(kind)}: it is no longer a registered pytree node type"
        )
    return node.unflatten_fn(children, spec.context)


def tree_leaves(tree: Any, is_leaf: IsLeaf = None) -> list[Any]:
    """The leaves of ``tree`` in flattening order."""
    return tree_flatten(tree, is_leaf)[0]


def tree_map(fn: Callable[[Any], Any], tree: Any, is_leaf: IsLeaf = None) -> Any:
    """A tree of the same structure with ``fn`` applied to every leaf."""
    leaves, spec = tree_flatten(tree, is_leaf)
    return tree_unflatten([fn(leaf) for leaf in leaves], spec)


def flatten_matching(tree: Any, spec: TreeSpec, *, root: str = "inputs") -> list[Any]:
    """The leaves of ``tree``, which must have structure ``spec``.

    Raises :class:`PytreeError` naming the first differing path (prefixed with
    ``root``) otherwise. This is the check ``ep.module()`` runs on every call.
    A module input of a class ``spec`` flattens as a module is matched as one.
    """
    leaves, actual = tree_flatten(tree)
    if actual != spec:
        classes = module_classes_of(spec)
        if classes:
            with module_nodes(classes):
                return flatten_matching(tree, spec, root=root)
    if actual != spec:  # dicts match by key, as in a call: {"b":..., "a":...} fits {"a", "b"}
        leaves, actual = tree_flatten(_in_key_order(tree, spec))
    if actual != spec:
        path, problem = _first_mismatch(spec, actual, ()) or ((), f"expected {spec}, got {actual}")
        where = f"{root}{keystr(path)}"
        raise PytreeError(
            f"{where}: {problem} (the structure differs from the exported program's)", path=where
        )
    return leaves


def module_classes_of(spec: TreeSpec) -> frozenset[type]:
    """The classes of the module nodes in ``spec`` not yet flattened as nodes."""
    found: set[type] = set()
    stack = [spec]
    while stack:
        node = stack.pop()
        if isinstance(node.context, ModuleState):
            found.add(node.type)
        stack.extend(node.children)
    return frozenset(found - current_module_classes())


def _in_key_order(tree: Any, spec: TreeSpec) -> Any:
    """``tree`` with every plain dict rebuilt in ``spec``'s key order (same keys only)."""
    if spec.type is dict and type(tree) is dict and set(tree) == set(spec.context):
        return {
            key: _in_key_order(tree[key], child) for key, child in zip(spec.context, spec.children)
        }
    if spec.type in (tuple, list) and type(tree) is spec.type and len(tree) == len(spec.children):
        return spec.type(_in_key_order(item, child) for item, child in zip(tree, spec.children))
    return tree


# --- key paths ----------------------------------------------------------------------


def keystr(path: KeyPath) -> str:
    """``(SequenceKey(0), MappingKey('mask'), GetAttrKey('logits'))`` -> ``[0]['mask'].logits``."""
    return "".join(str(key) for key in path)


def tree_flatten_with_path(
    tree: Any, is_leaf: IsLeaf = None
) -> tuple[list[tuple[KeyPath, Any]], TreeSpec]:
    """Like :func:`tree_flatten`, with each leaf's key path.

    Registered types without a ``flatten_with_keys_fn`` get positional keys
    (``[i]``) where torch raises ValueError.
    """
    pairs: list[tuple[KeyPath, Any]] = []
    _collect_paths(tree, (), pairs, is_leaf)
    return pairs, tree_flatten(tree, is_leaf)[1]


def _collect_paths(
    tree: Any, path: KeyPath, pairs: list[tuple[KeyPath, Any]], is_leaf: IsLeaf
) -> None:
    kind = None if is_leaf is not None and is_leaf(tree) else _node_type(type(tree))
    if kind is None:
        pairs.append((path, tree))
        return
    for key, child in _keyed_children(kind, tree):
        _collect_paths(child, (*path, key), pairs, is_leaf)


def _keyed_children(kind: Any, tree: Any) -> list[tuple[Any, Any]]:
    if kind is tuple or kind is list:
        return [(SequenceKey(index), child) for index, child in enumerate(tree)]
    if kind in _DICT_LIKE:
        return [(MappingKey(key), child) for key, child in tree.items()]
    if kind is namedtuple:
        return [(GetAttrKey(name), getattr(tree, name)) for name in tree._fields]
    if kind not in torch_pytree.SUPPORTED_NODES:  # a module input
        leaves, state = flatten_module(tree)
        return [(MappingKey(name), leaf) for name, leaf in zip(state.names, leaves)]
    node = torch_pytree.SUPPORTED_NODES[kind]
    if node.flatten_with_keys_fn is not None:
        return list(node.flatten_with_keys_fn(tree)[0])
    children, _ = node.flatten_fn(tree)
    return [(SequenceKey(index), child) for index, child in enumerate(children)]


def _child_keys(spec: TreeSpec) -> list[Any]:
    """Key entries of the children of ``spec``, recovered from the spec alone."""
    kind, context = spec.type, spec.context
    if kind in (dict, OrderedDict):
        return [MappingKey(key) for key in context]
    if kind is defaultdict:
        return [MappingKey(key) for key in context[1]]
    if kind is namedtuple:
        return [GetAttrKey(name) for name in context._fields]
    if isinstance(context, ModuleState):
        return [MappingKey(name) for name in context.names]
    positional: list[Any] = [SequenceKey(index) for index in range(len(spec.children))]
    if kind in (tuple, list):
        return positional
    return _registered_child_keys(spec) or positional


def _registered_child_keys(spec: TreeSpec) -> list[Any] | None:
    """Rebuild one level with placeholder children and ask its flatten_with_keys_fn."""
    node = torch_pytree.SUPPORTED_NODES.get(spec.type)
    if node is None or node.flatten_with_keys_fn is None:
        return None
    placeholders = [object() for _ in spec.children]
    try:
        keyed, _ = node.flatten_with_keys_fn(node.unflatten_fn(placeholders, spec.context))
        key_of = {id(child): key for key, child in keyed}
        return [key_of[id(placeholder)] for placeholder in placeholders]
    except Exception:  # any failure just means positional keys
        return None


# --- comparing specs ----------------------------------------------------------------


def describe_mismatch(expected: TreeSpec, actual: TreeSpec, *, root: str = "inputs") -> str | None:
    """None if the specs are equal, else where and how ``actual`` first differs.

    >>> describe_mismatch(tree_flatten({"a": 1})[1], tree_flatten({})[1], root="kwargs")
    "kwargs: missing key 'a'"
    """
    found = _first_mismatch(expected, actual, ())
    if found is None:
        return None
    path, problem = found
    return f"{root}{keystr(path)}: {problem}"


def _first_mismatch(
    expected: TreeSpec, actual: TreeSpec, path: KeyPath
) -> tuple[KeyPath, str] | None:
    if expected == actual:
        return None
    problem = _node_difference(expected, actual)
    if problem is not None:
        return path, problem
    for key, want, got in zip(_child_keys(expected), expected.children, actual.children):
        found = _first_mismatch(want, got, (*path, key))
        if found is not None:
            return found
    return path, f"expected {expected}, got {actual}"  # unequal, yet no node differs


def _node_difference(expected: TreeSpec, actual: TreeSpec) -> str | None:
    """How the top nodes differ (type, keys, length, context), or None if they agree."""
    plain = f"expected {_describe(expected)}, got {_describe(actual)}"
    if expected.type is not actual.type:
        return plain
    kind = expected.type
    if kind in _DICT_LIKE:
        return _key_difference(_keys(expected), _keys(actual)) or (
            None if expected.context == actual.context else plain
        )
    if kind is namedtuple and expected.context is not actual.context:
        return plain
    if isinstance(expected.context, ModuleState) and isinstance(actual.context, ModuleState):
        return expected.context.difference(actual.context)
    if kind in (tuple, list, namedtuple):
        return None if len(expected.children) == len(actual.children) else plain
    if expected.context == actual.context and len(expected.children) == len(actual.children):
        return None
    if _is_key_list(expected.context, -1) and _is_key_list(actual.context, -1):
        return _key_difference(tuple(expected.context), tuple(actual.context)) or plain
    return (
        f"expected {_describe(expected)} with context {_short(expected.context)}, "
        f"got context {_short(actual.context)}"
    )


def _keys(spec: TreeSpec) -> tuple[Any, ...]:
    return tuple(spec.context[1] if spec.type is defaultdict else spec.context)


def _key_difference(expected: tuple[Any, ...], actual: tuple[Any, ...]) -> str | None:
    missing = [key for key in expected if key not in actual]
    extra = [key for key in actual if key not in expected]
    if missing:
        return f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
    if extra:
        return f"unexpected key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}"
    if expected != actual:
        return f"keys in a different order: expected {list(expected)}, got {list(actual)}"
    return None


def _describe(spec: TreeSpec) -> str:
    """``a leaf``, ``a tuple of 3 items``, ``a dict with keys ['a']``, ``a Point (namedtuple)``."""
    kind, count = spec.type, len(spec.children)
    if kind is None:
        return "a leaf"
    if kind is tuple or kind is list:
        return f"a {kind.__name__} of {count} item{'' if count == 1 else 's'}"
    if kind in _DICT_LIKE:
        article = "a" if kind is dict else "an" if kind is OrderedDict else "a"
        return f"{article} {kind.__name__} with keys {list(_keys(spec))}"
    if kind is namedtuple:
        return f"a {_type_name(spec.context)} (namedtuple)"
    return f"a {_type_name(kind)}"


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
