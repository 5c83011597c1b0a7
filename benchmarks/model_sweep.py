"""The model sweep's pass matrix: graphlift and torch.export on the same models, in one run.

For every case of ``tests/sweep/models.py`` (the zoo plus transformers
architectures from small configs) and every spec mode (``static``; ``named``:
the case's Dims; ``auto``: ``Dim.AUTO`` on every dim of every input), each
exporter goes through export, run against eager (several sizes), decompose and
save/load (``tests/sweep/runner.py``), and each export is timed (CPU seconds of
the process). Prints one row per cell, then per stage the ok counts of both
exporters, the cells where either is behind, and the median export-time ratio;
writes ``benchmarks/results/model_sweep.json`` (every cell) and
``benchmarks/results/model_sweep.md`` (the table).

    python benchmarks/model_sweep.py [--cases bert,gpt2] [--modes static,auto] [--record]
    python benchmarks/model_sweep.py --graphlift-only

``--record`` also writes torch's verdicts of the cells run into
``tests/sweep/torch_oracle.json`` (what the test compares against).
``--graphlift-only`` re-runs graphlift's column alone (~5 CPU-minutes instead of
~20) and takes torch's column from the recorded oracle and torch's export times
from the results file it replaces: the way to refresh the numbers after a fix.
With ``--cases``/``--modes`` it refreshes those cells and keeps the others.
``--resume`` keeps the cells the results file already has (an interrupted run).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.sweep import oracle as torch_oracle  # noqa: E402
from tests.sweep.models import CASES, CASES_BY_NAME  # noqa: E402
from tests.sweep.runner import (  # noqa: E402
    GRAPHLIFT,
    MODES,
    STAGES,
    TORCH,
    Exporter,
    StageResult,
    eager,
    run_cell,
    short,
    sizes_to_run,
)
from tests.zoo.case import ModelCase  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "model_sweep.json"
EXPORTERS = (GRAPHLIFT.name, TORCH.name)
Row = dict[str, Any]  # case, mode, {exporter: {stage: "status (detail)"}}, seconds


def main() -> None:
    options = parse_options()
    cases = [CASES_BY_NAME[n] for n in options.cases.split(",")] if options.cases else CASES
    modes = options.modes.split(",")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    output = Path(options.output)
    previous = (
        {key(r): r for r in json.loads(output.read_text())["rows"]} if output.exists() else {}
    )
    oracle = torch_oracle.load()
    # --graphlift-only refreshes the cells it runs and keeps the others
    rows = dict(previous) if options.resume or options.graphlift_only else {}
    warm_up()
    print(f"{'case':<24}{'mode':<8}" + "".join(f"{s:>22}" for s in STAGES) + "   export s")
    for case in cases:
        for mode in modes:
            if options.resume and (case.name, mode) in rows:
                continue
            if options.graphlift_only:
                row = graphlift_only(case, mode, oracle, previous.get((case.name, mode)))
            else:
                row = measure(case, mode)
            rows[(case.name, mode)] = row
            print_row(row)
            if options.record:
                torch_oracle.record(oracle, case.name, mode, parsed(row[TORCH.name]))
                torch_oracle.save(oracle)
            write(output, rows, same_run=not options.graphlift_only)
    summary = write(output, rows, same_run=not options.graphlift_only)
    print("\n" + markdown(summary))


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument(
        "--record", action="store_true", help="write torch's verdicts as the oracle"
    )
    parser.add_argument(
        "--graphlift-only",
        action="store_true",
        help="run graphlift alone; torch's column from the oracle and the previous results",
    )
    parser.add_argument("--resume", action="store_true", help="keep the cells --output has")
    options = parser.parse_args()
    if options.record and options.graphlift_only:
        parser.error("--record needs torch.export to run: drop --graphlift-only")
    return options


def warm_up() -> None:
    """One small cell through both exporters, unmeasured: lazy imports and first-call
    caches would otherwise be charged to whichever cell comes first."""
    for exporter in (GRAPHLIFT, TORCH):
        run_cell(exporter, CASES_BY_NAME["nn_mlp"], "named")


def key(row: Row) -> tuple[str, str]:
    return row["case"], row["mode"]


def measure(case: ModelCase, mode: str) -> Row:
    """Both exporters on one cell; eager's answers computed first, outside the clocks."""
    prepare_eager(case, mode)
    row: Row = {"case": case.name, "mode": mode, "seconds": {}}
    for exporter in (GRAPHLIFT, TORCH):
        results, seconds = timed_cell(exporter, case, mode)
        row[exporter.name] = {stage: str(result) for stage, result in results.items()}
        row["seconds"][exporter.name] = seconds
    return row


def prepare_eager(case: ModelCase, mode: str) -> None:
    """Eager's answers at the cell's sizes, outside the clocks. A size eager itself cannot
    run (swin's declared minimum) is left to the stage that reaches it."""
    for size in sizes_to_run(case, mode):
        try:
            eager(case, size)
        except Exception:
            continue


def graphlift_only(case: ModelCase, mode: str, oracle: Any, before: Row | None) -> Row:
    """graphlift measured now; torch's verdicts from the oracle, its times from ``before``."""
    prepare_eager(case, mode)
    results, seconds = timed_cell(GRAPHLIFT, case, mode)
    torch_seconds = (before or {}).get("seconds", {}).get(TORCH.name, {})
    return {
        "case": case.name,
        "mode": mode,
        GRAPHLIFT.name: {stage: str(result) for stage, result in results.items()},
        TORCH.name: {s: str(r) for s, r in torch_oracle.verdicts(oracle, case.name, mode).items()},
        "seconds": {GRAPHLIFT.name: seconds, TORCH.name: torch_seconds},
    }


def timed_cell(exporter: Exporter, case: ModelCase, mode: str) -> tuple[Any, dict[str, float]]:
    """``run_cell`` with the CPU seconds of its ``export`` call and of the whole cell."""
    seconds: dict[str, float] = {}

    def export(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return exporter.export(*args, **kwargs)
        finally:
            seconds["export"] = round(time.process_time() - start, 3)

    start = time.process_time()
    try:
        results = run_cell(dataclasses.replace(exporter, export=export), case, mode)
    except Exception as error:  # eager failed at a size the module took: the case's defect
        results = dict.fromkeys(STAGES, StageResult("fail", f"sweep harness: {short(error)}"))
    seconds["cell"] = round(time.process_time() - start, 3)
    return results, seconds


def parsed(column: dict[str, str]) -> dict[str, Any]:
    return {stage: torch_oracle.parse(text) for stage, text in column.items()}


def status(row: Row, exporter: str, stage: str) -> str:
    return str(row[exporter][stage]).split(" ", 1)[0]


def print_row(row: Row) -> None:
    marks = [f"{status(row, GRAPHLIFT.name, s)}/{status(row, TORCH.name, s)}" for s in STAGES]
    times = "/".join(
        f"{row['seconds'].get(e, {}).get('export', float('nan')):.2f}" for e in EXPORTERS
    )
    print(f"{row['case']:<24}{row['mode']:<8}" + "".join(f"{m:>22}" for m in marks) + f"   {times}",
          flush=True)  # fmt: skip


def write(output: Path, rows: dict[tuple[str, str], Row], *, same_run: bool) -> dict[str, Any]:
    ordered = [rows[k] for k in sorted(rows, key=cell_order)]
    # With --graphlift-only the time ratio divides by another run's torch times.
    summary = {**summarize(ordered), "same_run_times": same_run}
    record = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "summary": summary,
        "rows": ordered,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=1) + "\n")
    output.with_suffix(".md").write_text(markdown(summary))
    return summary


def cell_order(cell: tuple[str, str]) -> tuple[int, int]:
    names = [case.name for case in CASES]
    case, mode = cell
    return (names.index(case) if case in names else len(names), MODES.index(mode))


def summarize(rows: list[Row]) -> dict[str, Any]:
    """Per stage: ok counts, cells where one exporter is ok and the other not, wrong answers;
    per mode and overall: the median of graphlift's export time over torch's."""
    return {
        "cells": len(rows),
        "stages": {stage: stage_summary(rows, stage) for stage in STAGES},
        "export_time_ratio": {
            mode: median_ratio([r for r in rows if mode in ("all", r["mode"])])
            for mode in ("all", *MODES)
        },
        "cpu_seconds": {
            e: round(sum(r["seconds"].get(e, {}).get("cell", 0.0) for r in rows)) for e in EXPORTERS
        },
    }


def stage_summary(rows: list[Row], stage: str) -> dict[str, Any]:
    verdicts = [
        (f"{r['case']}/{r['mode']}", status(r, GRAPHLIFT.name, stage), status(r, TORCH.name, stage))
        for r in rows
    ]
    return {
        "ok": {
            GRAPHLIFT.name: sum(ours == "ok" for _, ours, _ in verdicts),
            TORCH.name: sum(theirs == "ok" for _, _, theirs in verdicts),
        },
        "graphlift_behind": [c for c, ours, theirs in verdicts if theirs == "ok" != ours],
        "graphlift_ahead": [c for c, ours, theirs in verdicts if ours == "ok" != theirs],
        "wrong": {
            GRAPHLIFT.name: [c for c, ours, _ in verdicts if ours == "wrong"],
            TORCH.name: [c for c, _, theirs in verdicts if theirs == "wrong"],
        },
    }


def median_ratio(rows: list[Row]) -> dict[str, Any]:
    """graphlift's export time / torch's, over the cells both export."""
    ratios = [
        r["seconds"][GRAPHLIFT.name]["export"] / r["seconds"][TORCH.name]["export"]
        for r in rows
        if all(status(r, e, "export") == "ok" for e in EXPORTERS)
        and r["seconds"].get(TORCH.name, {}).get("export")
    ]
    return {"median": round(statistics.median(ratios), 3) if ratios else None, "cells": len(ratios)}


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"Model sweep, {summary['cells']} cells (case x spec mode), "
        f"{datetime.date.today().isoformat()}, torch {torch.__version__}",
        "",
        "| stage | graphlift ok | torch.export ok | graphlift behind | graphlift ahead "
        "| wrong (graphlift / torch) |",
        "|---|---|---|---|---|---|",
    ]
    for stage, s in summary["stages"].items():
        lines.append(
            f"| {stage} | {s['ok'][GRAPHLIFT.name]} | {s['ok'][TORCH.name]} "
            f"| {len(s['graphlift_behind'])} | {len(s['graphlift_ahead'])} "
            f"| {len(s['wrong'][GRAPHLIFT.name])} / {len(s['wrong'][TORCH.name])} |"
        )
    ratios = summary["export_time_ratio"]
    lines += [
        "",
        "Median export time, graphlift / torch.export (CPU s, cells both export"
        + (
            "): "
            if summary.get("same_run_times", True)
            else "; torch's times from an earlier run, not a same-run ratio): "
        )
        + ", ".join(
            f"{m} {r['median']}x ({r['cells']} cells)" if r["median"] is not None else f"{m} n/a"
            for m, r in ratios.items()
        ),
        "CPU seconds of every stage: "
        + ", ".join(f"{e} {s}" for e, s in summary["cpu_seconds"].items()),
        "",
    ]
    for stage, s in summary["stages"].items():
        for side in ("graphlift_behind", "graphlift_ahead"):
            if s[side]:
                lines.append(f"- {stage}, {side.replace('_', ' ')}: {', '.join(s[side])}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
