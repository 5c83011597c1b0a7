"""The public names fx users reach for exist, with the same kind of object.

The first table is the API graphlift promises (its brief); the second lists names
outside it that fx code in the wild calls often (``gm.graph.eliminate_dead_code()``
after an edit, ``graph.output_node()``, ``node.is_impure()``). Each row checks the
name on torch.fx too, so the table cannot list something fx does not have.
"""

from __future__ import annotations

import importlib

import pytest
import torch.fx

from .subject import IS_ORACLE

PROMISED = {
    "": [
        "symbolic_trace",
        "Graph",
        "Node",
        "GraphModule",
        "Interpreter",
        "Transformer",
        "Tracer",
        "Proxy",
        "wrap",
        "PH",
        "ProxyableClassMeta",
    ],
    "Graph": [
        "placeholder",
        "get_attr",
        "call_function",
        "call_method",
        "call_module",
        "output",
        "nodes",
        "erase_node",
        "inserting_before",
        "inserting_after",
        "lint",
        "python_code",
    ],
    "Node": ["replace_all_uses_with"],
    "GraphModule": ["code", "graph", "recompile"],
    "Tracer": [
        "is_leaf_module",
        "call_module",
        "create_proxy",
        "create_node",
        "create_arg",
        "getattr",
        "trace",
    ],
    "Interpreter": ["run", "run_node", "fetch_args_kwargs_from_env", "fetch_attr"],
}

COMMON_EXTRAS = {
    "Graph": ["eliminate_dead_code", "output_node", "find_nodes", "node_copy", "create_node"],
    "Node": [
        "all_input_nodes",
        "replace_input_with",
        "update_arg",
        "prepend",
        "append",
        "format_node",
        "is_impure",
    ],
    "GraphModule": ["print_readable", "add_submodule", "delete_all_unused_submodules"],
    "Tracer": ["path_of_module", "to_bool", "iter", "keys"],
}


def rows(table):
    return [(owner, name) for owner, names in table.items() for name in names]


def resolve(root, owner: str, name: str) -> bool:
    holder = getattr(root, owner) if owner else root
    return hasattr(holder, name)


def subject_root():
    return torch.fx if IS_ORACLE else importlib.import_module("graphlift.fx")


@pytest.mark.parametrize("owner, name", rows(PROMISED), ids=lambda v: v or "fx")
def test_promised_names_exist(subject, owner, name):
    assert resolve(torch.fx, owner, name)
    assert resolve(subject_root(), owner, name), f"{owner}.{name}".lstrip(".")


@pytest.mark.parametrize("owner, name", rows(COMMON_EXTRAS), ids=lambda v: v or "fx")
def test_commonly_used_extras_exist(subject, owner, name):
    assert resolve(torch.fx, owner, name)
    assert resolve(subject_root(), owner, name), f"{owner}.{name}"
