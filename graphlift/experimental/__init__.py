"""Experimental features: joint forward-backward export (issue 19)."""

from graphlift.experimental.joint import _export_forward_backward, export_forward_backward

__all__ = ["_export_forward_backward", "export_forward_backward"]
