"""Measure torch.export on every zoo case: the baseline graphlift is compared against.

For each case in ``tests/zoo`` this runs, in order:

1. ``static``: ``torch.export.export(model, args, kwargs)`` with static shapes;
2. ``dynamic``: the same with ``dynamic_shapes`` built from the case's ``dynamic_dims``
   (named ``torch.export.Dim``s with the case's min/max), recording ``range_constraints``;
3. ``auto``: the same axes marked ``Dim.AUTO``, to see which dims torch specializes on
   its own when it is not told a range (``specialized`` lists them);
4. ``decompose``: ``ep.run_decompositions()`` on the dynamic program (the static one
   if dynamic export failed), with call_function node counts before and after;
5. ``check``: the exported program's ``module()`` against eager, at the case's
   ``other`` sizes when the dynamic export worked, else at the example sizes.

Every step records ok, wall time and a one-line failure reason. The table goes to
stdout (``rich`` when installed); the full record goes to
``benchmarks/results/torch_export_baseline.json`` with sorted keys. Timings are
the only non-deterministic values in it.

Usage: ``python benchmarks/torch_export_baseline.py [--case NAME ...] [--no-write]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch.export import Dim, ExportedProgram
from torch.fx.experimental.symbolic_shapes import is_concrete_int
from torch.utils import _pytree as pytree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import tables  # noqa: E402
from tests.zoo import CASES, ModelCase, get_case  # noqa: E402
from tests.zoo.transformers_models import SLOW_SYMBOLIC  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "torch_export_baseline.json"
TOLERANCE = 1e-4


@dataclass
class Step:
    """One measured step: whether it worked (None: skipped), how long it took, why
    it failed or was skipped, and step-specific facts (node counts, ranges, ...)."""

    ok: bool | None
    seconds: float
    error: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def short_reason(error: BaseException) -> str:
    """``Type: first non-empty line of the message``, at most 300 characters.

    For a constraint violation the first line only names the dims, so the first
    violated guard (the next ``- ...`` line) is appended.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    if lines and lines[0].startswith("Constraints violated"):
        text += " " + next((line for line in lines[1:] if line.startswith("- ")), "")
    return text if len(text) <= 300 else text[:297] + "..."


def timed(action: Callable[[], Any]) -> tuple[Any, Step]:
    """Run ``action``; return its value (None on failure) and a Step without facts.

    Warnings are silenced and stderr is captured: on a data-dependent error torch.export
    prints the whole partial graph there, which would bury the table.
    """
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            value = action()
    except Exception as error:
        return None, Step(False, round(time.perf_counter() - start, 3), short_reason(error))
    return value, Step(True, round(time.perf_counter() - start, 3))


def count_call_functions(ep: ExportedProgram) -> int:
    return sum(1 for node in ep.graph.nodes if node.op == "call_function")


def input_kinds(ep: ExportedProgram) -> list[str]:
    return [spec.kind.name for spec in ep.graph_signature.input_specs]


def range_constraints(ep: ExportedProgram) -> dict[str, list[str]]:
    """``symbol -> [lower, upper]``, printed as torch prints them (``int_oo`` for ∞)."""
    return {
        str(symbol): [str(bounds.lower), str(bounds.upper)]
        for symbol, bounds in sorted(ep.range_constraints.items(), key=lambda item: str(item[0]))
    }


def specialized_dims(case: ModelCase, ep: ExportedProgram) -> list[str]:
    """Declared dynamic dims that came out of export as plain integers.

    torch.export names a user-input placeholder after its forward parameter, which
    is how ``dynamic_dims`` is keyed.
    """
    placeholders = {node.name: node for node in ep.graph.nodes if node.op == "placeholder"}
    specialized = set()
    for name in ep.graph_signature.user_inputs:
        shape = placeholders[name].meta["val"].shape
        for axis, dim in case.dynamic_dims.get(name, {}).items():
            if is_concrete_int(shape[axis]):
                specialized.add(dim.name)
    return sorted(specialized)


def measure_case(case: ModelCase) -> dict[str, Any]:
    """All five steps for one case, as a JSON-ready dict."""
    model = case.make_model()
    args, kwargs = case.make_inputs()
    steps: dict[str, Step] = {}
    static_ep, steps["static"] = measure_static(model, args, kwargs)
    dynamic_ep, steps["dynamic"] = measure_dynamic(case, model, args, kwargs)
    steps["auto"] = measure_auto(case, model, args, kwargs)
    source, ep = ("dynamic", dynamic_ep) if dynamic_ep is not None else ("static", static_ep)
    steps["decompose"] = measure_decompositions(source, ep)
    steps["check"] = check_against_eager(case, model, source, ep)
    return {
        "tags": sorted(case.tags),
        "steps": {name: asdict(step) for name, step in steps.items()},
    }


def measure_static(
    model: torch.nn.Module, args: tuple, kwargs: dict
) -> tuple[ExportedProgram | None, Step]:
    ep, step = timed(lambda: torch.export.export(model, args, kwargs))
    if ep is not None:
        step.facts = {
            "call_function_nodes": count_call_functions(ep),
            "input_kinds": input_kinds(ep),
        }
    return ep, step


def measure_dynamic(
    case: ModelCase, model: torch.nn.Module, args: tuple, kwargs: dict
) -> tuple[ExportedProgram | None, Step]:
    """Export with one named ``Dim(name, min=, max=)`` per declared dimension."""
    dynamic_shapes = case.dynamic_shapes(Dim)
    ep, step = timed(
        lambda: torch.export.export(model, args, kwargs, dynamic_shapes=dynamic_shapes)
    )
    if ep is not None:
        step.facts = {
            "call_function_nodes": count_call_functions(ep),
            "range_constraints": range_constraints(ep),
        }
    return ep, step


def measure_auto(case: ModelCase, model: torch.nn.Module, args: tuple, kwargs: dict) -> Step:
    """Export with ``Dim.AUTO`` on every declared axis and list what torch specialized."""
    if SLOW_SYMBOLIC in case.tags:
        return Step(None, 0.0, f"skipped: tagged {SLOW_SYMBOLIC}")
    auto_shapes = case.dynamic_shapes(lambda name, min, max: Dim.AUTO)
    ep, step = timed(lambda: torch.export.export(model, args, kwargs, dynamic_shapes=auto_shapes))
    if ep is not None:
        step.facts = {
            "range_constraints": range_constraints(ep),
            "specialized": specialized_dims(case, ep),
        }
    return step


def measure_decompositions(source: str, ep: ExportedProgram | None) -> Step:
    if ep is None:
        return Step(False, 0.0, "no exported program to decompose")
    decomposed, step = timed(ep.run_decompositions)
    step.facts = {"source": source, "call_function_nodes_before": count_call_functions(ep)}
    if decomposed is not None:
        step.facts["call_function_nodes_after"] = count_call_functions(decomposed)
    return step


def check_against_eager(
    case: ModelCase, model: torch.nn.Module, source: str, ep: ExportedProgram | None
) -> Step:
    if ep is None:
        return Step(False, 0.0, "no exported program to run")
    which = "other" if source == "dynamic" else "example"
    args, kwargs = case.make_inputs(**case.sizes(which))

    def compare() -> float:
        with torch.no_grad():
            expected = pytree.tree_leaves(model(*args, **kwargs))
            actual = pytree.tree_leaves(ep.module()(*args, **kwargs))
        if len(expected) != len(actual):
            raise AssertionError(f"{len(actual)} outputs, eager has {len(expected)}")
        return max((e - a).abs().max().item() for e, a in zip(expected, actual))

    difference, step = timed(compare)
    step.facts = {"sizes": which}
    if difference is not None:
        step.facts["max_abs_diff"] = float(f"{difference:.3g}")
        step.ok = difference <= TOLERANCE
        if not step.ok:
            step.error = f"max abs difference {difference:.3g} > {TOLERANCE}"
    return step


def summarize(cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Median seconds of each step over the cases where it succeeded, ok counts out
    of the cases where it ran, and the failure (or skip) reasons."""
    summary: dict[str, Any] = {"median_seconds": {}, "ok_counts": {}, "failures": {}}
    for step in ("static", "dynamic", "auto", "decompose", "check"):
        results = [(name, record["steps"][step]) for name, record in cases.items()]
        seconds = [result["seconds"] for _, result in results if result["ok"]]
        ran = [result for _, result in results if result["ok"] is not None]
        summary["median_seconds"][step] = round(statistics.median(seconds), 3) if seconds else None
        summary["ok_counts"][step] = f"{len(seconds)}/{len(ran)}"
        summary["failures"][step] = {name: r["error"] for name, r in results if not r["ok"]}
    return summary


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "export_mode": "torch.export.export defaults (non-strict)",
    }


def compress_kinds(kinds: list[str]) -> str:
    """Run-length form of the input kinds, e.g. ``P:26 U:2``."""
    runs: list[list[Any]] = []
    for kind in kinds:
        if runs and runs[-1][0] == kind:
            runs[-1][1] += 1
        else:
            runs.append([kind, 1])
    short = {"PARAMETER": "P", "BUFFER": "B", "CONSTANT_TENSOR": "C", "USER_INPUT": "U"}
    return " ".join(f"{short.get(kind, kind)}:{count}" for kind, count in runs)


def table_rows(cases: dict[str, dict[str, Any]]) -> list[list[str]]:
    def cell(step: dict[str, Any]) -> str:
        if step["ok"] is None:
            return "skipped"
        return f"{'ok' if step['ok'] else 'FAIL'} {step['seconds']:.2f}s"

    rows = []
    for name, record in cases.items():
        steps = record["steps"]
        decompose = steps["decompose"]["facts"]
        nodes = (
            f"{decompose.get('call_function_nodes_before', '-')}→"
            f"{decompose.get('call_function_nodes_after', '-')} ({decompose.get('source', '-')})"
        )
        rows.append([
            name,
            cell(steps["static"]),
            cell(steps["dynamic"]),
            auto_specialized(steps["auto"]),
            cell(steps["decompose"]),
            nodes,
            cell(steps["check"]),
            compress_kinds(steps["static"]["facts"].get("input_kinds", [])),
        ])  # fmt: skip
    return rows


def auto_specialized(step: dict[str, Any]) -> str:
    """The AUTO column: which declared dims torch specialized, ``none``, or why not known."""
    if step["ok"] is None:
        return "skipped"
    if not step["ok"]:
        return "FAIL"
    return ", ".join(step["facts"]["specialized"]) or "none"


HEADER = ["case", "static", "dynamic", "AUTO specialized", "decompose", "nodes", "check", "inputs"]


def print_table(cases: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    tables.print_table("torch.export baseline", HEADER, table_rows(cases))
    print("\nmedian seconds:", json.dumps(summary["median_seconds"]))
    print("ok counts:     ", json.dumps(summary["ok_counts"]))
    for step, failures in summary["failures"].items():
        for name, reason in failures.items():
            print(f"  {step:9s} {name:24s} {reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    parser.add_argument("--no-write", action="store_true", help="print, don't write JSON")
    options = parser.parse_args(argv)
    selected = [get_case(name) for name in options.case] if options.case else list(CASES)

    torch.set_num_threads(1)  # the machine is shared; one thread keeps timings comparable
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    cases = {}
    for case in selected:
        print(f"measuring {case.name} ...", file=sys.stderr, flush=True)
        cases[case.name] = measure_case(case)
    summary = summarize(cases)
    print_table(cases, summary)

    if not options.no_write:
        report = {"environment": environment(), "cases": cases, "summary": summary}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"\nwrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
