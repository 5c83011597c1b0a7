"""``draft_export``: export that reports what it had to assume instead of failing.

torch.export's ``draft_export`` exists because the first export of a real
model usually fails on something the user must then fix by hand. graphlift's
takes the two recoverable failures and turns each into a line of a report:

- a ``ConstraintViolationError`` (the program needs a narrower, tied or static
  dim than ``dynamic_shapes`` says): the error's structured fixes are applied
  with :func:`refine_dynamic_shapes` and export runs again;
- a Python decision on data-dependent values: decided from the example
  inputs' data (``data_dependent="specialize"``) and guarded by a runtime
  assert, so other data that would decide differently is refused;
- a custom op without a fake kernel: run on the example data, its input sizes
  specialized and its outputs' sizes checked when the program runs
  (``trace/profiled_ops.py``).

The program is as sound as any export (every assumption is checked when it
runs); it is only narrower than what was asked, and the report says where and
why. ``ep.draft_report`` (also ``ep._report``, torch's name) holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch

from graphlift.errors import ConstraintViolationError, reports_internal_errors
from graphlift.export.api import finish_export, trace_for_export
from graphlift.export.program.exported_program import ExportedProgram
from graphlift.export.spec.shape_specs import refine_dynamic_shapes
from graphlift.export.spec.torch_specs import resolve_spec
from graphlift.trace.profiled_ops import PROFILED


class FailureType(Enum):
    """torch.export's draft-export failure kinds (``torch.export._draft_export.FailureType``)."""

    MISSING_FAKE_KERNEL = 1
    DATA_DEPENDENT_ERROR = 2
    GUARD_ADDED = 3
    MISMATCHED_FAKE_KERNEL = 4


#: each kind of issue graphlift reports, as torch's report names it
_FAILURE_TYPES = {
    "constraint violation": FailureType.GUARD_ADDED,
    "data-dependent decision": FailureType.DATA_DEPENDENT_ERROR,
    "missing fake kernel": FailureType.MISSING_FAKE_KERNEL,
}


@dataclass(frozen=True)
class DraftIssue:
    kind: str  # a key of _FAILURE_TYPES
    message: str
    where: str | None = None

    @property
    def failure_type(self) -> FailureType:
        return _FAILURE_TYPES[self.kind]

    def __str__(self) -> str:
        where = f"\n    at {self.where}" if self.where else ""
        return f"{self.kind}: {self.message}{where}"


@dataclass(frozen=True)
class FailureReport:
    """One entry of ``ep._report.failures``, shaped like torch's."""

    failure_type: FailureType
    data: dict[str, Any] = field(default_factory=dict)
    xfail: bool = False

    def print(self, str_to_filename: dict[int, str] | None = None) -> str:
        return f"{self.failure_type.name}: {self.data.get('message', '')}"


@dataclass(frozen=True)
class DraftExportReport:
    issues: tuple[DraftIssue, ...]
    dynamic_shapes: Any  # the spec the program was finally exported with

    @property
    def failures(self) -> list[FailureReport]:
        """The issues as torch's report lists them (``failure_type``, ``data``)."""
        return [
            FailureReport(issue.failure_type, {"message": issue.message, "where": issue.where})
            for issue in self.issues
        ]

    def successful(self) -> bool:
        """True when nothing had to be refined or specialized."""
        return not self.issues

    def __str__(self) -> str:
        if not self.issues:
            return "draft_export: no issues; export() would give the same program"
        lines = [f"draft_export: {len(self.issues)} issue(s); the program is narrower than asked:"]
        lines += [
            f"  {i}. {issue}".replace("\n", "\n     ") for i, issue in enumerate(self.issues, 1)
        ]
        return "\n".join(lines)


@reports_internal_errors
def draft_export(
    mod: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any] | None = None,
    *,
    dynamic_shapes: Any = None,
    strict: bool = False,
    max_refinements: int = 8,
) -> ExportedProgram:
    """Export ``mod``, refining the spec and specializing data-dependent
    decisions where needed; the report is ``ep.draft_report``."""
    kwargs = dict(kwargs or {})
    spec, _ = resolve_spec(dynamic_shapes, mod, args, kwargs)
    issues: list[DraftIssue] = []
    for attempt in range(max_refinements + 1):
        try:
            traced = trace_for_export(
                mod, args, kwargs, dynamic_shapes=spec, strict=strict, data_dependent="specialize"
            )
            break
        except ConstraintViolationError as error:
            if not error.fixes or attempt == max_refinements:
                raise
            issues += [
                DraftIssue(
                    "constraint violation", f"{v.source} ({v.declared}): {v.change}", v.where
                )
                for v in error.violations
            ]
            spec = refine_dynamic_shapes(spec, error, mod, args, kwargs)
    shape_env = traced.captured.shape_env
    for fact in shape_env.data_specializations if shape_env is not None else ():
        issues.append(
            DraftIssue(
                "data-dependent decision",
                f"decided `{fact.code}` from the example inputs' data; data that decides "
                "otherwise is refused when the program runs (RuntimeAssertError)",
                fact.where.position if fact.where else None,
            )
        )
    issues += [
        DraftIssue("missing fake kernel", node.meta[PROFILED], node.meta.get("stack_trace"))
        for node in traced.captured.graph.nodes
        if PROFILED in node.meta
    ]
    return finish_export(traced, draft_report=DraftExportReport(tuple(issues), spec))
