"""Export: ``export()``, ``ExportedProgram``, the graph signature, ``module()``."""

from graphlift.export.api import export
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
    "ExportGraphSignature",
    "ExportedProgram",
    "InputKind",
    "InputSpec",
    "ModuleCallEntry",
    "OutputKind",
    "OutputSpec",
    "SymIntArgument",
    "TensorArgument",
    "export",
]
