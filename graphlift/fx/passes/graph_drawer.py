"""``FxGraphDrawer``: torch.fx's graph drawer for graphlift graphs.

Same constructor, methods and node labels as ``torch.fx.passes.graph_drawer``:
one ``pydot.Dot`` per graph (the main one, and one per called submodule that is
itself a GraphModule), a record-shaped box per node listing its name, opcode,
target, arguments, number of users and, when the node carries them, the shape,
dtype, stride and requires_grad of its value (``meta["tensor_meta"]`` from
``ShapeProp``, or the ``meta["val"]`` every exported node has). Takes a
GraphModule or an ExportedProgram::

    drawer = FxGraphDrawer(gl.symbolic_trace(model), "model")
    drawer.get_dot_graph().write_svg("model.svg")   # needs graphviz's dot
    print(drawer.get_dot_graph().to_string())       # dot source

Needs the optional ``pydot`` package; laying out needs graphviz's ``dot``
program. Each missing piece is a typed error naming the fix.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import torch

from graphlift.errors import MissingAttributeError
from graphlift.fx.passes.graphviz import new_dot_graph, require_pydot
from graphlift.ir import Node
from graphlift.ir.node import describe_target, format_arg

__all__ = ["FxGraphDrawer"]

# torch.fx's colours: a fixed one per opcode, otherwise one picked by the target's name
OPCODE_COLORS = {
    "placeholder": '"AliceBlue"',
    "call_module": "LemonChiffon1",
    "get_param": "Yellow2",
    "get_attr": "LightGrey",
    "output": "PowderBlue",
}
TARGET_COLORS = (
    "CadetBlue1", "Coral", "DarkOliveGreen1", "DarkSeaGreen1", "GhostWhite", "Khaki1",
    "LavenderBlush1", "LightSkyBlue", "MistyRose1", "MistyRose2", "PaleTurquoise2",
    "PeachPuff1", "Salmon", "Thistle1", "Thistle3", "Wheat1",
)  # fmt: skip
WEIGHT_STYLE = {"fillcolor": "Salmon", "style": '"filled,rounded"', "fontcolor": "#000000"}
# characters with a meaning inside a graphviz record label (pydot escapes quotes itself)
RECORD_SPECIALS = re.compile(r"([{}|<>])")
MAX_LIST_ITEMS = 8


class FxGraphDrawer:
    """Draw a graphlift GraphModule (or ExportedProgram) with graphviz, as torch.fx does.

    ``get_dot_graph()`` returns the main graph, ``get_dot_graph("sub")`` the
    graph of the GraphModule called as ``sub``; ``get_all_dot_graphs()`` maps
    ``name`` and ``f"{name}_{sub}"`` to each.
    """

    def __init__(
        self,
        graph_module: Any,
        name: str,
        ignore_getattr: bool = False,
        ignore_parameters_and_buffers: bool = False,
        skip_node_names_in_args: bool = True,
        parse_stack_trace: bool = False,
        dot_graph_shape: str | None = None,
        normalize_args: bool = False,
    ) -> None:
        self._pydot = require_pydot()
        self._name = name
        self.dot_graph_shape = dot_graph_shape if dot_graph_shape is not None else "record"
        # graphlift keeps arguments as the program recorded them; accepted for torch's signature
        self.normalize_args = normalize_args
        self._ignore_getattr = ignore_getattr
        self._ignore_weights = ignore_parameters_and_buffers
        self._skip_node_names = skip_node_names_in_args
        self._parse_stack_trace = parse_stack_trace
        root = drawable_module(graph_module)
        self._dot_graphs = {name: self._to_dot(root, name)}
        for node in root.graph.nodes:
            if node.op not in ("call_module", "get_attr"):
                continue
            body = _resolve(root, node.target)
            if isinstance(body, torch.nn.Module) and hasattr(body, "graph"):
                self._dot_graphs[f"{name}_{node.target}"] = self._to_dot(
                    body, f"{name}_{node.target}"
                )

    def get_dot_graph(self, submod_name: str | None = None) -> Any:
        """The main graph, or the graph of the submodule called ``submod_name``."""
        if submod_name is None:
            return self.get_main_dot_graph()
        return self.get_submod_dot_graph(submod_name)

    def get_main_dot_graph(self) -> Any:
        return self._dot_graphs[self._name]

    def get_submod_dot_graph(self, submod_name: str) -> Any:
        return self._dot_graphs[f"{self._name}_{submod_name}"]

    def get_all_dot_graphs(self) -> dict[str, Any]:
        return self._dot_graphs

    def _to_dot(self, module: Any, name: str) -> Any:
        pydot = self._pydot
        dot_graph = new_dot_graph(name, rankdir="TB")
        graph = module.graph
        for node in graph.nodes:
            if self._ignore_getattr and node.op == "get_attr":
                continue
            label = self._node_label(module, node)
            dot_graph.add_node(pydot.Node(node.name, label=label, **self._node_style(node)))
            if node.op == "call_module" and not self._ignore_weights:
                self._add_weights(dot_graph, node, _resolve(module, node.target))
        for node in graph.nodes:
            if self._ignore_getattr and node.op == "get_attr":
                continue
            for user in node.users:
                dot_graph.add_edge(pydot.Edge(node.name, user.name))
        return dot_graph

    def _add_weights(self, dot_graph: Any, node: Node, leaf: Any) -> None:
        """A box per parameter and buffer of a called leaf module, with an edge to the call."""
        if not isinstance(leaf, torch.nn.Module) or hasattr(leaf, "graph"):
            return
        named = [*leaf.named_parameters(), *leaf.named_buffers()]
        for weight_name, tensor in named:
            box = f"{node.name}.{weight_name}"
            kind = "parameter" if isinstance(tensor, torch.nn.Parameter) else "buffer"
            label = "{" + f"{box}|op_code=get_{kind}" + r"\l" + _tensor_text(tensor) + "}"
            style = {**WEIGHT_STYLE, "shape": self.dot_graph_shape}
            dot_graph.add_node(self._pydot.Node(box, label=label, **style))
            dot_graph.add_edge(self._pydot.Edge(box, node.name))

    def _node_style(self, node: Node) -> dict[str, str]:
        color = OPCODE_COLORS.get(node.op)
        if color is None:
            digest = hashlib.md5(_target_name(node.target).encode(), usedforsecurity=False)
            color = TARGET_COLORS[int(digest.hexdigest()[:8], 16) % len(TARGET_COLORS)]
        return {
            "shape": self.dot_graph_shape,
            "fillcolor": color,
            "style": '"filled,rounded"',
            "fontcolor": "#000000",
        }

    def _node_label(self, module: Any, node: Node) -> str:
        label = "{" + f"name=%{node.name}|op_code={node.op}\n"
        if node.op == "call_module":
            leaf = _resolve(module, node.target)
            constants = getattr(leaf, "__constants__", ())
            label += r"\n" + _escape(torch.typename(leaf)) + r"\n|"
            label += r"\n".join(_escape(f"{c}: {getattr(leaf, c, None)}") for c in constants)
            label += r"\n"
        else:
            label += f"|target={_escape(_target_name(node.target))}" + r"\n"
            label += self._arguments_text(node.args, "args=(", ")")
            label += self._arguments_text(node.kwargs, "kwargs={", "}")
            label += f"|num_users={len(node.users)}" + r"\n"
        label += value_label(node.meta)
        if self._parse_stack_trace:
            label += _stack_trace_label(node.meta.get("stack_trace"))
        return label + "}"

    def _arguments_text(self, arguments: Any, opening: str, closing: str) -> str:
        """``|args=(1, 2)`` as torch.fx writes it: one per line when there are several."""
        if isinstance(arguments, dict):
            items = [f"{key}: {_short_arg(value)}" for key, value in arguments.items()]
        else:
            items = [_short_arg(value) for value in arguments]
        if self._skip_node_names:
            items = [item for item in items if "%" not in item]
        if not items:
            return ""
        escaped = [_escape(item) for item in items]
        if len(escaped) == 1:
            return f"|{_escape(opening)}{escaped[0]},{_escape(closing)}"
        joined = r",\n".join(escaped)
        return rf"|{_escape(opening)}\l{joined},\n{_escape(closing)}\l"


def drawable_module(graph_module: Any) -> Any:
    """The GraphModule to draw: the argument, or an ExportedProgram's ``graph_module``."""
    if isinstance(graph_module, torch.nn.Module) and hasattr(graph_module, "graph"):
        return graph_module
    program_module = getattr(graph_module, "graph_module", None)
    if isinstance(program_module, torch.nn.Module):
        return program_module
    raise MissingAttributeError(
        f"FxGraphDrawer draws a GraphModule or an ExportedProgram, got {type(graph_module).__name__}: "
        "trace it first (graphlift.symbolic_trace or graphlift.export)"
    )


def value_label(meta: dict[str, Any]) -> str:
    """The ``|dtype=...|shape=...`` fields of a node's value, from ``tensor_meta`` or ``val``."""
    described = meta.get("tensor_meta")
    if described is None:
        described = meta.get("val")
    return "".join(_value_fields(value) for value in _flat_values(described))


def _flat_values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple) and not hasattr(value, "dtype"):
        return [leaf for item in value for leaf in _flat_values(item)]
    return [value] if isinstance(getattr(value, "dtype", None), torch.dtype) else []


def _value_fields(value: Any) -> str:
    stride = value.stride() if isinstance(value, torch.Tensor) else value.stride
    fields = {
        "dtype": value.dtype,
        "shape": tuple(value.shape),
        "requires_grad": value.requires_grad,
        "stride": tuple(stride),
    }
    qparams = getattr(value, "qparams", None) or {}
    fields.update({f"q_{key}": qparams[key] for key in ("scale", "zero_point") if key in qparams})
    return "".join(f"|{key}={_escape(str(text))}" + r"\n" for key, text in fields.items())


def _stack_trace_label(stack_trace: str | None) -> str:
    """``|file=dir/model.py:12 code``: the last frame of a stack trace, either style."""
    if not stack_trace:
        return ""
    lines = [line for line in stack_trace.strip().splitlines() if line.strip()]
    head = lines[-2] if len(lines) >= 2 else lines[-1]
    code = lines[-1].strip() if len(lines) >= 2 else ""
    torch_style = re.search(r'File "([^"]+)", line (\d+)', head)
    ours = re.match(r"\s*(\S+?):(\d+) in ", head)
    found = torch_style or ours
    if found is None:
        return ""
    short_file = "/".join(found.group(1).split("/")[-2:])
    return f"|file={_escape(f'{short_file}:{found.group(2)} {code}')}" + r"\n"


def _resolve(module: torch.nn.Module, target: Any) -> Any:
    found: Any = module
    for atom in str(target).split("."):
        found = getattr(found, atom, None)
    return found


def _target_name(target: Any) -> str:
    return target if isinstance(target, str) else describe_target(target)


def _short_arg(value: Any) -> str:
    if isinstance(value, list | tuple) and len(value) > MAX_LIST_ITEMS:
        shown = ", ".join(format_arg(item) for item in value[:MAX_LIST_ITEMS])
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        return f"{opening}{shown}, ...[total_len={len(value)}]{closing}"
    return format_arg(value)


def _tensor_text(tensor: torch.Tensor) -> str:
    return str(tensor.dtype) + str(list(tensor.shape)) + r"\n"


def _escape(text: str) -> str:
    return RECORD_SPECIALS.sub(r"\\\1", text)
