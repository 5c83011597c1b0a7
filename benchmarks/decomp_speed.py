"""Speed of graphlift's run_decompositions against torch.export's on the model zoo.

For every case in ``tests/zoo``, in one process, static shapes and then the
case's dynamic dims (min raised to 2, as in ``export_speed.py --dynamic``):

1. export the model with each exporter (not timed);
2. time ``ep.run_decompositions()`` (the default core-ATen table), the median of
   ``--repeat`` runs, the two libraries taking turns going first;
3. count the decomposed graph's call_function nodes and compare its module()
   with eager on the example inputs.

Target: graphlift's time <= 0.1x torch.export's (median over the cases where
both succeed). Each library is warmed up once on an ``nn.Linear`` first, so
one-time costs (building the decomposition table) are not charged to the first
case. torch runs with one thread.

    python benchmarks/decomp_speed.py [--cases bert,gpt2] [--repeat 3] [--static-only]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import tables  # noqa: E402
from benchmarks.export_speed import (  # noqa: E402
    CLOCKS,
    EXPORTERS,
    dynamic_exporters,
    environment,
    max_difference,
    quietly,
    short_reason,
    time_in_turns,
)
from tests.zoo.models import CASES, get_case  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "decomp_speed.json"
TARGET = 0.1
LIBRARIES = tuple(EXPORTERS)  # ("graphlift", "torch")


def call_nodes(program: Any) -> int:
    return sum(node.op == "call_function" for node in program.graph.nodes)


def warm_up() -> None:
    model, args = torch.nn.Linear(4, 3).eval(), (torch.randn(2, 4),)
    for exporter in EXPORTERS.values():
        quietly(lambda exporter=exporter: exporter(model, args, {}).run_decompositions())


def measure(
    case: Any, dynamic: bool, repeat: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    """Per library: ok, median seconds, runs, node count, difference from eager."""
    model = case.make_model()
    args, kwargs = case.make_inputs()
    exporters = dynamic_exporters(case) if dynamic else EXPORTERS
    record: dict[str, Any] = {}
    programs: dict[str, Any] = {}
    for name in LIBRARIES:
        try:
            programs[name] = quietly(lambda name=name: exporters[name](model, args, kwargs))
        except Exception as error:
            record[name] = {"ok": False, "error": "export: " + short_reason(error)}
    runs, decomposed = time_in_turns(
        programs, repeat, lambda _, program: program.run_decompositions(), record, clock
    )
    for name, program in decomposed.items():
        if name in record:
            continue
        with torch.no_grad():
            difference = max_difference(model(*args, **kwargs), program.module()(*args, **kwargs))
        record[name] = {
            "ok": True,
            "seconds": round(statistics.median(runs[name]), 4),
            "runs": [round(seconds, 4) for seconds in runs[name]],
            "nodes": call_nodes(program),
            "max_abs_diff": float(f"{difference:.3g}"),
        }
    if all(record.get(name, {}).get("ok") for name in LIBRARIES):
        record["ratio"] = round(record["graphlift"]["seconds"] / record["torch"]["seconds"], 3)
    return record


def summarize(cases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"target": TARGET}
    for mode in ("static", "dynamic"):
        ratios = [r[mode]["ratio"] for r in cases.values() if mode in r and "ratio" in r[mode]]
        seconds = {
            name: [r[mode][name]["seconds"] for r in cases.values()
                   if mode in r and r[mode].get(name, {}).get("ok")]
            for name in LIBRARIES
        }  # fmt: skip
        summary[mode] = {
            "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
            "cases_both_ok": len(ratios),
            "median_seconds": {
                name: round(statistics.median(values), 3) if values else None
                for name, values in seconds.items()
            },
        }
    return summary


HEADER = ["case", "mode", "torch s", "graphlift s", f"ratio (≤{TARGET})", "torch nodes",
          "graphlift nodes", "node diff", "graphlift max |Δ| vs eager"]  # fmt: skip


def table_rows(cases: dict[str, dict[str, Any]]) -> list[list[str]]:
    rows = []
    for name, record in cases.items():
        for mode, result in record.items():
            ours, theirs = result.get("graphlift", {}), result.get("torch", {})

            def cell(r: dict[str, Any], key: str) -> str:
                if not r.get("ok"):
                    return "fails"
                value = r[key]
                return f"{value:.3f}" if isinstance(value, float) else str(value)

            difference = "-"
            if ours.get("ok") and theirs.get("ok"):
                difference = f"{(ours['nodes'] - theirs['nodes']) / theirs['nodes']:+.1%}"
            ratio = result.get("ratio")
            rows.append([
                name, mode, cell(theirs, "seconds"), cell(ours, "seconds"),
                "-" if ratio is None else f"{ratio:.3f}x" + (" !" if ratio > TARGET else ""),
                cell(theirs, "nodes"), cell(ours, "nodes"), difference,
                cell(ours, "max_abs_diff"),
            ])  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--static-only", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="timer")
    options = parser.parse_args(argv)
    names = options.cases.split(",") if options.cases else [case.name for case in CASES]
    torch.set_num_threads(1)
    torch._logging.set_logs(dynamic=logging.ERROR, export=logging.ERROR)
    warm_up()
    cases: dict[str, dict[str, Any]] = {}
    for name in names:
        case = get_case(name)
        modes = ("static",) if options.static_only else ("static", "dynamic")
        cases[name] = {}
        for mode in modes:
            print(f"measuring {name} ({mode}) ...", file=sys.stderr, flush=True)
            cases[name][mode] = measure(
                case, mode == "dynamic", options.repeat, CLOCKS[options.clock]
            )
    summary = summarize(cases)
    tables.print_table("run_decompositions: graphlift vs torch.export", HEADER, table_rows(cases))
    for name, record in cases.items():
        for mode, result in record.items():
            for library in LIBRARIES:
                if error := result.get(library, {}).get("error"):
                    print(f"  {name} ({mode}): {library} failed: {error}")
    for mode in ("static", "dynamic"):
        s = summary[mode]
        print(f"{mode}: median ratio graphlift/torch.export {s['ratio_median']} over "
              f"{s['cases_both_ok']} cases; median seconds {s['median_seconds']}")  # fmt: skip
    report = {"environment": environment(), "options": vars(options) | {"json": str(options.json)},
              "cases": cases, "summary": summary}  # fmt: skip
    tables.write_results(options.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
