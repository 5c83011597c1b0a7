"""Which nodes have effects beyond their value: the facts DCE and CSE rely on.

A node *has a side effect* if erasing it could change what the program does
even when nothing uses its value: it mutates an input or state, prints,
asserts, or draws from a random generator (dropping an unused ``torch.rand``
would change every later random number). A node is *pure* if, moreover, two
calls with equal arguments are interchangeable.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from graphlift.ir.node import Node


# Functions called for their effect, or that consume randomness.
SIDE_EFFECT_FUNCTIONS: set[Callable[..., Any]] = {
    builtins.print, torch._assert, operator.setitem, operator.delitem,
    operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
    operator.imod, operator.ipow, operator.imatmul, operator.iand, operator.ior,
    operator.ixor, operator.ilshift, operator.irshift,
    torch.manual_seed, torch.rand, torch.randn, torch.randint, torch.randperm,
    torch.rand_like, torch.randn_like, torch.randint_like, torch.bernoulli,
    torch.multinomial, torch.normal, torch.poisson, torch.dropout,
    torch.nn.functional.dropout, torch.nn.functional.dropout1d, torch.nn.functional.dropout2d,
    torch.nn.functional.dropout3d, torch.nn.functional.alpha_dropout,
    torch.nn.functional.feature_alpha_dropout, torch.nn.functional.rrelu,
    torch.nn.functional.gumbel_softmax,
}  # fmt: skip

# Profiler ranges: an exit pairs with its enter; neither may be erased (torch.fx keeps them too).
SIDE_EFFECT_FUNCTIONS |= {
    op
    for name in ("_record_function_enter", "_record_function_enter_new", "_record_function_exit")
    for op in (getattr(torch.ops.profiler, name), getattr(torch.ops.profiler, name).default)
}

# Tensor methods that consume randomness without a trailing underscore.
RANDOM_METHODS = {"bernoulli", "multinomial"}

# Functions with no effect whose results depend only on their arguments.
PURE_MODULES = (operator, math)


def register_side_effect(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Declare that ``fn`` must never be erased or merged (usable as a decorator)."""
    SIDE_EFFECT_FUNCTIONS.add(fn)
    return fn


def has_side_effect(node: Node) -> bool:
    if node.op in ("placeholder", "output"):
        return True
    if node.op == "get_attr":
        return False
    if node.op == "call_module":
        return _module_has_side_effect(node)
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") or name in RANDOM_METHODS or "out" in node.kwargs
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        schema = target._schema
        return (
            schema.is_mutable
            or torch.Tag.nondeterministic_seeded in target.tags
            or target in SIDE_EFFECT_FUNCTIONS  # aten._assert_scalar
        )
    return target in SIDE_EFFECT_FUNCTIONS or "out" in node.kwargs


def _module_has_side_effect(node: Node) -> bool:
    """Modules are trusted to be pure unless they may update state (buffers in
    training mode, e.g. BatchNorm's running stats) or draw random numbers."""
    root = node.graph.owning_module
    if root is None:
        return True
    module: Any = root
    for atom in str(node.target).split("."):
        module = getattr(module, atom, None)
    if not isinstance(module, torch.nn.Module):
        return True
    if isinstance(module, torch.nn.modules.dropout._DropoutNd | torch.nn.RReLU):
        return module.training
    return module.training and any(True for _ in module.buffers())


def is_pure(node: Node) -> bool:
    """True when two nodes with equal op, target and arguments are interchangeable."""
    if has_side_effect(node) or node.op == "call_module":
        return False
    if node.op != "call_function":
        return True  # get_attr, or a non-mutating, non-random method call
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return True  # mutable and random overloads were excluded above
    return getattr(target, "__module__", None) in (
        "_operator",
        "math",
        "torch",
        "torch.nn.functional",
    ) or (target is builtins.getattr)


def may_mutate(node: Node) -> bool:
    """True when the node may change the value of another node in place."""
    if node.op == "call_method":
        return str(node.target).endswith("_") or "out" in node.kwargs
    if node.op != "call_function":
        return False
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return bool(target._schema.is_mutable)
    in_place_operator = (
        target in SIDE_EFFECT_FUNCTIONS and getattr(target, "__module__", "") == "_operator"
    )
    return in_place_operator or "out" in node.kwargs
