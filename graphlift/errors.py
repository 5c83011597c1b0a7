"""Every error graphlift raises on purpose.

Each class derives from :class:`GraphliftError` *and* from the builtin type that
torch.fx / torch.export raise in the same situation, so code written for torch
keeps catching it (``except ValueError`` around ``symbolic_trace`` still works).

Messages say what happened, where (the user's source line, see
:mod:`graphlift.source`) and what to do next. Structured facts ride as
attributes (``err.where``, ``err.fixes``); nothing should ever parse a message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from graphlift.source import raised_in_graphlift, traceback_frames, user_location_of

Fn = TypeVar("Fn", bound=Callable[..., Any])


class GraphliftError(Exception):
    """Base class of all graphlift errors.

    ``where`` is the user's source location (``"model.py:12 in forward"``) when
    one is known; it is part of the message and also available as data.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        if where:
            message = f"{message}\n  at {where}"
        super().__init__(message)


class InternalError(GraphliftError, AssertionError):
    """An invariant of graphlift itself failed: this is a bug in graphlift."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(
            f"{message}\nThis is a bug in graphlift; please report it with the code that triggered it.",
            where=where,
        )


def reports_internal_errors(api: Fn) -> Fn:
    """Decorate a public entry point so no internal exception type reaches the user.

    GraphliftErrors pass through, and so do exceptions the user's model or torch
    raised (eager would raise them too) and the machine's (``OSError``). Anything else was raised by graphlift's
    own code (an ``EvaluationError``, a ``KeyError`` in a table lookup): it
    becomes :class:`InternalError` naming the op being recorded with its argument
    shapes and the user's line, chained to the original for the traceback.
    """

    @functools.wraps(api)
    def entry_point(*args: Any, **kwargs: Any) -> Any:
        try:
            return api(*args, **kwargs)
        except (GraphliftError, OSError, MemoryError):
            raise  # ours, or the machine's (a missing file is not a bug)
        except Exception as error:
            if not raised_in_graphlift(error):
                raise
            location = user_location_of(error)
            raise InternalError(
                f"{api.__name__} failed with {type(error).__name__}: {error}{_op_context(error)}",
                where=str(location) if location else None,
            ) from error

    return cast(Fn, entry_point)  # functools.wraps keeps api's signature


def _op_context(error: BaseException) -> str:
    """``" while recording aten.view.default on shapes [s0, 4]"`` from the innermost
    frame of the traceback that holds an ATen op and its arguments."""
    for frame in reversed(traceback_frames(error)):
        local = frame.f_locals
        op = next((local[k] for k in ("op", "func", "target") if _is_op(local.get(k))), None)
        if op is None:
            continue
        shapes = [_describe(a) for a in local.get("args", ()) if hasattr(a, "shape")]
        return f"\n  while recording {op} on shapes {', '.join(shapes) or '(none)'}"
    return ""


def _is_op(value: Any) -> bool:
    return type(value).__name__ in ("OpOverload", "OpOverloadPacket", "HigherOrderOperator")


def _describe(value: Any) -> str:
    return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"


# --- the graph IR -----------------------------------------------------------------


class GraphError(GraphliftError, RuntimeError):
    """A graph is malformed or an edit would make it malformed (torch.fx: RuntimeError)."""


class GraphTargetError(GraphliftError, ValueError):
    """A node's target has the wrong type for its opcode (torch.fx's lint: ValueError)."""


class ImmutableArgumentError(GraphliftError, TypeError):
    """A node's argument list or dict was edited in place (torch.fx's immutable
    collections: TypeError); assign new arguments instead."""


class FxArgumentError(GraphliftError, AssertionError):
    """An fx API was given an argument torch.fx refuses with an assertion: a
    ``Tracer.traced_func_name`` the root's class lacks, a ``Node.insert_arg``
    position outside the arguments."""


class RewriteError(GraphliftError, AssertionError):
    """A subgraph-rewrite pattern and its replacement do not fit together (other
    input or output counts; torch.fx's subgraph rewriter: AssertionError)."""


class InputKeyError(GraphliftError, KeyError):
    """A structured input lacks a key the graph was traced with (torch.fx's
    flattening: KeyError)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return Exception.__str__(self)


class InputIndexError(GraphliftError, IndexError):
    """A structured input has fewer items than the graph was traced with
    (torch.fx's flattening: IndexError)."""


# --- Python-level tracing ---------------------------------------------------------


class TraceError(GraphliftError, ValueError):
    """Symbolic tracing met something it cannot record (torch.fx: ``TraceError(ValueError)``)."""


class UnsupportedTraceError(GraphliftError, NotImplementedError):
    """Tracing was asked for something torch.fx also does not support
    (``wrap()`` outside module scope, an argument of an unrecordable type)."""


class MissingAttributeError(GraphliftError, AttributeError):
    """A graph refers to an attribute its root module does not have (torch.fx: AttributeError)."""


class UnknownAttributeError(GraphliftError, NameError):
    """Traced code uses a parameter or module that is not part of the traced
    module, so the graph cannot refer to it (torch.fx: NameError)."""


# --- symbolic shapes --------------------------------------------------------------


class ExpressionParseError(GraphliftError, ValueError):
    """Text given to the safe expression parser is not a valid shape expression."""


class DataDependentError(GraphliftError, RuntimeError):
    """A decision depends on a value only known at run time (an unbacked symbol).

    torch raises ``GuardOnDataDependentSymNode`` (a RuntimeError) here.
    ``expr`` is the undecidable expression as text; ``fixes`` lists suggested
    user code (for example ``"torch._check(u0 >= 0)"``).
    """

    def __init__(
        self, message: str, *, expr: str, where: str | None = None, fixes: tuple[str, ...] = ()
    ) -> None:
        self.expr = expr
        self.fixes = fixes
        if fixes:
            message += "\n  Possible fixes:\n" + "\n".join(f"    {fix}" for fix in fixes)
        super().__init__(message, where=where)


class NarrowingWarning(UserWarning):
    """A transformation narrowed a ``Dim.AUTO`` dim of the program it made
    (``run_decompositions``: a decomposition that branches on a size); the new
    program's ``specializations`` say which sizes, its source is unchanged."""


class ConstraintViolationError(GraphliftError, RuntimeError):
    """The traced program contradicts a user's dynamic-shape spec.

    torch raises ``torch.fx.experimental.symbolic_shapes.ConstraintViolationError``
    (a RuntimeError). ``fixes`` holds structured suggestions.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        fixes: Any = (),
        violations: tuple[Violation, ...] = (),
    ) -> None:
        self.fixes = fixes
        self.violations = violations
        super().__init__(message, where=where)


@dataclass(frozen=True)
class Violation:
    """One dimension whose declared range the program does not keep: its source
    (``x.size()[1]``), the declared entry (``Dim('seq', min=2, max=32)``), what
    the program needs (``range [4, 32]``, ``static: 1``) and the user's line."""

    source: str
    declared: str
    change: str
    where: str | None = None

    def __str__(self) -> str:
        because = f"\n      because of {self.where}" if self.where else ""
        return f"  - {self.source} ({self.declared}): {self.change}{because}"


# --- pytrees (nested inputs and outputs) --------------------------------------------


class PytreeError(GraphliftError, ValueError):
    """A nested structure cannot be flattened, unflattened, matched or (de)serialized.

    torch.utils._pytree raises ``ValueError`` (or ``NotImplementedError`` for
    unregistered serialized types) in the same situations. ``path`` is where in
    the structure the problem is (``"inputs[1]['mask']"``) when one is known.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


# --- export -----------------------------------------------------------------------


class ExportError(GraphliftError, RuntimeError):
    """The model cannot be exported as asked (torch.export raises RuntimeError-family errors)."""


class ExportArgumentError(ExportError, TypeError):
    """``export`` was called with arguments of the wrong type, or example inputs
    that do not fit ``forward``'s signature (torch.export: TypeError)."""


class UnsupportedInputError(ExportError, ValueError):
    """An example input has a type export cannot take (torch.export: ValueError)."""


class StrictCaptureError(ExportError):
    """Strict capture met Python it does not model (a "graph break" in torch's
    words; torch raises ``torch._dynamo.exc.Unsupported``, a RuntimeError).
    ``reason`` says what; ``where`` is the user's line. Non-strict export
    (``strict=False``) runs the same code for real."""

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"strict capture cannot continue: {reason}", where=where)


class SideEffectError(StrictCaptureError):
    """The captured code writes to a Python object that existed before the call
    (a global, a module-level list, another object's attribute). Nothing was
    changed: strict capture refuses the write instead of performing it once."""


class StaleGlobalError(GraphliftError, AssertionError):
    """A Python value a strict-captured program read (a global, a closure cell)
    has changed since export; the program would compute with the old one."""


class InputStructureError(GraphliftError, ValueError):
    """The inputs given to an exported program do not have the structure it was
    exported with (torch.export: ValueError)."""


class InputMismatchError(GraphliftError, AssertionError):
    """An input to an exported program violates a recorded assumption: a size,
    dtype, or specialized value (torch.export: AssertionError "Guard failed")."""


class StickyExportError(InputMismatchError):
    """A call no program of a sticky export accepts, and its policy forbids
    exporting again (graphlift.experimental.sticky_export)."""


class AdditionalInputMismatchError(InputMismatchError, RuntimeError):
    """An ``AdditionalInputs`` example is refused by the program exported with it
    (torch.export's ``AdditionalInputs.verify`` raises RuntimeError)."""


class VerificationError(GraphliftError, RuntimeError):
    """An exported graph breaks an invariant of its IR level."""


class UnflattenError(GraphliftError, RuntimeError):
    """``unflatten`` cannot rebuild the module tree as asked (a preserved call
    whose boundary the program no longer has)."""


class CallSignatureError(GraphliftError, TypeError):
    """A call of an unflattened module (or of a module swapped into it) does not
    have the input or output structure the program recorded, and no
    ``FlatArgsAdapter`` adapts it (torch.export.unflatten: TypeError)."""


class DynamicShapesError(ExportError):
    """A ``dynamic_shapes`` spec is malformed or does not fit the inputs
    (torch.export raises a RuntimeError-derived UserError)."""


class DimIndexError(DynamicShapesError, IndexError):
    """A ``dynamic_shapes`` entry names a dim the tensor does not have (torch: IndexError)."""


class DynamicShapesTypeError(DynamicShapesError, TypeError):
    """``dynamic_shapes`` is not a dict, tuple or list of per-input specs (torch: TypeError)."""


class ShapeSpecError(DynamicShapesError, ValueError):
    """A ShapesCollection, AdditionalInputs or refine_dynamic_shapes cannot
    build a spec for these inputs (torch.export raises ValueError or
    AssertionError in the same situations)."""


class JointExportError(ExportError):
    """A program cannot be differentiated as asked by ``export_forward_backward``:
    the loss output is not a scalar floating-point tensor that depends on a
    trainable value, or the program holds something the joint export does not
    differentiate yet (torch raises RuntimeError: "grad can be implicitly created
    only for scalar outputs")."""


class MutationError(GraphliftError, RuntimeError):
    """The model changes a tensor in a way an exported (functional) program cannot
    express: a lifted constant, a leaf that requires grad, a tensor's storage
    (``resize_``/``set_``) or its metadata (``unsqueeze_``)."""


class RuntimeAssertError(GraphliftError, RuntimeError):
    """An exported program's runtime assertion failed: the data of this input
    violates a fact the program was exported under (``torch._check(u0 < 8)``
    on a data-dependent value). torch raises RuntimeError from
    ``aten._assert_scalar`` here."""


# --- saving and loading archives -----------------------------------------------------


class ArchiveError(GraphliftError, RuntimeError):
    """A file given to ``graphlift.load`` is not a valid graphlift archive.

    Truncated or corrupted zips, malformed JSON, wrong field types, an unknown
    schema version, missing or extra tensors, a custom op not registered in
    this process: each says what is wrong and where in the archive (``path``,
    e.g. ``"graphs.root.nodes[3].args[0]"``) when one is known. torch.export.load
    raises RuntimeError-family errors for unreadable archives.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{message} (at {path})" if path else message)


class SerializationError(GraphliftError, RuntimeError):
    """``graphlift.save`` met a program it cannot write (a value the archive
    format has no encoding for); torch.export.save raises SerializeError."""


# --- pictures of graphs ----------------------------------------------------------------


class GraphDrawingError(GraphliftError, RuntimeError):
    """A picture of a graph cannot be made: the pydot package is missing (torch.fx's
    FxGraphDrawer: RuntimeError), or graphviz's layout program failed."""


class GraphvizNotFoundError(GraphDrawingError, FileNotFoundError):
    """Graphviz's layout program (``dot``) is not installed or not on ``PATH`` (pydot:
    FileNotFoundError)."""


# --- interop with torch.fx ----------------------------------------------------------


class DecompositionTableError(GraphliftError, TypeError):
    """``run_decompositions`` was given something that is not a table of ops to callables."""


class InteropError(GraphliftError, TypeError):
    """``to_fx``/``from_fx`` was given something it cannot convert: an object of
    the wrong type, or a graph whose calling convention has no equivalent on the
    other side (torch.fx raises TypeError for a wrong argument type)."""
