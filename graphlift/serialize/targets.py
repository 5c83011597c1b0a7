"""The names of call targets in an archive, and their only way back: lookups.

Three kinds of target, each with a stable name:

- ATen and custom ops (``torch.library``, any namespace): ``"aten::add.Tensor"``,
  ``"mylib::scale.default"`` -- the schema's qualified name and the overload.
  Loading resolves them with ``getattr`` on ``torch.ops`` only; an op that is
  not registered in the loading process raises ArchiveError naming it.
- higher-order operators (control flow): ``"higher_order::cond"``, resolved
  the same way on ``torch.ops.higher_order``.
- leaf functions (``graphlift.leaf_function(name=...)``): ``"graphlift.leaf:<name>"``,
  looked up in the process's registry of named leaf functions only.
- Python functions from :data:`PYTHON_TARGETS`, one fixed table (arithmetic on
  symbolic sizes, tuple access). Nothing outside the table can be named, so an
  archive can never make the loader import or call an arbitrary function.

Extending what graphs may call is one new entry in :data:`PYTHON_TARGETS`;
it is not a schema change (old archives never name the new target).
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any

import torch

from graphlift.errors import ArchiveError, SerializationError
from graphlift.trace import control_flow
from graphlift.trace.functional_ops import auto_functionalized
from graphlift.trace.leaf import LEAF_FUNCTIONS, LeafFunction

PYTHON_TARGETS: dict[str, Any] = {
    "operator.getitem": operator.getitem,
    "operator.add": operator.add,
    "operator.sub": operator.sub,
    "operator.mul": operator.mul,
    "operator.floordiv": operator.floordiv,
    "operator.truediv": operator.truediv,
    "operator.mod": operator.mod,
    "operator.pow": operator.pow,
    "operator.neg": operator.neg,
    "operator.eq": operator.eq,
    "operator.ne": operator.ne,
    "operator.lt": operator.lt,
    "operator.le": operator.le,
    "operator.gt": operator.gt,
    "operator.ge": operator.ge,
    "operator.and_": operator.and_,
    "operator.or_": operator.or_,
    "torch.sym_max": torch.sym_max,
    "torch.sym_min": torch.sym_min,
    "torch.sym_float": torch.sym_float,
    "torch.sym_int": torch.sym_int,
    "torch.sym_not": torch.sym_not,
    "torch.sym_ite": torch.sym_ite,
    "math.trunc": math.trunc,
    "math.floor": math.floor,
    "math.ceil": math.ceil,
    "builtins.int": int,
    "builtins.round": round,  # round() of a size ratio  # an unbacked bool read as 0/1
    # graphlift's own graph callables: control flow over subgraphs, functionalized custom ops
    "graphlift.cond": control_flow.cond,
    "graphlift.map_impl": control_flow.map_impl,
    "graphlift.while_loop": control_flow.while_loop,
    "graphlift.scan": control_flow.scan,
    "graphlift.invoke_subgraph": control_flow.invoke_subgraph,  # shared block bodies (issue 18)
    "graphlift.auto_functionalized": auto_functionalized,
}
_NAMES_BY_ID = {id(target): name for name, target in PYTHON_TARGETS.items()}
LEAF_PREFIX = "graphlift.leaf:"
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_OP_NAME = re.compile(rf"({_IDENTIFIER})::({_IDENTIFIER})(?:\.({_IDENTIFIER}))?$")


def target_name(target: Any) -> str:
    """The archive name of a call_function target."""
    if isinstance(target, torch._ops.OpOverload):
        return f"{target._schema.name}.{target._overloadname}"
    if isinstance(target, torch._ops.HigherOrderOperator):
        return f"higher_order::{target.name()}"  # type: ignore[no-untyped-call]  # torch's is unannotated
    if isinstance(target, LeafFunction):
        return _leaf_name(target)
    name = _NAMES_BY_ID.get(id(target))
    if name is None:
        raise SerializationError(
            f"cannot save a graph that calls {target!r}: archives name ATen/custom ops, "
            f"higher-order ops and the Python targets {sorted(PYTHON_TARGETS)} only"
        )
    return name


def resolve_target(name: str, path: str) -> Any:
    """The callable an archive names, found by lookup only (never import or eval)."""
    if name in PYTHON_TARGETS:
        return PYTHON_TARGETS[name]
    if name.startswith(LEAF_PREFIX):
        return _lookup_leaf(name[len(LEAF_PREFIX) :], path)
    match = _OP_NAME.match(name)
    if match is None:
        raise ArchiveError(f"unknown call target {name[:80]!r}", path=path)
    namespace, op_name, overload = match.groups()
    if namespace == "higher_order":
        return _lookup_higher_order(op_name, name, path)
    try:
        packet = getattr(getattr(torch.ops, namespace), op_name)
        if not isinstance(packet, torch._ops.OpOverloadPacket):
            raise AttributeError(op_name)
        op = getattr(packet, overload or "default")
    except (AttributeError, RuntimeError):
        raise ArchiveError(
            f"the program calls the op {name!r}, which is not registered in this process; "
            f"import or load the library that defines {namespace}::{op_name} "
            "(torch.library / torch.ops.load_library) before graphlift.load",
            path=path,
        ) from None
    if not isinstance(op, torch._ops.OpOverload):
        raise ArchiveError(f"{name!r} does not name an op overload", path=path)
    return op


def _lookup_higher_order(op_name: str, name: str, path: str) -> Any:
    try:
        op = getattr(torch.ops.higher_order, op_name)
    except (AttributeError, RuntimeError):
        op = None
    if not isinstance(op, torch._ops.HigherOrderOperator):
        raise ArchiveError(f"unknown higher-order operator {name!r}", path=path)
    return op


def _leaf_name(leaf: LeafFunction) -> str:
    if leaf.name is None or LEAF_FUNCTIONS.get(leaf.name) is not leaf:
        raise SerializationError(
            f"cannot save a graph that calls the leaf function {leaf!r}: it has no registered "
            "name, so a loading process could not find it. Declare it with "
            "@graphlift.leaf_function(name='yourpackage.function_name')"
        )
    return LEAF_PREFIX + leaf.name


def _lookup_leaf(name: str, path: str) -> LeafFunction:
    leaf = LEAF_FUNCTIONS.get(name)
    if leaf is None:
        raise ArchiveError(
            f"the program calls the leaf function {name[:80]!r}, which is not registered in "
            "this process; import the module that declares it with "
            "@graphlift.leaf_function(name=...) before graphlift.load",
            path=path,
        )
    return leaf
