"""Capture APIs beyond one forward (issue 20); re-exports only."""

from graphlift.errors import StickyExportError
from graphlift.experimental.methods import export_methods
from graphlift.experimental.sticky import sticky_export
from graphlift.trace.leaf import leaf_function

_sticky_export = sticky_export  # torch.export.experimental's name

__all__ = [
    "StickyExportError",
    "_sticky_export",
    "export_methods",
    "leaf_function",
    "sticky_export",
]
