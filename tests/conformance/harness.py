"""Run one conformance case against an exporter and observe what a user sees.

A :class:`Case` is a declarative record: a module factory, example inputs, a
``dynamic_shapes`` factory (written with ``torch.export.Dim``, which graphlift
must accept as it is), more inputs to run through ``.module()``, and what to
observe. :func:`observe` runs it against torch.export or graphlift and returns
an :class:`Observation` (plain data, JSON-able), so the two columns compare
field by field and torch's column can be recorded in ``oracle.json``.

What is compared (all but ``eager`` are compared against torch's column):
- ``outcome``: ``"ok"`` or the builtin exception type export raised (the
  first builtin class in its MRO: torch's ``UserError`` counts as RuntimeError);
  graphlift passes when its error *is an instance of* torch's builtin.
- ``inputs`` / ``outputs``: the signature's kinds in order; ``targets``: the
  state names of parameters and buffers in order.
- ``runs``: per extra input, ``"ok"`` or the builtin type ``module()`` raised.
- ``observed``: the case's own observation of the program (an attribute, ...).
- ``eager``: every accepted run equals eager PyTorch on a fresh module (not
  compared to torch: recorded so the oracle shows torch's own mismatches).
"""

from __future__ import annotations

import builtins
import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.utils._pytree as pytree


@dataclass(frozen=True)
class Run:
    """More inputs for ``ep.module()``: ``Run((x,), {"y": y})``."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Difference:
    """graphlift deliberately differs from torch.export here.

    ``reason`` says why graphlift's behaviour is better (listed in
    docs/differences.md); ``graphlift`` holds the observation fields graphlift
    produces instead of torch's (``{"runs": ["ok", "AssertionError"]}``).
    """

    reason: str
    graphlift: dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str
    module: Callable[[], torch.nn.Module]
    args: Callable[[], tuple[Any, ...]]
    kwargs: Callable[[], dict[str, Any]] = dict
    dynamic_shapes: Callable[[], Any] | None = None
    runs: Callable[[], tuple[Run, ...]] = tuple
    #: what else to observe of the program: ep -> JSON-able value (same for both)
    observe: Callable[[Any], Any] | None = None
    #: "export", "draft" (draft_export), "decompose" (run_decompositions) or "roundtrip" (save/load)
    mode: str = "export"
    #: the upstream test this case was rewritten from
    source: str = ""
    difference: Difference | None = None


@dataclass(frozen=True)
class Observation:
    outcome: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    observed: Any = None
    eager: tuple[str, ...] = ()  # descriptions of runs that differ from eager

    def to_json(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(self).items()}


@dataclass(frozen=True)
class Exporter:
    """One column: how to export, draft-export, decompose, save and load."""

    name: str
    export: Callable[..., Any]
    draft_export: Callable[..., Any]
    save: Callable[[Any, Any], None]
    load: Callable[[Any], Any]


def torch_functional_export(*args: Any, **kwargs: Any) -> Any:
    """torch.export's program in functional form, as graphlift's export returns it.

    torch 2.13's ``export`` keeps in-place ops in the graph and reports no
    mutation outputs until ``run_decompositions({})`` functionalizes it (an
    empty table decomposes nothing); graphlift's graph is functional at once
    (docs/differences.md), so that is the form the signatures compare in.
    """
    return torch.export.export(*args, strict=False, **kwargs).run_decompositions({})


def torch_exporter() -> Exporter:
    return Exporter(
        "torch",
        torch_functional_export,
        lambda *a, **kw: torch.export.draft_export(*a, strict=False, **kw),
        torch.export.save,
        torch.export.load,
    )


def graphlift_exporter() -> Exporter:
    import graphlift as gl

    return Exporter("graphlift", gl.export, gl.draft_export, gl.save, gl.load)


def as_json(value: Any) -> Any:
    """Tuples become lists and keys strings, as in oracle.json."""
    return json.loads(json.dumps(value, default=repr))


def category(error: BaseException) -> str:
    """The builtin exception type a user catches for ``error``."""
    for cls in type(error).__mro__:
        if cls.__module__ == "builtins" and cls not in (Exception, BaseException, object):
            return cls.__name__
    return "Exception"


def matches_category(expected: str, error: BaseException) -> bool:
    """graphlift's error may be more specific than torch's, but ``except`` must catch it."""
    builtin = getattr(builtins, expected, None)
    return isinstance(error, builtin) if isinstance(builtin, type) else category(error) == expected


def observe(case: Case, exporter: Exporter) -> tuple[Observation, BaseException | None]:
    """Run ``case`` with ``exporter``; the export error (if any) is returned for matching."""
    with torch.set_grad_enabled(torch.is_grad_enabled()):  # a case's eager run may switch it
        return _observe(case, exporter)


def _observe(case: Case, exporter: Exporter) -> tuple[Observation, BaseException | None]:
    torch.manual_seed(0)
    module = case.module()
    torch.manual_seed(0)
    eager_module = case.module()  # built twice: custom ops and hooks do not deepcopy
    torch.manual_seed(1)
    args, kwargs = case.args(), case.kwargs()
    runs = (Run(args, kwargs), *case.runs())
    spec = case.dynamic_shapes() if case.dynamic_shapes is not None else None
    try:
        program = _make_program(case, exporter, module, args, kwargs, spec)
    except Exception as error:
        return Observation(outcome=category(error)), error
    signature = program.graph_signature
    inputs = tuple(s.kind.name for s in signature.input_specs)
    outputs = tuple(s.kind.name for s in signature.output_specs)
    targets = tuple(
        str(s.target) for s in signature.input_specs if s.kind.name in ("PARAMETER", "BUFFER")
    )
    observed = as_json(case.observe(program)) if case.observe is not None else None
    run_results, eager_mismatches = _run_all(program.module(), eager_module, runs)
    return (
        Observation("ok", inputs, outputs, targets, run_results, observed, eager_mismatches),
        None,
    )


def _make_program(
    case: Case, exporter: Exporter, module: Any, args: Any, kwargs: Any, spec: Any
) -> Any:
    if case.mode == "draft":
        return exporter.draft_export(module, args, kwargs, dynamic_shapes=spec)
    program = exporter.export(module, args, kwargs, dynamic_shapes=spec)
    if case.mode == "decompose":
        return program.run_decompositions()
    if case.mode == "roundtrip":
        buffer = io.BytesIO()
        exporter.save(program, buffer)
        buffer.seek(0)
        return exporter.load(buffer)
    return program


def _run_all(
    exported: Any, eager: torch.nn.Module, runs: tuple[Run, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    results: list[str] = []
    mismatches: list[str] = []
    for index, run in enumerate(runs):
        try:
            got = exported(*_fresh(run.args), **_fresh(run.kwargs))
        except Exception as error:
            results.append(category(error))
            continue
        results.append("ok")
        expected = eager(*_fresh(run.args), **_fresh(run.kwargs))
        problem = difference(got, expected)
        if problem:
            mismatches.append(f"run {index}: {problem}")
    return tuple(results), tuple(mismatches)


def _fresh(value: Any) -> Any:
    """Inputs are cloned per call, so a mutating program sees the same data as eager."""
    return pytree.tree_map(
        lambda v: v.clone() if isinstance(v, torch.Tensor) else v,
        value,
        is_leaf=lambda v: isinstance(v, torch.Size),  # pytree would rebuild it as a tuple
    )


def difference(got: Any, expected: Any) -> str | None:
    """None if ``got`` equals ``expected`` (pytree structure, tensors allclose)."""
    got_leaves, got_spec = pytree.tree_flatten(got)
    expected_leaves, expected_spec = pytree.tree_flatten(expected)
    if got_spec != expected_spec:
        return f"output structure {got_spec} vs eager {expected_spec}"
    for i, (a, b) in enumerate(zip(got_leaves, expected_leaves)):
        if isinstance(b, torch.Tensor):
            if not isinstance(a, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
                return f"output {i}: {_describe(a)} vs eager {_describe(b)}"
            if not torch.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True):
                return f"output {i}: values differ from eager"
        elif a != b and not (isinstance(a, torch.SymInt | int) and int(a) == b):
            return f"output {i}: {a!r} vs eager {b!r}"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{list(value.shape)} {value.dtype}"
    return repr(value)
