"""`Recorder`: turns each ATen call made while a model runs into a graph Node.

``Recorder.call(op, args, kwargs)`` is the heart of export tracing:

1. every argument is converted twice — to a *node argument* (a TraceTensor
   becomes its Node, a real tensor becomes a lifted constant) and to a *shadow
   argument* (a TraceTensor becomes its meta shadow, a device becomes ``meta``);
2. the op runs on the shadows, which computes the metadata of its results
   (shapes, strides, dtype; symbolic sizes ask the ShapeEnv) without any data;
3. a ``call_function`` node is recorded, with ``meta["val"]``, the user's
   source line (``meta["stack_trace"]``) and the module stack;
4. results are wrapped as TraceTensors (tuple results through ``getitem``
   nodes, as in torch.export).

In-place ops on intermediate tensors are recorded as their functional
variant (``add_`` -> ``add``), and the tensor is rebound to the new node. That
is only sound when nothing else sees the old value: mutating a graph input, a
parameter or buffer, or a tensor that shares storage with another traced
tensor is refused with a clear error until functionalization lands (issue #6).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from operator import getitem
from typing import Any

import torch

from graphlift.errors import ExportError, GraphliftError, TraceError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.source import user_location, user_where
from graphlift.symbolic import ShapeEnv
from graphlift.trace.shape_rules import SHAPE_RULES
from graphlift.trace.symbolic_values import SymbolicValues
from graphlift.trace.tensor import TraceTensor

META = torch.device("meta")


@dataclass(frozen=True)
class LiftedConstant:
    """A real tensor the traced code used directly, lifted to a graph input."""

    name: str  # placeholder name, e.g. c_lifted_tensor_0
    target: str  # key in ExportedProgram.constants
    value: torch.Tensor


class Recorder:
    """Records ATen calls into ``graph``. One Recorder per export."""

    def __init__(self, graph: Graph, default_device: torch.device) -> None:
        self.graph = graph
        self.default_device = default_device
        self.constants: list[LiftedConstant] = []
        self.module_stack: dict[str, tuple[str, str]] = {}
        self._constants_by_id: dict[int, TraceTensor] = {}
        self._constant_targets: dict[int, str] = {}
        self._frozen: set[Node] = set()  # values that must not be rebound (inputs, state)
        self._storage_users: dict[int, int] = {}
        self.symbolic: SymbolicValues | None = None  # set when the export has dynamic dims
        self.on_symbolic: Callable[[], None] | None = None  # called when symbols appear mid-trace
        # Control flow (trace/control_flow.py) records bodies into their own graphs:
        # ``graph`` is then the body's, ``lift`` turns an outer node into a body
        # placeholder, and ``subgraphs`` collects the submodules of the current graph.
        self.root_graph = graph
        self.lift: Callable[[Node], Node] | None = None
        self.subgraphs: dict[str, Any] = {}
        self.trace_mode: Any = None  # the TraceMode recording into this Recorder
        self.examples: Any = None  # ExampleValues with data_dependent="specialize"

    def ensure_symbolic(self) -> SymbolicValues:
        """The export's symbolic values, created on first need: a static export
        gets its ShapeEnv when it meets its first data-dependent value."""
        if self.symbolic is None:
            env = ShapeEnv(backed_size_oblivious=True)
            self.symbolic = SymbolicValues(self.root_graph, env, self.examples)
            if self.on_symbolic is not None:
                self.on_symbolic()
        return self.symbolic

    # --- values entering the graph -------------------------------------------------------

    def placeholder(
        self,
        name: str,
        value: torch.Tensor,
        *,
        requires_grad: bool = False,
        sizes: list[Any] | None = None,
    ) -> TraceTensor:
        """A graph input standing for ``value`` (a real or meta tensor)."""
        return self.bind_input(
            self.new_input(name), value, requires_grad=requires_grad, sizes=sizes
        )

    def new_input(self, name: str) -> Node:
        """A placeholder node (its final name may differ from ``name``), not yet given a value."""
        with self.root_graph.inserting_before(self._first_computation()):
            return self.root_graph.placeholder(name)

    def bind_input(
        self,
        node: Node,
        value: torch.Tensor,
        *,
        requires_grad: bool = False,
        sizes: list[Any] | None = None,
        device: torch.device | None = None,
    ) -> TraceTensor:
        """The traced value of input ``node``: ``value``'s metadata, with ``sizes``
        (possibly symbolic) instead of its sizes when given; strides follow
        ``value``'s memory layout."""
        if sizes is None:
            shadow = torch.empty_strided(
                value.shape, value.stride(), dtype=value.dtype, device=META
            )
        else:
            shadow = torch.empty_strided(
                sizes, strides_like(value, sizes), dtype=value.dtype, device=META
            )
        traced = self.wrap(shadow, node, device or value.device, requires_grad)
        self._frozen.add(node)
        if self.examples is not None:
            self.examples.bind(node, value)
        return traced

    def name_constant_sources(self, targets: dict[int, str]) -> None:
        """Names (attribute paths) for real tensors the model holds outside its
        state_dict, used when they are lifted as constants."""
        self._constant_targets = targets

    def constant(self, value: torch.Tensor) -> TraceTensor:
        """A real tensor used by the traced code: lifted once as a constant input."""
        known = self._constants_by_id.get(id(value))
        if known is not None:
            return known
        target = self._constant_targets.get(id(value)) or f"lifted_tensor_{len(self.constants)}"
        name = "c_" + target.replace(".", "_")
        traced = self.placeholder(name, value)
        self.constants.append(LiftedConstant(traced.node.name, target, value))
        self._constants_by_id[id(value)] = traced
        return traced

    def wrap(
        self, shadow: torch.Tensor, node: Node, device: torch.device, requires_grad: bool
    ) -> TraceTensor:
        differentiable = shadow.is_floating_point() or shadow.is_complex()
        traced = TraceTensor(shadow, node, device, requires_grad and differentiable)
        node.meta["val"] = traced
        key = _storage_key(shadow)
        self._storage_users[key] = self._storage_users.get(key, 0) + 1
        return traced

    # --- recording calls -----------------------------------------------------------------

    def call(
        self,
        op: torch._ops.OpOverload,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        rule: Callable[..., Any] | None = None,
    ) -> Any:
        """Record ``op``; ``rule`` computes the shadow results instead of the op's
        meta kernel (data-dependent sizes, see trace/data_dependent.py)."""
        if self.symbolic is not None:
            self.symbolic.emit_runtime_asserts()
        node_args, shadow_args = self._convert(args)
        node_kwargs, shadow_kwargs = self._convert(kwargs)
        try:
            rule = rule or SHAPE_RULES.get(op)
            result = (rule or op)(*shadow_args, **shadow_kwargs)
        except GraphliftError:  # DataDependentError names the user's line already
            raise
        except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as error:
            raise ExportError(
                f"{op} failed on the traced shapes and dtypes: {error}", where=user_where()
            ) from error
        if self.symbolic is not None:  # facts the op's metadata assumed run before it
            self.symbolic.emit_runtime_asserts()
        mutated = _mutated_argument(op, args, kwargs)
        if mutated is not None:
            return self._record_in_place(op, mutated, node_args, node_kwargs, result)
        node = self.record(op, node_args, node_kwargs)
        wrapped = self._wrap_result(
            node, result, self._result_device(args, kwargs), self._requires_grad(args)
        )
        if self.symbolic is not None:
            self.symbolic.bind_sizes(wrapped)
        return wrapped

    def record(self, target: Callable[..., Any], args: Any, kwargs: Any) -> Node:
        node = self.graph.call_function(target, tuple(args), dict(kwargs))
        location = user_location(sys._getframe(1))
        if location is not None:
            node.meta["stack_trace"] = str(location)
        if self.module_stack:
            node.meta["nn_module_stack"] = self.module_stack
        return node

    def _record_in_place(
        self,
        op: torch._ops.OpOverload,
        mutated: TraceTensor,
        node_args: Any,
        node_kwargs: Any,
        result: Any,
    ) -> TraceTensor:
        if mutated.node.graph is not self.graph:
            raise TraceError(
                f"{op} updates in place a tensor from outside a control-flow body "
                "(torch.cond/map/while_loop/scan bodies must not mutate what they close over); "
                "return a new tensor from the body instead",
                where=user_where(),
            )
        if mutated.node in self._frozen:
            raise TraceError(
                f"{op} updates the input, parameter or buffer {mutated.node.name!r} in place; "
                "exporting mutations of inputs and state is not supported yet (graphlift issue #6). "
                "Compute a new tensor instead (e.g. `x = x + y` rather than `x += y`)",
                where=user_where(),
            )
        if self._storage_users.get(_storage_key(mutated.shadow), 0) > 1:
            raise TraceError(
                f"{op} updates a tensor in place that shares memory with another tensor (a view); "
                "exporting that is not supported yet (graphlift issue #6)",
                where=user_where(),
            )
        functional = functional_variant(op)
        node = self.record(functional, node_args, node_kwargs)
        node.meta["val"] = mutated
        node.meta["original_op"] = str(op)
        mutated.node = node
        return mutated

    def local(self, node: Node) -> Node:
        """``node`` as an argument in the graph being recorded (lifted if it is outer)."""
        if self.lift is None or node.graph is self.graph:
            return node
        return self.lift(node)

    def convert(self, value: Any) -> Any:
        """The node argument for an op argument ``value``."""
        return self._convert(value)[0]

    def wrap_results(
        self, node: Node, result: Any, device: torch.device, requires_grad: bool
    ) -> Any:
        """Traced values for the shadow results of ``node`` (``getitem`` nodes for tuples)."""
        return self._wrap_result(node, result, device, requires_grad)

    def _wrap_result(
        self, node: Node, result: Any, device: torch.device, requires_grad: bool
    ) -> Any:
        if isinstance(result, torch.Tensor):
            return self.wrap(result, node, device, requires_grad)
        if isinstance(result, tuple | list):
            items = []
            for index, item in enumerate(result):
                if isinstance(item, torch.Tensor):
                    element = self.graph.call_function(getitem, (node, index))
                    element.meta.update({k: v for k, v in node.meta.items() if k != "val"})
                    items.append(self.wrap(item, element, device, requires_grad))
                else:
                    items.append(item)
            node.meta["val"] = tuple(items)
            return type(result)(items)
        node.meta["val"] = result
        return result

    # --- argument conversion -------------------------------------------------------------

    def _convert(self, value: Any) -> tuple[Any, Any]:
        """(node argument, shadow argument) for a nested op argument."""
        if isinstance(value, TraceTensor):
            return self.local(value.node), value.shadow
        if isinstance(value, torch.Tensor):
            lifted = self.constant(value)
            return lifted.node, lifted.shadow
        if isinstance(value, tuple | list):
            pairs = [self._convert(v) for v in value]
            return type(value)(p[0] for p in pairs), type(value)(p[1] for p in pairs)
        if isinstance(value, dict):
            pairs = {k: self._convert(v) for k, v in value.items()}
            return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
        if isinstance(value, torch.device):
            return value, META
        symbolic = isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool)
        if symbolic and self.symbolic is not None:
            return self.symbolic.node_for(value), value
        if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
            raise TraceError(
                f"a symbolic {type(value).__name__} ({value}) was passed to an operation; only "
                "symbolic integer sizes can be recorded so far",
                where=user_where(),
            )
        return value, value

    def _result_device(self, args: Any, kwargs: dict[str, Any]) -> torch.device:
        requested = kwargs.get("device")
        if isinstance(requested, torch.device | str):
            return torch.device(requested)
        for arg in args:
            if isinstance(arg, torch.device):
                return arg
        for arg in _leaves(args):
            if isinstance(arg, torch.Tensor):
                return arg.device
        return self.default_device

    @staticmethod
    def _requires_grad(args: Any) -> bool:
        if not torch.is_grad_enabled():
            return False
        return any(isinstance(a, torch.Tensor) and a.requires_grad for a in _leaves(args))

    def _first_computation(self) -> Node | None:
        for node in self.root_graph.nodes:
            if node.op != "placeholder":
                return node
        return None


def strides_like(value: torch.Tensor, sizes: list[Any]) -> list[Any]:
    """Dense strides for ``sizes`` in the memory order of ``value`` (so a
    channels-last or transposed input keeps its layout)."""
    order = sorted(range(value.dim()), key=lambda d: (value.stride(d), -d))
    strides: list[Any] = [0] * value.dim()
    running: Any = 1
    for dim in order:
        strides[dim] = running
        running = running * sizes[dim]
    return strides


def functional_variant(op: torch._ops.OpOverload) -> torch._ops.OpOverload:
    """``aten.add_.Tensor`` -> ``aten.add.Tensor``: the out-of-place op with the same overload."""
    name = op._schema.name.split("::")[-1]
    packet = getattr(torch.ops.aten, name.rstrip("_"), None)
    overload = getattr(packet, op._overloadname, None) if packet is not None else None
    if overload is None or overload._schema.is_mutable:
        raise TraceError(
            f"{op} changes a tensor in place and has no out-of-place variant to record"
        )
    return overload  # type: ignore[no-any-return]


def _mutated_argument(
    op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The TraceTensor an in-place op writes to (``self`` of ``add_``), or None."""
    schema = op._schema
    if not schema.is_mutable:
        return None
    for index, argument in enumerate(schema.arguments):
        if argument.alias_info is not None and argument.alias_info.is_write:
            value = args[index] if index < len(args) else kwargs.get(argument.name)
            if argument.kwarg_only or argument.name == "out":
                raise TraceError(
                    f"{op} writes to an out= tensor; write the result to a new tensor instead"
                )
            return value
    return None


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, tuple | list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _storage_key(shadow: torch.Tensor) -> int:
    return int(shadow.untyped_storage()._cdata)
