"""Graphviz, the one layout engine graphlift draws with.

Finds graphviz's programs and runs them (``graphlift show --svg`` and
``FxGraphDrawer`` share this), and, when the optional ``pydot`` package is
installed, provides :class:`DotGraph`: a ``pydot.Dot`` whose ``create_*`` and
``write_*`` methods raise :class:`~graphlift.errors.GraphvizNotFoundError`
instead of a bare ``FileNotFoundError`` when graphviz is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from types import ModuleType
from typing import Any

from graphlift.errors import GraphDrawingError, GraphvizNotFoundError

pydot: ModuleType | None
try:  # optional: FxGraphDrawer returns pydot graphs, as torch.fx's does
    import pydot
except ModuleNotFoundError:
    pydot = None

INSTALL_GRAPHVIZ = (
    "install graphviz (apt-get install graphviz, brew install graphviz or "
    "conda install graphviz) so that its programs are on PATH"
)


def graphviz_program(name: str = "dot") -> str:
    """The path of graphviz's program ``name`` (``dot``, ``neato``, ...), or a typed error."""
    found = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
    if found is None:
        raise GraphvizNotFoundError(
            f"graphviz's {name!r} program was not found: {INSTALL_GRAPHVIZ}"
        )
    return found


def render(source: str, output_format: str = "svg", program: str = "dot") -> bytes:
    """Lay out dot ``source`` with graphviz's ``program`` and return the ``output_format`` bytes."""
    result = subprocess.run(
        [graphviz_program(program), f"-T{output_format}"],
        input=source.encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", "replace").strip()[:500]
        raise GraphDrawingError(f"graphviz's {program} failed: {message}")
    return result.stdout


def require_pydot() -> ModuleType:
    """The pydot module, or the typed error torch.fx's FxGraphDrawer raises without it."""
    if pydot is None:
        raise GraphDrawingError(
            "FxGraphDrawer builds pydot graphs: install the pydot package "
            "(pip install pydot, or pip install graphlift[draw])"
        )
    return pydot


if pydot is not None:

    class DotGraph(pydot.Dot):  # type: ignore[misc,name-defined]
        """A ``pydot.Dot`` that names the fix when graphviz's program is missing."""

        def create(self, prog: Any = None, format: str = "ps", encoding: str | None = None) -> Any:
            program = self.prog if prog is None else prog
            graphviz_program(program[0] if isinstance(program, list | tuple) else program)
            return super().create(prog=prog, format=format, encoding=encoding)


def new_dot_graph(name: str, **attributes: Any) -> Any:
    """A :class:`DotGraph` (needs pydot: see :func:`require_pydot`)."""
    require_pydot()
    return DotGraph(name, **attributes)
