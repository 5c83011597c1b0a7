"""Interoperation with the rest of the PyTorch ecosystem: ``to_fx``/``from_fx``.

This package is the only part of graphlift that imports ``torch.fx``
(tests/test_architecture.py enforces it). See docs/interop.md.
"""

from graphlift.interop.fx import InputChecks, PytreeLayout, StructureCheck, from_fx, to_fx

__all__ = ["InputChecks", "PytreeLayout", "StructureCheck", "from_fx", "to_fx"]
