"""The graph IR: Node, Graph, code generation, GraphModule, Interpreter, passes.

Knows nothing of tracing, shapes or export. Placeholders are flat and
positional; pytree structure lives at the boundary (export, module()).
"""

from graphlift.ir.codegen import PythonCode
from graphlift.ir.custom_codegen import CodeGen
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.interpreter import Interpreter
from graphlift.ir.node import Node, map_aggregate, map_arg
from graphlift.ir.shape_prop import ShapeProp, TensorMetadata

__all__ = [
    "CodeGen",
    "Graph",
    "GraphModule",
    "Interpreter",
    "Node",
    "PythonCode",
    "ShapeProp",
    "TensorMetadata",
    "map_aggregate",
    "map_arg",
]
