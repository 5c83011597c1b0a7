"""`CodeGen`: how a Graph becomes a Python function, with torch.fx's hooks.

``graph.set_codegen(MyCodeGen())`` changes the calling convention of the
generated ``forward`` the way torch.fx does: a subclass overrides

- ``gen_fn_def(free_vars, maybe_return_annotation)``: the ``def`` line (and any
  unpacking lines after it, indented by four spaces) given one parameter per
  placeholder;
- ``generate_output(output_args)``: the ``return`` statement;
- ``process_inputs(*args)`` / ``process_outputs(outputs)``: the same
  conversion for callers that run the graph without its generated code
  (``Interpreter``), so that ``graph.process_outputs(run(*graph.process_inputs(*args)))``
  equals ``gm(*args)``;
- ``additional_globals()``: ``(name, value)`` pairs the generated code refers to.

A plain ``CodeGen()`` gives one positional parameter per placeholder. Every new
Graph starts with :class:`StructuredInputsCodeGen`, graphlift's own, which
also reads structured inputs (``concrete_args`` with ``PH``, see
``graphlift.ir.input_structure``); on a graph without them the two agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# one statement per line, each ending in "\n", unindented
TransformCodeFunc = Callable[[list[str]], list[str]]


class CodeGen:
    """The flat calling convention: ``forward(self, <one parameter per placeholder>)``."""

    # graphlift: whether the placeholders' input structure becomes structured parameters
    reads_input_structure = False

    def __init__(self) -> None:
        self._body_transformer: TransformCodeFunc | None = None
        self._func_name = "forward"

    def gen_fn_def(self, free_vars: list[str], maybe_return_annotation: str) -> str:
        """``def forward(self, a, b):`` for free variables ``["a", "b"]``."""
        if not free_vars or free_vars[0] != "self":
            free_vars.insert(0, "self")
        return f"def {self._func_name}({', '.join(free_vars)}){maybe_return_annotation}:"

    def generate_output(self, output_args: Any) -> str:
        """The return statement (unindented); Nodes print as their names."""
        return f"return {output_args!r}"

    def process_inputs(self, *args: Any) -> Any:
        """The generated function's arguments as the graph's placeholder values."""
        return args

    def process_outputs(self, outputs: Any) -> Any:
        """The graph's output value as the generated function returns it."""
        return outputs

    def additional_globals(self) -> list[tuple[str, Any]]:
        """``(identifier, value)`` pairs the generated code needs as globals."""
        return []


class StructuredInputsCodeGen(CodeGen):
    """graphlift's default: a structured input stays one parameter of ``forward``,
    flattened in the body (torch.fx installs its pytree codegen for the same)."""

    reads_input_structure = True


def overrides(codegen: CodeGen, hook: str) -> bool:
    """True if ``codegen``'s class replaces ``CodeGen``'s ``hook`` (the writer's
    own, more careful code is used for a hook left alone)."""
    return getattr(type(codegen), hook) is not getattr(CodeGen, hook)
