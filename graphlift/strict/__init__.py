"""Strict capture: a symbolic interpreter for CPython 3.11 bytecode (issue 21).

``graphlift.export(model, args, strict=True)`` runs ``forward`` — and every
user function it calls — in :class:`~graphlift.strict.interpreter.Interpreter`
instead of in CPython, so that during capture no Python object that existed
before the call is changed, and every Python value read from a global or a
closure is guarded. Tensor operations go to the same dispatch-level tracer as
non-strict export. ``docs/strict.md`` says what is modelled and what is not.
"""

from graphlift.strict.interpreter import Interpreter

__all__ = ["Interpreter"]
