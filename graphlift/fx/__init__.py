"""Python-level tracing with torch.fx's public names: ``symbolic_trace``,
``Tracer``, ``Proxy``, ``wrap``, ``PH`` and ``ProxyableClassMeta``, plus the IR
names torch.fx users import from the same place."""

from graphlift.errors import TraceError
from graphlift.fx.proxy import Attribute, Proxy
from graphlift.fx.proxyable import ProxyableClassMeta
from graphlift.fx.tracer import PH, PHBase, Tracer, symbolic_trace
from graphlift.fx.transformer import Transformer
from graphlift.fx.wrapping import wrap
from graphlift.ir import CodeGen, Graph, GraphModule, Interpreter, Node, ShapeProp
from graphlift.ir.effects import register_side_effect as has_side_effect

__all__ = [
    "PH",
    "Attribute",
    "CodeGen",
    "Graph",
    "GraphModule",
    "Interpreter",
    "Node",
    "PHBase",
    "Proxy",
    "ProxyableClassMeta",
    "ShapeProp",
    "TraceError",
    "Tracer",
    "Transformer",
    "has_side_effect",
    "symbolic_trace",
    "wrap",
]
