"""Capture APIs beyond one forward (issue 20); re-exports only."""

from graphlift.trace.leaf import leaf_function

__all__ = ["leaf_function"]
