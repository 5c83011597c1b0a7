"""The capture stage of export: run the model on traced inputs and record it.

Parameters, buffers and user inputs become placeholders (in that order, then
constants the model used are lifted between buffers and user inputs, as
torch.export orders them); the model's own tensors are swapped for traced ones
while it runs and restored afterwards. The result is a frozen `Capture`.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import (
    ExportArgumentError,
    ExportError,
    MutationError,
    UnsupportedInputError,
)
from graphlift.export.module_calls import CallRecorder, module_call_graph
from graphlift.export.program.call_graph import ModuleCallEntry
from graphlift.export.program.signature import (
    ConstantArgument,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.spec.dynamic_shapes import VALUE, DimEntry
from graphlift.export.spec.symbols import DynamicDim, SymbolMaker
from graphlift.ir.graph import Graph, Namespace
from graphlift.ir.node import Node, describe_value
from graphlift.ir.passes import eliminate_dead_code
from graphlift.pytree import (
    TreeSpec,
    keystr,
    tree_flatten,
    tree_flatten_with_path,
    tree_leaves,
    tree_unflatten,
)
from graphlift.strict.interpreter import Interpreter
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic.expr import as_symbol
from graphlift.trace.blocks import BlockReuse, reusing_blocks
from graphlift.trace.examples import ExampleValues
from graphlift.trace.mode import tracing
from graphlift.trace.recorder import Recorder
from graphlift.trace.state import (
    module_stack,
    preserved_attributes,
    preserved_global_state,
    swapped_state,
)
from graphlift.trace.symbolic_values import SymbolicValues
from graphlift.trace.tensor import TraceTensor

_PYTHON_CONSTANTS = (int, float, bool, str, type(None))


@dataclass(frozen=True)
class Capture:
    graph: Graph
    input_specs: tuple[InputSpec, ...]
    output_specs: tuple[OutputSpec, ...]
    constants: dict[str, torch.Tensor]
    in_spec: TreeSpec
    out_spec: TreeSpec
    input_names: tuple[str, ...]  # forward's parameter names, for module() and errors
    shape_env: ShapeEnv | None  # None when every input is static
    dynamic_dims: tuple[DynamicDim, ...]
    subgraphs: dict[str, Any]  # control-flow bodies: get_attr target -> GraphModule
    module_call_graph: tuple[ModuleCallEntry, ...]
    python_guards: tuple[Any, ...] = ()  # strict=True: Python values read (strict/guards.py)


class FunctionModule(torch.nn.Module):
    """A plain function as a module (``gl.capture(fn)``); its ``forward`` has the
    function's signature, so inputs and specs are named as the function names them."""

    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def function_module(function: Any, signature: inspect.Signature | None = None) -> FunctionModule:
    """``function`` as a module; ``signature`` stands in for one Python cannot read
    (an operator's, from its schema). The module's own parameter has a name no
    function parameter collides with (operators call their first one ``self``)."""
    signature = signature or inspect.signature(function)
    self_parameter = inspect.Parameter("__module", inspect.Parameter.POSITIONAL_ONLY)
    forward = _copy_forward()
    forward.__signature__ = signature.replace(
        parameters=[self_parameter, *signature.parameters.values()]
    )
    name = re.sub(r"\W", "_", getattr(function, "__name__", "function"))
    cls = type(f"Captured_{name}", (FunctionModule,), {"forward": forward})
    module: FunctionModule = cls(function)
    return module


def _copy_forward() -> Any:
    def forward(self: FunctionModule, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    return forward


def capture(
    module: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dim_specs: list[dict[int, DimEntry]],
    specialize_data: bool = False,
    preserved: tuple[str, ...] = (),
    strict: bool = False,
    reuse_blocks: bool = False,
) -> Capture:
    recorder = Recorder(graph := Graph(), default_device=_default_device(module, args, kwargs))
    recorder.name_constant_sources(_tensor_attributes(module))
    if specialize_data:
        recorder.examples = ExampleValues(graph, recorder.subgraphs)
    symbols = SymbolMaker(ShapeEnv(backed_size_oblivious=True)) if any(dim_specs) else None
    if symbols is not None:
        recorder.symbolic = SymbolicValues(graph, symbols.shape_env, recorder.examples)
    names = _input_names(module, args, kwargs)
    nodes, state_specs, replacements = _placeholders(recorder, module, names)
    flat_inputs, in_spec = tree_flatten((args, kwargs))
    traced_inputs, user_specs = _user_placeholders(recorder, flat_inputs, nodes, dim_specs, symbols)
    traced_args, traced_kwargs = tree_unflatten(traced_inputs, in_spec)
    calls = CallRecorder(recorder, preserved)
    reuse = reuse_blocks and not (strict or preserved)  # strict interprets each call; preserved
    blocks = BlockReuse(recorder, module, calls) if reuse else None  # signatures need calls

    with (
        preserved_global_state(),
        preserved_attributes(module),
        swapped_state(module, lambda t: replacements[id(t)]),
        module_stack(recorder, module, calls),
        reusing_blocks(blocks, module),
    ):
        with tracing(recorder, symbolic=symbols is not None):
            if strict:
                interpreter = Interpreter()
                try:
                    target = module.function if isinstance(module, FunctionModule) else module
                    result = interpreter.call(target, traced_args, traced_kwargs)
                finally:
                    interpreter.finish()  # undoes any net side effect, and raises on one
                python_guards = tuple(interpreter.guards)
            else:
                result = module(*traced_args, **traced_kwargs)
                python_guards = ()
            if recorder.symbolic is not None:
                recorder.symbolic.emit_runtime_asserts()
        final_buffers = dict(module.named_buffers(remove_duplicate=False))

    flat_outputs, out_spec = tree_flatten(result)
    traced_by_name = _traced_inputs(state_specs, replacements, module, user_specs, traced_inputs)
    mutation_args, mutation_specs = _mutation_outputs(
        recorder, (*state_specs, *user_specs), traced_by_name, final_buffers
    )
    output_args, output_specs = _outputs(recorder, flat_outputs)
    graph.output((*mutation_args, *output_args))
    output_specs = [*mutation_specs, *output_specs]
    eliminate_dead_code(graph, keep=calls.boundary_nodes())
    constants = _used_constants(graph, recorder.constants)
    constant_specs = tuple(
        InputSpec(InputKind.CONSTANT_TENSOR, TensorArgument(c.name), c.target) for c in constants
    )
    input_specs = (*state_specs, *constant_specs, *user_specs)
    _order_placeholders(graph, [spec.arg.name for spec in input_specs])
    root_entry = ModuleCallEntry("", in_spec, out_spec, tuple(names))
    return Capture(
        graph=graph,
        input_specs=input_specs,
        output_specs=tuple(output_specs),
        constants={c.target: c.value for c in constants},
        in_spec=in_spec,
        out_spec=out_spec,
        input_names=tuple(names),
        shape_env=recorder.symbolic.shape_env if recorder.symbolic else None,
        dynamic_dims=tuple(symbols.dims) if symbols else (),
        subgraphs=dict(recorder.subgraphs),
        module_call_graph=module_call_graph(module, root_entry, calls.calls, graph, preserved),
        python_guards=python_guards,
    )


def _used_constants(graph: Graph, constants: list[Any]) -> list[Any]:
    """The lifted constants the graph still reads; the placeholders of the others are
    erased (a constant read only for ``.item()``, which is folded, is not lifted)."""
    unused = {node.name for node in graph.nodes if node.op == "placeholder" and not node.users} & {
        c.name for c in constants
    }
    for node in [n for n in graph.nodes if n.name in unused]:
        graph.erase_node(node)
    return [c for c in constants if c.name not in unused]


def _placeholders(
    recorder: Recorder, module: torch.nn.Module, names: list[str]
) -> tuple[list[Node], list[InputSpec], dict[int, torch.Tensor]]:
    """The user's input nodes, then the state's: inputs are named first, as in
    torch.export (an input ``p_weight`` keeps its name, the parameter ``weight``
    becomes ``p_weight_1``)."""
    nodes = [recorder.new_input(name) for name in names]
    state_specs, replacements = _lift_state(module, recorder)
    recorder.know_state(replacements)
    return nodes, state_specs, replacements


def _lift_state(
    module: torch.nn.Module, recorder: Recorder
) -> tuple[list[InputSpec], dict[int, torch.Tensor]]:
    """Placeholders for parameters, then buffers."""
    specs: list[InputSpec] = []
    replacements: dict[int, torch.Tensor] = {}
    # Tied tensors get one placeholder per name, as torch.export lists them; the
    # traced model reads the first one.
    for name, parameter in module.named_parameters(remove_duplicate=False):
        traced = recorder.placeholder(
            f"p_{_flat(name)}", parameter, requires_grad=parameter.requires_grad
        )
        replacements.setdefault(id(parameter), traced)
        specs.append(InputSpec(InputKind.PARAMETER, TensorArgument(traced.node.name), name))
    non_persistent = _non_persistent_buffers(module)
    for name, buffer in module.named_buffers(remove_duplicate=False):
        traced = recorder.placeholder(f"b_{_flat(name)}", buffer)
        replacements.setdefault(id(buffer), traced)
        persistent = name not in non_persistent
        specs.append(
            InputSpec(InputKind.BUFFER, TensorArgument(traced.node.name), name, persistent)
        )
    return specs, replacements


def _user_placeholders(
    recorder: Recorder,
    flat_inputs: list[Any],
    nodes: list[Node],
    dim_specs: list[dict[int, DimEntry]],
    symbols: SymbolMaker | None,
) -> tuple[list[Any], list[InputSpec]]:
    """The user's inputs bound to their placeholders ``nodes``. All nodes are made
    first, so symbols can be named after each placeholder's final name (how
    guards read it)."""
    tensors = [(node.name, leaf, entries) for node, leaf, entries in zip(nodes, flat_inputs, dim_specs)
               if isinstance(leaf, torch.Tensor)]  # fmt: skip
    symbolic_sizes = iter(symbols.sizes(tensors) if symbols else [None] * len(tensors))
    phantoms = symbols.phantoms if symbols else {}
    traced_inputs: list[Any] = []
    specs: list[InputSpec] = []
    for node, leaf, entries in zip(nodes, flat_inputs, dim_specs):
        if isinstance(leaf, torch.Tensor):
            sizes = next(symbolic_sizes)
            traced = recorder.bind_input(node, leaf, requires_grad=leaf.requires_grad, sizes=sizes)
            if sizes is not None and recorder.symbolic is not None:
                for dim, size in enumerate(sizes):
                    symbol = _plain_symbol(size)
                    if symbol is not None:
                        recorder.symbolic.bind(symbol, node, dim)
                # a root on no input (export/symbols.py) is computed from its first use
                for symbol, (name, dim, scale, offset) in phantoms.items():
                    if name == node.name:
                        recorder.symbolic.bind(symbol, node, dim, scale, offset)
            traced_inputs.append(traced)
            specs.append(InputSpec(InputKind.USER_INPUT, TensorArgument(node.name), None))
        elif VALUE in entries and symbols is not None and recorder.symbolic is not None:
            # spec matching gives a dynamic int a Dim or a hint, never a derived dim
            value = symbols.value(node.name, leaf, entries[VALUE])  # type: ignore[arg-type]
            node.meta["val"] = value
            recorder.symbolic.bind(str(_plain_symbol(value)), node, None)
            traced_inputs.append(value)
            specs.append(InputSpec(InputKind.USER_INPUT, SymIntArgument(node.name), None))
        elif isinstance(leaf, _PYTHON_CONSTANTS):
            node.meta["val"] = leaf
            traced_inputs.append(leaf)  # specialized: the model sees the Python value
            specs.append(InputSpec(InputKind.USER_INPUT, ConstantArgument(node.name, leaf), None))
        else:
            raise UnsupportedInputError(
                f"input {node.name!r} is a {type(leaf).__name__}; export takes tensors, Python "
                "scalars, strings and None, nested in tuples, lists, dicts, dataclasses and "
                "registered pytrees (graphlift.register_dataclass / "
                "torch.utils._pytree.register_pytree_node)"
            )
    return traced_inputs, specs


def _plain_symbol(size: Any) -> str | None:
    """The symbol name when ``size`` is exactly one symbol (not an expression)."""
    return as_symbol(size.node.symbolic_expr) if isinstance(size, torch.SymInt) else None


def _traced_inputs(
    state_specs: list[InputSpec],
    replacements: dict[int, torch.Tensor],
    module: torch.nn.Module,
    user_specs: list[InputSpec],
    traced_inputs: list[Any],
) -> dict[str, TraceTensor]:
    """placeholder name -> the traced value the model received for it. A tied
    tensor is read through its first name only, so only that one is listed."""
    state = {**dict(module.named_parameters(remove_duplicate=False)),
             **dict(module.named_buffers(remove_duplicate=False))}  # fmt: skip
    found: dict[str, TraceTensor] = {}
    for spec in state_specs:
        traced = replacements[id(state[str(spec.target)])]
        if isinstance(traced, TraceTensor) and all(traced is not t for t in found.values()):
            found[spec.arg.name] = traced
    for spec, value in zip(user_specs, traced_inputs):
        if isinstance(value, TraceTensor):
            found[spec.arg.name] = value
    return found


_MUTATION_KINDS = {
    InputKind.PARAMETER: OutputKind.PARAMETER_MUTATION,
    InputKind.BUFFER: OutputKind.BUFFER_MUTATION,
    InputKind.USER_INPUT: OutputKind.USER_INPUT_MUTATION,
}


def _mutation_outputs(
    recorder: Recorder,
    input_specs: tuple[InputSpec, ...],
    traced_by_name: dict[str, TraceTensor],
    final_buffers: dict[str, Any],
) -> tuple[list[Node], list[OutputSpec]]:
    """One output per input, parameter or buffer whose content the model changed,
    in input order (as torch.export orders them): updated in place, or — for a
    buffer — reassigned (``self.buf = self.buf + 1``). The target is the
    state_dict key, or the placeholder's name for user inputs."""
    args: list[Node] = []
    specs: list[OutputSpec] = []
    for spec in input_specs:
        traced = traced_by_name.get(spec.arg.name)
        if traced is None:
            continue  # not a tensor, or a tied name the model read through another one
        value: TraceTensor = traced
        if spec.kind is InputKind.BUFFER:
            reassigned = _reassigned(recorder, str(spec.target), traced, final_buffers)
            value = traced if reassigned is None else reassigned
        node = recorder.current_node(value)
        if node.op == "placeholder" and node.name == spec.arg.name:
            continue
        target = spec.arg.name if spec.kind is InputKind.USER_INPUT else spec.target
        args.append(node)
        specs.append(OutputSpec(_MUTATION_KINDS[spec.kind], TensorArgument(node.name), target))
    return args, specs


def _reassigned(
    recorder: Recorder, target: str, traced: TraceTensor, final_buffers: dict[str, Any]
) -> TraceTensor | None:
    """The new value of a buffer attribute the model reassigned, or None."""
    current = final_buffers.get(target)
    if current is traced:
        return None
    if isinstance(current, torch.Tensor) and not isinstance(current, TraceTensor):
        current = recorder.constant(current)
    if not isinstance(current, TraceTensor) or (
        [str(s) for s in current.shape], current.dtype) != ([str(s) for s in traced.shape], traced.dtype
    ):  # fmt: skip
        raise MutationError(
            f"the model replaced buffer {target!r} ({describe_value(traced)}) by "
            f"{describe_value(current) if isinstance(current, torch.Tensor) else repr(current)}; "
            "an exported program can update a buffer's values but not its shape, dtype or "
            "existence. Assign a tensor of the same shape and dtype"
        )
    return current


def _outputs(recorder: Recorder, flat_outputs: list[Any]) -> tuple[list[Any], list[OutputSpec]]:
    args: list[Any] = []
    specs: list[OutputSpec] = []
    for index, leaf in enumerate(flat_outputs):
        if isinstance(leaf, torch.SymInt | torch.SymFloat) and recorder.symbolic is not None:
            node = recorder.symbolic.node_for(leaf)
            args.append(node)
            name = node.name if isinstance(node, Node) else f"output_{index}"
            kind = SymIntArgument if isinstance(leaf, torch.SymInt) else SymFloatArgument
            specs.append(OutputSpec(OutputKind.USER_OUTPUT, kind(name), None))
            continue
        if isinstance(leaf, torch.Tensor) and not isinstance(leaf, TraceTensor):
            leaf = recorder.constant(leaf)  # a tensor the model returns untouched
        if isinstance(leaf, TraceTensor):
            node = recorder.current_node(leaf)
            args.append(node)
            specs.append(OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(node.name), None))
        elif isinstance(leaf, _PYTHON_CONSTANTS):
            args.append(leaf)
            specs.append(
                OutputSpec(OutputKind.USER_OUTPUT, ConstantArgument(f"output_{index}", leaf), None)
            )
        else:
            raise ExportError(
                f"output {index} is a {type(leaf).__name__}; an exported program returns tensors "
                "and Python scalars, nested in tuples, lists, dicts and registered pytrees"
            )
    return args, specs


def placeholder_names(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[str]:
    """The placeholder name capture gives each flat user input, as guards and
    ``err.fixes`` sources use it (``x``, ``input``, ``inputs_mask``): they are
    named first, before parameters and buffers, as in torch.export."""
    namespace = Namespace()
    return [
        namespace.create_name(name, input_name=True) for name in _input_names(module, args, kwargs)
    ]


def _input_names(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[str]:
    """A placeholder name per flat input: the forward parameter's name, with the
    path inside it for nested inputs (``x``, ``inputs_mask``, ``pair_0``)."""
    try:
        bound = inspect.signature(module.forward).bind(*args, **kwargs)
    except TypeError as error:
        raise ExportArgumentError(
            f"the example inputs do not fit {type(module).__name__}.forward: {error}"
        ) from None
    parameters = list(bound.signature.parameters.values())
    names: list[str] = []
    for position, arg in enumerate(args):
        names += _leaf_names(_positional_name(parameters, position), arg)
    for key, value in kwargs.items():
        names += _leaf_names(key, value)
    return names


def _positional_name(parameters: list[inspect.Parameter], position: int) -> str:
    """The parameter's name; for the n-th value ``*args`` takes, ``args_<n>`` (as torch)."""
    starred = next(
        (i for i, p in enumerate(parameters) if p.kind is inspect.Parameter.VAR_POSITIONAL), None
    )
    if starred is None or position < starred:
        return parameters[position].name if position < len(parameters) else f"args_{position}"
    return f"{parameters[starred].name}_{position - starred}"


def _leaf_names(prefix: str, value: Any) -> list[str]:
    """``x`` for a tensor, ``inputs_mask`` / ``pair_0`` for leaves inside containers."""
    names = []
    for path, _leaf in tree_flatten_with_path(value)[0]:
        suffix = re.sub(r"[^0-9a-zA-Z_]+", "_", keystr(path)).strip("_")
        names.append(f"{prefix}_{suffix}" if suffix else prefix)
    return names


def _order_placeholders(graph: Graph, order: list[str]) -> None:
    """Move placeholders into signature order at the start of the graph."""
    placeholders = {node.name: node for node in graph.nodes if node.op == "placeholder"}
    for name in reversed(order):
        next(iter(graph.nodes)).prepend(placeholders[name])


def _flat(name: str) -> str:
    return name.replace(".", "_")


def _non_persistent_buffers(module: torch.nn.Module) -> set[str]:
    names = set()
    for prefix, submodule in module.named_modules(remove_duplicate=False):  # shared ones too
        for buffer in submodule._non_persistent_buffers_set:
            names.add(f"{prefix}.{buffer}" if prefix else buffer)
    return names


def _tensor_attributes(module: torch.nn.Module) -> dict[int, str]:
    """id -> qualified name of tensors held as plain attributes (not state)."""
    found: dict[int, str] = {}
    for prefix, submodule in module.named_modules():
        for name, value in vars(submodule).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                found.setdefault(id(value), f"{prefix}.{name}" if prefix else name)
    return found


def _default_device(
    module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> torch.device:
    for leaf in tree_leaves((args, kwargs)):
        if isinstance(leaf, torch.Tensor):
            return leaf.device
    for tensor in module.parameters():
        return tensor.device
    return torch.device("cpu")
