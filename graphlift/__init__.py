"""graphlift: capture PyTorch programs into sound, portable, readable graphs.

The public names mirror torch.fx (and, as they land, torch.export), so that
switching is one import.
"""

from graphlift.errors import GraphliftError, TraceError
from graphlift.fx import (
    PH,
    Graph,
    GraphModule,
    Interpreter,
    Node,
    Proxy,
    ProxyableClassMeta,
    ShapeProp,
    Tracer,
    Transformer,
    symbolic_trace,
    wrap,
)

__version__ = "0.1.0"

__all__ = [
    "PH",
    "Graph",
    "GraphModule",
    "GraphliftError",
    "Interpreter",
    "Node",
    "Proxy",
    "ProxyableClassMeta",
    "ShapeProp",
    "TraceError",
    "Tracer",
    "Transformer",
    "__version__",
    "symbolic_trace",
    "wrap",
]
