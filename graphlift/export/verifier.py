"""The verifier of exported graphs: the invariants every exported program keeps.

Each failure raises VerificationError naming the node and the user's source
line. It runs at the end of every export.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

import torch

from graphlift.errors import VerificationError
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.trace import control_flow

if TYPE_CHECKING:
    from graphlift.export.program import ExportedProgram

# Non-ATen targets an exported graph may call: tuple access, and arithmetic on
# symbolic sizes (``sym_size(x, 0) * 2``).
ALLOWED_PYTHON_TARGETS = {
    operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
    operator.mod, operator.pow, operator.neg, torch.sym_max, torch.sym_min,
}  # fmt: skip

# --- data-dependent values and control flow (issue #8) ---
# Comparisons and logic over symbolic values feed runtime asserts
# (``aten._assert_scalar(u0 >= 0, ...)``); ``int`` reads an unbacked bool as 0/1.
ALLOWED_PYTHON_TARGETS |= {
    operator.ge, operator.gt, operator.le, operator.lt, operator.eq, operator.ne,
    operator.and_, operator.or_, torch.sym_not, torch.sym_float, int,
    control_flow.cond, control_flow.map_impl, control_flow.while_loop, control_flow.scan,
}  # fmt: skip


def _is_subgraph(node: Node) -> bool:
    """A ``get_attr`` of a control-flow body (``true_graph_0``): a submodule
    of the program's graph module, passed to a control-flow call."""
    root = node.graph.owning_module
    body = getattr(root, str(node.target), None) if root is not None else None
    return isinstance(body, GraphModule) and all(
        user.target in CONTROL_FLOW_TARGETS for user in node.users
    )


CONTROL_FLOW_TARGETS = {control_flow.cond, control_flow.map_impl, control_flow.while_loop,
                        control_flow.scan}  # fmt: skip


def verify(program: ExportedProgram) -> None:
    graph = program.graph
    graph.lint()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    expected = [spec.arg.name for spec in program.graph_signature.input_specs]
    if [n.name for n in placeholders] != expected:
        raise VerificationError(
            f"placeholders {[n.name for n in placeholders]} are not in signature order {expected}"
        )
    for node in graph.nodes:
        _verify_node(node)
    outputs = next(reversed(graph.nodes)).args[0]
    if len(outputs) != len(program.graph_signature.output_specs):
        raise VerificationError(
            f"the graph returns {len(outputs)} values but the signature describes "
            f"{len(program.graph_signature.output_specs)}"
        )


def _verify_node(node: Node) -> None:
    def fail(problem: str) -> VerificationError:
        where = node.meta.get("stack_trace")
        return VerificationError(f"node {node.format_node()} {problem}", where=where)

    if node.op == "get_attr" and _is_subgraph(node):
        return
    if node.op in ("call_method", "call_module", "get_attr"):
        raise fail(f"uses opcode {node.op}, which exported graphs do not contain")
    if node.op == "call_function":
        target = node.target
        if isinstance(target, torch._ops.OpOverload):
            if target._schema.is_mutable:
                raise fail("is an in-place or out= op; exported graphs are functional")
        elif target not in ALLOWED_PYTHON_TARGETS:
            raise fail("calls a Python function; exported graphs call ATen ops only")
    if node.op != "output" and "val" not in node.meta:
        raise fail('has no meta["val"]')
