"""Sizes 0 and 1 that the trace refused, kept when a trace at that size proves them.

The first trace runs with example sizes of at least 2. A Python branch in the
model on a size (transformers' ``if batch_size != position_ids.shape[0]:``)
guards on its answer, so a declared ``Dim("batch")`` loses size 1 although the
other branch computes the same values there (``position_ids.expand(1, -1)`` is
``position_ids``). torch.export keeps such sizes by assuming they never occur
while tracing; graphlift checks instead:

1. for each dynamic symbol ``d`` and size ``v`` in {0, 1} of its declared range
   that some guard refuses, the model is traced again with the inputs cut to
   ``d == v`` (that dim static, the others dynamic);
2. both graphs are read as values at ``d == v``: a node is identified by its op
   and its arguments' identities, sizes by their expressions at ``d == v``,
   and ops that change nothing at that size (``expand``/``view``/``reshape``
   to the shape their input has there, ``clone``, ``alias``) stand for their
   input. The shapes are the second trace's, which is exact at that size;
3. if every output and every effect (in order) of the first graph is
   identified with the second's, the first program computes at ``d == v``
   exactly what the second does, so the refusing guards admit ``d == v`` and
   the second trace's guards are added for that size (``ShapeEnv.admit``).

Anything this cannot read (control-flow bodies, data-dependent sizes, derived
dims over ``d``, a failing second trace, a difference) leaves the guards as they
were: the size stays refused and is reported as before. Never a guess.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, cast

import torch

from graphlift.export.capture import Capture
from graphlift.export.program.signature import InputKind
from graphlift.export.spec.dynamic_shapes import DimEntry
from graphlift.ir.effects import has_side_effect
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.pytree import tree_flatten, tree_unflatten
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import Poly, as_symbol
from graphlift.symbolic.guards import Guard
from graphlift.symbolic.substitute import EvaluationError, substitute
from graphlift.trace.block_inlining import inline_block_graph
from graphlift.trace.control_flow import invoke_subgraph

aten = torch.ops.aten

Recapture = Callable[[tuple[Any, ...], dict[str, Any], list[dict[int, DimEntry]]], Capture]

#: Ops whose value is their input's when the sizes they ask for are the input's.
RESHAPES = frozenset({
    aten.expand.default, aten.view.default, aten.reshape.default, aten._unsafe_view.default,
})  # fmt: skip
#: Ops whose value is always their input's.
#: (Not ``clone``: it may change strides, which ``as_strided`` reads; ``contiguous`` only
#: where its input is contiguous at that size, ``_Reader._is_contiguous``.)
COPIES = frozenset({aten.alias.default})
#: Attention ops whose ``is_causal`` flag changes nothing when there is at most one
#: key. torch's causal mask is ``ones(L, S).tril()``, aligned top-left: query row i
#: keeps keys j <= i, so with S <= 1 every row keeps every key. With S > 1 it matters
#: even for one query (L == 1 keeps key 0 only): a decoder's ``is_causal = q_len > 1``
#: is immaterial at q_len 1 only when no cache makes the keys longer.
CAUSAL_ATTENTION = frozenset({
    aten.scaled_dot_product_attention.default,
    aten._scaled_dot_product_flash_attention_for_cpu.default,
    aten._scaled_dot_product_attention_math.default,
})  # fmt: skip
#: Scalar functions a size computation in the graph may call.
SCALAR_FUNCTIONS = frozenset({
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod, operator.neg,
    operator.truediv, operator.pow, operator.eq, operator.ne, operator.lt, operator.le,
    operator.gt, operator.ge, operator.and_, operator.or_, math.ceil, math.floor,
    torch.sym_max, torch.sym_min, torch.sym_not, torch.sym_float, torch.sym_int,
})  # fmt: skip
#: The largest size of a symbol tried for a dim over it to be 0 or 1 (``x[k:]``, k small).
MAX_SMALL_POINT = 8
#: The most extra traces one export's proofs take (sizes of several dims at once).
MAX_SECOND_TRACES = 16
SIZE_QUERIES: dict[Any, Callable[..., Any]] = {
    aten.sym_size.int: lambda t, dim: t.shape[dim],
    aten.sym_stride.int: lambda t, dim: t.stride()[dim],
    aten.sym_numel.default: lambda t: t.numel(),
    aten.sym_storage_offset.default: lambda t: t.storage_offset(),
}


class _Unreadable(Exception):
    """The graphs hold something this proof does not read: keep the guards."""


def keep_small_sizes(
    module: torch.nn.Module,
    captured: Capture,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dim_specs: list[dict[int, DimEntry]],
    recapture: Recapture,
    budget: _TraceBudget | None = None,
) -> frozenset[tuple[str, int]]:
    """Admit each declared size 0 or 1 the guards of ``captured`` refuse, where a
    trace at that size proves the program right (module docstring). Returns the
    (symbol, size) pairs at which the model itself fails (the trace there failed,
    and so does eager ``module``): the guards go on refusing those, and a declared
    range that includes them is not narrowed.

    The second trace's own refused small sizes are proven first, the same way
    (batch 1 *and* sequence 1: the trace at sequence 1 refuses batch 1 on its own),
    within ``budget`` extra traces in all."""
    env = captured.shape_env
    if env is None or next(_refused_small_sizes(captured), None) is None:
        return frozenset()  # nothing to prove: no need to inline the shared bodies
    captured = flat_view(captured)
    if captured.subgraphs:
        return frozenset()
    budget = budget if budget is not None else _TraceBudget()
    failing: set[tuple[str, int]] = set()
    for name, value in _refused_small_sizes(captured):
        try:
            cut = _cut_inputs(captured, args, kwargs, dim_specs, name, value)
        except _Unreadable:
            continue
        if not budget.spend():
            break
        try:
            other = flat_view(recapture(*cut))
        except Exception:  # the second trace is optional
            # Only empty inputs: a model that refuses size 1 itself (a check in
            # forward) narrows a named Dim, as torch.export reports it.
            if value == 0 and _model_fails(module, cut[0], cut[1]):
                failing.add((name, value))
            continue
        keep_small_sizes(module, other, *cut, recapture, budget)
        try:
            needs = _same_values(captured, other, name, value)
        except (_Unreadable, TypeError):
            continue
        env.admit(name, value, needs)
    return frozenset(failing)


def flat_view(captured: Capture) -> Capture:
    """``captured`` read with its shared block bodies inlined: the graph a
    ``reuse_blocks=False`` trace records (``inline_block_graph``), over the same
    ShapeEnv. A reused block records no guard (trace/blocks.py), so the guards
    are the flat trace's too. Other bodies (control flow) stay, and stay unread."""
    if not any(node.target is invoke_subgraph for node in captured.graph.nodes):
        return captured
    graph, _ = inline_block_graph(captured.graph, captured.subgraphs.__getitem__)
    used = {str(node.target) for node in graph.nodes if node.op == "get_attr"}
    bodies = {name: body for name, body in captured.subgraphs.items() if name in used}
    return replace(captured, graph=graph, subgraphs=bodies)


@dataclass
class _TraceBudget:
    """How many more traces the proofs of one export may take: each proven size may
    ask for proofs of the others' small sizes, so the count would grow with the
    number of dynamic dims multiplied out."""

    remaining: int = field(default_factory=lambda: MAX_SECOND_TRACES)

    def spend(self) -> bool:
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


def _refused_small_sizes(captured: Capture) -> Iterator[tuple[str, int]]:
    """The (symbol, size) pairs ``keep_small_sizes`` tries: a declared size at which
    some input dim is 0 or 1 and which a guard refuses, asked lazily (an admitted
    size changes the guards). None when a symbol is unbacked."""
    env = captured.shape_env
    if env is None or any(not s.is_backed for s in env.symbols):
        return
    # A symbol another was unified into (``h -> s0``) carries that one's declared
    # range, which ShapeEnv.admit's relearning from declared ranges would drop: left
    # alone. (Derived replacements such as ``y -> x - 1`` keep their guards.)
    roots = {as_symbol(r.value) for r in env.replacements.values()} - {None}
    for info in env.symbols:
        name = info.name
        if name in env.replacements or name in roots or info.hint is None or info.hint < 2:
            continue
        for value in _small_points(captured, name, info.hint):
            if info.declared.contains(value) and env.refused_at(name, value):
                yield name, value


def _small_points(captured: Capture, name: str, hint: int) -> list[int]:
    """Sizes of symbol ``name`` below its example at which some input dim over it is
    0 or 1: 0 and 1 themselves, and ``2`` for a dim of ``x[1:]``'s ``name - 1``."""
    env = captured.shape_env
    assert env is not None
    sizes = [
        env.simplify(size.node.symbolic_expr)
        for node in captured.graph.nodes
        if node.op == "placeholder" and isinstance(node.meta.get("val"), torch.Tensor)
        for size in node.meta["val"].shape
        if isinstance(size, torch.SymInt)
    ]
    over = [e for e in sizes if isinstance(e, Poly) and E.free_symbols(e) == {name}]
    points = []
    for value in range(min(hint, MAX_SMALL_POINT + 1)):
        at = [env.holds_at(E.le(e, E.ONE), {name: value}) for e in over]
        if value in (0, 1) or any(at):
            points.append(value)
    return points


def _model_fails(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether eager ``module(*args, **kwargs)`` raises at the cut sizes: asked only
    after the trace there failed, to tell the model's own failure (GPT-J's
    ``[..., -1]`` of an empty sequence) from a trace that could not follow it. Only
    a module in eval mode or without buffers is run (no running statistics to
    update), without gradients and with the random state restored."""
    if module.training and any(True for _ in module.buffers()):
        return False
    state = [*module.parameters(), *module.buffers()]
    if any(t.device.type == "meta" for t in state):
        return False  # a model on the meta device cannot run on the example inputs
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            module(*args, **kwargs)
    except Exception:  # any failure of the model itself
        return True
    return False


def _cut_inputs(
    captured: Capture,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dim_specs: list[dict[int, DimEntry]],
    name: str,
    value: int,
) -> tuple[tuple[Any, ...], dict[str, Any], list[dict[int, DimEntry]]]:
    """The example inputs with every dim over symbol ``name`` cut to its size at
    ``name == value`` (and static there)."""
    env = captured.shape_env
    assert env is not None
    leaves, spec = tree_flatten((args, kwargs))
    users = [s for s in captured.input_specs if s.kind is InputKind.USER_INPUT]
    nodes = {n.name: n for n in captured.graph.nodes if n.op == "placeholder"}
    new_leaves, new_specs = list(leaves), [dict(entries) for entries in dim_specs]
    for index, (leaf, user) in enumerate(zip(leaves, users)):
        if not isinstance(leaf, torch.Tensor):
            if name in _symbols_of(env, nodes[user.arg.name].meta.get("val")):
                raise _Unreadable("a dynamic int input")
            continue
        sizes = nodes[user.arg.name].meta["val"].shape
        for dim, size in enumerate(sizes):
            expr = env.simplify(size.node.symbolic_expr) if isinstance(size, torch.SymInt) else None
            if expr is None or name not in E.free_symbols(expr):
                continue
            try:
                size = value if as_symbol(expr) == name else env.value_at(expr, {name: value})
            except EvaluationError as error:  # 6 // s0 at s0 == 0: no such input
                raise _Unreadable("a dim undefined at that size") from error
            if not isinstance(size, int) or not 0 <= size <= leaf.shape[dim]:
                raise _Unreadable("a derived dim that does not shrink with its root")
            new_leaves[index] = new_leaves[index].narrow(dim, 0, size).clone()
            new_specs[index].pop(dim, None)
    new_args, new_kwargs = tree_unflatten(new_leaves, spec)
    return new_args, new_kwargs, new_specs


def _symbols_of(env: ShapeEnv, value: Any) -> frozenset[str]:
    if isinstance(value, torch.SymInt | torch.SymBool | torch.SymFloat):
        return E.free_symbols(env.simplify(value.node.symbolic_expr))
    return frozenset()


def _same_values(first: Capture, second: Capture, name: str, value: int) -> list[Any]:
    """The second trace's guards over the first's symbols, when the first graph at
    ``name == value`` computes what the second computes; raises _Unreadable otherwise."""
    env, other_env = first.shape_env, second.shape_env
    assert env is not None
    if second.subgraphs or [(s.kind, s.target) for s in first.output_specs] != [
        (s.kind, s.target) for s in second.output_specs
    ]:
        raise _Unreadable("different outputs")
    if other_env is not None and any(not s.is_backed for s in other_env.symbols):
        raise _Unreadable("data-dependent sizes")
    if not _same_constants(first.constants, second.constants):
        raise _Unreadable("different lifted constants")  # placeholders are matched by name
    table = _Table()
    with other_env.suppress_guards() if other_env is not None else nullcontext():
        theirs = _Reader(second.graph, other_env, table, building=True)
        ours = _Reader(first.graph, other_env, table, building=False)
        same = ours.outputs() == theirs.outputs() and ours.effects() == theirs.effects()
        if not same:
            raise _Unreadable("different values")
        _check_metadata(ours, _rename(env, other_env, name, value))
    return _translate(other_env, env, name) if other_env is not None else []


def _rename(env: ShapeEnv, other: ShapeEnv | None, name: str, value: int) -> Callable[[Any], Any]:
    """A first-trace expression as a second-trace one: ``name`` at ``value``, the
    other symbols by their source."""
    by_source = {info.source: info.name for info in (other.symbols if other else ())}
    mapping: dict[str, Any] = {name: E.integer(value)}
    for info in env.symbols:
        if info.name != name and info.name not in env.replacements:
            if info.source not in by_source:
                raise _Unreadable(f"no symbol for {info.source}")
            mapping[info.name] = E.symbol(by_source[info.source])
    return lambda expr: substitute(env.simplify(expr), mapping)


def _check_metadata(ours: _Reader, rename: Callable[[Any], Any]) -> None:
    """The first graph's ``meta["val"]`` at that size must be the second's (shapes,
    dtypes, size values): later passes (decompositions, to_fx) read it. ``squeeze(0)``
    computes the same values in both graphs, but its recorded shape ``[b, 4]`` is
    wrong at ``b == 1``. Strides are not compared: the program runs the second
    graph's ops at that size, so its real strides are the second trace's."""
    for node, value in ours.values.items():
        theirs: Any
        if isinstance(value, tuple):  # a size: its value against the recorded expression
            theirs = value[1]
            mine = _meta_key(ours.env, node.meta.get("val"), rename)
        else:
            counterpart = ours.table.nodes.get(value)
            if counterpart is None:
                continue  # on no output's or effect's path (their ids would differ)
            theirs = _meta_key(ours.env, counterpart.meta.get("val"), None)
            mine = _meta_key(ours.env, node.meta.get("val"), rename)
        if mine != theirs:
            raise _Unreadable(f"{node.name}'s metadata differs at that size")


def _meta_key(env: ShapeEnv | None, value: Any, rename: Callable[[Any], Any] | None) -> Any:
    if isinstance(value, torch.Tensor):
        return (tuple(_meta_key(env, s, rename) for s in value.shape), value.dtype)
    if isinstance(value, list | tuple):
        return tuple(_meta_key(env, v, rename) for v in value)
    if isinstance(value, torch.SymInt | torch.SymBool | torch.SymFloat) and rename is not None:
        expr = rename(value.node.symbolic_expr)
        expr = env.simplify(expr) if env is not None else expr
        scalar = E.as_scalar(expr)
        return _key(env, expr if scalar is None else scalar)
    if isinstance(value, bool | int | float | torch.SymInt | torch.SymBool | torch.SymFloat):
        return _key(env, value)
    return (type(value).__name__,)


def _same_constants(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    if first.keys() != second.keys():
        return False
    for name, value in first.items():
        other = second[name]
        if not isinstance(value, torch.Tensor) or not isinstance(other, torch.Tensor):
            return False
        if value.dtype != other.dtype or value.shape != other.shape or value.device != other.device:
            return False
        if value.device.type == "meta" and value is not other:
            return False  # no data to compare
        if value.device.type != "meta" and not torch.equal(value, other):
            return False
    return True


def _translate(other: ShapeEnv, env: ShapeEnv, name: str) -> list[Guard]:
    """The second trace's guards, over the first trace's symbols (by source)."""
    by_source = {info.source: info.name for info in env.symbols if info.name != name}
    mapping = {}
    for info in other.symbols:
        if info.source not in by_source:
            raise _Unreadable(f"no symbol for {info.source}")
        mapping[info.name] = E.symbol(by_source[info.source])
    return [
        Guard(substitute(guard.expr, mapping), guard.code, guard.where) for guard in other.guards
    ]


class _Reader:
    """A graph read as values at one size (module docstring). Each node gets an
    id: the second graph's reader (``building``) hands them out and keeps the node
    (whose shapes are exact at that size); the first's looks them up, and a node
    with no counterpart gets an id of its own."""

    def __init__(
        self, graph: Graph, env: ShapeEnv | None, table: _Table, *, building: bool
    ) -> None:
        self.graph, self.env, self.table, self.building = graph, env, table, building
        self.values: dict[Node, Any] = {}  # node -> its id, or ("size", key) for a scalar
        self.live: dict[Node, Any] = {}  # scalar node -> its number or SymInt
        for node in graph.nodes:
            if node.op != "output":
                self.values[node] = self._read(node)

    def outputs(self) -> Any:
        (outputs,) = self.graph.output_node().args
        return self._arg(outputs)

    def effects(self) -> list[Any]:
        return [
            self.values[n] for n in self.graph.nodes
            if n.op == "call_function" and has_side_effect(n)
        ]  # fmt: skip

    def _read(self, node: Node) -> Any:
        if node.op == "placeholder":
            return self._identify(("input", node.name), node)
        if node.op != "call_function":
            raise _Unreadable(f"a {node.op} node")
        target = node.target
        if target in SIZE_QUERIES or target in SCALAR_FUNCTIONS:
            self.live[node] = self._scalar(node)
            return ("size", _key(self.env, self.live[node]))
        if target in CAUSAL_ATTENTION:
            return self._identify((target, self._attention_arguments(node), ()), node)
        args, kwargs = self._arg(node.args), self._arg(node.kwargs)
        if (
            target in COPIES
            or (target in RESHAPES and self._keeps_shape(node))
            or (target is aten.contiguous.default and self._is_contiguous(node))
            or (target is aten.slice.Tensor and self._slices_everything(node))
        ):
            return args[0]
        return self._identify((target, args, kwargs), node)

    def _identify(self, key: Any, node: Node) -> int:
        found = self.table.ids.get(key)
        if found is None:
            found = len(self.table.ids) if self.building else -1 - len(self.values)
            if self.building:
                self.table.ids[key] = found
        if self.building:
            self.table.nodes.setdefault(found, node)
        return found

    def _counterpart(self, arg: Any) -> Node:
        """The second trace's node computing ``arg``'s value (its shapes are exact)."""
        found = self.table.nodes.get(self.values[arg]) if isinstance(arg, Node) else None
        if found is None:
            raise _Unreadable(f"a size of {arg} with no counterpart")
        return found

    def _keeps_shape(self, node: Node) -> bool:
        """Whether ``expand``/``view``/``reshape`` asks for its input's exact shape."""
        shape = [_key(self.env, s) for s in self._counterpart(node.args[0]).meta["val"].shape]
        asked = [self._scalar_key(s) for s in cast(Sequence[Any], node.args[1])]
        if len(asked) != len(shape):
            return False
        keep = _key(self.env, -1)
        free = [i for i, a in enumerate(asked) if a == keep]
        if node.target is aten.expand.default:
            return all(a in (s, keep) for a, s in zip(asked, shape))
        if len(free) > 1:
            return False
        others = [s[1] for i, s in enumerate(shape) if i not in free]
        if free and not all(isinstance(s, int) and s > 0 for s in others):
            return False  # a -1 next to a size that may be 0 is ambiguous
        return all(a == s for i, (a, s) in enumerate(zip(asked, shape)) if i not in free)

    def _attention_arguments(self, node: Node) -> Any:
        """An attention call's arguments by name, defaults filled in, with
        ``is_causal`` read as False where it keeps every key (``CAUSAL_ATTENTION``);
        the key length is the second trace's, exact at that size."""
        schema = cast(Any, node.target)._schema
        given = dict(zip((a.name for a in schema.arguments), node.args)) | dict(node.kwargs)
        bound = {
            a.name: given[a.name] if a.name in given else a.default_value for a in schema.arguments
        }
        key = self.table.nodes.get(self.values[bound["key"]])
        keys = key.meta["val"].shape[-2] if key is not None else None  # no counterpart: as is
        if keys is not None and _key(self.env, keys) in (_key(self.env, 0), _key(self.env, 1)):
            bound["is_causal"] = False
        return tuple((name, self._arg(value)) for name, value in bound.items())

    def _is_contiguous(self, node: Node) -> bool:
        """Whether ``contiguous(x)`` returns ``x`` itself: ``x`` is contiguous at that
        size (its strides there are the second trace's, exact at that size), as
        ``contiguous`` checks: a dim of size 1 may have any stride."""
        if node.kwargs.get("memory_format", torch.contiguous_format) != torch.contiguous_format:
            return False
        value = self._counterpart(node.args[0]).meta["val"]
        expected: Any = 1
        for size, stride in reversed(list(zip(value.shape, value.stride()))):
            if _key(self.env, size) == _key(self.env, 1):
                continue
            if _key(self.env, stride) != _key(self.env, expected):
                return False
            expected = expected * size
        return True

    def _slices_everything(self, node: Node) -> bool:
        """Whether ``slice(x, dim, start, end, step)`` keeps all of ``x``."""
        defaults: list[Any] = [None, 0, None, None, 1]
        given: list[Any] = [*node.args, *defaults[len(node.args) :]]
        source, dim, start, end, step = given
        shape = self._counterpart(source).meta["val"].shape
        if not -len(shape) <= dim < len(shape):
            raise _Unreadable("a slice of a dim the other trace does not have")
        size = _key(self.env, shape[dim])
        start, step = self._scalar_key(start or 0), self._scalar_key(step)
        if start != _key(self.env, 0) or step != _key(self.env, 1):
            return False
        if end is None:
            return True
        end = self._scalar_key(end)
        if end == size:
            return True
        return bool(
            end[0] == "int" and (end[1] >= 2**62 or (size[0] == "int" and end[1] >= size[1]))
        )

    def _scalar_key(self, arg: Any) -> Any:
        return self.values[arg][1] if isinstance(arg, Node) else _key(self.env, arg)

    def _scalar(self, node: Node) -> Any:
        args = [self.live[a] if isinstance(a, Node) and a in self.live else a for a in node.args]
        if node.target in SIZE_QUERIES:
            tensor = self._counterpart(node.args[0]).meta["val"]
            try:
                return SIZE_QUERIES[node.target](tensor, *args[1:])
            except IndexError:  # ``squeeze`` dropped that dim in the other trace
                raise _Unreadable("a size of a dim the other trace does not have") from None
        return node.target(*args)  # type: ignore[operator]

    def _arg(self, arg: Any) -> Any:
        if isinstance(arg, Node):
            return self.values[arg]
        if isinstance(arg, list | tuple):
            return tuple(self._arg(a) for a in arg)
        if isinstance(arg, dict):
            return tuple((k, self._arg(arg[k])) for k in sorted(arg))
        if isinstance(arg, bool | int | float):
            return ("size", _key(self.env, arg))
        return (type(arg).__name__, arg)


@dataclass
class _Table:
    """What the second graph's reader files for the first's: node keys -> ids -> nodes."""

    ids: dict[Any, int] = field(default_factory=dict)
    nodes: dict[int, Node] = field(default_factory=dict)


def _key(env: ShapeEnv | None, value: Any) -> Any:
    """A number, or a size expression of the second trace, as a comparable key."""
    if isinstance(value, torch.SymInt | torch.SymBool | torch.SymFloat):
        expr = value.node.symbolic_expr
        expr = env.simplify(expr) if env is not None else expr
        scalar = E.as_scalar(expr)
        value = expr if scalar is None else scalar
    if isinstance(value, float) and math.isnan(value):
        return ("nan",)
    return (type(value).__name__, value)
