"""Shared helpers for the differential tests: build, trace, run and compare."""

from __future__ import annotations

import copy
from collections import Counter

import torch
from torch import nn
from torch.fx.immutable_collections import immutable_dict, immutable_list
from torch.utils._pytree import tree_structure

from .corpus import DELIBERATE_TARGET_DIFFERENCES, Case

MODULE_SEED = 0
TRACE_SEED = 1  # tracing is symbolic, but seed anyway so inputs below are never the same
FRESH_INPUT_SEED = 2024
RUN_SEED = 7  # every run starts from the same RNG state, so dropout agrees
CALL_OPS = ("call_function", "call_method", "call_module")


def build_module(case: Case) -> nn.Module:
    torch.manual_seed(MODULE_SEED)
    return case.make_module()


def fresh_inputs(case: Case, seed: int = FRESH_INPUT_SEED) -> tuple:
    torch.manual_seed(seed)
    return case.make_inputs()


def trace(lib, case: Case, module: nn.Module, *, retrace: bool = False):
    """``lib.symbolic_trace``, or a Tracer subclass when the case has custom leaves.

    ``retrace`` traces a GraphModule again: its forward already holds the
    specializations, so no concrete_args are given.
    """
    torch.manual_seed(TRACE_SEED)
    concrete_args = None if retrace else case.concrete_args
    if not case.leaf_modules:
        return lib.symbolic_trace(module, concrete_args=concrete_args)
    leaves = case.leaf_modules

    class LeafTracer(lib.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            return isinstance(m, leaves) or super().is_leaf_module(m, module_qualified_name)

    tracer = LeafTracer()
    graph = tracer.trace(module, concrete_args=concrete_args)
    return lib.GraphModule(tracer.root, graph)


def run(fn, inputs: tuple):
    """Call ``fn`` on a private copy of ``inputs``; return (output, inputs after the call)."""
    inputs = copy.deepcopy(inputs)
    torch.manual_seed(RUN_SEED)
    with torch.no_grad():
        return fn(*inputs), inputs


def assert_same_result(actual, expected) -> None:
    assert tree_structure(actual) == tree_structure(expected)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def plain_containers(value):
    """fx's Interpreter returns its immutable_list / immutable_dict; compare as list / dict."""
    if isinstance(value, immutable_list):
        return [plain_containers(item) for item in value]
    if isinstance(value, immutable_dict):
        return {key: plain_containers(item) for key, item in value.items()}
    if isinstance(value, tuple):
        items = [plain_containers(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [plain_containers(item) for item in value]
    if isinstance(value, dict):
        return {key: plain_containers(item) for key, item in value.items()}
    return value


def call_targets(gm) -> Counter:
    """Multiset of (op, target) over call nodes, with deliberate differences normalized."""
    targets = Counter()
    for node in gm.graph.nodes:
        if node.op in CALL_OPS:
            target = node.target
            if node.op == "call_function":
                target = DELIBERATE_TARGET_DIFFERENCES.get(target, target)
                if getattr(target, "__module__", "").startswith(("torch.fx", "graphlift")):
                    target = ("library helper", target.__name__)  # e.g. _assert_is_none
            targets[node.op, target] += 1
    return targets
