"""Nested inputs and outputs as flat leaves plus a :class:`TreeSpec`, and back.

This module owns the program boundary's view of structure: ``export()`` flattens
the user's ``(args, kwargs)`` into leaves (tensors, ints, floats, bools, strs,
None) and records a :class:`TreeSpec`; ``ep.module()`` flattens the caller's
inputs, checks the structure against the recorded spec
(:func:`describe_mismatch` says where it differs), runs the flat graph and
rebuilds the outputs with :func:`tree_unflatten`. Specs are saved in archives as
plain data (:func:`spec_to_data`, :func:`spec_from_data`).

Behaviour follows ``torch.utils._pytree`` (tests compare against it): tuple,
list, dict (insertion order), OrderedDict, defaultdict and every namedtuple are
nodes; ``None`` is a *leaf*, as in torch 2.13; every other type is a leaf unless
registered in torch's registry, ``torch.utils._pytree.SUPPORTED_NODES``. That
registry is the only one: transformers registers its ``ModelOutput`` classes
there, users register their types there (or via :func:`register_dataclass`), and
we consult it at every flatten, so late registrations are honoured.

Why a re-implementation rather than wrapping torch's TreeSpec: ``ep.module()``
flattens on every call. For a typical input, ``((t, t, t), {"mask": t, "ids": t})``
on the shared 2-core machine (timeit, best of 9; method in docs/pytree.md):

=====================  ==========  ==========
                       torch 2.13  graphlift
=====================  ==========  ==========
flatten                  8.3 µs      3.3 µs
unflatten                3.1 µs      1.7 µs
spec == spec (fresh)     1.2 µs      0.4 µs
flatten_matching            -        3.9 µs
=====================  ==========  ==========

A module passed as an input is a node of its parameters and buffers, its
non-tensor state part of the spec (``modules.py``); which module classes are
nodes is scoped (``module_nodes``), so nothing changes for other programs.

tuple, list and dict take a fast path; the registry is looked up only for other
types. Contexts of dict-like nodes are tuples (torch uses lists) so a spec is
hashable; :func:`to_torch_spec` / :func:`from_torch_spec` convert.
"""

from torch.utils._pytree import GetAttrKey, MappingKey, SequenceKey

from graphlift.pytree.data import spec_from_data, spec_to_data
from graphlift.pytree.modules import module_input_classes, module_nodes
from graphlift.pytree.registry import (
    from_torch_spec,
    register_dataclass,
    register_namedtuple,
    to_torch_spec,
)
from graphlift.pytree.tree import (
    LEAF,
    IsLeaf,
    KeyPath,
    TreeSpec,
    describe_mismatch,
    flatten_matching,
    is_leaf_value,
    keystr,
    module_classes_of,
    tree_flatten,
    tree_flatten_with_path,
    tree_leaves,
    tree_map,
    tree_unflatten,
)

__all__ = [
    "LEAF",
    "GetAttrKey",
    "IsLeaf",
    "KeyPath",
    "MappingKey",
    "SequenceKey",
    "TreeSpec",
    "describe_mismatch",
    "flatten_matching",
    "from_torch_spec",
    "is_leaf_value",
    "keystr",
    "module_classes_of",
    "module_input_classes",
    "module_nodes",
    "register_dataclass",
    "register_namedtuple",
    "spec_from_data",
    "spec_to_data",
    "to_torch_spec",
    "tree_flatten",
    "tree_flatten_with_path",
    "tree_leaves",
    "tree_map",
    "tree_unflatten",
]
