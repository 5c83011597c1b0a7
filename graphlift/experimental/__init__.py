"""Experimental features, re-exports only: capture APIs beyond one forward
(issue 20) and joint forward-backward export with its train step (issue 19)."""

from graphlift.errors import StickyExportError
from graphlift.experimental.joint import _export_forward_backward, export_forward_backward
from graphlift.experimental.methods import export_methods
from graphlift.experimental.sticky import sticky_export
from graphlift.experimental.train_step import TrainStep, train_step
from graphlift.trace.leaf import leaf_function

_sticky_export = sticky_export  # torch.export.experimental's name

__all__ = [
    "StickyExportError",
    "TrainStep",
    "_export_forward_backward",
    "_sticky_export",
    "export_forward_backward",
    "export_methods",
    "leaf_function",
    "sticky_export",
    "train_step",
]
