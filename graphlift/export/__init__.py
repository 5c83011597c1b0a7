"""Export: ``export()``, ``ExportedProgram``, the graph signature, ``module()``."""

from graphlift.export.api import capture, export
from graphlift.export.package import ExportPackage
from graphlift.export.program.call_graph import ModuleCallEntry, ModuleCallSignature
from graphlift.export.program.constraints import Specialization
from graphlift.export.program.draft import DraftExportReport, draft_export
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.program.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputProvenance,
    OutputSource,
    OutputSpec,
    SymFloatArgument,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.runtime.unflatten import FlatArgsAdapter, UnflattenedModule, unflatten
from graphlift.export.spec.dynamic_shapes import DerivedDim, Dim, DimHint, dims
from graphlift.export.spec.shape_specs import (
    AdditionalInputs,
    ShapesCollection,
    refine_dynamic_shapes,
)

__all__ = [
    "AdditionalInputs",
    "ConstantArgument",
    "DerivedDim",
    "Dim",
    "DimHint",
    "DraftExportReport",
    "ExportGraphSignature",
    "ExportPackage",
    "ExportedProgram",
    "FlatArgsAdapter",
    "InputKind",
    "InputSpec",
    "ModuleCallEntry",
    "ModuleCallSignature",
    "OutputKind",
    "OutputProvenance",
    "OutputSource",
    "OutputSpec",
    "ShapesCollection",
    "Specialization",
    "SymFloatArgument",
    "SymIntArgument",
    "TensorArgument",
    "UnflattenedModule",
    "capture",
    "dims",
    "draft_export",
    "export",
    "refine_dynamic_shapes",
    "unflatten",
]
