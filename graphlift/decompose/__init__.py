"""The decomposition engine: the table, one replayer for graphs and control-flow
bodies, the replay recorder, the call cache and the 0/1 numeric check.

It depends on ``ir``, ``symbolic`` and ``trace`` only; the program-level
``ExportedProgram.run_decompositions`` (``export/program/decompositions.py``)
is a thin wrapper around :class:`~graphlift.decompose.engine.GraphEngine`.
"""

from graphlift.decompose.table import default_decompositions

__all__ = ["default_decompositions"]
