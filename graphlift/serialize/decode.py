"""(program.json data, tensors) -> ExportedProgram, checking everything on the way.

Order matters: the shape env first (symbolic sizes in node meta refer to its
symbols), then the storages, the graphs (subgraphs before the graphs that
use them), the signature, and finally graphlift's own verifier, so that a
program that decodes but breaks an invariant is refused as well.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from graphlift.errors import ArchiveError, GraphError, PytreeError, VerificationError
from graphlift.export.package import is_entry_name
from graphlift.export.program.call_graph import ModuleCallEntry
from graphlift.export.program.constraints import Specialization
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.program.signature import (
    RETURNED_KINDS,
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.program.verifier import verify
from graphlift.export.spec.symbols import parse_phantom_source
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import OPCODES
from graphlift.pytree import TreeSpec, spec_from_data, tree_unflatten
from graphlift.serialize.encode import ROOT
from graphlift.serialize.reader import Data
from graphlift.serialize.schema import Limits
from graphlift.serialize.shape_env_state import ExprReader, range_from_data, shape_env_from_data
from graphlift.serialize.targets import resolve_target
from graphlift.serialize.tensors import StorageReader
from graphlift.serialize.values import ValueDecoder
from graphlift.trace.block_inlining import inlined_names

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET_PATTERNS = {
    "placeholder": re.compile(rf"\*{{0,2}}{_IDENTIFIER}$"),
    "call_method": re.compile(rf"{_IDENTIFIER}$"),
    "get_attr": re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*$"),
    "call_module": re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*$"),
    "output": re.compile(r"output$"),
}
_SIZE_SOURCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.size\(\)\[(\d+)\]$")
#: Opcodes whose argument count is fixed (no kwargs): exported placeholders have no defaults.
_ARITY = {"placeholder": 0, "get_attr": 0, "output": 1}
_PROGRAM_KEYS = ("schema_version", "torch_version", "graphs", "signature", "storages",
                 "state_dict", "constants", "example_inputs", "range_constraints",
                 "module_call_graph", "shape_env", "specializations")  # fmt: skip
_HEADER_KEYS = ("schema_version", "torch_version", "storages")
_BODY_KEYS = tuple(key for key in _PROGRAM_KEYS if key not in _HEADER_KEYS)
_PACKAGE_KEYS = (*_HEADER_KEYS, "methods")


def decode_program(
    program: dict[str, Any], tensors: dict[str, torch.Tensor], version: int, limits: Limits
) -> ExportedProgram:
    data = Data(program, "program").fields(_PROGRAM_KEYS)
    _check_version(data, version)
    storages = StorageReader(data["storages"], tensors)
    result = decode_body(data, storages, limits, version)
    storages.check_all_used()
    return result


def decode_package(
    program: dict[str, Any], tensors: dict[str, torch.Tensor], version: int, limits: Limits
) -> dict[str, ExportedProgram]:
    """Name -> program; tensors the programs shared are shared objects again."""
    data = Data(program, "program").fields(_PACKAGE_KEYS)
    _check_version(data, version)
    storages = StorageReader(data["storages"], tensors)
    methods: dict[str, ExportedProgram] = {}
    for item in data["methods"].items():
        name, body = item.items(2)
        key = name.str()
        if not is_entry_name(key) or key in methods:
            raise name.fail(f"method name {key[:40]!r} is not a new identifier")
        methods[key] = decode_body(body.fields(_BODY_KEYS), storages, limits, version)
    storages.check_all_used()
    return methods


def _check_version(data: Data, version: int) -> None:
    if data["schema_version"].int() != version:
        raise data["schema_version"].fail(f"does not match the archive's version entry {version}")


def decode_body(
    data: Data, storages: StorageReader, limits: Limits, version: int
) -> ExportedProgram:
    """One program from its JSON fields (of schema ``version``), its tensors read
    through ``storages``."""
    read_expr = ExprReader(limits.max_expression_chars)
    env_data = data["shape_env"]
    shape_env = (
        None if env_data.value is None else shape_env_from_data(env_data, read_expr, version)
    )
    state_dict = {key: storages.decode(item) for key, item in data["state_dict"].entries()}
    constants = {key: storages.decode(item) for key, item in data["constants"].entries()}
    example_inputs = _example_inputs(
        data["example_inputs"], storages, ValueDecoder(None, read_expr)
    )
    values = ValueDecoder(shape_env, read_expr)
    graph_module = decode_graphs(data["graphs"], values, limits)
    signature = ExportGraphSignature(
        tuple(_input_spec(item, values) for item in data["signature"]["inputs"].items()),
        tuple(_output_spec(item, values) for item in data["signature"]["outputs"].items()),
    )
    _check_state(signature, state_dict, constants, data["signature"])
    result = ExportedProgram(
        graph_module=graph_module,
        graph_signature=signature,
        state_dict=state_dict,
        constants=constants,
        range_constraints={
            name: range_from_data(item) for name, item in data["range_constraints"].entries()
        },
        example_inputs=example_inputs,
        module_call_graph=tuple(
            _call_entry(item, values) for item in data["module_call_graph"].items()
        ),
        shape_env=shape_env,
        specializations=tuple(_specialization(item) for item in data["specializations"].items()),
    )
    _check_call_specs(result, data["module_call_graph"])
    _check_call_values(result, data["module_call_graph"])
    _check_symbol_sources(result, env_data)
    try:
        verify(result)
    except (VerificationError, GraphError, TypeError, ValueError, AttributeError) as error:
        raise ArchiveError(
            f"the archived program is not a valid exported program: {error}"
        ) from None
    return result


# --- graphs ------------------------------------------------------------------------------


def decode_graphs(data: Data, values: ValueDecoder, limits: Limits) -> GraphModule:
    """The root GraphModule; subgraph ``a.b`` becomes submodule ``b`` of subgraph ``a``.

    Deeper names are built first, so a graph's ``get_attr`` of a subgraph
    finds it already built.
    """
    entries = dict(data.entries())
    if ROOT not in entries:
        raise data.fail(f"no {ROOT!r} graph")
    total = sum(len(e["nodes"].items()) for e in entries.values())
    if total > limits.max_nodes:
        raise data.fail(f"{total} nodes (at most {limits.max_nodes})")
    built: dict[str, GraphModule] = {}
    for name in sorted(entries, key=lambda n: (-n.count("."), n)):
        if name == ROOT:
            continue
        built[name] = _graph_module(entries[name], _children(name, built), values)
    return _graph_module(entries[ROOT], _children("", built), values)


def _children(prefix: str, built: dict[str, GraphModule]) -> dict[str, GraphModule]:
    start = f"{prefix}." if prefix else ""
    return {
        name[len(start):]: module for name, module in built.items()
        if name.startswith(start) and "." not in name[len(start):]
    }  # fmt: skip


def _graph_module(
    data: Data, children: dict[str, GraphModule], values: ValueDecoder
) -> GraphModule:
    graph = decode_graph(data, values)
    try:
        module = GraphModule(children, graph) if children else GraphModule(torch.nn.Module(), graph)
        graph.lint()
    except (GraphError, VerificationError, SyntaxError, ValueError, TypeError) as error:
        raise data.fail(f"the graph is malformed: {str(error)[:300]}") from None
    except AttributeError as error:  # a get_attr naming no subgraph
        raise data.fail(f"the graph refers to a missing attribute: {error}") from None
    return module


def decode_graph(data: Data, values: ValueDecoder) -> Graph:
    data.fields(("nodes",))
    graph = Graph()
    values.nodes = {}
    for item in data["nodes"].items():
        item.fields(("name", "op", "target", "args", "kwargs", "meta"))
        name = item["name"].str()
        op = item["op"].choice({op: op for op in OPCODES})
        target = _target(op, item["target"])
        arity = _ARITY.get(op)
        args = tuple(values(arg) for arg in item["args"].items(arity))
        kwargs = {}
        for pair in item["kwargs"].items(0 if arity is not None else None):
            key, value = pair.items(2)
            kwargs[key.str()] = values(value)
        try:
            node = graph.create_node(op, target, args, kwargs, name=name, shadows_builtin=True)
        except GraphError as error:
            raise item.fail(str(error)) from None
        if node.name != name or name in values.nodes:
            raise item["name"].fail(f"node name {name[:40]!r} is not a fresh identifier")
        if op == "output" and not isinstance(args[0], tuple | list):
            raise item["args"].fail("an output node returns a tuple or list of values")
        values.nodes[name] = node
        node.meta = _meta(item["meta"], values, node)
    return graph


def _target(op: str, data: Data) -> Any:
    """A node's target. Names end up in generated code, so they must be plain
    (dotted) identifiers; call targets come from :mod:`.targets` lookups."""
    if op == "call_function":
        return resolve_target(data.str(), data.path)
    text = data.str()
    pattern = _TARGET_PATTERNS[op]
    if not pattern.match(text):
        raise data.fail(f"{op} target {text[:60]!r} is not a plain name")
    return text


def _meta(data: Data, values: ValueDecoder, node: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    values.owner = node
    for key, item in data.entries():
        if key == "nn_module_stack":
            stack = {}
            for entry in item.items():
                fqn, path, kind = (part.str() for part in entry.items(3))
                stack[fqn] = (path, kind)
            meta[key] = stack
        elif key in ("stack_trace", "original_op"):
            meta[key] = item.str()
        else:
            meta[key] = values(item)
    values.owner = None
    return meta


# --- signature, state, call graph ------------------------------------------------------------


def _argument(data: Data, values: ValueDecoder) -> Any:
    data.fields((), ("tensor", "sym_int", "sym_float", "constant"))
    if len(data.value) != 1:
        raise data.fail("expected one of 'tensor', 'sym_int', 'sym_float', 'constant'")
    if "tensor" in data.value:
        return TensorArgument(data["tensor"].str())
    if "sym_int" in data.value:
        return SymIntArgument(data["sym_int"].str())
    if "sym_float" in data.value:
        return SymFloatArgument(data["sym_float"].str())
    name, value = data["constant"].items(2)
    constant = values(value)
    if not (constant is None or isinstance(constant, int | float | bool | str)):
        raise value.fail("a constant argument is None, a number, a bool or a string")
    return ConstantArgument(name.str(), constant)


def _input_spec(data: Data, values: ValueDecoder) -> InputSpec:
    data.fields(("kind", "arg", "target", "persistent"))
    persistent = data["persistent"].value
    if persistent is not None:
        persistent = data["persistent"].bool()
    return InputSpec(data["kind"].choice(InputKind.__members__), _argument(data["arg"], values),
                     data["target"].optional_str(), persistent)  # fmt: skip


def _output_spec(data: Data, values: ValueDecoder) -> OutputSpec:
    data.fields(("kind", "arg", "target"))
    return OutputSpec(data["kind"].choice(OutputKind.__members__), _argument(data["arg"], values),
                      data["target"].optional_str())  # fmt: skip


def _check_state(
    signature: ExportGraphSignature,
    state_dict: dict[str, torch.Tensor],
    constants: dict[str, torch.Tensor],
    data: Data,
) -> None:
    for spec in signature.input_specs:
        if spec.kind is InputKind.PARAMETER or (spec.kind is InputKind.BUFFER and spec.persistent):
            table, name = state_dict, "state_dict"
        elif spec.kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            table, name = constants, "constants"
        else:
            continue
        if spec.target not in table:
            raise data.fail(
                f"input {spec.arg.name!r} needs {name}[{spec.target!r}], which is missing"
            )


def _spec(data: Data) -> TreeSpec:
    try:
        return spec_from_data(data.value)
    except (PytreeError, TypeError, ValueError, KeyError) as error:
        raise data.fail(f"bad pytree spec: {str(error)[:200]}") from None


def _example_inputs(data: Data, storages: StorageReader, values: ValueDecoder) -> Any:
    data.fields(("spec", "leaves"))
    spec = _spec(data["spec"])
    leaves = []
    for item in data["leaves"].items():
        item.fields((), ("tensor", "value"))
        leaves.append(
            storages.decode(item["tensor"]) if "tensor" in item.value else values(item["value"])
        )
    try:
        inputs = tree_unflatten(leaves, spec)
    except (PytreeError, TypeError, ValueError) as error:
        raise data.fail(f"example inputs do not fit their spec: {str(error)[:200]}") from None
    if not (isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], tuple)
            and isinstance(inputs[1], dict)):  # fmt: skip
        raise data.fail("example inputs are not (args, kwargs)")
    return inputs


def _call_entry(data: Data, values: ValueDecoder) -> ModuleCallEntry:
    data.fields(("fqn", "in_spec", "out_spec"),
                ("forward_arg_names", "inputs", "outputs", "preserved", "alias_of"))  # fmt: skip
    names = data.get("forward_arg_names")
    inputs, outputs = data.get("inputs"), data.get("outputs")
    preserved, alias_of = data.get("preserved"), data.get("alias_of")
    return ModuleCallEntry(
        data["fqn"].str(),
        None if data["in_spec"].value is None else _spec(data["in_spec"]),
        None if data["out_spec"].value is None else _spec(data["out_spec"]),
        tuple(item.str() for item in names.items()) if names else (),
        inputs=tuple(_argument(i, values) for i in inputs.items()) if inputs else (),
        outputs=tuple(_argument(i, values) for i in outputs.items()) if outputs else (),
        preserved=preserved.bool() if preserved else False,
        alias_of=alias_of.str() if alias_of else None,
    )


def _check_call_specs(program: ExportedProgram, data: Data) -> None:
    """``module()`` flattens ``(args, kwargs)`` with the root's in_spec and
    rebuilds outputs with its out_spec: both must fit the signature."""
    if not program.module_call_graph:
        raise data.fail("no entry for the root module")
    root = program.module_call_graph[0]
    if root.fqn or root.in_spec is None or root.out_spec is None:
        raise data.fail("the first entry is not the root module's call")
    args_kwargs = root.in_spec.type is tuple and len(root.in_spec.children) == 2
    if (
        not args_kwargs
        or root.in_spec.children[0].type is not tuple
        or (root.in_spec.children[1].type is not dict)
    ):
        raise data.fail("the root in_spec is not (args tuple, kwargs dict)")
    inputs = program.graph_signature.user_inputs
    outputs = [s for s in program.graph_signature.output_specs if s.kind in RETURNED_KINDS]
    if root.in_spec.num_leaves != len(inputs) or root.out_spec.num_leaves != len(outputs):
        raise data.fail(
            f"the root specs have {root.in_spec.num_leaves} inputs and {root.out_spec.num_leaves} "
            f"outputs; the signature has {len(inputs)} and {len(outputs)}"
        )


def _check_call_values(program: ExportedProgram, data: Data) -> None:
    """Every value a module call names is a node of the graph ("" when the
    program no longer computes it), or of a shared block body under the name
    inlining gives it."""
    names = {node.name for node in program.graph.nodes} | inlined_names(program.graph_module)
    for index, entry in enumerate(program.module_call_graph):
        for arg in (*entry.inputs, *entry.outputs):
            if not isinstance(arg, ConstantArgument) and arg.name and arg.name not in names:
                raise data.items()[index].fail(
                    f"{entry.fqn!r} names {arg.name!r}, which is no graph node"
                )


def _check_symbol_sources(program: ExportedProgram, data: Data) -> None:
    """Input checks read each input size symbol's source (``x.size()[0]``): it
    must name a graph input that has that dimension."""
    if program._shape_env is None:
        return
    ranks = {
        node.name: len(node.meta["val"].shape)
        for node in program.graph.nodes
        if node.op == "placeholder" and isinstance(node.meta.get("val"), torch.Tensor)
    }
    int_inputs = {  # dynamic int inputs: the symbol's source is the input itself
        node.name
        for node in program.graph.nodes
        if node.op == "placeholder" and isinstance(node.meta.get("val"), torch.SymInt)
    }
    for info in program._shape_env.symbols:
        if info.source in int_inputs:
            continue
        phantom = parse_phantom_source(info.source)  # (x.size()[2] // 32) reads x.size()[2]
        match = _SIZE_SOURCE.match(phantom[0] if phantom else info.source)
        if info.hint is not None and (
            match is None or int(match.group(2)) >= ranks.get(match.group(1), 0)
        ):
            raise data["symbols"].fail(
                f"symbol {info.name} is bound to {info.source!r}, which is no input dimension"
            )


def _specialization(data: Data) -> Specialization:
    data.fields(("source", "change", "where"))
    return Specialization(data["source"].str(), data["change"].str(), data["where"].optional_str())
