"""Export: ``export()``, ``ExportedProgram``, the graph signature, ``module()``."""

from graphlift.export.api import export
from graphlift.export.call_graph import ModuleCallEntry, ModuleCallSignature
from graphlift.export.constraints import Specialization
from graphlift.export.draft import DraftExportReport, draft_export
from graphlift.export.dynamic_shapes import DerivedDim, Dim, DimHint, dims
from graphlift.export.program import ExportedProgram
from graphlift.export.shape_specs import AdditionalInputs, ShapesCollection, refine_dynamic_shapes
from graphlift.export.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputSpec,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.unflatten import FlatArgsAdapter, UnflattenedModule, unflatten

__all__ = [
    "AdditionalInputs",
    "ConstantArgument",
    "DerivedDim",
    "Dim",
    "DimHint",
    "DraftExportReport",
    "ExportGraphSignature",
    "ExportedProgram",
    "FlatArgsAdapter",
    "InputKind",
    "InputSpec",
    "ModuleCallEntry",
    "ModuleCallSignature",
    "OutputKind",
    "OutputSpec",
    "ShapesCollection",
    "Specialization",
    "SymIntArgument",
    "TensorArgument",
    "UnflattenedModule",
    "dims",
    "draft_export",
    "export",
    "refine_dynamic_shapes",
    "unflatten",
]
