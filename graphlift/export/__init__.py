"""Export: ``export()``, ``ExportedProgram``, the graph signature, ``module()``."""

from graphlift.export.api import export
from graphlift.export.constraints import Specialization
from graphlift.export.dynamic_shapes import DerivedDim, Dim, DimHint, dims
from graphlift.export.program import ExportedProgram, ModuleCallEntry
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

__all__ = [
    "ConstantArgument",
    "DerivedDim",
    "Dim",
    "DimHint",
    "ExportGraphSignature",
    "ExportedProgram",
    "InputKind",
    "InputSpec",
    "ModuleCallEntry",
    "OutputKind",
    "OutputSpec",
    "Specialization",
    "SymIntArgument",
    "TensorArgument",
    "dims",
    "export",
]
