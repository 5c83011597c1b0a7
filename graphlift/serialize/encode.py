"""ExportedProgram -> (program.json data, flat tensors for safetensors).

The JSON is built in a fixed order from the program alone (no ids, no set
order), so saving a loaded program again gives the same bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch

from graphlift.errors import PytreeError, SerializationError
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.program.signature import (
    ConstantArgument,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.node import Node
from graphlift.pytree import TreeSpec, spec_to_data, tree_flatten
from graphlift.serialize.schema import SCHEMA_VERSION
from graphlift.serialize.shape_env_state import range_to_data, shape_env_to_data
from graphlift.serialize.targets import target_name
from graphlift.serialize.tensors import StorageWriter
from graphlift.serialize.values import encode_value

ROOT = "root"


def encode_program(ep: ExportedProgram) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    storages = StorageWriter()
    program = {**_header(), **encode_body(ep, storages)}
    program["storages"], flat = storages.storages()
    return program, flat


def encode_package(
    methods: Mapping[str, ExportedProgram],
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Several programs over one storage table: a tensor they share is stored once."""
    storages = StorageWriter()
    bodies = []
    for name, ep in methods.items():
        body = encode_body(ep, storages)
        del body["storages"]  # the package's table
        bodies.append([name, body])
    table, flat = storages.storages()
    return {**_header(), "storages": table, "methods": bodies}, flat


def _header() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "torch_version": torch.__version__}


def encode_body(ep: ExportedProgram, storages: StorageWriter) -> dict[str, Any]:
    """The program's JSON without its header; ``"storages"`` is left for the caller."""
    state = {k: storages.encode(v, f"state_dict[{k!r}]") for k, v in ep.state_dict.items()}
    constants = {k: storages.encode(v, f"constants[{k!r}]") for k, v in ep.constants.items()}
    try:
        call_graph = [_call_entry(entry) for entry in ep.module_call_graph]  # structure first
        example_inputs = _example_inputs(ep.example_inputs, storages)
    except PytreeError as error:
        raise SerializationError(
            f"cannot save the program's input/output structure: {error}"
        ) from None
    return {
        "graphs": encode_graphs(ep.graph_module),
        "signature": {
            "inputs": [_input_spec(s) for s in ep.graph_signature.input_specs],
            "outputs": [_output_spec(s) for s in ep.graph_signature.output_specs],
        },
        "storages": None,
        "state_dict": state,
        "constants": constants,
        "example_inputs": example_inputs,
        "range_constraints": {name: range_to_data(r) for name, r in ep.range_constraints.items()},
        "module_call_graph": call_graph,
        "shape_env": shape_env_to_data(ep._shape_env) if ep._shape_env is not None else None,
        "specializations": [
            {"source": s.source, "change": s.change, "where": s.where} for s in ep.specializations
        ],
    }


def encode_graphs(root: GraphModule) -> dict[str, Any]:
    """The root graph and every graph-module submodule (control-flow bodies), by qualified name."""
    graphs = {ROOT: encode_graph(root.graph)}
    for name, module in root.named_modules():
        if name and isinstance(module, GraphModule):
            graphs[name] = encode_graph(module.graph)
    return graphs


def encode_graph(graph: Graph) -> dict[str, Any]:
    return {"nodes": [_node(node) for node in graph.nodes]}


def _node(node: Node) -> dict[str, Any]:
    target = target_name(node.target) if node.op == "call_function" else node.target
    if not isinstance(target, str):
        raise SerializationError(f"node {node.name}: {node.op} target {target!r} is not a name")
    try:
        return {
            "name": node.name,
            "op": node.op,
            "target": target,
            "args": [encode_value(a) for a in node.args],
            "kwargs": [[k, encode_value(v)] for k, v in node.kwargs.items()],
            "meta": _meta(node.meta),
        }
    except SerializationError as error:
        raise SerializationError(f"node {node.format_node()}: {error}") from None


def _meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Known keys by their own encoding; other keys only when they are plain values
    (a key another pass adds with an unsaveable value is left out, not fatal)."""
    result: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "nn_module_stack":
            result[key] = [[k, path, kind] for k, (path, kind) in value.items()]
        elif key in ("val", "stack_trace", "original_op"):
            result[key] = encode_value(value)
        else:
            try:
                result[key] = encode_value(value)
            except SerializationError:
                continue
    return result


def _argument(arg: Any) -> dict[str, Any]:
    if isinstance(arg, TensorArgument):
        return {"tensor": arg.name}
    if isinstance(arg, SymIntArgument):
        return {"sym_int": arg.name}
    if isinstance(arg, SymFloatArgument):
        return {"sym_float": arg.name}
    if isinstance(arg, ConstantArgument):
        return {"constant": [arg.name, encode_value(arg.value)]}
    raise SerializationError(f"cannot save signature argument {arg!r}")


def _input_spec(spec: Any) -> dict[str, Any]:
    return {"kind": spec.kind.name, "arg": _argument(spec.arg), "target": spec.target,
            "persistent": spec.persistent}  # fmt: skip


def _output_spec(spec: Any) -> dict[str, Any]:
    return {"kind": spec.kind.name, "arg": _argument(spec.arg), "target": spec.target}


def _example_inputs(inputs: Any, storages: StorageWriter) -> dict[str, Any]:
    leaves, spec = tree_flatten(inputs)
    encoded = []
    for index, leaf in enumerate(leaves):
        if isinstance(leaf, torch.Tensor):
            encoded.append({"tensor": storages.encode(leaf, f"example input {index}")})
        else:
            encoded.append({"value": encode_value(leaf)})
    return {"spec": spec_to_data(spec), "leaves": encoded}


def _call_entry(entry: Any) -> dict[str, Any]:
    """The root entry in version 1's form; submodule entries add only what
    differs from the defaults, so an archive of a program without them is
    unchanged. A submodule call whose structure uses pytree types of the
    model's own (transformers' output classes) is saved without its signature
    unless the module is preserved: loading must not need the model's code."""
    data: dict[str, Any] = {"fqn": entry.fqn}
    own_types = not (_self_contained(entry.in_spec) and _self_contained(entry.out_spec))
    if entry.fqn and (entry.in_spec is None or (own_types and not entry.preserved)):
        data["in_spec"] = data["out_spec"] = None  # loads as a module without a signature
        return data | _flags(entry)
    data["in_spec"] = None if entry.in_spec is None else spec_to_data(entry.in_spec)
    data["out_spec"] = None if entry.out_spec is None else spec_to_data(entry.out_spec)
    data["forward_arg_names"] = list(entry.forward_arg_names)
    if entry.inputs or entry.outputs:
        data["inputs"] = [_argument(arg) for arg in entry.inputs]
        data["outputs"] = [_argument(arg) for arg in entry.outputs]
    return data | _flags(entry)


def _flags(entry: Any) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if entry.preserved:
        flags["preserved"] = True
    if entry.alias_of is not None:
        flags["alias_of"] = entry.alias_of
    return flags


_CONTAINERS = (tuple, list, dict, OrderedDict)


def _self_contained(spec: TreeSpec | None) -> bool:
    """``spec`` (None: no call) uses only Python's own containers."""
    if spec is None or spec.is_leaf():
        return True
    return spec.type in _CONTAINERS and all(_self_contained(c) for c in spec.children)
