"""``export()``: the pipeline from a module and example inputs to an ExportedProgram.

Stages hand over frozen results: match the dynamic-shape spec to the flat
inputs, capture (trace the model into a graph with its signature facts and
symbolic shapes), check the traced program against the spec, assemble
(state_dict, constants, range constraints, module call graph), verify.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.errors import ExportArgumentError, ExportError, reports_internal_errors
from graphlift.export.callables import as_module
from graphlift.export.capture import Capture
from graphlift.export.capture import capture as capture_model
from graphlift.export.program.constraints import (
    Specialization,
    check_dynamic_dims,
    range_constraints,
)
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.program.signature import ExportGraphSignature, InputKind
from graphlift.export.program.verifier import verify
from graphlift.export.small_sizes import keep_small_sizes
from graphlift.export.spec.dynamic_shapes import match_dynamic_shapes
from graphlift.export.spec.torch_specs import resolve_spec
from graphlift.ir.graph_module import GraphModule
from graphlift.pytree.modules import module_input_classes, module_nodes


@reports_internal_errors
def export(
    mod: torch.nn.Module | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    dynamic_shapes: Any = None,
    strict: bool = False,
    preserve_module_call_signature: tuple[str, ...] = (),
    data_dependent: str = "error",
    reuse_blocks: bool = True,
) -> ExportedProgram:
    """Trace ``mod(*args, **kwargs)`` into an ExportedProgram (torch.export.export's contract).

    The module is run once on traced stand-ins for its inputs, parameters and
    buffers; every ATen operation it performs is recorded. Dimensions named in
    ``dynamic_shapes`` stay symbolic; every assumption the trace makes about
    them is checked by ``ep.module()`` before it computes. The module itself is
    left exactly as it was, also when export fails. ``mod`` may also be a
    module's bound method (``model.encode``: the module, called through it), an
    operator overload (``torch.ops.aten.add.Tensor``) or a plain callable (wrapped
    in a stateless module with the callable's signature).

    ``data_dependent`` (graphlift's own option): ``"error"`` raises
    DataDependentError on a Python decision over a data-dependent value;
    ``"specialize"`` takes it from the example inputs' data and records a
    runtime assert, so other data that would decide differently is refused
    when the program runs (docs/data_dependent.md).

    ``reuse_blocks`` (issue 18): True (the default) traces a repeated block (a
    child of an ``nn.ModuleList``) once and emits its later calls that are
    provably the same computation as calls of one shared body
    (``graphlift.invoke_subgraph``); False traces every call flat.
    ``ep.inline_subgraphs()`` gives the flat program, equal to the
    ``reuse_blocks=False`` one (docs/block_reuse.md).
    """
    if not isinstance(reuse_blocks, bool):
        raise ExportError(f"reuse_blocks must be True or False, got {reuse_blocks!r}")
    traced = trace_for_export(
        mod,
        args,
        kwargs,
        dynamic_shapes=dynamic_shapes,
        strict=strict,
        preserve_module_call_signature=preserve_module_call_signature,
        data_dependent=data_dependent,
        reuse_blocks=reuse_blocks,
    )
    return finish_export(traced)


def capture(fn: Any) -> Any:
    """Strict capture at the frame level (torch's ``dynamo_graph_capture_for_export``):
    ``gl.capture(fn)(*args, **kwargs)`` interprets ``fn`` — anything ``export``
    takes: a module, a function, a bound method, an operator — on those inputs and
    returns its ExportedProgram (``strict=True``)."""

    def run(*args: Any, **kwargs: Any) -> ExportedProgram:
        return export(fn, args, kwargs, strict=True)

    return run


@dataclass(frozen=True)
class Traced:
    """The stages before assembly: the model captured and checked against its spec."""

    mod: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    captured: Capture
    specializations: tuple[Specialization, ...]
    builder: Any  # the ShapesCollection or AdditionalInputs the spec came from, if any


def trace_for_export(
    mod: torch.nn.Module | Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    dynamic_shapes: Any = None,
    strict: bool = False,
    preserve_module_call_signature: tuple[str, ...] = (),
    data_dependent: str = "error",
    reuse_blocks: bool = False,
) -> Traced:
    """Match the spec, capture, and check the capture against the spec
    (ConstraintViolationError, with structured ``violations`` and ``fixes``)."""
    mod, calling = as_module(mod)
    _check_arguments(mod, args, kwargs, strict, preserve_module_call_signature)
    kwargs = dict(kwargs or {})
    if data_dependent not in ("error", "specialize"):
        raise ExportError(f"data_dependent must be 'error' or 'specialize', got {data_dependent!r}")
    # A module among the inputs is a node of its parameters and buffers (pytree/modules.py);
    # a module's method: its forward points at the method meanwhile.
    with module_nodes(module_input_classes((args, kwargs))), calling:
        dynamic_shapes, builder = resolve_spec(dynamic_shapes, mod, args, kwargs)
        dim_specs = match_dynamic_shapes(mod.forward, args, kwargs, dynamic_shapes)
        specialize = data_dependent == "specialize"

        def trace(args: tuple[Any, ...], kwargs: dict[str, Any], dim_specs: Any) -> Capture:
            return capture_model(
                mod,
                args,
                kwargs,
                dim_specs,
                specialize_data=specialize,
                strict=strict,
                preserved=tuple(preserve_module_call_signature),
                reuse_blocks=reuse_blocks,
            )

        captured = trace(args, kwargs, dim_specs)
        failing: frozenset[tuple[str, int]] = frozenset()
        if not strict:  # strict capture's Python guards are not compared (yet)
            # Both traces keep their shared bodies; the proof reads them inlined.
            failing = keep_small_sizes(mod, captured, args, kwargs, dim_specs, trace)
    specializations: tuple[Specialization, ...] = ()
    if captured.shape_env is not None:
        specializations = check_dynamic_dims(captured.shape_env, captured.dynamic_dims, failing)
    return Traced(mod, args, kwargs, captured, specializations, builder)


def finish_export(traced: Traced, *, draft_report: Any = None) -> ExportedProgram:
    """Assemble the program (with draft_export's report, when there is one) and verify it."""
    with module_nodes(module_input_classes((traced.args, traced.kwargs))):
        program = _assemble(traced, draft_report)
        verify(program)
        builder = traced.builder
        if builder is not None and hasattr(builder, "verify"):
            builder.verify(program)  # AdditionalInputs: every example passes the input checks
    return program


def _check_arguments(
    mod: Any, args: Any, kwargs: Any, strict: bool, preserved: tuple[str, ...]
) -> None:
    if not isinstance(args, tuple):
        raise ExportError(
            f"args must be a tuple of example inputs, got {type(args).__name__}: use (x,)"
        )
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ExportArgumentError(f"kwargs must be a dict, got {type(kwargs).__name__}")
    if isinstance(preserved, str):
        raise ExportArgumentError(
            f"preserve_module_call_signature takes a tuple of qualified names, got the string "
            f"{preserved!r}: write ({preserved!r},)"
        )
    names = {name for name, _ in mod.named_modules(remove_duplicate=False)}
    for fqn in preserved:
        if fqn not in names or not fqn:
            raise ExportError(
                f"preserve_module_call_signature: {fqn!r} is not a submodule of "
                f"{type(mod).__name__}; give qualified names as in named_modules() "
                f"(for example {sorted(n for n in names if n)[:3]})"
            )


def _assemble(traced: Traced, draft_report: Any) -> ExportedProgram:
    mod, captured = traced.mod, traced.captured
    signature = ExportGraphSignature(captured.input_specs, captured.output_specs)
    state = dict(mod.state_dict(keep_vars=True))
    state_dict: dict[str, torch.Tensor] = {}
    constants = dict(captured.constants)
    for spec in captured.input_specs:
        target = str(spec.target)
        if spec.kind is InputKind.PARAMETER or (spec.kind is InputKind.BUFFER and spec.persistent):
            state_dict[target] = state[target]
        elif spec.kind is InputKind.BUFFER:
            constants[target] = mod.get_buffer(target)
    shape_env = captured.shape_env
    return ExportedProgram(
        graph_module=GraphModule(dict(captured.subgraphs), captured.graph),
        graph_signature=signature,
        state_dict=state_dict,
        constants=constants,
        range_constraints=range_constraints(shape_env, captured.graph) if shape_env else {},
        example_inputs=(traced.args, traced.kwargs),
        module_call_graph=captured.module_call_graph,
        shape_env=shape_env,
        specializations=traced.specializations,
        draft_report=draft_report,
        python_guards=captured.python_guards,
    )
