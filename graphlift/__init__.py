"""graphlift: capture PyTorch programs into sound, portable, readable graphs.

The public names mirror torch.export and torch.fx, so that
switching is one import.
"""

from graphlift import experimental, interop
from graphlift.decompose.table import default_decompositions
from graphlift.errors import GraphliftError, MutationError, TraceError
from graphlift.experimental import export_methods, leaf_function
from graphlift.export import (
    AdditionalInputs,
    Dim,
    ExportedProgram,
    ExportGraphSignature,
    ExportPackage,
    FlatArgsAdapter,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    ShapesCollection,
    capture,
    dims,
    draft_export,
    export,
    refine_dynamic_shapes,
    unflatten,
)
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
from graphlift.pytree import register_dataclass

__version__ = "0.1.0"

__all__ = [
    "PH",
    "AdditionalInputs",
    "Dim",
    "ExportGraphSignature",
    "ExportPackage",
    "ExportedProgram",
    "FlatArgsAdapter",
    "Graph",
    "GraphModule",
    "GraphliftError",
    "InputKind",
    "InputSpec",
    "Interpreter",
    "MutationError",
    "Node",
    "OutputKind",
    "OutputSpec",
    "Proxy",
    "ProxyableClassMeta",
    "ShapeProp",
    "ShapesCollection",
    "TraceError",
    "Tracer",
    "Transformer",
    "__version__",
    "capture",
    "default_decompositions",
    "dims",
    "draft_export",
    "experimental",
    "export",
    "export_methods",
    "interop",
    "leaf_function",
    "refine_dynamic_shapes",
    "register_dataclass",
    "symbolic_trace",
    "unflatten",
    "wrap",
]

# Saving and loading (issue #7).
from graphlift.errors import ArchiveError
from graphlift.serialize import load, save

__all__ += ["ArchiveError", "load", "save"]
