"""`Transformer`: rewrite a GraphModule by re-running its graph on Proxies.

Each opcode method returns a Proxy recorded into a new graph, so a subclass
rewrites one kind of node by overriding one method (torch.fx's Transformer).
It lives in the tracing layer, not the IR, because it records through Proxies.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from graphlift.fx.proxy import Proxy
from graphlift.fx.tracer import Tracer
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.input_structure import META_KEY as INPUT_META_KEY
from graphlift.ir.interpreter import Interpreter
from graphlift.ir.node import Argument, Node, Target

# What a rewritten node keeps of the node it came from (torch.fx's preserve_node_meta).
PRESERVED_META = (
    "stack_trace", "nn_module_stack", "source_fn_stack", "torch_fn", "custom",
    "from_node", "quantization_tag", "partitioner_tag", "recompute", "ac_graph_id",
)  # fmt: skip


class _RecordingTracer(Tracer):
    """Records into an existing graph; every module call stays one node, and
    each new node keeps the source location and module path of the node whose
    rewrite made it."""

    def __init__(self, graph: Graph, root: torch.nn.Module) -> None:
        super().__init__()
        self.graph = graph
        self.root = root
        self._module_paths = {id(m): name for name, m in root.named_modules()}
        self.record_stack_traces = False
        self.source_node: Node | None = None

    def create_node(
        self,
        kind: str,
        target: Target,
        args: tuple[Argument, ...],
        kwargs: dict[str, Argument],
        name: str | None = None,
        type_expr: Any = None,
    ) -> Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        source = self.source_node.meta if self.source_node is not None else {}
        node.meta.update({key: copy.copy(source[key]) for key in PRESERVED_META if key in source})
        return node

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return True


class Transformer(Interpreter):
    def __init__(self, module: GraphModule) -> None:
        super().__init__(module)
        self.new_graph = Graph()
        self.new_graph.set_codegen(module.graph._codegen)  # same calling convention
        self.tracer = _RecordingTracer(self.new_graph, module)

    def run_node(self, n: Node) -> Any:
        self.tracer.source_node = n
        try:
            return super().run_node(n)
        finally:
            self.tracer.source_node = None

    def placeholder(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Proxy:
        default = args[0] if args else ...
        node = self.new_graph.placeholder(str(target), default_value=default)
        # A leaf of a structured input stays one, so the new module takes the
        # same arguments as the old one.
        source = self.graph.find_nodes(op="placeholder", target=target)
        if source and INPUT_META_KEY in source[0].meta:
            node.meta[INPUT_META_KEY] = source[0].meta[INPUT_META_KEY]
        return Proxy(node, self.tracer)

    def get_attr(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Proxy:
        return self.tracer.create_proxy("get_attr", target, args, kwargs)

    def call_function(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.tracer.create_proxy("call_function", target, args, kwargs)

    def call_method(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.tracer.create_proxy("call_method", target, args, kwargs)

    def call_module(self, target: Target, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        module = self.fetch_attr(str(target))
        return self.tracer.call_module(module, module.forward, args, kwargs)

    def transform(self) -> GraphModule:
        """Run every node through the opcode methods; returns the new GraphModule."""
        result = self.run(enable_io_processing=False)
        if result is not None:
            self.new_graph.output(self.tracer.create_arg(result))
        return GraphModule(self.module, self.new_graph)
