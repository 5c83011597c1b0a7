"""Joint forward-backward export: one program returning the loss and every gradient.

``export_forward_backward(ep, joint_loss_index)`` replays ``ep``'s graph with
autograd *on*: parameters (and user inputs that require grad) become traced
leaves that require grad, each node is called at the autograd level, and then
``torch.autograd.grad(loss, leaves, ones_like(loss))`` runs under the same
dispatch mode. The derivative formulas are torch's own; every ATen op they
call reaches graphlift's Recorder, so the backward lands in the same graph as
the forward. No torch tracing stack (AOTAutograd, make_fx, FakeTensor) is used.

Outputs, in order: the program's mutations, its user outputs (the loss marked
``LOSS_OUTPUT``), then one gradient per trainable parameter
(``GRADIENT_TO_PARAMETER``, named ``grad_<parameter>``) and per user input that
requires grad (``GRADIENT_TO_USER_INPUT``). Choices, each documented in
``docs/joint.md``:

- tied parameters get one gradient, under the first (canonical) name;
- a parameter the loss does not depend on gets a zero gradient;
- nodes the backward records carry the ``stack_trace`` and
  ``nn_module_stack`` of the forward node they differentiate (found through
  ``torch._C._current_autograd_node()``), plus ``meta["autograd_backward"]``;
- ``detach``/``alias`` are no-ops in a functional graph and are collapsed.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch._decomp import decomposition_table
from torch._dispatch.python import enable_python_dispatcher

from graphlift.decompose.engine import replay_placeholder
from graphlift.decompose.recorder import CARRIED_META, ReplayRecorder
from graphlift.decompose.replay import SIZE_QUERIES, backend_paths_off
from graphlift.errors import InternalError, JointExportError
from graphlift.export.program.call_graph import renamed_call_graph
from graphlift.export.program.constraints import range_constraints
from graphlift.export.program.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    TensorArgument,
)
from graphlift.export.program.verifier import verify
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node, map_arg
from graphlift.ir.passes import eliminate_dead_code
from graphlift.pytree import tree_flatten, tree_unflatten
from graphlift.symbolic import ShapeEnv
from graphlift.trace.autograd_functions import FUNCTIONS, TAG
from graphlift.trace.block_inlining import has_blocks
from graphlift.trace.mode import TraceMode, exporting_flags
from graphlift.trace.symbolic_values import SymbolicValues
from graphlift.trace.tensor import TraceTensor

if TYPE_CHECKING:
    from graphlift.export.program.call_graph import ModuleCallEntry
    from graphlift.export.program.exported_program import ExportedProgram

aten = torch.ops.aten
GRADIENT_KINDS = (OutputKind.GRADIENT_TO_PARAMETER, OutputKind.GRADIENT_TO_USER_INPUT)

#: Ops that only alias their input. A functional graph has nothing to express
#: with them; they are recorded (autograd needs a distinct result tensor) and
#: collapsed afterwards.
ALIASES = {aten.detach.default, aten.alias.default}


def _math_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    *,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """``scaled_dot_product_attention`` through its math kernel (composite: matmul,
    softmax, ...). The fused CPU kernel's backward op has no core-ATen
    decomposition, so a joint program using it could not be decomposed. A boolean
    mask becomes an additive one first, as the public op does for every backend."""
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        additive = torch.zeros_like(attn_mask, dtype=query.dtype)
        attn_mask = additive.masked_fill(attn_mask.logical_not(), float("-inf"))
    output: torch.Tensor = aten._scaled_dot_product_attention_math(
        query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa
    )[0]
    return output


#: Ops differentiated through another implementation than the one their
#: autograd kernel dispatches to: attention (see ``_math_attention``), and the
#: recurrent ops through torch's Python decompositions (functional, one cell
#: per step): GRU's C++ kernel calls ``transpose_``, a metadata mutation no
#: functional graph can record. LSTM's C++ kernel traces fine (portable paths).
DIFFERENTIATED_AS: dict[Any, Callable[..., Any]] = {
    aten.scaled_dot_product_attention.default: _math_attention,
    aten.gru.input: decomposition_table[aten.gru.input],
    aten.rnn_tanh.input: decomposition_table[aten.rnn_tanh.input],
    aten.rnn_relu.input: decomposition_table[aten.rnn_relu.input],
}


class JointRecorder(ReplayRecorder):
    """A ReplayRecorder for graphs differentiated by autograd.

    Results never claim ``requires_grad`` themselves (autograd sets it when it
    records their history), and a node recorded while the backward runs takes
    the source meta of the forward node whose derivative is being computed."""

    def __init__(self, graph: Graph, default_device: torch.device) -> None:
        super().__init__(graph, default_device)
        self.forward_of: dict[int, Node] = {}  # autograd node sequence_nr -> forward node

    @staticmethod
    def _requires_grad(args: Any) -> bool:
        return False

    def record(self, target: Any, args: Any, kwargs: Any) -> Node:
        if self.source is not None:
            return super().record(target, args, kwargs)
        node = self.graph.call_function(target, tuple(args), dict(kwargs))
        current = torch._C._current_autograd_node()
        forward = self.forward_of.get(current._sequence_nr()) if current is not None else None
        if forward is not None:
            node.meta.update({k: forward.meta[k] for k in CARRIED_META if k in forward.meta})
        node.meta["autograd_backward"] = True
        return node

    def claim_autograd_nodes(self, value: Any, source: Node) -> None:
        """Map the autograd nodes created for ``value`` (not yet claimed) to ``source``."""
        pending: list[Any] = [t.grad_fn for t in _tensors(value) if t.grad_fn is not None]
        while pending:
            function = pending.pop()
            if function is None or function._sequence_nr() in self.forward_of:
                continue
            self.forward_of[function._sequence_nr()] = source
            pending += [next_function for next_function, _ in function.next_functions]


# torch's TorchDispatchMode.__init_subclass__ is unannotated
class JointMode(TraceMode):  # type: ignore[no-untyped-call]
    """TraceMode at the autograd level: aliasing ops are recorded as views, so
    autograd gets a fresh tensor for each (they are collapsed at the end)."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func in ALIASES:
            return self.recorder.call(func, args, kwargs or {})
        return super().__torch_dispatch__(func, types, args, kwargs)


@dataclass(frozen=True)
class Leaf:
    """A value autograd differentiates the loss with respect to."""

    value: TraceTensor
    kind: OutputKind  # GRADIENT_TO_PARAMETER or GRADIENT_TO_USER_INPUT
    target: str  # the parameter's state_dict name, or the user input's placeholder name


def export_forward_backward(program: ExportedProgram, joint_loss_index: int = 0) -> ExportedProgram:
    """A new program computing ``program``'s outputs and the gradient of its user
    output number ``joint_loss_index`` (a scalar) with respect to every trainable
    parameter and every user input that requires grad. ``program`` is unchanged."""
    if has_blocks(program.graph_module):  # shared block bodies are differentiated flat
        program = program.inline_subgraphs()
    _check_supported(program)
    shape_env = program._shape_env.fork() if program._shape_env is not None else None
    joint = JointReplay(program, shape_env)
    graph, output_specs, renamed = joint.run(joint_loss_index)
    result = type(program)(
        graph_module=GraphModule(program.graph_module, graph),
        graph_signature=ExportGraphSignature(program.graph_signature.input_specs, output_specs),
        state_dict=dict(program.state_dict),
        constants=dict(program.constants),
        range_constraints=range_constraints(shape_env, graph) if shape_env else {},
        example_inputs=program.example_inputs,
        module_call_graph=renamed_call_graph(
            _with_gradients(program.module_call_graph, output_specs), renamed
        ),
        shape_env=shape_env,
        specializations=program.specializations,
    )
    verify(result, level="export")
    return result


_export_forward_backward = export_forward_backward


def _with_gradients(
    call_graph: tuple[ModuleCallEntry, ...], specs: tuple[OutputSpec, ...]
) -> tuple[ModuleCallEntry, ...]:
    """The root call returns ``(outputs, gradients)``: the program's outputs in
    their structure, then a dict from each gradient's target to the gradient."""
    root, *rest = call_graph
    if root.out_spec is None:
        raise InternalError("the root module call has no output structure")
    targets = [str(s.target) for s in specs if s.kind in GRADIENT_KINDS]
    outputs = tree_unflatten([0] * root.out_spec.num_leaves, root.out_spec)
    _, out_spec = tree_flatten((outputs, dict.fromkeys(targets, 0)))
    return (replace(root, out_spec=out_spec), *rest)


def _check_supported(program: ExportedProgram) -> None:
    if any(True for _ in program.graph_module.named_children()):
        raise JointExportError(
            "export_forward_backward does not differentiate control flow (torch.cond, map, "
            "while_loop, scan) yet; export the training program without it"
        )


class JointReplay:
    """One replay of a program's graph with autograd on, then its backward."""

    def __init__(self, program: ExportedProgram, shape_env: ShapeEnv | None) -> None:
        self.program = program
        self.shape_env = shape_env
        self.graph = Graph()
        self.recorder = JointRecorder(self.graph, default_device=_default_device(program))
        self.recorder.shape_env = shape_env
        if shape_env is not None:
            self.recorder.symbolic = SymbolicValues(self.graph, shape_env)
        self.mode = JointMode(self.recorder)
        self.values: dict[Node, Any] = {}
        self.functions_called: set[int] = set()  # custom autograd.Function calls replayed

    def run(self, joint_loss_index: int) -> tuple[Graph, tuple[OutputSpec, ...], dict[str, str]]:
        """The joint graph, its output specs, and old -> new names of the values
        the module call graph names."""
        nodes = list(self.program.graph.nodes)
        leaves = self._bind_placeholders(nodes)
        with differentiating(self.mode, symbolic=self.shape_env is not None):
            for node in nodes:
                if node.op == "call_function" and TAG in node.meta:
                    self._custom_function(node, node.meta[TAG])
                elif node.op == "call_function":
                    self.values[node] = self._call(node)
            outputs = list(map_arg(nodes[-1].args[0], self.values.get))
            specs = list(self.program.graph_signature.output_specs)
            loss = _loss(outputs, nodes[-1].args[0], specs, joint_loss_index)
            gradients = self._backward(loss, leaves, nodes[-1].args[0], outputs)
        boundary = self._call_graph_values()
        flat = [self._output_arg(v) for v in outputs]
        grad_nodes = [self.recorder.current_node(self.recorder.traced(g)) for g in gradients]
        out_specs = _user_specs(specs, flat, joint_loss_index)
        out_specs += [
            OutputSpec(leaf.kind, TensorArgument(node.name), leaf.target)
            for leaf, node in zip(leaves, grad_nodes)
        ]
        self.graph.output((*flat, *grad_nodes))
        _collapse_aliases(self.graph)
        eliminate_dead_code(self.graph, keep=list(boundary.values()))
        order = [spec.arg.name for spec in self.program.graph_signature.input_specs]
        graph, renamed_specs, copies = _named_gradients(self.graph, out_specs, order)
        return graph, renamed_specs, {old: copies[new].name for old, new in boundary.items()}

    def _call_graph_values(self) -> dict[str, Node]:
        """Old name -> new node of every value the module call graph names (kept,
        so module boundaries stay computable; aliases resolved to what they alias)."""
        named = {
            arg.name
            for entry in self.program.module_call_graph
            for arg in (*entry.inputs, *entry.outputs)
            if not isinstance(arg, ConstantArgument) and arg.name
        }
        found: dict[str, Node] = {}
        for node, value in self.values.items():
            if node.name in named and isinstance(value, TraceTensor):
                new = self.recorder.current_node(value)
                while new.op == "call_function" and new.target in ALIASES:
                    new = new.args[0]
                found[node.name] = new
        return found

    def _backward(
        self, loss: TraceTensor, leaves: list[Leaf], sources: Any, outputs: list[Any]
    ) -> list[torch.Tensor]:
        """``d loss / d leaf`` for every leaf, seeded with ``ones_like(loss)``; zeros
        for a leaf the loss does not reach. The seed and the zeros carry the loss's line."""
        loss_node = next(s for s, v in zip(sources, outputs) if v is loss)
        self.recorder.source = loss_node
        seed = torch.ones_like(loss)
        self.recorder.source = None
        values = [leaf.value for leaf in leaves]
        gradients = torch.autograd.grad(loss, values, seed, allow_unused=True)
        self.recorder.source = loss_node
        try:
            return [
                torch.zeros_like(value) if gradient is None else gradient
                for value, gradient in zip(values, gradients)
            ]
        finally:
            self.recorder.source = None

    def _call(self, node: Node) -> Any:
        args = map_arg(node.args, self.values.__getitem__)
        kwargs = map_arg(node.kwargs, self.values.__getitem__)
        size_query = SIZE_QUERIES.get(node.target)
        if size_query is not None:
            return size_query(*args, **kwargs)
        self.recorder.source = node
        self.recorder.module_stack = node.meta.get("nn_module_stack", {})
        try:
            function: Any = DIFFERENTIATED_AS.get(node.target, node.target)
            result = function(*args, **kwargs)
        finally:
            self.recorder.source = None
        self.recorder.claim_autograd_nodes(result, node)
        return result

    def _custom_function(self, node: Node, tag: dict[str, Any]) -> None:
        """A node of a custom autograd.Function's forward (trace/autograd_functions.py):
        the first one calls the Function again on the replayed arguments, so its own
        backward is used; its results become the values of the tagged result nodes,
        and the forward's other nodes are not replayed."""
        if tag["call"] in self.functions_called:
            return
        self.functions_called.add(tag["call"])
        function = _resolve_function(tag["function"], node)
        args = tuple(self._function_argument(a, tag, node) for a in tag["args"])
        kwargs = {k: self._function_argument(a, tag, node) for k, a in tag["kwargs"].items()}
        self.recorder.source = node
        try:
            result = function.apply(*args, **kwargs)
        finally:
            self.recorder.source = None
        self.recorder.claim_autograd_nodes(result, node)
        results = result if tag["tuple"] else (result,)
        by_name = {n.name: n for n in self.program.graph.nodes}
        for name, value in zip(tag["outputs"], results):
            if name is not None:
                if TAG not in by_name[name].meta:
                    raise JointExportError(
                        f"{tag['function']} returns one of its inputs unchanged ({name}); "
                        "the joint export cannot tell its uses apart. Return x.clone() instead",
                        where=node.meta.get("stack_trace"),
                    )
                self.values[by_name[name]] = value

    def _function_argument(self, argument: Any, tag: dict[str, Any], node: Node) -> Any:
        kind, payload = argument
        if kind == "value":
            return payload
        source = (
            next((n for n in self.values if n.name == payload), None) if kind == "node" else None
        )
        if source is None:
            raise JointExportError(
                f"cannot call {tag['function']} again: its argument {payload!r} is not a value "
                "of this program (was the program decomposed or edited after export? "
                "call export_forward_backward on the exported program)",
                where=node.meta.get("stack_trace"),
            )
        return self.values[source]

    def _output_arg(self, value: Any) -> Any:
        if isinstance(value, TraceTensor):
            return self.recorder.current_node(value)
        if isinstance(value, torch.SymInt) and self.recorder.symbolic is not None:
            return self.recorder.symbolic.node_for(value)
        return value

    def _bind_placeholders(self, nodes: list[Node]) -> list[Leaf]:
        specs = self.program.graph_signature.input_specs
        placeholders = [n for n in nodes if n.op == "placeholder"]
        canonical = _canonical_parameters(self.program)
        leaves: list[Leaf] = []
        for node, spec in zip(placeholders, specs):
            trainable = _trainable(self.program, spec, node, canonical)
            value = replay_placeholder(self.recorder, self.shape_env, node, requires_grad=trainable)
            self.values[node] = value
            if trainable and spec.kind is InputKind.PARAMETER:
                leaves.append(Leaf(value, OutputKind.GRADIENT_TO_PARAMETER, str(spec.target)))
            elif trainable:
                leaves.append(Leaf(value, OutputKind.GRADIENT_TO_USER_INPUT, spec.arg.name))
        return leaves


def _resolve_function(path: str, node: Node) -> Any:
    """The custom autograd.Function exported under ``path``: from this process's
    exports, or imported (a program loaded from an archive)."""
    known = FUNCTIONS.get(path)
    if known is not None:
        return known
    module_name, _, qualified = path.rpartition(".")
    while module_name:
        try:
            found: Any = importlib.import_module(module_name)
            for part in qualified.split("."):
                found = getattr(found, part)
            return found
        except (ImportError, AttributeError):
            module_name, _, head = module_name.rpartition(".")
            qualified = f"{head}.{qualified}"
    raise JointExportError(
        f"the custom autograd.Function {path} cannot be found (import its module first); "
        "its backward is needed to differentiate the program",
        where=node.meta.get("stack_trace"),
    )


def _canonical_parameters(program: ExportedProgram) -> set[str]:
    """Parameter names that own their tensor: the first name of each tied group."""
    seen: set[int] = set()
    names: set[str] = set()
    for spec in program.graph_signature.input_specs:
        if spec.kind is InputKind.PARAMETER:
            tensor = program.state_dict[str(spec.target)]
            if id(tensor) not in seen:
                seen.add(id(tensor))
                names.add(str(spec.target))
    return names


def _trainable(
    program: ExportedProgram, spec: InputSpec, placeholder: Node, canonical: set[str]
) -> bool:
    """Whether the loss is differentiated with respect to this input: a parameter
    that requires grad (the first name of tied ones), or a user input whose
    example required grad."""
    if spec.kind is InputKind.PARAMETER:
        target = str(spec.target)
        return target in canonical and program.state_dict[target].requires_grad
    if spec.kind is InputKind.USER_INPUT and isinstance(spec.arg, TensorArgument):
        value = placeholder.meta.get("val")
        return isinstance(value, torch.Tensor) and value.requires_grad and value.is_floating_point()
    return False


def _loss(outputs: list[Any], sources: Any, specs: list[OutputSpec], index: int) -> TraceTensor:
    """The loss: user output ``index``, a scalar float that depends on a leaf.
    Errors name the output and the line that computed it."""
    user = [
        (value, spec, source)
        for value, spec, source in zip(outputs, specs, sources)
        if spec.kind is OutputKind.USER_OUTPUT
    ]
    if not 0 <= index < len(user):
        raise JointExportError(
            f"joint_loss_index={index}, but the program has {len(user)} user output(s); "
            "pass the index of the scalar loss among the flattened user outputs"
        )
    loss, spec, source = user[index]
    where = source.meta.get("stack_trace") if isinstance(source, Node) else None
    if not isinstance(loss, TraceTensor) or loss.dim() != 0 or not loss.is_floating_point():
        raise JointExportError(
            f"user output {index} ({spec.arg.name}: {_describe(loss)}) is not a scalar "
            "floating-point loss; reduce it (.sum() / .mean()) or pass joint_loss_index of the loss",
            where=where,
        )
    if loss.grad_fn is None:
        raise JointExportError(
            f"user output {index} ({spec.arg.name}) does not depend on any trainable parameter "
            "or input that requires grad, so it has no gradient",
            where=where,
        )
    return loss


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _user_specs(specs: list[OutputSpec], flat: list[Any], loss_index: int) -> list[OutputSpec]:
    result = []
    user = 0
    for spec, arg in zip(specs, flat):
        kind = spec.kind
        if kind is OutputKind.USER_OUTPUT:
            kind = OutputKind.LOSS_OUTPUT if user == loss_index else kind
            user += 1
        new_arg = TensorArgument(arg.name) if isinstance(spec.arg, TensorArgument) else spec.arg
        result.append(OutputSpec(kind, new_arg, spec.target))
    return result


def _collapse_aliases(graph: Graph) -> None:
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in ALIASES:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)


def _named_gradients(
    graph: Graph, specs: list[OutputSpec], order: list[str]
) -> tuple[Graph, tuple[OutputSpec, ...], dict[Node, Node]]:
    """A copy of ``graph`` with its placeholders in signature ``order`` and each
    gradient's node named ``grad_<target>`` (when the node is only that gradient)."""
    output = next(reversed(graph.nodes))
    values = list(output.args[0])
    counts: dict[Node, int] = {}
    for value in values:
        if isinstance(value, Node):
            counts[value] = counts.get(value, 0) + 1
    names: dict[Node, str] = {}
    for value, spec in zip(values, specs):
        if spec.kind in GRADIENT_KINDS and value.op == "call_function" and counts[value] == 1:
            names[value] = "grad_" + str(spec.target).replace(".", "_")
    new = Graph()
    copies: dict[Node, Node] = {}
    placeholders = sorted(
        (n for n in graph.nodes if n.op == "placeholder"), key=lambda n: order.index(n.name)
    )
    rest = [n for n in graph.nodes if n.op not in ("placeholder", "output")]
    for node in (*placeholders, *rest):
        args, kwargs = map_arg((node.args, node.kwargs), copies.__getitem__)
        name = names.get(node, node.name if node.op != "placeholder" else str(node.target))
        copies[node] = new.create_node(
            node.op, node.target, args, kwargs, name, node.type, shadows_builtin=True
        )
        copies[node].meta = dict(node.meta)
    new.output(map_arg(output.args[0], copies.__getitem__))
    renamed = tuple(
        OutputSpec(s.kind, TensorArgument(copies[v].name), s.target)
        if isinstance(s.arg, TensorArgument)
        else s
        for s, v in zip(specs, values)
    )
    return new, renamed, copies


@contextmanager
def differentiating(mode: TraceMode, *, symbolic: bool) -> Iterator[None]:
    """The context of a joint replay: as export's, but at the autograd level with
    grad mode on, so autograd records every op and its formulas can be replayed.
    Backend-specific kernels are off as in ``run_decompositions``: LSTM's mkldnn
    layer saves a workspace that its backward needs and no graph records."""
    with ExitStack() as stack:
        stack.enter_context(exporting_flags())
        stack.enter_context(torch.enable_grad())
        stack.enter_context(backend_paths_off())
        if symbolic:
            stack.enter_context(enable_python_dispatcher())
        stack.enter_context(mode)
        yield


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _tensors(item)


def _default_device(program: ExportedProgram) -> torch.device:
    for node in program.graph.nodes:
        value = node.meta.get("val")
        if node.op == "placeholder" and isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")
