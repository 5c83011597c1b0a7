"""graphlift: capture PyTorch programs into sound, portable, readable graphs."""

from graphlift.errors import GraphliftError, TraceError

__version__ = "0.1.0"

__all__ = ["GraphliftError", "TraceError", "__version__"]
