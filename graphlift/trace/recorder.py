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

The graph is functional from the start: an in-place op is recorded as its
functional form and the tensor it writes is *assigned* the result
(``assign``): a base is rebound to the new node, a view's update is scattered
back into its base and the base's other views are regenerated on their next
use (``trace/mutations.py``, ``trace/aliasing.py``). Which inputs, parameters
and buffers hold new values after the trace is read off by the capture stage.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import getitem
from typing import Any

import torch

from graphlift.errors import ExportError, GraphliftError, MutationError, TraceError
from graphlift.ir.graph import Graph
from graphlift.ir.node import Node
from graphlift.source import user_location, user_where
from graphlift.symbolic import ShapeEnv
from graphlift.trace.aliasing import refresh, scatter_into_base, track_views
from graphlift.trace.device_hint import computing_on
from graphlift.trace.layout_preconditions import with_dense_inputs
from graphlift.trace.metadata_cache import MetadataCache
from graphlift.trace.mutations import HIDDEN_MUTATIONS, record_mutation
from graphlift.trace.real_kernel import can_run_real_kernel, real_kernel_metadata
from graphlift.trace.shape_rules import SHAPE_RULES
from graphlift.trace.sized_shadow import (
    has_composite_kernel,
    has_symbolic_shadow,
    sized_metadata,
)
from graphlift.trace.symbolic_values import SymbolicValues
from graphlift.trace.tensor import TraceTensor
from graphlift.trace.zero_one import check_assumptions

META = torch.device("meta")

#: what ``torch.tensor(...)`` records around a constant: the value is the constant's
_FRESH_COPIES = (torch.ops.aten.lift_fresh.default, torch.ops.aten.lift_fresh_copy.default)


@dataclass(frozen=True)
class LiftedConstant:
    """A real tensor the traced code used directly, lifted to a graph input."""

    name: str  # placeholder name, e.g. c_lifted_tensor_0
    target: str  # key in ExportedProgram.constants
    value: torch.Tensor


class Recorder:
    """Records ATen calls into ``graph``. One Recorder per export."""

    #: How an op's 0/1 assumptions are exempted (``trace/zero_one.py``): per symbol
    #: for export, where the second trace settles a size that checks out alone;
    #: per (symbol, size) when nothing may add a guard (decomposition's recorder).
    exempts_per_size: bool = False

    def __init__(self, graph: Graph, default_device: torch.device) -> None:
        self.graph = graph
        self.default_device = default_device
        self.constants: list[LiftedConstant] = []
        self.module_stack: dict[str, tuple[str, str]] = {}
        self._constants_by_id: dict[int, TraceTensor] = {}
        self._constant_targets: dict[int, str] = {}
        self._constants_by_node: dict[int, str] = {}  # id(traced constant) -> its target
        self._inputs: set[int] = set()  # ids of the traced inputs (placeholders' values)
        self.symbolic: SymbolicValues | None = None  # set when the export has dynamic dims
        self.on_symbolic: Callable[[], None] | None = None  # called when symbols appear mid-trace
        # Control flow (trace/control_flow.py) records bodies into their own graphs:
        # ``graph`` is then the body's, ``lift`` turns an outer node into a body
        # placeholder, and ``subgraphs`` collects the submodules of the current graph.
        self.root_graph = graph
        self.lift: Callable[[Node], Node] | None = None
        self.subgraphs: dict[str, Any] = {}
        # names a new body must not take (a replayed graph's existing bodies)
        self.reserved_subgraph_names: frozenset[str] = frozenset()
        self.trace_mode: Any = None  # the TraceMode recording into this Recorder
        self.examples: Any = None  # ExampleValues with data_dependent="specialize"
        self.metadata_cache: MetadataCache | None = None  # one per ShapeEnv (or none)
        # Block reuse (trace/blocks.py): export's own module hooks, and the nodes
        # in-place updates replaced while a block's first trace runs.
        self.trace_hooks: frozenset[Any] = frozenset()
        self.assign_log: list[Node] | None = None

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
            return self.root_graph.placeholder(name, shadows_builtin=True)

    def bind_input(
        self,
        node: Node,
        value: torch.Tensor,
        *,
        requires_grad: bool = False,
        sizes: list[Any] | None = None,
        strides: list[Any] | None = None,
        device: torch.device | None = None,
    ) -> TraceTensor:
        """The traced value of input ``node``: ``value``'s metadata, with ``sizes``
        (possibly symbolic) instead of its sizes when given; strides are
        ``strides`` when given, else they follow ``value``'s memory layout."""
        if sizes is None:
            shadow = torch.empty_strided(
                value.shape, value.stride(), dtype=value.dtype, device=META
            )
        else:
            if strides is None:
                strides = strides_like(value, sizes)
            shadow = torch.empty_strided(sizes, strides, dtype=value.dtype, device=META)
        traced = self.wrap(shadow, node, device or value.device, requires_grad)
        self._inputs.add(id(traced))
        if self.examples is not None:
            self.examples.bind(node, value)
        return traced

    def name_constant_sources(self, targets: dict[int, str]) -> None:
        """Names (attribute paths) for real tensors the model holds outside its
        state_dict, used when they are lifted as constants."""
        self._constant_targets = targets

    def know_state(self, traced_by_id: dict[int, torch.Tensor]) -> None:
        """The model's parameters and buffers by ``id``: code that reaches one of
        them without going through the module attribute (a cache object holding
        the same tensor as a registered buffer) reads and writes the traced state,
        not a constant copy of it."""
        for key, traced in traced_by_id.items():
            if isinstance(traced, TraceTensor):
                self._constants_by_id[key] = traced

    def traced(self, value: torch.Tensor) -> TraceTensor:
        """``value`` as a traced tensor: itself, the traced state it is, or a lifted constant."""
        return value if isinstance(value, TraceTensor) else self.constant(value)

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
        self._constants_by_node[id(traced)] = target
        return traced

    def constant_value(self, traced: TraceTensor) -> torch.Tensor | None:
        """The real tensor behind a lifted constant (also through the ``lift_fresh``
        that ``torch.tensor(3)`` records) that nothing has written to since."""
        node = traced.node
        if node.op == "call_function" and node.target in _FRESH_COPIES:
            node = node.args[0]
        if not isinstance(node, Node) or node.op != "placeholder":
            return None
        return next((c.value for c in self.constants if c.name == node.name), None)

    def wrap(
        self, shadow: torch.Tensor, node: Node, device: torch.device, requires_grad: bool
    ) -> TraceTensor:
        differentiable = shadow.is_floating_point() or shadow.is_complex()
        traced = TraceTensor(shadow, node, device, requires_grad and differentiable)
        node.meta["val"] = traced
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
        rewrite = HIDDEN_MUTATIONS.get(op)
        if rewrite is not None:
            rewritten = rewrite(self, op, args, kwargs)
            if rewritten is not NotImplemented:
                return rewritten
        args = with_dense_inputs(self.call, op, args, kwargs)
        node_args, shadow_args = self._convert(args)
        node_kwargs, shadow_kwargs = self._convert(kwargs)
        device = self._result_device(args, kwargs)
        with computing_on(device):
            result = self._metadata(op, shadow_args, shadow_kwargs, rule, device)
        if self.symbolic is not None:  # facts the op's metadata assumed run before it
            self.symbolic.emit_runtime_asserts()
        if op._schema.is_mutable:
            return record_mutation(self, op, args, kwargs, result)
        node = self.record(op, node_args, node_kwargs)
        wrapped = self._wrap_result(node, result, device, self._requires_grad(args))
        if self.symbolic is not None:
            self.symbolic.bind_sizes(wrapped)
        if args and isinstance(args[0], torch.Tensor):  # a view of a state tensor or constant
            track_views(op, (self.traced(args[0]), *args[1:]), kwargs, wrapped)
        return wrapped

    def call_functional(
        self, op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Record ``op``, the functional form of an in-place call (trace/mutations.py)."""
        return self.call(op, args, kwargs)

    def record_call(
        self, target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
        shadow_result: Any,
    ) -> Any:  # fmt: skip
        """Record a call of a Python-level ``target`` whose result metadata is already known."""
        node_args, _ = self._convert(args)
        node_kwargs, _ = self._convert(kwargs)
        node = self.record(target, node_args, node_kwargs)
        return self._wrap_result(
            node, shadow_result, self._result_device(args, kwargs), self._requires_grad(args)
        )

    def _metadata(
        self, op: torch._ops.OpOverload, args: Any, kwargs: Any,
        rule: Callable[..., Any] | None, device: torch.device,
    ) -> Any:  # fmt: skip
        """``op`` run on shadows: its result's metadata. Questions only sizes 0
        and 1 leave open are assumed away, then checked on this op (zero_one.py);
        not under a data-dependent ``rule``, which makes new symbols when run."""
        try:
            if rule is not None:
                return rule(*args, **kwargs)
            kernel = SHAPE_RULES.get(op) or op
            try:
                return self._cached_metadata(op, kernel, args, kwargs)
            except (RuntimeError, ValueError):
                fallback = None if kernel is not op else _fallback_kernel(op, args, kwargs, device)
                if fallback is None:
                    raise
                return self._cached_metadata(op, fallback, args, kwargs)
        except GraphliftError:  # DataDependentError names the user's line already
            raise
        except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as error:
            raise ExportError(
                f"{op} failed on the traced shapes and dtypes: {error}", where=user_where()
            ) from error
        except AssertionError as error:  # torch's Python kernels assert on what they expect
            raise ExportError(
                f"{op} failed on the traced shapes and dtypes ({error}); if eager runs this "
                "call, this is a bug in graphlift",
                where=user_where(),
            ) from error

    def _cached_metadata(
        self, op: torch._ops.OpOverload, kernel: Callable[..., Any], args: Any, kwargs: Any
    ) -> Any:
        env = None if self.symbolic is None else self.symbolic.shape_env
        if self.metadata_cache is None or self.metadata_cache.shape_env is not env:
            self.metadata_cache = MetadataCache(env)  # a static trace that turned symbolic
        if env is None:
            return self.metadata_cache.compute(op, args, kwargs, lambda: kernel(*args, **kwargs))
        return self.metadata_cache.compute(
            op, args, kwargs, lambda: self._checked_metadata(env, kernel, args, kwargs)
        )

    def _checked_metadata(
        self, env: ShapeEnv, kernel: Callable[..., Any], args: Any, kwargs: Any
    ) -> Any:
        """``kernel``'s result on symbolic shadows, each 0/1 assumption checked."""
        with env.assuming_not_0_or_1() as assumptions:
            result = kernel(*args, **kwargs)
        if assumptions:
            check_assumptions(
                env, kernel, args, kwargs, result, assumptions, per_size=self.exempts_per_size
            )
        return result

    def record(self, target: Callable[..., Any], args: Any, kwargs: Any) -> Node:
        node = self.graph.call_function(target, tuple(args), dict(kwargs))
        location = user_location(sys._getframe(1))
        if location is not None:
            node.meta["stack_trace"] = location.stack_trace
        if self.module_stack:
            node.meta["nn_module_stack"] = self.module_stack
        annotations = user_annotations()
        if annotations:
            node.meta["custom"] = annotations
        return node

    # --- mutation --------------------------------------------------------------------------

    def assign(self, target: TraceTensor, value: TraceTensor) -> None:
        """The model updated ``target`` in place; ``value`` (same shape and dtype) is
        its new content. A base is rebound to ``value``; for a view, the update
        is written back into the base, whose other views become stale."""
        root = target.base if target.base is not None else target
        self._check_writable(root, target)
        if self.assign_log is not None:
            self.assign_log.append(root.node)
        if target.base is None:
            target.node = value.node
            target.version += 1
            return
        scatter_into_base(self, target, value)
        target.node = value.node
        target.seen_version = root.version

    def current_node(self, value: TraceTensor) -> Node:
        """The node holding ``value``'s current content (a stale view is regenerated)."""
        refresh(self, value)
        return value.node

    def is_input(self, traced: TraceTensor) -> bool:
        """Whether ``traced`` is a graph input: a user input, parameter, buffer or constant."""
        return id(traced) in self._inputs

    def _check_writable(self, root: TraceTensor, target: TraceTensor) -> None:
        if root.node.graph is not self.graph:
            raise TraceError(
                "an in-place update of a tensor from outside a control-flow body "
                "(torch.cond/map/while_loop/scan bodies must not mutate what they close over); "
                "return a new tensor from the body instead",
                where=user_where(),
            )
        if id(root) in self._constants_by_node:
            name = self._constants_by_node[id(root)]
            raise MutationError(
                f"the model changes the tensor constant {name!r} in place; a constant is not "
                "state of the module, so the change could not be kept. Register it as a buffer "
                "(module.register_buffer) if it is state",
                where=user_where(),
            )
        if id(root) in self._inputs and root.requires_grad and torch.is_grad_enabled():
            what = "a leaf Variable" if target is root else "a view of a leaf Variable"
            raise MutationError(
                f"{what} that requires grad ({root.node.name!r}) is being used in an in-place "
                "operation, which eager PyTorch refuses too; update it under torch.no_grad()",
                where=user_where(),
            )

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
        self, node: Node, result: Any, device: torch.device, requires_grad: bool,
        element_name: str | None = None,
    ) -> Any:  # fmt: skip
        if isinstance(result, torch.Tensor):
            return self.wrap(result, node, device, requires_grad)
        if isinstance(result, tuple | list):
            items = []
            for index, item in enumerate(result):
                if isinstance(item, torch.Tensor):
                    element = self.graph.create_node(
                        "call_function", getitem, (node, index), name=element_name
                    )
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
            return self.local(self.current_node(value)), value.shadow
        if isinstance(value, torch.Tensor):
            lifted = self.constant(value)
            return lifted.node, lifted.shadow
        if isinstance(value, tuple | list):
            pairs = [self._convert(v) for v in value]
            return type(value)(p[0] for p in pairs), type(value)(p[1] for p in pairs)
        if isinstance(value, dict):
            by_key = {k: self._convert(v) for k, v in value.items()}
            return {k: p[0] for k, p in by_key.items()}, {k: p[1] for k, p in by_key.items()}
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


def _fallback_kernel(
    op: torch._ops.OpOverload, args: Any, kwargs: Any, device: torch.device
) -> Callable[..., Any] | None:
    """What computes ``op``'s metadata when its kernel failed on the shadows, or None.

    - A C++ kernel reading concrete ``sizes()`` of a symbolic shadow fails, and so
      does a composite op whose Python meta kernel (a ``torch._refs`` function)
      takes other arguments than the op (a reduction as a string): over
      SizedShadows composite kernels run first and size reads guard, as under
      torch's FakeTensorMode (trace/sized_shadow.py).
    - An op without a meta kernel (``histogram``) on static sizes: its CPU kernel
      on zeros, where that is sound (trace/real_kernel.py).
    """
    if can_run_real_kernel(op, (args, kwargs), device):
        return partial(real_kernel_metadata, op)
    if has_composite_kernel(op) or has_symbolic_shadow((args, kwargs)):
        return partial(sized_metadata, op)
    return None


def user_annotations() -> dict[str, Any] | None:
    """A copy of what ``torch.fx.traceback.annotate({...})`` blocks around the
    current line have set (nested blocks merged, inner keys winning), or None.

    ``annotate`` keeps its state in the module global ``current_meta["custom"]``
    and updates that dict in place when blocks nest, hence the copy. It is read
    from ``sys.modules`` so the tracer does not import torch.fx itself.
    """
    module = sys.modules.get("torch.fx.traceback")
    current = getattr(module, "current_meta", None)
    custom = current.get("custom") if isinstance(current, dict) else None
    return dict(custom) if isinstance(custom, dict) and custom else None


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


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, tuple | list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
