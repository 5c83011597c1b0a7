"""Speed of graphlift against torch.export on the model zoo: export time and module() overhead.

For every case in ``tests/zoo``:

1. ``export``: ``graphlift.export`` and ``torch.export.export`` on the same model
   and inputs (static shapes), each the median of ``--repeat`` runs in this process.
   The two exporters alternate which goes first in each repeat, and each is warmed
   up once on an ``nn.Linear`` beforehand so import and first-use costs are not
   charged to the first case. A failing exporter is recorded with its error, not
   retried.
2. ``first_export``: each exporter's *first* export of the case, in a fresh child
   process of its own (import, the same ``nn.Linear`` warm-up with that exporter
   only, build the model, export once). That is what a user's first export costs:
   every per-model first-call cost (meta kernels, caches that later exports
   share) is in it, and neither library warms anything up for the other, as the
   in-process first repeat did (graphlift went first). ``--no-first-export``
   skips it.
3. ``module``: one call of ``ep.module()(*args, **kwargs)`` against the eager
   ``model(*args, **kwargs)`` under ``torch.no_grad()``, for graphlift's and
   torch.export's programs. ``module()`` is built once; the per-call time is a batch
   of calls lasting at least ``--budget`` seconds, divided by the count, and the
   median is taken over ``--rounds`` batches, rotating which callable goes first.

Targets (issue 18): median export time <= 0.1x torch.export's with static shapes,
<= 0.2x with dynamic dims; module() overhead <= 1.05x eager.
torch runs with one thread (the machine is shared). The table goes to stdout
(``rich`` when installed); the record goes to ``--json`` with sorted keys.

    python benchmarks/export_speed.py [--cases bert,gpt2] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import io
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import _pytree as pytree

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift  # noqa: E402
from benchmarks import tables  # noqa: E402
from tests.zoo.models import CASES, get_case  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "export_speed.json"
RESULTS_DYNAMIC = REPO / "benchmarks" / "results" / "export_speed_dynamic.json"
#: Issue 18's targets for the median export-time ratio: static shapes, dynamic dims.
EXPORT_TARGETS = {False: 0.1, True: 0.2}
#: ``--clock``: wall time, or this process's CPU time, the steadier measure when
#: the machine is shared (torch runs one thread, so CPU time is its work alone).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
MODULE_TARGET = 1.05
TOLERANCE = 1e-4

EXPORTERS: dict[str, Callable[..., Any]] = {
    "graphlift": graphlift.export,
    "torch": torch.export.export,
}


def short_reason(error: BaseException) -> str:
    """``Type: first non-empty line of the message``, at most 200 characters."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def quietly(action: Callable[[], Any]) -> Any:
    """Run ``action`` with warnings silenced and stderr captured (torch.export prints
    the whole partial graph there on a data-dependent error)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return action()


def time_in_turns(
    programs: dict[str, Any],
    repeat: int,
    transform: Callable[[str, Any], Any],
    record: dict[str, Any],
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Time ``transform(library, program)`` ``repeat`` times per library on
    ``clock``, the libraries taking turns going first. Returns the runs and the
    last results; a failure goes to ``record[library]`` and ends that library's runs."""
    runs: dict[str, list[float]] = {name: [] for name in programs}
    results: dict[str, Any] = {}
    for index in range(repeat):
        for name in list(programs) if index % 2 == 0 else list(reversed(programs)):
            if name in record:
                continue
            gc.collect()
            start = clock()
            try:
                results[name] = quietly(lambda name=name: transform(name, programs[name]))
            except Exception as error:
                record[name] = {"ok": False, "error": short_reason(error)}
                continue
            runs[name].append(clock() - start)
    return runs, results


def warm_up(names: tuple[str, ...] = tuple(EXPORTERS)) -> None:
    """Export a small, different model once with each exporter (of ``names``) and
    run its module()."""
    model = torch.nn.Linear(4, 3).eval()
    args = (torch.randn(2, 4),)
    for name in names:
        ep = quietly(lambda name=name: EXPORTERS[name](model, args, {}))
        with torch.no_grad():
            ep.module()(*args)


def time_exports(
    model: torch.nn.Module,
    args: tuple,
    kwargs: dict,
    repeat: int,
    exporters: dict[str, Callable[..., Any]] = EXPORTERS,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per exporter: ``{ok, seconds (median), runs, error}``, and the last program made."""
    runs: dict[str, list[float]] = {name: [] for name in exporters}
    errors: dict[str, str] = {}
    programs: dict[str, Any] = {}
    for index in range(repeat):
        order = list(exporters) if index % 2 == 0 else list(reversed(exporters))
        for name in order:
            if name in errors:
                continue
            gc.collect()
            start = clock()
            try:
                programs[name] = quietly(lambda name=name: exporters[name](model, args, kwargs))
            except Exception as error:
                errors[name] = short_reason(error)
                programs.pop(name, None)
                continue
            runs[name].append(clock() - start)
    record = {
        name: {
            "ok": name not in errors,
            "seconds": round(statistics.median(runs[name]), 4) if name not in errors else None,
            "runs": [round(seconds, 4) for seconds in runs[name]],
            "error": errors.get(name),
        }
        for name in exporters
    }
    return record, programs


def dynamic_exporters(case: Any, declared_min: bool = False) -> dict[str, Callable[..., Any]]:
    """The exporters with the case's dynamic dims (min raised to 2, see the README's 0/1
    note; ``declared_min``: the case's own minimum, often 1)."""

    def spec(make_dim: Callable[..., Any]) -> dict[str, Any]:
        dims = {
            d.name: make_dim(d.name, min=d.min if declared_min else max(d.min, 2), max=d.max)
            for d in case.dims
        }
        return {
            p: {a: dims[d.name] for a, d in axes.items()} for p, axes in case.dynamic_dims.items()
        }

    makers = {"graphlift": graphlift.Dim, "torch": torch.export.Dim}
    return {
        name: functools.partial(exporter, dynamic_shapes=spec(makers[name]))
        for name, exporter in EXPORTERS.items()
    }


def calls_for(call: Callable[[], Any], budget: float) -> int:
    """How many calls of ``call`` take at least ``budget`` seconds (doubling from 1)."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        if time.perf_counter() - start >= budget:
            return calls
        calls *= 2


def per_call_seconds(call: Callable[[], Any], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def time_calls(
    callables: dict[str, Callable[[], Any]], rounds: int, budget: float
) -> dict[str, Any]:
    """Median seconds per call of each callable over ``rounds`` batches of one shared
    call count, rotating the order each round so drift hits every callable alike."""
    names = list(callables)
    calls = max(calls_for(callables[name], budget) for name in names)
    samples: dict[str, list[float]] = {name: [] for name in names}
    gc.collect()
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(per_call_seconds(callables[name], calls))
    return {
        "calls_per_batch": calls,
        "median_seconds": {name: statistics.median(samples[name]) for name in names},
    }


def max_difference(expected: Any, actual: Any) -> float:
    expected, actual = pytree.tree_leaves(expected), pytree.tree_leaves(actual)
    if len(expected) != len(actual):
        return float("inf")
    return max(((e - a).abs().max().item() for e, a in zip(expected, actual)), default=0.0)


def time_modules(
    model: torch.nn.Module, args: tuple, kwargs: dict, programs: dict[str, Any], options: Any
) -> dict[str, Any]:
    """Per-call seconds of eager and of each program's module(), ratios to eager, and
    the largest output difference from eager (a fast but wrong module is no win)."""
    modules = {name: quietly(program.module) for name, program in programs.items()}
    callables = {"eager": lambda: model(*args, **kwargs)}
    for name, module in modules.items():
        callables[name] = lambda module=module: module(*args, **kwargs)
    with torch.no_grad():
        expected = model(*args, **kwargs)
        differences = {
            name: float(f"{max_difference(expected, module(*args, **kwargs)):.3g}")
            for name, module in modules.items()
        }
        timing = time_calls(callables, options.rounds, options.budget)
    seconds = timing["median_seconds"]
    return {
        "calls_per_batch": timing["calls_per_batch"],
        "seconds": {name: round(value, 7) for name, value in seconds.items()},
        "ratio_to_eager": {name: round(seconds[name] / seconds["eager"], 3) for name in modules},
        "max_abs_diff": differences,
    }


def case_exporters(case: Any, options: Any) -> dict[str, Callable[..., Any]]:
    return dynamic_exporters(case, options.declared_min) if options.dynamic else EXPORTERS


def first_export_in_fresh_process(name: str, exporter: str, options: Any) -> dict[str, Any]:
    """Run in a child process (``--first-export-child``): import, warm ``exporter``
    up on an ``nn.Linear`` as the main run does, build the case, then time its one
    and only export. No other export (and no other library's) has run in the
    process, so every per-model first-call cost (meta kernels, caches, lazily made
    operator objects) is charged to it, as in a user's first export."""
    torch.set_num_threads(1)
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    warm_up((exporter,))
    case = get_case(name)
    model = case.make_model()
    args, kwargs = case.make_inputs()
    export = case_exporters(case, options)[exporter]
    clock = CLOCKS[options.clock]
    gc.collect()
    start = clock()
    try:
        quietly(lambda: export(model, args, kwargs))
    except Exception as error:
        return {"ok": False, "seconds": None, "error": short_reason(error)}
    return {"ok": True, "seconds": round(clock() - start, 4), "error": None}


def time_first_exports(name: str, options: Any) -> dict[str, Any]:
    """Each exporter's first export of case ``name``, each in a fresh process of its
    own (see :func:`first_export_in_fresh_process`), and their ratio."""
    flags = ["--clock", options.clock] + ["--dynamic"] * options.dynamic
    flags += ["--declared-min"] * options.declared_min
    record: dict[str, Any] = {}
    for exporter in EXPORTERS:
        command = [sys.executable, str(Path(__file__).resolve()), "--cases", name,
                   "--first-export-child", exporter, *flags]  # fmt: skip
        child = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        if child.returncode != 0:
            tail = (child.stderr.strip().splitlines() or ["no output"])[-1]
            record[exporter] = {"ok": False, "seconds": None, "error": f"child failed: {tail}"}
            continue
        record[exporter] = json.loads(child.stdout.strip().splitlines()[-1])
    if record["graphlift"]["ok"] and record["torch"]["ok"]:
        record["ratio"] = round(record["graphlift"]["seconds"] / record["torch"]["seconds"], 3)
    return record


def measure_case(name: str, options: Any) -> dict[str, Any]:
    case = get_case(name)
    model = case.make_model()
    args, kwargs = case.make_inputs()
    exporters = case_exporters(case, options)
    export, programs = time_exports(
        model, args, kwargs, options.repeat, exporters, CLOCKS[options.clock]
    )
    record: dict[str, Any] = {"export": export, "module": None}
    if export["graphlift"]["ok"] and export["torch"]["ok"]:
        ratio = export["graphlift"]["seconds"] / export["torch"]["seconds"]
        export["ratio"] = round(ratio, 3)
    if "graphlift" in programs:
        try:
            record["module"] = time_modules(model, args, kwargs, programs, options)
        except Exception as error:
            record["module_error"] = short_reason(error)
    if options.first_export:
        record["first_export"] = time_first_exports(name, options)
    return record


def summarize(cases: dict[str, dict[str, Any]], export_target: float) -> dict[str, Any]:
    export_ratios = [r["export"]["ratio"] for r in cases.values() if "ratio" in r["export"]]
    first_ratios = [
        r["first_export"]["ratio"] for r in cases.values() if "ratio" in r.get("first_export", {})
    ]
    modules = [r["module"] for r in cases.values() if r["module"]]
    ours = [m["ratio_to_eager"]["graphlift"] for m in modules]
    theirs = [m["ratio_to_eager"]["torch"] for m in modules if "torch" in m["ratio_to_eager"]]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 3) if values else None

    return {
        "export_ratio_median": median(export_ratios),
        "export_ratio_cases": len(export_ratios),
        "export_target": export_target,
        "first_export_ratio_median": median(first_ratios),
        "first_export_ratio_cases": len(first_ratios),
        "module_ratio_median": median(ours),
        "module_ratio_cases": len(ours),
        "module_target": MODULE_TARGET,
        "torch_module_ratio_median": median(theirs),
        "module_slower_than_target": sorted(
            name
            for name, r in cases.items()
            if r["module"] and r["module"]["ratio_to_eager"]["graphlift"] > MODULE_TARGET
        ),
    }


def environment() -> dict[str, Any]:
    def git(*command: str) -> str:
        result = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True)
        return result.stdout.strip()

    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "graphlift": graphlift.__version__,
        "graphlift_commit": git("rev-parse", "--short", "HEAD"),
        "graphlift_uncommitted_changes": bool(git("status", "--porcelain", "--", "graphlift")),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def header(export_target: float) -> list[str]:
    return [
        "case",
        "torch.export s",
        "graphlift s",
        f"export ratio (≤{export_target})",
        "first: torch.export s",
        "first: graphlift s",
        "first ratio",
        *MODULE_HEADER,
    ]


MODULE_HEADER = [
    "eager ms",
    "graphlift module ms",
    f"module/eager (≤{MODULE_TARGET})",
    "torch module ms",
    "torch module/eager",
]


def table_rows(cases: dict[str, dict[str, Any]], export_target: float) -> list[list[str]]:
    def export_cell(result: dict[str, Any] | None) -> str:
        if result is None:
            return "-"
        return f"{result['seconds']:.3f}" if result["ok"] else result["error"].split(":")[0]

    def export_ratio(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}x" + (" !" if value > export_target else "")

    def ms(module: dict[str, Any] | None, name: str) -> str:
        if not module or name not in module["seconds"]:
            return "-"
        return f"{module['seconds'][name] * 1e3:.3f}"

    def ratio(module: dict[str, Any] | None, name: str, target: float | None) -> str:
        if not module or name not in module["ratio_to_eager"]:
            return "-"
        value = module["ratio_to_eager"][name]
        return f"{value:.2f}x" + (" !" if target and value > target else "")

    rows = []
    for name, record in cases.items():
        export, module = record["export"], record["module"]
        first = record.get("first_export", {})
        rows.append([
            name,
            export_cell(export["torch"]),
            export_cell(export["graphlift"]),
            export_ratio(export.get("ratio")),
            export_cell(first.get("torch")),
            export_cell(first.get("graphlift")),
            export_ratio(first.get("ratio")),
            ms(module, "eager"),
            ms(module, "graphlift"),
            ratio(module, "graphlift", MODULE_TARGET),
            ms(module, "torch"),
            ratio(module, "torch", None),
        ])  # fmt: skip
    return rows


def print_table(cases: dict[str, dict[str, Any]], summary: dict[str, Any]) -> None:
    target = summary["export_target"]
    tables.print_table(
        "graphlift vs torch.export (! = misses target)", header(target), table_rows(cases, target)
    )
    for name, record in cases.items():
        for exporter in EXPORTERS:
            if error := record["export"][exporter]["error"]:
                print(f"  {name}: {exporter} failed: {error}")
            if error := record.get("first_export", {}).get(exporter, {}).get("error"):
                print(f"  {name}: {exporter}'s first export in a fresh process failed: {error}")
        if error := record.get("module_error"):
            print(f"  {name}: module() timing failed: {error}")
        for exporter, diff in (record["module"] or {}).get("max_abs_diff", {}).items():
            if diff > TOLERANCE:
                print(f"  {name}: {exporter} module() differs from eager by {diff:.3g}")
    print(summary_line(summary))


def summary_line(summary: dict[str, Any]) -> str:
    def verdict(value: float | None, target: float) -> str:
        if value is None:
            return "n/a"
        return f"{value:.2f}x ({'meets' if value <= target else 'misses'} target ≤{target}x)"

    target = summary["export_target"]
    return (
        f"\nmedian export time graphlift/torch.export (median of repeats): "
        f"{verdict(summary['export_ratio_median'], target)} "
        f"over {summary['export_ratio_cases']} cases where both succeed\n"
        f"median first export in a fresh process graphlift/torch.export: "
        f"{verdict(summary['first_export_ratio_median'], target)} "
        f"over {summary['first_export_ratio_cases']} cases\n"
        f"median module() overhead graphlift/eager: "
        f"{verdict(summary['module_ratio_median'], MODULE_TARGET)} "
        f"over {summary['module_ratio_cases']} cases; "
        f"torch.export's module()/eager: {summary['torch_module_ratio_median']}x"
    )


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--repeat", type=int, default=3, help="export runs per case")
    parser.add_argument("--rounds", type=int, default=5, help="module() batches per callable")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per module() batch")
    parser.add_argument("--json", type=Path, default=None, help="where to write results")
    parser.add_argument("--dynamic", action="store_true", help="export with the zoo's dynamic dims")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="export timer")
    parser.add_argument(
        "--declared-min", action="store_true", help="--dynamic with the zoo's own Dim minimums"
    )
    parser.add_argument(
        "--no-first-export", dest="first_export", action="store_false",
        help="skip timing each exporter's first export in a fresh process",
    )  # fmt: skip
    parser.add_argument("--first-export-child", choices=sorted(EXPORTERS), help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.json is None:
        options.json = RESULTS_DYNAMIC if options.dynamic else RESULTS
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if options.first_export_child:
        record = first_export_in_fresh_process(options.cases, options.first_export_child, options)
        print(json.dumps(record))
        return 0
    names = options.cases.split(",") if options.cases else [case.name for case in CASES]
    for name in names:
        get_case(name)  # unknown names fail before anything is measured
    torch.set_num_threads(1)  # the machine is shared; one thread keeps timings comparable
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    warm_up()
    cases = {}
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        cases[name] = measure_case(name, options)
    summary = summarize(cases, EXPORT_TARGETS[options.dynamic])
    print_table(cases, summary)
    report = {
        "environment": environment(),
        "options": {
            "repeat": options.repeat,
            "rounds": options.rounds,
            "budget": options.budget,
            "dynamic": options.dynamic,
            "clock": options.clock,
            "declared_min": options.declared_min,
            "first_export": options.first_export,
        },
        "cases": cases,
        "summary": summary,
    }
    tables.write_results(options.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
