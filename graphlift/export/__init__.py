"""Export: ``export()``, ``ExportedProgram``, the graph signature, ``module()``."""

from graphlift.export.api import export
from graphlift.export.constraints import Specialization
from graphlift.export.draft import DraftExportReport, draft_export
from graphlift.export.dynamic_shapes import DerivedDim, Dim, DimHint, dims
from graphlift.export.program import ExportedProgram, ModuleCallEntry
from graphlift.export.shape_specs import AdditionalInputs, ShapesCollection, refine_dynamic_shapes
from graphlift.export.signature import (
    ConstantArgument,
    ExportGraphSignature,
    InputKind,
    InputSpec,
    OutputKind,
    OutputProvenance,
    OutputSource,
    OutputSpec,
    SymIntArgument,
    TensorArgument,
)
from graphlift.export.unflatten import unflatten

__all__ = [
    "AdditionalInputs",
    "ConstantArgument",
    "DerivedDim",
    "Dim",
    "DimHint",
    "DraftExportReport",
    "ExportGraphSignature",
    "ExportedProgram",
    "InputKind",
    "InputSpec",
    "ModuleCallEntry",
    "OutputKind",
    "OutputProvenance",
    "OutputSource",
    "OutputSpec",
    "ShapesCollection",
    "Specialization",
    "SymIntArgument",
    "TensorArgument",
    "dims",
    "draft_export",
    "export",
    "refine_dynamic_shapes",
    "unflatten",
]
