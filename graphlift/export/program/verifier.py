"""The verifier of exported programs: the invariants every exported program keeps.

It runs at the end of ``export()`` (IR level ``"export"``) and of
``run_decompositions()`` (``"core"`` with the default table). Checks, each a
``VerificationError`` naming the node and the user's source line:

- the graph is well formed (``Graph.lint``) and uses only ``placeholder``,
  ``call_function`` and ``output``;
- every call is allowed at the IR level: at ``"export"`` any functional ATen
  op; at ``"core"`` only ops tagged ``torch.Tag.core`` (torch's core ATen
  opset), ATen ops the default table cannot reduce (``histc``, ``unfold``:
  torch.export's core programs keep them too) and the size/assert ops in
  ``CORE_EXTRA_OPS``; at both, custom ops
  (other namespaces: preserved by design), higher-order operators and the
  Python targets in ``ALLOWED_PYTHON_TARGETS``;
- functional only: no op whose schema writes to an argument;
- ``meta["val"]`` on every node but the output;
- placeholders in signature order, one output per output spec;
- every free symbol in a ``meta["val"]`` is bound before its use (by an input's
  size, or by the data-dependent op that produced it) and has a range in
  ``range_constraints``;
- the same node and symbol checks inside every control-flow body (recursively),
  whose placeholders bind its symbols; errors name the body (``true_graph_0``,
  ``body_graph_0.true_graph_0`` when nested).

To allow a new kind of node, extend ``ALLOWED_PYTHON_TARGETS`` (Python
callables) or ``CORE_EXTRA_OPS`` (ATen ops); nothing else needs to change.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

import torch

from graphlift.decompose.table import is_irreducible
from graphlift.errors import VerificationError
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.symbolic.expr import as_symbol, free_symbols
from graphlift.trace import control_flow
from graphlift.trace.control_flow import CONTROL_FLOW_TARGETS
from graphlift.trace.functional_ops import GRAPH_CALLABLES
from graphlift.trace.leaf import LeafFunction

if TYPE_CHECKING:
    from graphlift.export.program.exported_program import ExportedProgram

IRLevel = Literal["export", "core"]
aten = torch.ops.aten

# Non-ATen targets an exported graph may call: tuple access, and arithmetic and
# comparisons on symbolic sizes (``sym_size(x, 0) * 2``).
ALLOWED_PYTHON_TARGETS: set[Any] = {
    operator.getitem, operator.add, operator.sub, operator.mul, operator.floordiv,
    operator.truediv, operator.mod, operator.pow, operator.neg, operator.eq, operator.ne,
    operator.lt, operator.le, operator.gt, operator.ge, operator.and_, operator.or_,
    torch.sym_max, torch.sym_min, torch.sym_not, torch.sym_float, torch.sym_int,
    torch.sym_ite, math.ceil, math.floor, math.trunc, round,
    *GRAPH_CALLABLES,  # functionalized custom ops (trace/functional_ops.py)
}  # fmt: skip

# ATen ops a core-ATen graph may call besides those tagged core: reading sizes,
# and the checks data-dependent programs carry (torch's core IR allows the same).
CORE_EXTRA_OPS: set[Any] = {
    aten.sym_size.int, aten.sym_stride.int, aten.sym_numel.default,
    aten.sym_storage_offset.default, aten._assert_scalar.default, aten._assert_async.msg,
    aten.sym_constrain_range.default, aten.sym_constrain_range_for_size.default,
    aten._local_scalar_dense.default,
    # listed in the default table, yet its decomposition records clamp_min.Tensor again
    aten.clamp_min.Tensor,
}  # fmt: skip
# Besides these, ops the default table cannot reduce (``decompose.table.is_irreducible``:
# ``histc``, ``unfold``, ``_trilinear``) stay in core programs, as in torch.export's.

# --- data-dependent values and control flow (issue #8) ---
# Comparisons and logic over symbolic values feed runtime asserts
# (``aten._assert_scalar(u0 >= 0, ...)``); ``int`` reads an unbacked bool as 0/1.
ALLOWED_PYTHON_TARGETS |= {
    int, control_flow.cond, control_flow.map_impl, control_flow.while_loop, control_flow.scan,
    control_flow.invoke_subgraph,  # a shared body of repeated blocks (issue 18)
}  # fmt: skip


def _is_subgraph(node: Node) -> bool:
    """A ``get_attr`` of a control-flow body (``true_graph_0``): a submodule
    of the program's graph module, passed to a control-flow call."""
    root = node.graph.owning_module
    body = getattr(root, str(node.target), None) if root is not None else None
    return isinstance(body, GraphModule) and all(
        user.target in CONTROL_FLOW_TARGETS for user in node.users
    )


_BUILTIN_NAMESPACES = {"aten", "prim", "prims"}


class Verifier:
    """torch.export's verifier interface: ``Verifier().check(ep)`` verifies a program."""

    dialect = "ATEN"

    def check(self, program: ExportedProgram) -> None:
        verify(program)


def verify(program: ExportedProgram, level: IRLevel = "export") -> None:
    """Raise VerificationError if ``program`` breaks an invariant of IR ``level``."""
    graph = program.graph
    graph.lint()
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    expected = [spec.arg.name for spec in program.graph_signature.input_specs]
    if [n.name for n in placeholders] != expected:
        raise VerificationError(
            f"placeholders {[n.name for n in placeholders]} are not in signature order {expected}"
        )
    symbols = _SymbolCheck(program)
    for node in graph.nodes:
        _verify_node(node, level)
        symbols.check(node)
    outputs = next(reversed(graph.nodes)).args[0]
    if len(outputs) != len(program.graph_signature.output_specs):
        raise VerificationError(
            f"the graph returns {len(outputs)} values but the signature describes "
            f"{len(program.graph_signature.output_specs)}"
        )
    _verify_bodies(program, graph, level, prefix="")


def _verify_bodies(program: ExportedProgram, graph: Any, level: IRLevel, prefix: str) -> None:
    """The same node checks inside every control-flow body, recursively: a core-ATen
    program is core ATen in its branches and loop bodies too. A body binds its
    symbols itself (its placeholders carry the sizes it uses) and returns a flat tuple.
    A body shared by many calls (a repeated block) is checked once."""
    checked: set[str] = set()
    for attr in graph.nodes:
        if attr.op != "get_attr" or attr.target in checked or not _is_subgraph(attr):
            continue
        checked.add(str(attr.target))
        body = getattr(graph.owning_module, str(attr.target))
        name = f"{prefix}{attr.target}"
        body.graph.lint()
        symbols = _SymbolCheck(program, body=name)
        for node in body.graph.nodes:
            _verify_node(node, level, body=name)
            symbols.check(node)
        outputs = next(reversed(body.graph.nodes)).args[0]
        if not isinstance(outputs, tuple) or not all(isinstance(o, Node) for o in outputs):
            raise VerificationError(
                f"the control-flow body {name} returns {outputs!r}; bodies return a flat tuple "
                "of values"
            )
        _verify_bodies(program, body.graph, level, prefix=f"{name}.")


def _fail(node: Node, problem: str, body: str | None = None) -> VerificationError:
    where = node.meta.get("stack_trace")
    inside = "" if body is None else f" in the control-flow body {body}"
    return VerificationError(f"node {node.format_node()}{inside} {problem}", where=where)


def _verify_node(node: Node, level: IRLevel, body: str | None = None) -> None:
    if node.op == "get_attr" and _is_subgraph(node):
        return
    if node.op in ("call_method", "call_module", "get_attr"):
        raise _fail(node, f"uses opcode {node.op}, which exported graphs do not contain", body)
    if node.op == "call_function":
        problem = target_problem(node.target, level)
        if problem is not None:
            raise _fail(node, problem, body)
    if node.op != "output" and "val" not in node.meta:
        raise _fail(node, 'has no meta["val"]', body)


def target_problem(target: Any, level: IRLevel) -> str | None:
    """Why ``target`` may not be called in a graph of IR ``level``, or None if it may."""
    if isinstance(target, torch._ops.OpOverload):
        if target._schema.is_mutable:
            return "is an in-place or out= op; exported graphs are functional"
        if target.namespace not in _BUILTIN_NAMESPACES:
            return None  # custom ops are preserved unless a decomposition table lists them
        # The functional forms functionalization records (``_native_batch_norm_legit_functional``)
        # stand for core ops that mutate; torch's core IR keeps them too.
        functional_form = target._schema.name.endswith("_functional")
        if (
            level == "core"
            and torch.Tag.core not in target.tags
            and target not in CORE_EXTRA_OPS
            and not is_irreducible(target)
            and not functional_form
        ):
            return f"calls {target}, which is not in the core ATen opset"
        return None
    if isinstance(target, torch._ops.HigherOrderOperator) or target in ALLOWED_PYTHON_TARGETS:
        return None
    if isinstance(target, LeafFunction):  # an opaque call the user asked for (trace/leaf.py)
        return None
    return "calls a Python function; exported graphs call ATen ops only"


class _SymbolCheck:
    """Every free symbol is bound before use and has a range.

    Backed symbols (``s0``) are bound by the placeholders whose sizes they are;
    an unbacked one (``u0``) by the first node whose value has it as a plain
    size or value (``nonzero``, ``item``). Expressions are read through the
    ShapeEnv's replacements, as the range constraints are."""

    def __init__(self, program: ExportedProgram, body: str | None = None) -> None:
        self.body = body
        self.shape_env = program._shape_env
        self.ranged = set(program.range_constraints)
        self.bound: set[str] = set()

    def check(self, node: Node) -> None:
        if self.shape_env is None or node.op == "output":
            return
        exprs = [self.shape_env.simplify(e) for e in _size_exprs(node.meta.get("val"))]
        for expr in exprs:
            if node.op == "placeholder":  # input sizes determine every symbol in them
                self.bound |= free_symbols(expr)
                continue
            symbol = as_symbol(expr)
            if symbol is not None and self.shape_env.is_unbacked(symbol):
                self.bound.add(symbol)
            elif isinstance(node.meta.get("val"), torch.SymFloat | torch.SymBool):
                # ``.item()`` of a float or bool tensor: the node is the value (uf0, u0 == 1)
                self.bound |= {s for s in free_symbols(expr) if self.shape_env.is_unbacked(s)}
        for expr in exprs:
            for symbol in sorted(free_symbols(expr)):
                if symbol not in self.bound:
                    raise _fail(node, f"uses the symbol {symbol}, which no input size or "
                                      "data-dependent op before it binds", self.body)  # fmt: skip
                if symbol not in self.ranged:
                    raise _fail(node, f"uses the symbol {symbol}, which has no range in "
                                      "range_constraints", self.body)  # fmt: skip


def _size_exprs(value: Any) -> Iterator[Any]:
    """The symbolic expressions in a node's value: sizes, strides and offsets of
    tensors, symbolic scalars, through tuples and lists."""
    if isinstance(value, torch.Tensor):
        for size in (*value.shape, *value.stride(), value.storage_offset()):
            if isinstance(size, torch.SymInt):
                yield size.node.symbolic_expr
    elif isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        yield value.node.symbolic_expr
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _size_exprs(item)
