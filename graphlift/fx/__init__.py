"""Python-level tracing with torch.fx's public names: ``symbolic_trace``,
``Tracer``, ``Proxy``, ``wrap``, ``PH`` and ``ProxyableClassMeta``, plus the IR
names torch.fx users import from the same place."""

from graphlift.errors import TraceError
from graphlift.fx.proxy import Attribute, Proxy
from graphlift.fx.proxyable import ProxyableClassMeta
from graphlift.fx.tracer import PH, PHBase, Tracer, symbolic_trace, wrap
from graphlift.fx.transformer import Transformer
from graphlift.ir import CodeGen, Graph, GraphModule, Interpreter, Node, ShapeProp

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
    "symbolic_trace",
    "wrap",
]
