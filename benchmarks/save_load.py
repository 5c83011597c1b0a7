"""Saving and loading against torch.export.save/load on the model zoo, in one process.

For every exportable case (static shapes; ``--dynamic`` for the cases' dynamic
dims): export with graphlift and with torch.export, then time, as the median of
``--repeat`` runs alternating which library goes first, ``save`` to an
in-memory buffer and ``load`` from it, and record the archive sizes. Each
loaded graphlift program is run once and compared with the original program
(they must agree exactly). Both libraries are warmed up on a small model first.

Target: graphlift's load time <= 0.3x torch.export.load's (the median ratio
over the cases). torch runs with one thread (the machine is shared).

    python benchmarks/save_load.py [--cases bert,gpt2] [--repeat 5] [--dynamic] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift  # noqa: E402
from benchmarks import tables  # noqa: E402
from benchmarks.export_speed import dynamic_exporters, environment, quietly, short_reason  # noqa: E402
from tests.zoo.models import CASES, get_case  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "save_load.json"
RESULTS_DYNAMIC = REPO / "benchmarks" / "results" / "save_load_dynamic.json"
LOAD_TARGET = 0.3
LIBRARIES = {
    "graphlift": (graphlift.save, graphlift.load),
    "torch": (torch.export.save, torch.export.load),
}


def seconds(action: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    quietly(action)
    return time.perf_counter() - start


def measure(programs: dict[str, Any], repeat: int) -> dict[str, Any]:
    """Per library: save and load seconds (medians) and archive bytes."""
    archives: dict[str, bytes] = {}
    for name, (save, _) in LIBRARIES.items():
        buffer = io.BytesIO()
        quietly(lambda save=save, name=name, buffer=buffer: save(programs[name], buffer))
        archives[name] = buffer.getvalue()
    record: dict[str, Any] = {name: {"bytes": len(data)} for name, data in archives.items()}
    runs: dict[str, dict[str, list[float]]] = {name: {"save": [], "load": []} for name in LIBRARIES}
    for index in range(repeat):
        order = list(LIBRARIES) if index % 2 == 0 else list(reversed(LIBRARIES))
        for name in order:
            save, load = LIBRARIES[name]
            program, data = programs[name], archives[name]
            runs[name]["save"].append(seconds(lambda: save(program, io.BytesIO())))  # noqa: B023
            runs[name]["load"].append(seconds(lambda: load(io.BytesIO(data))))  # noqa: B023
    for name in LIBRARIES:
        record[name]["save_seconds"] = round(statistics.median(runs[name]["save"]), 5)
        record[name]["load_seconds"] = round(statistics.median(runs[name]["load"]), 5)
    record["load_ratio"] = round(
        record["graphlift"]["load_seconds"] / record["torch"]["load_seconds"], 3
    )
    record["save_ratio"] = round(
        record["graphlift"]["save_seconds"] / record["torch"]["save_seconds"], 3
    )
    record["size_ratio"] = round(record["graphlift"]["bytes"] / record["torch"]["bytes"], 3)
    return record


def check_loaded(program: Any, args: tuple, kwargs: dict) -> bool:
    buffer = io.BytesIO()
    graphlift.save(program, buffer)
    loaded = graphlift.load(io.BytesIO(buffer.getvalue()))
    with torch.no_grad():
        expected = graphlift.pytree.tree_leaves(program.module()(*args, **kwargs))
        actual = graphlift.pytree.tree_leaves(loaded.module()(*args, **kwargs))
    return len(expected) == len(actual) and all(torch.equal(a, e) for a, e in zip(actual, expected))


def run_case(case: Any, dynamic: bool, repeat: int) -> dict[str, Any]:
    model = case.make_model()
    args, kwargs = case.make_inputs()
    exporters = dynamic_exporters(case) if dynamic else {
        "graphlift": graphlift.export, "torch": torch.export.export}  # fmt: skip
    programs = {}
    for name, exporter in exporters.items():
        try:
            programs[name] = quietly(lambda exporter=exporter: exporter(model, args, kwargs))
        except Exception as error:
            return {"ok": False, "error": f"{name} export: {short_reason(error)}"}
    record = measure(programs, repeat)
    record["ok"] = True
    record["loaded_program_matches"] = check_loaded(programs["graphlift"], args, kwargs)
    return record


def warm_up() -> None:
    model, args = torch.nn.Linear(4, 3).eval(), (torch.randn(2, 4),)
    programs = {
        "graphlift": graphlift.export(model, args),
        "torch": torch.export.export(model, args),
    }
    measure(programs, 1)


def print_table(cases: dict[str, Any], summary: dict[str, Any]) -> None:
    header = ["case", "torch save ms", "graphlift save ms", "torch load ms", "graphlift load ms",
              f"load ratio (≤{LOAD_TARGET})", "torch KB", "graphlift KB", "same outputs"]  # fmt: skip
    rows = []
    for name, r in cases.items():
        if not r["ok"]:
            rows.append([name, *["-"] * 7, r["error"][:40]])
            continue
        g, t = r["graphlift"], r["torch"]
        rows.append([
            name, f"{t['save_seconds'] * 1e3:.1f}", f"{g['save_seconds'] * 1e3:.1f}",
            f"{t['load_seconds'] * 1e3:.1f}", f"{g['load_seconds'] * 1e3:.1f}",
            f"{r['load_ratio']:.2f}x" + (" !" if r["load_ratio"] > LOAD_TARGET else ""),
            f"{t['bytes'] / 1024:.0f}", f"{g['bytes'] / 1024:.0f}", str(r["loaded_program_matches"]),
        ])  # fmt: skip
    tables.print_table(
        "graphlift.save/load vs torch.export.save/load (! = misses target)", header, rows
    )
    print(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="comma-separated zoo case names (default: all)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--dynamic", action="store_true", help="export with the cases' dynamic dims"
    )
    parser.add_argument("--json", type=Path, default=None)
    options = parser.parse_args()
    torch.set_num_threads(1)
    cases = [get_case(n) for n in options.cases.split(",")] if options.cases else list(CASES)
    warm_up()
    results = {case.name: run_case(case, options.dynamic, options.repeat) for case in cases}
    ok = {n: r for n, r in results.items() if r["ok"]}
    summary = {
        "cases_measured": len(ok),
        "median_load_ratio": statistics.median(r["load_ratio"] for r in ok.values())
        if ok
        else None,
        "median_save_ratio": statistics.median(r["save_ratio"] for r in ok.values())
        if ok
        else None,
        "median_size_ratio": statistics.median(r["size_ratio"] for r in ok.values())
        if ok
        else None,
        "load_target": LOAD_TARGET,
        "all_loaded_programs_match": all(r["loaded_program_matches"] for r in ok.values()),
    }
    print_table(results, summary)
    record = {
        "environment": environment(),
        "dynamic": options.dynamic,
        "summary": summary,
        "cases": results,
    }
    path = options.json or (RESULTS_DYNAMIC if options.dynamic else RESULTS)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
